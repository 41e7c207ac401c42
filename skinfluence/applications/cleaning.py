"""Data cleaning: validation influence, each row's own leave-one-out loss, and
a ranking of suspicious rows (label errors).

Every function takes a :class:`~skinfluence._fitted.FittedInfluence` and
prepared arrays. Notation as in :mod:`skinfluence._influence`: ``g_i = r_i (x)
x~_i`` the gradient of training row ``i``'s objective term, ``H`` the Hessian
of the training objective.
"""

import numpy as np
import scipy.sparse as sp

from .._result import Result
from ..exact import hinge_path_self_loss, newton_optima, polish_optimum

__all__ = ["validation_influence", "loo_self_loss", "rank_suspicious", "SUSPICION"]

#: rankings offered by :func:`rank_suspicious`
SUSPICION = ("self_influence", "loo_self", "validation", "loss")


def validation_influence(fitted, X, y):
    """``sum_j influence[j, i]`` over the rows of prepared ``X`` with ONE solve.

    ``u = H^{-1} sum_j grad L_j``; the value of row ``i`` is ``r_i . (U x~_i)``
    minus the class re-balancing term ``(u^T G) delta_i``. O(n d) after the
    solve, never the ``(n_val, n_train)`` matrix.
    """
    Y, Z = fitted.test_targets(X, y)
    Q = fitted.test_gradient(Y, Z)
    total = fitted.problem.rows_to_parameters(Q, X)  # sum_j grad L_j, (d,)
    return fitted.direction_influence(total)


def loo_self_loss(fitted, method="newton_step", n_jobs=None):
    """Change of each training row's own loss when it is left out.

    ``"newton_step"``: one Newton step with the leave-one-out Hessian, the
    diagonal of ``explain(X_train, y_train, method="newton")`` in O(n K^2)
    from the cached leverage blocks (exact for squared loss: the PRESS
    residual). ``"exact"``: every leave-one-out optimum by the Newton engine
    of :meth:`~skinfluence.InfluenceExplainer.loo` (``method="newton"``;
    the decremental path for the hinge, :func:`~skinfluence.exact.hinge_path_self_loss`),
    but each row's loss is evaluated only at its own optimum, O(n d) per
    row and optimum instead of the ``n x n`` matrix.
    """
    problem, family = fitted.problem, fitted.family
    Y, Z = problem.Y, problem.Z
    base = family.loss(Y, Z)
    n = problem.n_samples
    if method == "newton_step":
        M = fitted.leverage()
        rho = fitted.newton_rho()
        dZ = np.einsum("nkl,nl->nk", M, rho)
        if fitted.class_shift is not None:
            vectors, delta = fitted.class_shift
            T = problem.parameters_to_rows(fitted.solver.solve(vectors))
            dZ -= np.einsum("nka,na->nk", T, delta)
        return family.loss(Y, Z + dZ) - base
    if method != "exact":
        raise ValueError(f"method must be 'newton_step' or 'exact'; got {method!r}.")
    if family.quadratic:
        return loo_self_loss(fitted, "newton_step")
    X, y, sw = problem.X, problem.y, problem.sample_weight
    if family.exact_engine == "hinge_path":  # the true hinge, not the smoothed one
        return hinge_path_self_loss(family, X, y, sw, n_jobs=n_jobs)
    theta, polished = polish_optimum(family, X, y, sw)
    full = family.bind(X, y, sw, theta)
    base = family.loss(full.Y, full.Z)
    floor = 2.0 * polished.decrement  # the rounding floor at the full optimum
    rows = np.arange(n)
    thetas, _ = newton_optima(full, fitted.solver, rows, floor=floor, n_jobs=n_jobs)
    return _own_losses(full, rows, thetas) - base


def _own_losses(problem, rows, thetas):
    """Each row's loss at its own leave-one-out parameters (columns of ``thetas``)."""
    family = problem.family
    Xr = problem.X[rows]
    K, P = family.n_outputs, family.n_columns
    Theta = thetas.reshape(K, P, len(rows))
    Z = np.empty((len(rows), K))
    for k in range(K):
        W = Theta[k, : family.n_features]  # (p, b)
        Z[:, k] = (Xr.multiply(W.T).sum(axis=1).A1 if sp.issparse(Xr)
                   else np.einsum("bp,pb->b", Xr, W))
        if family.fit_intercept:
            Z[:, k] += Theta[k, -1]
    return family.loss(problem.Y[rows], Z)


def rank_suspicious(fitted, method="self_influence", X_val=None, y_val=None):
    """Suspicion scores (higher = more suspicious) and the ranking.

    ``X_val`` is prepared (or None); see
    :meth:`~skinfluence.InfluenceExplainer.rank_suspicious`.
    """
    problem, family = fitted.problem, fitted.family
    if method not in SUSPICION:
        raise ValueError(f"method must be one of {SUSPICION}; got {method!r}.")
    if method == "validation":
        if X_val is None or y_val is None:
            raise ValueError(
                "method='validation' needs a clean validation set: pass X_val and "
                "y_val (rows not used for training).")
        scores = -validation_influence(fitted, X_val, y_val)
    elif X_val is not None or y_val is not None:
        raise ValueError(f"X_val and y_val are only used by method='validation'; "
                         f"got method={method!r}.")
    elif method == "self_influence":
        scores = fitted.self_influence()
    elif method == "loo_self":
        scores = loo_self_loss(fitted, "newton_step")
    else:  # "loss"
        scores = family.loss(problem.Y, problem.Z)
    # stable: ties keep the training order
    order = np.argsort(-scores, kind="stable")
    return Result(ranking=order, scores=scores, method=method)
