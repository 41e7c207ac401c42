"""Sums and maps over the rows of a training matrix: numpy, sparse or dask.

Everything that touches the ``n`` training rows is one of two patterns: a
*sum* over the rows of a small per-block result (a gradient, a Hessian,
``X~^T R``) or a *map* that returns a few numbers per row (the linear
predictor, leverages). Both take a block function
``func(X_block, *row_blocks)`` written for numpy, where ``row_blocks`` are
the matching slices of per-row arrays (anything indexed by row in its first
axis; None passes through).

* numpy arrays and sparse matrices: the function runs on the whole matrix,
  or on row blocks of about ``block_bytes`` bytes (so that a block stays in
  cache while several products read it). A sum's block function may take an
  ``out`` keyword and accumulate into it.
* dask arrays (rows chunked, columns in one chunk): one task per chunk on
  the active scheduler (a ``dask.distributed`` client included). Per-row
  arrays travel with their chunk (scattered once per call when a distributed
  client is active); sums are tree-reduced :data:`SPLIT_EVERY` partial
  results at a time, so no process holds more than a few chunks, and only
  the small results come back. dask is imported only when a dask array is
  seen.

The families and the influence algebra call only these functions when they
touch training rows, so every family (and every new one) works on dask
arrays without code of its own.
"""

import functools

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import column_or_1d

from ._threads import blas_threads, run_threads, serial

__all__ = ["SPLIT_EVERY", "as_1d", "is_dask", "row_slices", "sum_rows", "map_rows",
           "map_row_blocks", "lazy_map_rows", "ship_rows", "to_numpy"]

#: partial sums combined per task in a dask tree reduction
SPLIT_EVERY = 8


def as_1d(y, warn=False):
    """``sklearn.utils.validation.column_or_1d``, returning a one-dimensional
    ndarray as it is (its checks, which also look for dataframes, take about
    66 microseconds a call, paid twice by a small fit + explain)."""
    if type(y) is np.ndarray and y.ndim == 1:
        return y
    return column_or_1d(y, warn=warn)


def is_dask(X):
    """Whether ``X`` is a dask array (without importing dask)."""
    return type(X).__module__.startswith("dask.") and hasattr(X, "chunks")


def to_numpy(X):
    """Compute a (small) dask array; anything else is returned as it is."""
    return X.compute() if is_dask(X) else X


def row_slices(X, block_bytes=None):
    """Row blocks of ``X``: its chunks (dask), else blocks of about
    ``block_bytes`` bytes of dense rows (one block when None or sparse)."""
    n = X.shape[0]
    if is_dask(X):
        bounds = np.cumsum((0,) + tuple(X.chunks[0]))
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    if block_bytes is None or sp.issparse(X) or n == 0:
        return [slice(0, n)]
    step = max(1, int(block_bytes) // (8 * max(X.shape[1], 1)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _slice(array, rows):
    return None if array is None else array[rows]


def _add(*parts):
    """Sum of partial results (arrays, numbers or tuples of them)."""
    first = parts[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_add(*group) for group in zip(*parts))
    total = first.copy() if isinstance(first, np.ndarray) else first
    for part in parts[1:]:
        total = total + part
    return total


def _accumulate(total, part):
    if total is None:
        return part
    if isinstance(total, (tuple, list)):
        return type(total)(_accumulate(t, p) for t, p in zip(total, part))
    if isinstance(total, np.ndarray):
        total += part
        return total
    return total + part


def sum_rows(func, X, *rows, block_bytes=None, accumulates=False, in_order=False):
    """``sum_b func(X[b], *(r[b] for r in rows))`` over the row blocks ``b``.

    With ``accumulates=True`` the function takes ``out=`` (the running total,
    None at first) and returns the new total (numpy); dask chunks each start
    from None and are tree-added. With ``in_order=True`` the blocks of a
    numpy matrix run in order on this thread, with the BLAS's own threads,
    instead of in Python threads of one BLAS thread each: for block functions
    whose product is wide enough for the BLAS to parallelise it well.
    """
    if is_dask(X):
        import dask

        parts = _dask_parts(func, X, rows)
        add = dask.delayed(_add, pure=True)
        while len(parts) > 1:
            parts = [add(*parts[i : i + SPLIT_EVERY])
                     for i in range(0, len(parts), SPLIT_EVERY)]
        return dask.compute(parts[0])[0]
    blocks = row_slices(X, block_bytes)

    def work(first):
        total = None
        for block in blocks[first::n_threads]:
            Xb = X if block == slice(0, X.shape[0]) else X[block]
            args = [_slice(r, block) for r in rows]
            if accumulates:
                total = func(Xb, *args, out=total)
            else:
                total = _accumulate(total, func(Xb, *args))
        return total

    n_threads = 1 if in_order else min(blas_threads(), len(blocks))
    totals = [t for t in run_threads(work, n_threads) if t is not None]
    return totals[0] if len(totals) == 1 else _add(*totals)


def _concatenate(parts):
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_concatenate(group) for group in zip(*parts))
    return np.concatenate(parts, axis=0)


def map_rows(func, X, *rows, block_bytes=None):
    """``func`` applied to each row block, results concatenated along rows.

    The function returns an array (or a tuple of arrays) with one entry per
    row of its block; the result is numpy (computed for dask input).
    """
    if is_dask(X):
        import dask

        parts = dask.compute(*_dask_parts(func, X, rows))
        return _concatenate(list(parts))
    blocks = row_slices(X, block_bytes)
    if len(blocks) == 1:
        return func(X, *rows)
    n_threads = min(blas_threads(), len(blocks))
    parts = run_threads(lambda first: [func(X[b], *(_slice(r, b) for r in rows))
                                       for b in blocks[first::n_threads]], n_threads)
    ordered = [None] * len(blocks)
    for first, results in enumerate(parts):
        ordered[first::n_threads] = results
    return _concatenate(ordered)


def lazy_map_rows(func, X, *rows, width, dtype=np.float64):
    """Like :func:`map_rows` for a dask ``X``, but the result stays a lazy
    dask array of shape (n, width), chunked like ``X``."""
    import dask.array as da

    parts = _dask_parts(func, X, rows)
    sizes = [b.stop - b.start for b in row_slices(X)]
    return da.concatenate([da.from_delayed(part, shape=(size, width), dtype=dtype)
                           for part, size in zip(parts, sizes)])


def map_row_blocks(func, X, *rows, per_block=()):
    """One delayed ``func(X_chunk, *row_chunks, *per_block[i])`` per chunk of a
    dask ``X`` (for results that stay lazy or are merged otherwise);
    ``per_block`` holds one tuple of extra arguments per chunk."""
    return _dask_parts(func, X, rows, per_block)


def _client():
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client: the local scheduler runs the graph
        return None


def ship_rows(array, X):
    """Per-chunk pieces of a per-row ``array`` for the chunks of dask ``X``:
    futures on the workers under a distributed client, else the slices."""
    if array is None:
        return [None] * len(X.chunks[0])
    pieces = [array[b] for b in row_slices(X)]
    client = _client()
    if client is None or getattr(array, "nbytes", 0) < 2**20:
        return pieces
    return client.scatter(pieces)


def _constant(value, client):
    """A constant argument (a family, a fitted solver, an array) as one graph
    key or one future, not a copy per task."""
    import dask

    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return value
    if client is not None and getattr(value, "nbytes", 0) >= 2**20:
        return client.scatter(value, broadcast=True)
    return dask.delayed(value, pure=False)


def _dask_parts(func, X, rows, per_block=()):
    import dask

    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    client = _client()
    args, kwargs = (), {}
    if isinstance(func, functools.partial):  # its arrays go in the graph once
        args = tuple(_constant(a, client) for a in func.args)
        kwargs = {key: _constant(v, client) for key, v in func.keywords.items()}
        func = func.func
    blocks = X.to_delayed().ravel()
    shipped = [ship_rows(r, X) for r in rows]
    task = dask.delayed(serial, pure=False)  # dask owns the parallelism
    extra = list(per_block) or [()] * len(blocks)
    return [task(func, *args, block, *(pieces[i] for pieces in shipped), *extra[i],
                 **kwargs) for i, block in enumerate(blocks)]
