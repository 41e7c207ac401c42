"""Parameters, predictions and regression diagnostics.

How each training row moves the coefficients (``theta_{-i} - theta``) and
the decision values, and the classical influence diagnostics of a least
squares fit (leverage, studentised residuals, Cook's distance, DFFITS,
DFBETA(S)).
"""

import copy

import numpy as np
from scipy.special import expit

from .._result import Result
from .._influence import leverage_blocks
from ..exact import newton_optima, polish_optimum
from ..families import BinaryLogisticFamily, SquaredLossFamily
from ._memory import row_blocks

__all__ = ["parameter_influence", "prediction_influence", "regression_diagnostics",
           "glm_diagnostics"]


def parameter_influence(fitted, rows=None, method="first_order"):
    """Per-row parameter change ``theta_{-i} - theta``, (n_rows, n_parameters)."""
    if method not in ("first_order", "newton"):
        raise ValueError(f"method must be 'first_order' or 'newton'; got {method!r}.")
    rows = fitted.train_rows(rows)
    R = fitted.newton_rho()[rows] if method == "newton" else fitted.removal_residuals[rows]
    return _parameter_steps(fitted, rows, R)


def _parameter_steps(fitted, rows, R):
    """``H^{-1} (R_i (x) x~_i)`` for each row (minus the class re-balancing),
    as rows of an (n_rows, n_parameters) array."""
    problem, solver = fitted.problem, fitted.solver
    d = problem.n_parameters
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
    """Change of the decision function (classifiers) or ``predict``
    (regressors) of each (prepared) test row per removal."""
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
    if not family.is_classifier:
        # a regressor's predict: through the inverse link and target transform
        Z = family.decision(X)
        if method == "first_order":
            out *= family.predicted_gradient(Z)[:, None, :]
        else:
            moved = family.predicted((Z[:, None, :] + out).reshape(m * n, K))
            out[:, :, 0] = moved.reshape(m, n) - family.predicted(Z)[:, None]
    return out[:, :, 0] if K == 1 else out


# ------------------------------------------------------------ diagnostics
def regression_diagnostics(fitted):
    """Classical OLS / ridge influence diagnostics (Cook & Weisberg).

    At the exact least-squares optimum (the fitted coefficients polished by one
    Newton step with the factorised Hessian, plus one refinement step), with
    leverages from the solver's orthogonal factor when it has one.
    """
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    if not isinstance(family, SquaredLossFamily):
        raise ValueError(
            "regression_diagnostics needs a LinearRegression, Ridge or RidgeCV; "
            f"got the {type(family).__name__} family. For LogisticRegression use "
            "glm_diagnostics(); for other classifiers self_influence(), "
            "parameter_influence() or explain().")
    n = problem.n_samples
    s = problem.sample_weight
    theta, _ = polish_optimum(family, problem.X, problem.y, s, problem.theta,
                              solver=solver)
    h = problem.curvature[:, 0] * fitted.leverage()[:, 0, 0]  # s_i x~^T A^-1 x~
    e = problem.y - family.decision(problem.X, theta)[:, 0]
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
        covratio = (sigma2_loo / sigma2) ** p / (1.0 - h)
    # exact leave-one-out parameter change (one Newton step is exact here),
    # with the residuals of the exact optimum
    rho = (problem.curvature * -e[:, None]) / (1.0 - h)[:, None]  # r_i / (1 - h_i)
    dfbeta = -_parameter_steps(fitted, np.arange(n), rho)
    # (X~^T S X~ + alpha)^{-1} = 2 H^{-1}; its diagonal
    d = family.n_parameters
    inv_diag = 2.0 * np.einsum("ii->i", np.atleast_2d(solver.solve(np.eye(d))))
    dfbetas = dfbeta / np.sqrt(sigma2_loo[:, None] * inv_diag[None, :])
    return Result(leverage=h, residuals=e, resid_studentized_internal=internal,
                 resid_studentized_external=external, cooks_distance=cooks,
                 dffits=dffits, covratio=covratio, dfbeta=dfbeta, dfbetas=dfbetas,
                 sigma2=sigma2, sigma2_loo=sigma2_loo, n_parameters=p, params=theta,
                 params_stderr=np.sqrt(sigma2 * inv_diag))


def glm_diagnostics(fitted, exact_dfbeta=True, n_jobs=None, verbose=0):
    """Influence diagnostics of a binary logistic regression (binomial GLM).

    R's ``influence.measures`` definitions for a binomial GLM with prior
    weights ``w_i`` (the sample weights) at the exact optimum: hat values of
    the weighted design, Pearson and deviance residuals, their standardised
    versions, R's ``rstudent.glm`` approximation, Cook's distance from the
    Pearson residuals, DFBETA as R's ``dfbeta`` computes it (the one-step
    formula with the deviance residuals in place of the Pearson ones),
    Pregibon's one-step DFBETA ``(X^T W X)^{-1} x_i (y_i - p_i) / (1 - h_i)``
    (one Newton step with the leave-one-out Hessian) and, with
    ``exact_dfbeta``, the exact leave-one-out change (the Newton engine).
    With a penalty (finite ``C``) the Hessian includes it and ``p`` is the
    trace of the hat matrix.
    """
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    if not isinstance(family, BinaryLogisticFamily):
        raise ValueError(
            "GLM diagnostics are defined for a binary LogisticRegression; got the "
            f"{type(family).__name__} family. For several classes use "
            "self_influence(), parameter_influence() or explain().")
    X, y, sample_weight = problem.X, problem.y, problem.sample_weight
    theta, polished = polish_optimum(family, X, y, sample_weight, problem.theta)
    at_optimum = family.bind(X, y, sample_weight, theta)
    # prior weights of the log-likelihood: sample weight times class weight
    w = at_optimum.weights[:, 0] / (1.0 if np.isinf(family.C) else family.C)
    p_hat = expit(at_optimum.Z[:, 0])
    target = at_optimum.Y[:, 0]
    # leverage at the optimum: one solve per row block with its own Hessian
    optimum_solver = copy.deepcopy(solver).fit(at_optimum)
    M = leverage_blocks(at_optimum, optimum_solver)
    h = at_optimum.curvature[:, 0] * M[:, 0, 0]
    variance = p_hat * (1.0 - p_hat)
    with np.errstate(divide="ignore", invalid="ignore"):  # p_hat of 0 or 1
        pearson = np.where(variance > 0, np.sqrt(w) * (target - p_hat)
                           / np.sqrt(variance), 0.0)
    deviance_terms = -2.0 * family.output_losses(at_optimum.Y, at_optimum.Z)[:, 0]
    deviance = np.sign(target - p_hat) * np.sqrt(np.maximum(-w * deviance_terms, 0.0))
    penalised = np.any(at_optimum.penalty > 0)
    n_parameters = float(h.sum()) if penalised else family.n_parameters
    with np.errstate(divide="ignore", invalid="ignore"):
        standardised_deviance = deviance / np.sqrt(1.0 - h)
        standardised_pearson = pearson / np.sqrt(1.0 - h)
        studentised = np.sign(deviance) * np.sqrt(deviance**2 + h * pearson**2 / (1.0 - h))
        cooks = (pearson / (1.0 - h)) ** 2 * h / n_parameters
        rho = at_optimum.residuals / (1.0 - h)[:, None]
    view = _At(at_optimum, optimum_solver)
    rows = np.arange(len(y))
    one_step = -_parameter_steps(view, rows, rho)
    # R's dfbeta() for a GLM: lm.influence on the working model, which puts
    # the deviance residuals where the one-step formula has the Pearson ones
    with np.errstate(divide="ignore", invalid="ignore"):
        r_style = (-np.sqrt(at_optimum.curvature[:, 0]) * deviance / (1.0 - h))[:, None]
    dfbeta = -_parameter_steps(view, rows, r_style)
    out = Result(leverage=h, pearson_residuals=pearson, deviance_residuals=deviance,
                resid_standardized_deviance=standardised_deviance,
                resid_standardized_pearson=standardised_pearson,
                resid_studentized=studentised, cooks_distance=cooks,
                dfbeta=dfbeta, dfbeta_one_step=one_step, params=theta,
                n_parameters=n_parameters)
    if exact_dfbeta:
        thetas, _ = newton_optima(at_optimum, optimum_solver, np.arange(len(y)),
                                  floor=2.0 * polished.decrement, n_jobs=n_jobs,
                                  verbose=verbose, what="exact DFBETA",
                                  notice="Pass exact_dfbeta=False for the one-step "
                                  "dfbeta alone, n_jobs for more workers; verbose=1 "
                                  "shows progress.")
        out.dfbeta_exact = theta[None, :] - thetas.T
    return out


class _At:
    """A fitted-influence view of another point (no class re-balancing)."""

    def __init__(self, problem, solver):
        self.problem, self.solver, self.class_shift = problem, solver, None
