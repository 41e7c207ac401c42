"""BLAS thread control for small problems, and threads over blocks of rows.

On a busy machine a multi-threaded BLAS call on an 11 x 11 Cholesky factor took
15 ms instead of 0.05 ms: thread start-up and synchronisation dominate small
products. Small problems therefore run on one BLAS thread; large products keep
all cores (and any limit the user set with ``threadpoolctl``).

The passes over the training rows use the cores differently: blocks of rows
go to :func:`run_threads` workers, each calling a one-thread BLAS on its own
blocks. The workers never wait for each other inside a product, which on a
shared 2-core machine made a blocked ``(200 x 101)(101 x 100000)`` product 3x
faster than one caller with a two-thread BLAS, and it parallelises the numpy
work between the products (scaling, reductions) too. Inside a dask task, or a
worker, everything runs serially (dask owns the parallelism there).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

from threadpoolctl import ThreadpoolController

__all__ = [
    "WIDE_COLUMNS", "limit_small", "one_blas_thread", "small_product", "narrow_product", "limit_blas",
    "blas_threads", "run_threads", "serial",
]

#: products of fewer multiply-adds run on one BLAS thread (thread start-up
#: and synchronisation cost more than they save below this)
SMALL_FLOPS = 30_000_000
_controller = None
_local = threading.local()


def _blas():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def limit_small(n_rows, n_parameters, n_test=0):
    """Context manager: one BLAS thread when the largest product of the work,
    ``n_rows x n_parameters x max(n_parameters, n_test)`` multiply-adds (the
    Hessian, or the contraction with ``n_test`` test rows), is small."""
    if n_rows * n_parameters * max(n_parameters, n_test) >= SMALL_FLOPS:
        return nullcontext()
    return one_blas_thread()


@contextmanager
def one_blas_thread():
    """Context manager: one BLAS thread, through a controller made once per
    process (entering ``threadpool_limits`` rescans the loaded libraries, about
    5 ms each time); free inside another one on the same thread (setting a
    limit costs about 40 microseconds, which small products called in a loop
    noticed)."""
    depth = getattr(_local, "one_thread", 0)
    if depth:
        _local.one_thread = depth + 1
        try:
            yield
        finally:
            _local.one_thread = depth
        return
    with _blas().limit(limits=1, user_api="blas"):
        _local.one_thread = 1
        try:
            yield
        finally:
            _local.one_thread = 0


def _main_thread():
    # a limit entered in several threads at once could be restored out of order
    return threading.current_thread() is threading.main_thread()


def small_product(flops):
    """Context manager: one BLAS thread for a product of fewer than
    ``SMALL_FLOPS`` multiply-adds, on the main thread only (a limit entered
    in several threads at once could be restored out of order).

    Besides the start-up cost, a multi-threaded call into scipy's OpenBLAS
    leaves its threads spinning for a while, on the cores the next numpy
    product needs: a (101 x 101) solve before a (200 x 101)(101 x 100000)
    contraction made the contraction 1.6x slower on 2 cores.
    """
    if flops >= SMALL_FLOPS or not _main_thread():
        return nullcontext()
    return one_blas_thread()


#: from this many directions the contraction runs in order with scipy's BLAS
#: threads, next to the factorisation and the solves in the same library (two
#: threads of one BLAS thread each win below this; the Hessian's rank-k
#: updates have their own limit, ``families._base.IN_ORDER_COLUMNS``)
WIDE_COLUMNS = 192
#: narrow products over at least this many matrix entries run on one BLAS
#: thread (see :func:`narrow_product`)
NARROW_ENTRIES = 2**17


def narrow_product(entries, columns):
    """Context manager: one BLAS thread for a matrix-vector-like product (at
    most 16 columns) over ``entries`` matrix entries, on the main thread only.

    Such a product is limited by memory, not by arithmetic, and a
    multi-threaded call leaves the BLAS's threads spinning for a while (about
    0.1 s) on the cores that the next call into the *other* bundled OpenBLAS
    needs: a (1,000 x 1,000) rank-k update in scipy's took 33 ms instead of
    14 ms right after a multi-threaded product in numpy's.
    """
    if (entries < NARROW_ENTRIES or columns > 16 or getattr(_local, "serial", False)
            or not _main_thread()):
        return nullcontext()
    return one_blas_thread()


def limit_blas(threads):
    """Context manager: at most ``threads`` BLAS threads."""
    return _blas().limit(limits=threads, user_api="blas")


def blas_threads():
    """Threads a pass over rows may use: the BLAS thread count in force (the
    largest over the libraries), 1 inside a dask task or a block worker."""
    if getattr(_local, "serial", False):
        return 1
    libraries = _blas().select(user_api="blas").lib_controllers
    return max([lib.num_threads for lib in libraries] or [1])


def serial(function, *args, **kwargs):
    """Call ``function`` with every pass inside it running on this thread."""
    previous = getattr(_local, "serial", False)
    _local.serial = True
    try:
        return function(*args, **kwargs)
    finally:
        _local.serial = previous


def run_threads(work, n_threads):
    """``[work(0), ..., work(n_threads - 1)]``, in threads with a one-thread
    BLAS each (or on this thread when ``n_threads`` is 1)."""
    if n_threads <= 1:
        return [work(0)]
    with limit_blas(1), ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(partial_serial(work), range(n_threads)))


def partial_serial(work):
    def run(index):
        return serial(work, index)
    return run
