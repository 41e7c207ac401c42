"""Parameters, predictions and regression diagnostics.

How each training row moves the coefficients (``theta_{-i} - theta``) and
the decision values, and the classical influence diagnostics of a least
squares fit (leverage, studentised residuals, Cook's distance, DFFITS,
DFBETA(S)).
"""

import numpy as np
from sklearn.utils import Bunch

from ..families import SquaredLossFamily
from ._memory import row_blocks

__all__ = ["parameter_influence", "prediction_influence", "regression_diagnostics"]


def parameter_influence(fitted, rows=None, method="first_order"):
    """Per-row parameter change ``theta_{-i} - theta``, (n_rows, n_parameters)."""
    if method not in ("first_order", "newton"):
        raise ValueError(f"method must be 'first_order' or 'newton'; got {method!r}.")
    problem, solver = fitted.problem, fitted.solver
    rows = fitted.train_rows(rows)
    d = problem.n_parameters
    R = fitted.newton_rho()[rows] if method == "newton" else fitted.removal_residuals[rows]
    out = np.empty((len(rows), d))
    shift = fitted.class_shift
    if shift is not None:
        shift_steps = solver.solve(shift[0]).reshape(d, -1)  # H^{-1} G_a
    # working memory per row: the gradient and its solve, 2 * 8 * d bytes
    for block in row_blocks(len(rows), 16 * d):
        idx = rows[block]
        U = solver.solve(problem.row_gradients(problem.X[idx], R[block]))
        if U.ndim == 1:
            U = U[:, None]
        if shift is not None:
            U = U - shift_steps @ shift[1][idx].T
        out[block] = U.T
    return out


def prediction_influence(fitted, X, method="first_order"):
    """Change of the decision function of each (prepared) test row per removal."""
    if method not in ("first_order", "newton"):
        raise ValueError(f"method must be 'first_order' or 'newton'; got {method!r}.")
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    n, m, K = problem.n_samples, X.shape[0], family.n_outputs
    R = fitted.newton_rho() if method == "newton" else fitted.removal_residuals
    shift = fitted.class_shift
    out = np.empty((m, n, K))
    for rows in row_blocks(m, 8 * n * K * 2):
        Xr = X[rows]
        for k in range(K):
            E = np.zeros((Xr.shape[0], K))
            E[:, k] = 1.0
            U = solver.solve(problem.row_gradients(Xr, E))
            if U.ndim == 1:
                U = U[:, None]
            T = problem.parameters_to_rows(U)  # (n, K, mr)
            out[rows, :, k] = np.einsum("nl,nlm->mn", R, T)
            if shift is not None:
                vectors, delta = shift
                out[rows, :, k] -= (U.T @ vectors) @ delta.T
    return out[:, :, 0] if K == 1 else out


# ------------------------------------------------------------ diagnostics
def regression_diagnostics(fitted):
    """Classical OLS / ridge influence diagnostics (Cook & Weisberg)."""
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    if not isinstance(family, SquaredLossFamily):
        raise ValueError(
            "regression_diagnostics needs a LinearRegression, Ridge or RidgeCV; "
            f"got the {type(family).__name__} family. For classifiers use "
            "self_influence(), parameter_influence() or explain().")
    n = problem.n_samples
    s = problem.sample_weight
    h = problem.curvature[:, 0] * fitted.leverage()[:, 0, 0]  # s_i x~^T A^-1 x~
    e = problem.y - problem.Z[:, 0]
    ew = np.sqrt(s) * e  # whitened residuals
    if family.pinv_rtol is None and family.alpha == 0.0:
        p = family.n_parameters
    else:  # effective number of parameters: the trace of the hat matrix
        p = float(h.sum())
    df = n - p
    sse = float(ew @ ew)
    sigma2 = sse / df
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2_loo = (sse - ew**2 / (1.0 - h)) / (df - 1.0)
        internal = ew / np.sqrt(sigma2 * (1.0 - h))
        external = ew / np.sqrt(sigma2_loo * (1.0 - h))
        cooks = internal**2 / p * h / (1.0 - h)
        dffits = external * np.sqrt(h / (1.0 - h))
    # exact leave-one-out parameter change (one Newton step is exact here)
    dfbeta = -parameter_influence(fitted, None, method="newton")
    # (X~^T S X~ + alpha)^{-1} = 2 H^{-1}; its diagonal
    d = family.n_parameters
    inv_diag = 2.0 * np.einsum("ii->i", np.atleast_2d(solver.solve(np.eye(d))))
    dfbetas = dfbeta / np.sqrt(sigma2_loo[:, None] * inv_diag[None, :])
    return Bunch(leverage=h, residuals=e, resid_studentized_internal=internal,
                 resid_studentized_external=external, cooks_distance=cooks,
                 dffits=dffits, dfbeta=dfbeta, dfbetas=dfbetas, sigma2=sigma2,
                 sigma2_loo=sigma2_loo, n_parameters=p)



