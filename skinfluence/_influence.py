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

import numpy as np
import scipy.sparse as sp

__all__ = [
    "contract_rows",
    "first_order_block",
    "leverage_blocks",
    "newton_rho",
    "output_shift_block",
    "self_influence_values",
    "shifted_residuals",
]


def _row_dot(X, V):
    """``sum_j X[i, j] V[i, j]`` for dense or sparse ``X`` and dense ``V``."""
    if sp.issparse(X):
        return np.asarray(X.multiply(V).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, V)


def first_order_block(problem, solver, removal_residuals, class_shift, X, Q, *,
                      out=None, X_train=None):
    """``grad L_j^T H^{-1} grad f_i`` for a block of test rows: (m, n_train).

    ``Q`` (m, K) is the derivative of the explained quantity with respect to
    the test rows' linear predictor. One solve for the block, then one
    ``(m x d)(d x n)`` product per output, written in place into ``out``.
    ``X_train`` replaces the training matrix in that product (for example a
    float32 copy).
    """
    U = solver.solve(problem.row_gradients(X, Q))
    out = contract_rows(problem, U, removal_residuals, out=out, X_train=X_train)
    if class_shift is not None:
        vectors, delta = class_shift
        out -= ((U.T @ vectors) @ delta.T).astype(out.dtype, copy=False)
    return out


def contract_rows(problem, U, R, *, out=None, X_train=None):
    """``out[j, i] = sum_k R[i, k] (e_k (x) x~_i)^T U[:, j]``, shape (m, n_train).

    The transpose of :meth:`BoundProblem.parameters_to_rows` contracted with
    ``R``, computed directly in the output's layout: one ``(m x d)(d x n)``
    product per output, no ``(n, K, m)`` intermediate.
    """
    family = problem.family
    X = problem.X if X_train is None else X_train
    K, p, m = family.n_outputs, family.n_features, U.shape[1]
    dtype = X.dtype if X_train is not None else np.float64
    U = U.reshape(K, family.n_columns, m).astype(dtype, copy=False)
    R = R.astype(dtype, copy=False)
    if out is None:
        out = np.empty((m, X.shape[0]), dtype=dtype)
    term = out if K == 1 else np.empty_like(out)
    for k in range(K):
        if sp.issparse(X):
            term[...] = (X @ U[k, :p]).T
        else:
            np.matmul(U[k, :p].T, X.T, out=term)
        # intercept and residual scaling in one pass, a few rows at a time
        step = max(1, 2**21 // (8 * term.shape[1]))
        for start in range(0, m, step):
            rows = term[start : start + step]
            if family.fit_intercept:
                rows += U[k, p, start : start + step, None]
            rows *= R[:, k]
        if K > 1:
            if k == 0:
                out[...] = term
            else:
                out += term
    return out


def leverage_blocks(problem, solver, rows=None, chunk_size=1024):
    """Leverage blocks ``M_i`` of shape (n_rows, K, K) for training rows ``rows``.

    When the solver factorised the Hessian by QR of its square-root factor and
    the curvature is diagonal over the outputs, ``M_i[k, k] = h_ik / D_ik`` from
    the rows of ``Q`` (``h_ik`` the leverage of factor row ``(i, k)``), which
    keeps full accuracy on ill-conditioned data; rows of zero curvature are
    solved for.
    """
    family = problem.family
    K, p = family.n_outputs, family.n_features
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
    n = X.shape[0]
    M = np.empty((n, K, K))
    for start in range(0, n, chunk_size):
        block = slice(start, min(start + chunk_size, n))
        Xc = X[block]
        m = Xc.shape[0]
        for l in range(K):
            R = np.zeros((m, K))
            R[:, l] = 1.0
            U = solver.solve(problem.row_gradients(Xc, R))
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


def output_shift_block(problem, solver, rho, class_shift, X, rows=None):
    """Change of the test rows' linear predictor after each one-step removal.

    Returns ``dZ`` of shape (m, n_rows, K): ``dZ[j, i, k] = (e_k (x) x~_j)^T
    Delta_i`` for the training rows ``rows`` (all when None; ``rho`` and
    ``class_shift`` hold those rows).
    """
    family = problem.family
    K, m = family.n_outputs, X.shape[0]
    X_train = problem.X if rows is None else problem.X[rows]
    dZ = np.empty((m, X_train.shape[0], K))
    for k in range(K):
        R = np.zeros((m, K))
        R[:, k] = 1.0
        U = solver.solve(problem.row_gradients(X, R))
        T = problem.parameters_to_rows(U, X_train)  # (n_rows, K, m)
        dZ[:, :, k] = np.einsum("nl,nlm->mn", rho, T)
        if class_shift is not None:
            vectors, delta = class_shift
            dZ[:, :, k] -= (U.T @ vectors) @ delta.T
    return dZ


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
