"""BLAS thread control for small problems.

On a busy machine a multi-threaded BLAS call on an 11 x 11 Cholesky factor took
15 ms instead of 0.05 ms: thread start-up and synchronisation dominate small
products. Small problems therefore run on one BLAS thread; large products keep
all cores (and any limit the user set with ``threadpoolctl``).
"""

from contextlib import nullcontext

from threadpoolctl import ThreadpoolController

__all__ = ["limit_small", "limit_blas", "blas_threads"]

#: problems with fewer entries (rows x parameters) run on one BLAS thread
SMALL = 2_000_000
_controller = None


def _blas():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def limit_small(n_rows, n_parameters):
    """Context manager: one BLAS thread when ``n_rows * n_parameters`` is small."""
    if n_rows * n_parameters >= SMALL:
        return nullcontext()
    return _blas().limit(limits=1, user_api="blas")


def limit_blas(threads):
    """Context manager: at most ``threads`` BLAS threads."""
    return _blas().limit(limits=threads, user_api="blas")


def blas_threads():
    """The BLAS thread count now in force (the largest over the libraries)."""
    libraries = _blas().select(user_api="blas").lib_controllers
    return max([lib.num_threads for lib in libraries] or [1])
