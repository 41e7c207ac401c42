"""BLAS thread control for small problems.

On a busy machine a multi-threaded BLAS call on an 11 x 11 Cholesky factor took
15 ms instead of 0.05 ms: thread start-up and synchronisation dominate small
products. Small problems therefore run on one BLAS thread; large products keep
all cores (and any limit the user set with ``threadpoolctl``).
"""

from contextlib import nullcontext

from threadpoolctl import ThreadpoolController

__all__ = ["limit_small", "one_blas_thread"]

#: problems with fewer entries (rows x parameters) run on one BLAS thread
SMALL = 2_000_000
_controller = None


def limit_small(n_rows, n_parameters):
    """Context manager: one BLAS thread when ``n_rows * n_parameters`` is small."""
    if n_rows * n_parameters >= SMALL:
        return nullcontext()
    return one_blas_thread()


def one_blas_thread():
    """Context manager: one BLAS thread, through a controller made once per
    process (entering ``threadpool_limits`` rescans the loaded libraries, about
    5 ms each time)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
