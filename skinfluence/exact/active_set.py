"""Exact leave-one-out for L1 / elastic-net models: an active-set method with a
KKT certificate.

For each removed row the support usually survives: the leave-one-out optimum
of the *reduced* problem (support and signs fixed, a smooth problem solved by
Newton steps with the leave-one-out Hessian, all rows at once) is then the
exact one, which the KKT conditions of the full problem certify (signs kept on
the support, ``|grad_j| <= lambda_j`` off it). Where they fail, the support
changes, and an active-set (feature-sign) search finds the exact optimum: from
the current point, move towards the optimum of the reduced problem; stop at
the first coefficient that reaches zero and drop it; add the coordinate whose
KKT condition is violated most, with the sign that lowers the objective;
repeat until the KKT conditions hold. Every change strictly lowers the convex
objective, so the search ends; the result is certified, not trusted.
"""

import numpy as np
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from ..families import BoundProblem
from ..solvers import make_solver
from .newton import newton_block, newton_minimize
from .._progress import Progress, run_tasks

__all__ = ["active_set_loo", "active_set_loo_parameters", "l1_minimize"]

_BLOCK = 64
#: relative gradient norm of the reduced problems' Newton solves
_TOL = 1e-14


def _objective(family, X, y, sample_weight, theta):
    """The full L1 objective at ``theta`` (support and signs read from it)."""
    return family.with_support(theta).bind(X, y, sample_weight, theta).objective()


def l1_minimize(family, X, y, sample_weight, theta=None, *, target=None,
                max_changes=200):
    """The exact minimiser of the family's full L1 objective on ``(X, y)``.

    Feature-sign search (Lee et al., 2007) with Newton solves of the reduced
    problems: from ``theta`` (whose support and signs are the family's), take
    the reduced problem's optimum ``target`` (computed when None); if a sign
    would change on the way, move to the best point of the segment (the
    target or a zero crossing, by the full objective) and re-read the
    support; otherwise add the coordinate that violates its KKT condition
    most. Each change lowers the objective. Returns ``(theta, family)`` with
    the family's support and signs those of the optimum; raises
    ``RuntimeError`` after ``max_changes`` support changes.
    """
    theta = family.theta if theta is None else np.asarray(theta, dtype=float)
    lam = family.l1_strength()
    kkt_tol = 1e-9 * max(lam.max(), 1e-300)
    for _ in range(max_changes):
        if target is None:
            target, _ = newton_minimize(family, X, y, sample_weight, theta, tol=_TOL)
        penalised = family.support & (lam > 0)
        if np.any(penalised & (np.sign(target) != family.signs)):
            # the zero crossings on the way, and the target
            opposite = penalised & (theta * target < 0)
            steps = theta[opposite] / (theta[opposite] - target[opposite])
            points = []
            for j, step in zip(np.flatnonzero(opposite), steps):
                point = theta + step * (target - theta)
                point[j] = 0.0
                points.append(point)
            points.append(target.copy())
            values = [_objective(family, X, y, sample_weight, q) for q in points]
            theta = points[int(np.argmin(values))]
            theta[penalised & (np.abs(theta) <= 1e-15 * np.abs(theta).max())] = 0.0
            family = family.with_support(theta)
            target = None
            continue
        theta = target
        problem = family.bind(X, y, sample_weight, theta)
        grad = problem.smooth_gradient()
        excess = np.where(family.support, -np.inf, np.abs(grad) - lam)
        if not np.any(excess > kkt_tol):
            return theta, family
        enter = int(np.argmax(excess))
        support, signs = family.support.copy(), family.signs.copy()
        support[enter], signs[enter] = True, -np.sign(grad[enter])
        family = family.with_support(theta, support, signs)
        target = None
    raise RuntimeError(
        f"The active-set search did not reach a KKT point in {max_changes} "
        "support changes.")


def active_set_loo_parameters(family, X, y, sample_weight, rows, *, n_jobs=None,
                              verbose=0):
    """Exact leave-one-out parameters of an L1 family.

    Returns ``(theta, thetas, changed, family)``: the polished full optimum,
    the leave-one-out optima ``(n_parameters, len(rows))``, whether removing
    each row changes the support, and the family at the full optimum.
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    theta, family = l1_minimize(family, X, y, sample_weight)
    problem = family.bind(X, y, sample_weight, theta)
    solver = make_solver("direct", pinv_rtol=family.pinv_rtol).fit(problem)
    # the rounding floor of the Newton decrement at the full optimum: a row
    # whose removal barely moves the optimum stops there (else it would run
    # full Newton to a relative decrement rounding cannot reach)
    gradient = problem.gradient()
    floor = 2.0 * float(np.sqrt(max(gradient @ solver.solve(gradient), 0.0)))
    rows = np.asarray(rows)
    starts = range(0, len(rows), _BLOCK)
    parts = run_tasks(
        [delayed(_loo_block)(problem, solver, rows[start : start + _BLOCK], floor)
         for start in starts],
        [len(rows[start : start + _BLOCK]) for start in starts], n_jobs=n_jobs,
        progress=Progress(len(rows), "active-set leave-one-out", verbose))
    if not parts:
        return theta, np.empty((theta.size, 0)), np.zeros(0, dtype=bool), family
    thetas = np.hstack([p[0] for p in parts])
    changed = np.concatenate([p[1] for p in parts])
    return theta, thetas, changed, family


def _loo_block(problem, solver, rows, floor=0.0):
    family, X, y, sw = problem.family, problem.X, problem.y, problem.sample_weight
    with threadpool_limits(1):
        thetas, _ = newton_block(problem, solver, rows, _TOL, 50, floor)
        # the KKT conditions of each leave-one-out problem at its reduced optimum
        lam = family.l1_strength()
        weights = np.stack([family.removal_weights(y, sw, row) for row in rows], axis=2)
        Z = problem.parameters_to_rows(thetas)  # (n, K, b)
        R = weights * family.training_loss_gradient(problem.Y[:, :, None], Z)
        grad = BoundProblem.rows_to_parameters(problem, R)  # every coordinate
        crossed = (family.support & (lam > 0))[:, None] & (family.signs[:, None] * thetas <= 0)
        excess = np.where(family.support[:, None], -np.inf, np.abs(grad) - lam[:, None])
        changed = crossed.any(axis=0) | (excess > 1e-9 * max(lam.max(), 1e-300)).any(axis=0)
        for position in np.flatnonzero(changed):
            keep = np.arange(X.shape[0]) != rows[position]
            thetas[:, position], _ = l1_minimize(
                family, X[keep], y[keep], sw[keep], problem.theta,
                target=thetas[:, position])
    return thetas, changed


def active_set_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
                   n_jobs=None, verbose=0):
    """``q(theta_{-i}) - q(theta)`` at the exact optima: (n_test, len(rows)).

    ``solver`` is unused: the engine factorises the reduced Hessian at the
    polished optimum itself (its support may differ from the fitted one).
    """
    theta, thetas, _, family = active_set_loo_parameters(
        family, X, y, sample_weight, rows, n_jobs=n_jobs, verbose=verbose)
    base = family.test_quantity(X_test, y_test, theta)
    moved = np.stack([family.test_quantity(X_test, y_test, t) for t in thetas.T])
    return np.moveaxis(moved, 0, 1) - base[:, None]
