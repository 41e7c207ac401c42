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

__all__ = ["first_order_block", "leverage_blocks", "newton_rho", "output_shift_block"]


def _row_dot(X, V):
    """``sum_j X[i, j] V[i, j]`` for dense or sparse ``X`` and dense ``V``."""
    if sp.issparse(X):
        return np.asarray(X.multiply(V).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, V)


def first_order_block(problem, solver, removal_residuals, class_shift, X, Q):
    """``grad L_j^T H^{-1} grad f_i`` for a block of test rows: (m, n_train).

    ``Q`` (m, K) is the derivative of the explained quantity with respect to
    the test rows' linear predictor.
    """
    U = solver.solve(problem.row_gradients(X, Q))
    T = problem.parameters_to_rows(U)  # (n_train, K, m)
    block = np.einsum("nk,nkm->mn", removal_residuals, T)
    if class_shift is not None:
        vectors, delta = class_shift
        block -= (U.T @ vectors) @ delta.T
    return block


def leverage_blocks(problem, solver, rows=None, chunk_size=1024):
    """Leverage blocks ``M_i`` of shape (n_rows, K, K) for training rows ``rows``."""
    family = problem.family
    K, p = family.n_outputs, family.n_features
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
