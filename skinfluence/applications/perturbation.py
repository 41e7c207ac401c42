"""Perturbation influence: how moving a training row's features moves a test loss.

Koh & Liang's ``I_pert,loss`` as the exact derivative at the fitted optimum.
"""

import numpy as np

from ._memory import row_blocks

__all__ = ["perturbation_influence"]


def perturbation_influence(fitted, X, y, rows=None):
    """``d L(z_j; theta*) / d x_i`` for each test row and training row,
    (n_test, n_rows, n_features)."""
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    Y, Z = fitted.test_targets(X, y)
    Q = family.predicted_gradient(Z) if Y is None else family.loss_gradient(Y, Z)
    rows = fitted.train_rows(rows)
    X_train = problem.X[rows]
    r = problem.residuals[rows]  # (nr, K): derivative of f_i w.r.t. z_i
    D = problem.curvature[rows]  # (nr, K) or (nr, K, K)
    K, P, p = family.n_outputs, family.n_columns, family.n_features
    W = family.coef  # (K, p)
    m, nr = X.shape[0], len(rows)
    out = np.empty((m, nr, p))
    for block in row_blocks(m, 8 * nr * (p + 2 * K)):
        U = solver.solve(problem.row_gradients(X[block], Q[block]))  # (d, mb)
        if U.ndim == 1:
            U = U[:, None]
        T = problem.parameters_to_rows(U, X_train)  # (nr, K, mb): x~_i^T U_k
        DT = (D[:, :, None] * T if D.ndim == 2
              else np.einsum("ikl,ikm->ilm", D, T))  # (nr, K, mb): D_i^T t_i
        Uw = U.reshape(K, P, -1)[:, :p]  # (K, p, mb)
        out[block] = -(np.einsum("ilm,lq->miq", DT, W)
                       + np.einsum("ik,kqm->miq", r, Uw))
    return out

