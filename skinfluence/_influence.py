"""The linear algebra of influence, shared by explain, loo and self-influence.

Notation: ``H`` the Hessian of the training objective at ``theta``, the
gradient of training row ``i``'s objective term ``g_i = r_i (x) x~_i`` (``r_i``
of shape (K,), Kronecker product with the row), the curvature
``D_i = L_i L_i^T`` of row ``i`` with respect to its linear predictor, and the
*leverage blocks* ``M_i[k, l] = (e_k (x) x~_i)^T H^{-1} (e_l (x) x~_i)``.

Removing row ``i`` and taking one Newton step with the leave-one-out Hessian
``H - D_i (x) x~_i x~_i^T`` gives, by the Woodbury identity,

.. math::

    \\Delta_i = H^{-1} (\\rho_i \\otimes \\tilde x_i), \\qquad
    \\rho_i = (I - D_i M_i)^{-1} r_i,

which is ``H^{-1} g_i / (1 - h_ii)`` for one output (``h_ii = D_i M_i``, the
leverage). For squared loss the objective is quadratic and this step is the
exact leave-one-out solution.
"""

from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from ._rows import map_rows
from ._threads import WIDE_COLUMNS, blas_threads, run_threads

__all__ = [
    "contract_rows",
    "first_order_block",
    "influence_directions",
    "removal_gradients",
    "contract",
    "stream_top_k",
    "leverage_blocks",
    "newton_rho",
    "output_shift_block",
    "output_directions",
    "output_shifts",
    "newton_step_influence",
    "removal_gradient_norms",
    "RunningTop",
    "self_influence_values",
    "shifted_residuals",
]


def _row_dot(X, V):
    """``sum_j X[i, j] V[i, j]`` for dense or sparse ``X`` and dense ``V``."""
    if sp.issparse(X):
        return np.asarray(X.multiply(V).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, V)


def first_order_block(problem, solver, removal_residuals, class_shift, X, Q, *,
                      out=None, X_train=None, dtype=None):
    """``grad L_j^T H^{-1} grad f_i`` for a block of test rows: (m, n_train).

    ``Q`` (m, K) is the derivative of the explained quantity with respect to
    the test rows' linear predictor. One solve for the block, then one
    ``(m x q)(q x n)`` product (:func:`contract`), written in place into
    ``out``. ``X_train`` replaces the training matrix (a block of its rows);
    ``dtype`` is the precision of the product (that of ``out`` by default).
    """
    U = solver.solve(problem.row_gradients(X, Q))
    if dtype is None:
        dtype = np.float64 if out is None else out.dtype
    A = influence_directions(U, class_shift, dtype)
    X_train = problem.X if X_train is None else X_train
    delta = None if class_shift is None else class_shift[1]
    return contract(problem.family, A, X_train, removal_residuals, delta, out=out)


def influence_directions(U, class_shift, dtype=np.float64):
    """The test side ``A`` (m, q) of first-order influence ``A @ G^T``.

    ``U = H^{-1} [grad L_1, ..., grad L_m]`` (n_parameters, m); the class
    re-balancing adds the columns ``-(U^T vectors)``. With
    :func:`removal_gradients` ``G`` the whole first-order influence, removal
    residuals, intercepts and re-balancing included, is ONE matrix product.
    """
    A = U.T
    if class_shift is not None:
        A = np.hstack([A, -(U.T @ class_shift[0])])
    return np.ascontiguousarray(A, dtype=dtype)


def removal_gradients(family, X, R, delta=None, dtype=np.float64, buffer=None):
    """The training side ``G`` (n_rows, q) for a block of training rows.

    Row ``i`` is the removal gradient ``[r_i1 x~_i, ..., r_iK x~_i]``
    followed by the row's re-balancing weights ``delta_i``: built per block,
    never for the whole training set. Sparse for sparse ``X``. ``buffer``
    (at least (n_rows, q), C order) is reused for dense ``G``: a fresh block
    of this size costs its page faults again on every block.
    """
    n, p = X.shape
    K, P = family.n_outputs, family.n_columns
    if sp.issparse(X):
        parts = []
        for k in range(K):
            parts.append(sp.diags(R[:, k]) @ X)
            if family.fit_intercept:
                parts.append(sp.csr_matrix(R[:, k, None]))
        if delta is not None:
            parts.append(sp.csr_matrix(delta))
        return sp.hstack(parts, format="csr", dtype=dtype)
    C = 0 if delta is None else delta.shape[1]
    if buffer is None:
        G = np.empty((n, K * P + C), dtype=dtype)
    else:
        G = buffer.reshape(-1)[: n * (K * P + C)].reshape(n, K * P + C)
    for k in range(K):
        np.multiply(X, R[:, k, None], out=G[:, k * P : k * P + p])
        if family.fit_intercept:
            G[:, k * P + p] = R[:, k]
    if C:
        G[:, K * P :] = delta
    return G


def _tile(A, G):
    """``A @ G^T`` for dense or sparse ``G``."""
    if sp.issparse(G):
        return np.asarray(G @ A.T).T
    return A @ G.T


def _training_blocks(n, q, itemsize, rows=None):
    """Slices of training rows whose removal gradients take about 4 MiB
    (at least 1,024 rows: products large enough to run at full speed). Few
    directions get long blocks: capped at 8,192 rows, the contraction at
    n = 100,000, d = 10 took 1.62 times the bare product, 1.23 times
    uncapped (47,662 rows)."""
    step = rows or _block_rows(q, itemsize)
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _block_rows(q, itemsize):
    return max(1024, 2**22 // (itemsize * max(q, 1)))


def contraction_bytes_per_test_row(n, q, itemsize):
    """What :func:`contract` of ``q`` directions over ``n`` training rows holds
    per test row besides its result: the wide contraction's tile of one block
    of training rows (Fortran-ordered, copied into ``out``); nothing otherwise."""
    return itemsize * min(n, _block_rows(q, itemsize)) if q >= WIDE_COLUMNS else 0


def contract(family, A, X, R, delta=None, *, out=None):
    """First-order influence ``A @ G^T`` of the test directions ``A`` (m, q)
    on every row of ``X``, block by block of training rows: (m, n).

    Wide directions (:data:`WIDE_COLUMNS`) run in order on scipy's BLAS: they
    were just solved for with scipy's LAPACK, whose threads keep spinning for
    a while after a multi-threaded call, and a product in numpy's BLAS then
    ran 2-7x slower (a (200 x 1,001)(1,001 x 1,000) product 30.6 ms against
    4.6 ms alone), one in scipy's did not (4.9 ms). scipy's ``gemm`` writes a
    Fortran-ordered tile, copied into ``out``.
    """
    m, n = A.shape[0], X.shape[0]
    if out is None:
        out = np.empty((m, n), dtype=A.dtype)
    blocks = _training_blocks(n, A.shape[1], A.dtype.itemsize)
    wide = A.shape[1] >= WIDE_COLUMNS and not sp.issparse(X) and m > 1
    # threads take alternate blocks of columns (disjoint parts of out); below
    # about 3e8 multiply-adds one caller with the BLAS's own threads was faster
    # (a (200 x 101)(101 x 10,000) contraction: 5 ms against 9 ms in two
    # threads; 71 ms against 79 ms at 100,000 rows)
    n_threads = 1 if wide or m * n * A.shape[1] <= 2**28 else \
        min(blas_threads(), len(blocks))
    if wide:
        gemm = blas.sgemm if A.dtype == np.float32 else blas.dgemm
        AT = np.asfortranarray(A.T)

    def work(first):
        step = blocks[0].stop - blocks[0].start
        buffer = None if sp.issparse(X) else np.empty((step, A.shape[1]), dtype=A.dtype)
        tile = np.empty((step, m), dtype=A.dtype, order="F") if wide else None
        for rows in blocks[first::n_threads]:
            G = removal_gradients(family, X[rows], R[rows],
                                  None if delta is None else delta[rows], A.dtype,
                                  buffer=buffer)
            if sp.issparse(G):
                out[:, rows] = _tile(A, G)
            elif wide:
                size = rows.stop - rows.start  # the last block may be short
                c = tile if size == step else np.empty((size, m), A.dtype, order="F")
                out[:, rows] = gemm(1.0, G.T, AT, trans_a=1, beta=0.0, c=c,
                                    overwrite_c=1).T
            else:
                np.matmul(A, G.T, out=out[:, rows])

    run_threads(work, n_threads)
    return out


def contract_rows(problem, U, R, *, out=None, X_train=None):
    """``out[j, i] = sum_k R[i, k] (e_k (x) x~_i)^T U[:, j]``, shape (m, n_train).

    The transpose of :meth:`BoundProblem.parameters_to_rows` contracted with
    ``R`` (see :func:`contract`), in the precision of ``X_train`` when given.
    """
    X = problem.X if X_train is None else X_train
    dtype = X.dtype if X_train is not None else np.float64
    A = influence_directions(U, None, dtype)
    return contract(problem.family, A, X, R, out=out)


def leverage_blocks(problem, solver, rows=None, chunk_size=1024):
    """Leverage blocks ``M_i`` of shape (n_rows, K, K) for training rows ``rows``.

    When the solver factorised the Hessian by QR of its square-root factor and
    the curvature is diagonal over the outputs, ``M_i[k, k] = h_ik / D_ik`` from
    the rows of ``Q`` (``h_ik`` the leverage of factor row ``(i, k)``), which
    keeps full accuracy on ill-conditioned data; rows of zero curvature are
    solved for.
    """
    family = problem.family
    K = family.n_outputs
    factor_leverage = getattr(solver, "factor_leverage", lambda: None)()
    if factor_leverage is not None and not family.full_output_hessian:
        n = problem.n_samples
        rows = np.arange(n) if rows is None else np.asarray(rows)
        D = problem.curvature[rows]  # (n_rows, K)
        h = factor_leverage.reshape(K, n).T[rows]  # factor rows are output-major
        M = np.zeros((len(rows), K, K))
        flat = np.arange(K)
        with np.errstate(divide="ignore", invalid="ignore"):
            M[:, flat, flat] = np.where(D > 0, h / D, np.nan)
        missing = np.flatnonzero(np.isnan(M[:, flat, flat]).any(axis=1))
        if missing.size:
            M[missing] = leverage_blocks(problem, _NoLeverage(solver), rows[missing],
                                         chunk_size)
        return M
    X = problem.X if rows is None else problem.X[rows]
    return map_rows(partial(_leverage_rows, family, solver, chunk_size), X)


def _leverage_rows(family, solver, chunk_size, X):
    """Leverage blocks of the rows of ``X``, ``chunk_size`` rows per solve."""
    K, p = family.n_outputs, family.n_features
    n = X.shape[0]
    M = np.empty((n, K, K))
    for start in range(0, n, chunk_size):
        block = slice(start, min(start + chunk_size, n))
        Xc = X[block]
        m = Xc.shape[0]
        for l in range(K):
            R = np.zeros((m, K))
            R[:, l] = 1.0
            U = solver.solve(family.row_gradients(Xc, R))
            U = U.reshape(K, family.n_columns, m)
            for k in range(K):
                values = _row_dot(Xc, U[k, :p].T)
                if family.fit_intercept:
                    values = values + U[k, p]
                M[block, k, l] = values
    return M


class _NoLeverage:
    """A solver seen without its factor leverages (solves only)."""

    def __init__(self, solver):
        self.solve = solver.solve


def newton_rho(curvature, removal_residuals, M):
    """``rho_i = (I - D_i M_i)^{-1} r_i``: the leave-one-out Hessian correction.

    ``curvature``, ``removal_residuals`` and ``M`` hold the same rows.
    """
    D = curvature
    K = M.shape[1]
    if K == 1:
        leverage = D[:, 0] * M[:, 0, 0]
        return removal_residuals / (1.0 - leverage)[:, None]
    DM = D[:, :, None] * M if D.ndim == 2 else D @ M  # D_i M_i
    system = np.eye(K)[None] - DM
    return np.linalg.solve(system, removal_residuals[:, :, None])[:, :, 0]


def shifted_residuals(problem, solver, removal_residuals, class_shift):
    """Removal residuals with the re-weighting shift seen through the
    leave-one-out Hessian: ``r_i - D_i T_i delta_i``.

    The removal gradient of row ``i`` is ``v_i = r_i (x) x~_i - G delta_i``
    (``G`` the group gradients of :func:`first_order_block`). By Woodbury,
    ``(H - W_i W_i^T)^{-1} v_i = H^{-1}(rho_i (x) x~_i) - H^{-1} G delta_i`` with
    ``rho_i = (I - D_i M_i)^{-1} (r_i - D_i T_i delta_i)``, ``T_i`` the rows of
    ``H^{-1} G`` at ``x~_i``: pass the result to :func:`newton_rho`. Without a
    shift it returns ``removal_residuals``.
    """
    if class_shift is None:
        return removal_residuals
    vectors, delta = class_shift
    T = problem.parameters_to_rows(solver.solve(vectors).reshape(vectors.shape))
    D = problem.curvature
    DT = D[:, :, None] * T if D.ndim == 2 else np.einsum("nkl,nlg->nkg", D, T)
    return removal_residuals - np.einsum("nkg,ng->nk", DT, delta)


def output_shift_block(problem, solver, rho, class_shift, X, rows=None, *,
                       X_train=None):
    """Change of the test rows' linear predictor after each one-step removal.

    Returns ``dZ`` of shape (m, n_rows, K): ``dZ[j, i, k] = (e_k (x) x~_j)^T
    Delta_i`` for the training rows ``rows`` (all when None; ``rho`` and
    ``class_shift`` hold those rows), or for the rows ``X_train`` (a block
    of training rows) when given.
    """
    if X_train is None:
        X_train = problem.X if rows is None else problem.X[rows]
    return output_shifts(problem.family, output_directions(problem, solver, class_shift, X),
                         X_train, rho, None if class_shift is None else class_shift[1])


def output_directions(problem, solver, class_shift, X):
    """Test sides ``A_k`` (one per output) of the change ``dZ[:, :, k]`` of the
    test rows' linear predictor: :func:`contract` with ``rho`` in place of
    the removal residuals."""
    K, m = problem.family.n_outputs, X.shape[0]
    directions = []
    for k in range(K):
        R = np.zeros((m, K))
        R[:, k] = 1.0
        U = solver.solve(problem.row_gradients(X, R))
        directions.append(influence_directions(U, class_shift))
    return directions


def output_shifts(family, directions, X_train, rho, delta):
    """``dZ`` (m, n_rows, K) from :func:`output_directions` on the rows of
    ``X_train`` (``rho`` and ``delta`` holding the same rows)."""
    m, K = directions[0].shape[0], len(directions)
    dZ = np.empty((m, X_train.shape[0], K))
    for k, A in enumerate(directions):
        dZ[:, :, k] = contract(family, A, X_train, rho, delta)
    return dZ


def newton_step_influence(family, directions, Y, Z, X_train, rho, delta):
    """Change of the test loss (or, with ``Y`` None, of the prediction)
    after each one-step removal, for the rows of ``X_train``: (m, n_rows)."""
    dZ = output_shifts(family, directions, X_train, rho, delta)
    m, n, K = dZ.shape
    if Y is None:
        moved = family.predicted((Z[:, None, :] + dZ).reshape(m * n, K))
        return moved.reshape(m, n) - family.predicted(Z)[:, None]
    moved = family.loss(np.repeat(Y, n, axis=0), (Z[:, None, :] + dZ).reshape(m * n, K))
    return moved.reshape(m, n) - family.loss(Y, Z)[:, None]


def self_influence_values(problem, solver, M, removal_residuals, class_shift):
    """``grad l_i^T H^{-1} grad f_i`` for every training row, from the leverage
    blocks: ``q_i^T M_i r_i`` (``q_i`` the unweighted loss derivative of row
    ``i`` at its own label). Never forms the ``n x n`` matrix."""
    family = problem.family
    Q = family.loss_gradient(problem.Y, problem.Z)
    values = np.einsum("nk,nkl,nl->n", Q, M, removal_residuals)
    if class_shift is not None:
        vectors, delta = class_shift
        T = problem.parameters_to_rows(solver.solve(vectors))  # (n, K, n_classes)
        values -= np.einsum("nk,nka,na->n", Q, T, delta)
    return values


def _extreme_k(block, k, largest, sample_size=4096):
    """Column indices of the ``k`` largest (or smallest) entries of each row,
    most extreme first; ties go to the lowest column.

    Rows of ``block`` are long (every training row). A threshold per row keeps
    the candidates at or beyond it after one comparison pass, and only those
    are sorted. For long rows the threshold is the extreme of evenly spaced
    sample columns (about ``n / sample_size`` candidates); rows where fewer
    than ``k`` entries pass, and short rows, use the exact ``k``-th value.
    """
    m, n = block.shape
    sign = -1.0 if largest else 1.0
    kth = n - k if largest else k - 1
    if n > 8 * sample_size and k * sample_size <= n:
        sample = block[:, np.linspace(0, n - 1, sample_size).astype(np.intp)]
        threshold = sample.max(axis=1) if largest else sample.min(axis=1)
        passed = block >= threshold[:, None] if largest else block <= threshold[:, None]
        short = np.count_nonzero(passed, axis=1) < k
        if short.any():
            threshold[short] = np.partition(block[short], kth, axis=1)[:, kth]
            sub = block[short]
            passed[short] = sub >= threshold[short, None] if largest else \
                sub <= threshold[short, None]
    else:
        threshold = np.partition(block, kth, axis=1)[:, kth]
        passed = block >= threshold[:, None] if largest else block <= threshold[:, None]
    rows, cols = np.nonzero(passed)
    del passed
    counts = np.bincount(rows, minlength=m)
    order = np.lexsort((cols, sign * block[rows, cols], rows))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return cols[order][starts[:, None] + np.arange(k)]


def top_k_indices(block, k):
    """``(harmful, helpful)``: indices of the ``k`` smallest (ascending) and
    ``k`` largest (descending) entries of each row of ``block``."""
    return _extreme_k(block, k, largest=False), _extreme_k(block, k, largest=True)


class RunningTop:
    """The ``k`` largest (helpful) and ``k`` smallest (harmful) entries seen so
    far in each of ``m`` rows, with their column indices.

    Ties go to the lowest column, whatever order the columns arrive in:
    candidates are taken at or beyond the current ``k``-th value and every
    merge sorts by (value, column).
    """

    def __init__(self, m, k, dtype):
        self.k = k
        #: entries of the product computed (the rest were skipped by a bound)
        self.computed = 0
        self.values = {True: np.full((m, k), -np.inf, dtype=dtype),
                       False: np.full((m, k), np.inf, dtype=dtype)}
        self.indices = {True: np.full((m, k), np.iinfo(np.intp).max, dtype=np.intp),
                        False: np.full((m, k), np.iinfo(np.intp).max, dtype=np.intp)}

    def thresholds(self, rows):
        """``(helpful, harmful)`` k-th values of ``rows`` (-inf / inf while
        fewer than ``k`` entries were seen)."""
        return self.values[True][rows, -1], self.values[False][rows, -1]

    def update(self, rows, T, columns):
        """Take the entries of ``T`` (len(rows), n_cols) of test ``rows`` at
        training ``columns`` that can enter either side."""
        self.computed += T.size
        helpful, harmful = self.thresholds(rows)
        up = np.flatnonzero(T.max(axis=1) >= helpful)
        if up.size:
            self._merge(rows[up], T[up], columns, True)
        down = np.flatnonzero(T.min(axis=1) <= harmful)
        if down.size:
            self._merge(rows[down], T[down], columns, False)

    def _merge(self, rows, T, columns, largest):
        values, k = self.values[largest], self.k
        threshold = values[rows, -1]
        unfilled = np.flatnonzero(~np.isfinite(threshold))
        if unfilled.size and T.shape[1] > k:
            # rows still filling: the block's own k-th value bounds the top
            kth = T.shape[1] - k if largest else k - 1
            threshold = threshold.copy()
            threshold[unfilled] = np.partition(T[unfilled], kth, axis=1)[:, kth]
        mask = T >= threshold[:, None] if largest else T <= threshold[:, None]
        r, c = np.nonzero(mask)
        self.merge_entries(rows, r, T[r, c], columns[c], largest)

    def merge_entries(self, rows, local_rows, values, indices, largest):
        """Merge candidate ``(row position in rows, value, index)`` triplets."""
        k = self.k
        held_v, held_i = self.values[largest], self.indices[largest]
        all_rows = np.concatenate([np.repeat(np.arange(len(rows)), k), local_rows])
        all_values = np.concatenate([held_v[rows].ravel(), values])
        all_indices = np.concatenate([held_i[rows].ravel(), indices])
        key = -all_values if largest else all_values
        order = np.lexsort((all_indices, key, all_rows))
        counts = np.bincount(all_rows, minlength=len(rows))
        starts = np.cumsum(counts) - counts
        take = order[starts[:, None] + np.arange(k)]
        held_v[rows] = all_values[take]
        held_i[rows] = all_indices[take]

    def absorb(self, other):
        """Merge another running top over the same rows."""
        rows = np.arange(self.values[True].shape[0])
        k = other.k
        self.computed += other.computed
        for largest in (True, False):
            local = np.repeat(rows, k)
            self.merge_entries(rows, local, other.values[largest].ravel(),
                               other.indices[largest].ravel(), largest)
        return self


def removal_gradient_norms(family, X, R, delta=None):
    """``||g_i||`` of the rows of :func:`removal_gradients` without forming them."""
    if sp.issparse(X):
        squared = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    else:
        squared = np.einsum("ij,ij->i", X, X)
    if family.fit_intercept:
        squared = squared + 1.0
    total = squared * np.sum(R**2, axis=1)
    if delta is not None:
        total = total + np.sum(delta**2, axis=1)
    return np.sqrt(total)


def stream_top_k(family, A, X, R, delta, k, *, offset=0, n_threads=None,
                 train_rows=None, test_rows=256, skip=True):
    """Top ``k`` of each row of the first-order influence ``A @ G^T`` on the
    rows of ``X``, selected while the product is computed block by block.

    The ``(m, n)`` matrix never exists: each ``(test_rows, train_rows)``
    tile is computed by one product, reduced to its row maxima and minima,
    and only the rows whose maximum (minimum) reaches the current ``k``-th
    value are merged into a :class:`RunningTop`. Training rows go in order of
    decreasing ``||g_i||``: since ``|A_j . g_i| <= ||A_j|| ||g_i||``, a tile
    is skipped for every test row whose bound cannot reach its ``k``-th
    values (most of a well-fitted model's rows have small residuals;
    ``skip=False`` computes every tile, for measuring).
    ``n_threads`` Python threads (default: the BLAS thread count in force)
    take alternate training blocks, each with a one-thread BLAS, and their
    running tops are merged at the end.

    Returns ``RunningTop`` with column indices ``offset + row``.
    """
    m, q = A.shape
    n = X.shape[0]
    dtype = A.dtype
    norms = removal_gradient_norms(family, X, R, delta)
    order = np.argsort(-norms, kind="stable")
    step = train_rows or max(256, min(2048, 2**20 // (dtype.itemsize * max(q, 1))))
    blocks = [order[s : s + step] for s in range(0, n, step)]
    # |fl(A_j . g_i)| <= (1 + q eps) ||A_j|| ||g_i||: the bound keeps a margin
    margin = 1.0 + 4.0 * (q + 2) * np.finfo(dtype).eps
    test_norms = np.linalg.norm(A.astype(np.float64), axis=1) * margin
    if not skip:
        test_norms[:] = np.inf
    test_blocks = [np.arange(s, min(s + test_rows, m)) for s in range(0, m, test_rows)]
    contiguous = not sp.issparse(X)

    def work(first):
        top = RunningTop(m, k, dtype)
        for rows in blocks[first::n_threads]:
            columns = rows + offset
            G = removal_gradients(family, X[rows], R[rows],
                                  None if delta is None else delta[rows], dtype)
            bound = norms[rows[0]]
            for test in test_blocks:
                helpful, harmful = top.thresholds(test)
                reach = test_norms[test] * bound
                alive = (reach >= helpful) | (-reach <= harmful)
                if not alive.any():
                    continue
                if alive.all():
                    T = _tile(A[test[0] : test[-1] + 1] if contiguous else A[test], G)
                    top.update(test, T, columns)
                else:
                    live = test[alive]
                    top.update(live, _tile(A[live], G), columns)
        return top

    n_threads = min(blas_threads() if n_threads is None else n_threads, len(blocks))
    tops = run_threads(work, n_threads)
    top = tops[0]
    for other in tops[1:]:
        top.absorb(other)
    return top
