"""Working-memory blocks shared by the applications."""

#: memory budget of one working block (bytes)
BLOCK_BYTES = 256 * 2**20


def row_blocks(n, per_row_bytes):
    """Slices of ``n`` rows whose temporaries take about ``BLOCK_BYTES``."""
    step = max(1, BLOCK_BYTES // max(int(per_row_bytes), 1))
    return [slice(s, min(s + step, n)) for s in range(0, n, step)]
