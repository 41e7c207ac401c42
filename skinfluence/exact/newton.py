"""Newton's method on a family's closed-form objective, and the exact
leave-one-out engine built on it.

:func:`newton_minimize` fits (or polishes) by damped Newton steps;
:func:`polish_optimum` drives a fit to the floating-point floor of its
Newton decrement. :func:`newton_loo` finds every leave-one-out optimum by
Newton steps with the leave-one-out Hessian applied through the full
factorisation (Woodbury); for a quadratic objective one step is exact
(Sherman-Morrison), all rows at once.

Precision. The leave-one-out gradient is computed as a sum of *changes* from
the full optimum ``theta*``,

.. math::

    \\nabla F_{-i}(\\theta) - \\nabla F(\\theta^*) =
    \\sum_j c^{(i)}_j [\\ell'(z_j) - \\ell'(z^*_j)] \\tilde x_j
    + \\sum_j (c^{(i)}_j - c_j) \\ell'(z^*_j) \\tilde x_j + P(\\theta - \\theta^*),

each change evaluated without cancellation
(:meth:`~skinfluence.families.LinearFamily.training_gradient_change`), so its
rounding error is proportional to the leave-one-out step rather than to the
gradient terms (which cancel to zero at the optimum). The root is the
leave-one-out optimum of the objective tilted by the full fit's own residual
gradient, the same tilt as the baseline, which changes an effect only at
second order. Iterations stop on the Newton decrement relative to that row's
first one, a scale-free criterion: an effect that is small is computed to the
same relative precision as a large one, never rounded to 0. The one exception is
a row whose decrement reaches the rounding floor of the full optimum itself
(twice the decrement :func:`polish_optimum` leaves): no iteration can go below
it, and its effect is then correct to that absolute rounding level.
"""

import copy
import warnings

import numpy as np
import scipy.linalg as la
from sklearn.utils import Bunch
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from .._influence import leverage_blocks, newton_rho, output_shift_block
from ..solvers import DirectSolver, SingularHessianError
from .._progress import Progress, run_tasks

__all__ = ["newton_minimize", "polish_optimum", "newton_loo", "newton_block",
           "newton_optima", "LOO_TOL"]

#: default relative precision of each leave-one-out optimum (Newton decrement
#: relative to the row's first one)
LOO_TOL = 1e-12
_NEWTON_BLOCK = 64


def newton_minimize(family, X, y, sample_weight=None, theta=None, *, tol=1e-10,
                    max_iter=100):
    """Minimise the family's objective by damped Newton steps.

    Parameters
    ----------
    family : LinearFamily
    X, y, sample_weight : training data
    theta : ndarray of shape (n_parameters,), default=None
        Starting point; the family's fitted parameters when None.
    tol : float, default=1e-10
        Stop when the relative gradient norm falls below ``tol``.
    max_iter : int, default=100

    Returns
    -------
    theta : ndarray of shape (n_parameters,)
    info : dict
        ``n_iter`` and the final ``relative_gradient_norm``.
    """
    theta = family.theta if theta is None else np.asarray(theta, dtype=float)
    problem = family.bind(X, y, sample_weight, theta)
    n_iter = 0
    for n_iter in range(max_iter):
        rel = problem.relative_gradient_norm()
        if rel < tol:
            break
        theta, problem, *_ = _damped_newton_step(family, X, y, sample_weight, problem)
    return theta, {"n_iter": n_iter, "relative_gradient_norm": rel}


def _regularised_hessian(problem):
    H = problem.hessian()
    null = problem.null_space()
    if null is not None:
        H += null @ null.T
    # a relative jitter on each diagonal entry: invariant to feature scaling
    diagonal = H.reshape(-1)[:: H.shape[0] + 1]
    diagonal += 1e-12 * np.maximum(np.abs(diagonal), np.finfo(float).tiny)
    return H


def _hessian_solver(problem):
    """``b -> H^{-1} b`` for the Hessian of ``problem``: the direct solver
    (equilibrated Cholesky, or QR of the factor when ill-conditioned), or a
    regularised symmetric solve if the Hessian is singular."""
    try:
        return DirectSolver().fit(problem).solve
    except SingularHessianError:
        H = _regularised_hessian(problem)
        return lambda b: la.lstsq(H, b)[0]


def _damped_newton_step(family, X, y, sample_weight, problem):
    """One Newton step with Armijo backtracking.

    Returns ``(theta, problem, decrement, near, solve)``: the decrement at the
    starting point, whether the step was taken whole because the point is
    within rounding of the optimum, and the Hessian solve used.
    """
    grad = problem.gradient()
    solve = _hessian_solver(problem)
    step = solve(grad)
    slope = float(grad @ step)  # the squared Newton decrement
    value = problem.objective()
    rate = 1.0
    theta = problem.theta
    # near the optimum the predicted decrease slope / 2 is below the rounding
    # of the objective itself, where a line search cannot judge: the full
    # Newton step is safe there (quadratic convergence)
    near = slope <= 1e3 * np.finfo(float).eps * max(abs(value), 1.0)
    while True:
        trial = family.bind(X, y, sample_weight, theta - rate * step)
        if (near or rate < 1e-10
                or trial.objective() <= value - 1e-4 * rate * slope):
            break
        rate *= 0.5
    return theta - rate * step, trial, np.sqrt(max(slope, 0.0)), near, solve


def polish_optimum(family, X, y, sample_weight=None, theta=None, *, solver=None,
                   max_iter=50):
    """The exact optimum of the family's objective, to the floating-point floor.

    Damped Newton steps until the squared Newton decrement ``g^T H^{-1} g``
    (affine invariant; twice the predicted decrease of the objective) is within
    rounding of the objective's value, then one more full step, which lands
    where rounding in the gradient dominates. A quadratic objective takes one step with ``solver``
    (the factorised Hessian, whose accuracy it inherits, for example the QR of
    an ill-conditioned least-squares design) and one refinement step.

    Returns
    -------
    theta : ndarray of shape (n_parameters,)
    info : Bunch
        ``n_iter`` and ``decrement`` (at the returned point).
    """
    theta = family.theta if theta is None else np.asarray(theta, dtype=float)
    problem = family.bind(X, y, sample_weight, theta)
    if family.quadratic and solver is not None:
        for _ in range(2):
            grad = problem.gradient()
            step = solver.solve(grad)
            theta = theta - step
            problem = family.bind(X, y, sample_weight, theta)
        grad = problem.gradient()
        decrement = float(np.sqrt(max(grad @ solver.solve(grad), 0.0)))
        return theta, Bunch(n_iter=2, decrement=decrement)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        theta, problem, decrement, near, solve = _damped_newton_step(
            family, X, y, sample_weight, problem)
        # the step taken from within rounding of the optimum lands on its floor
        if near or decrement == 0:
            break
    # the decrement at the returned point, with the last factorisation
    grad = problem.gradient()
    decrement = float(np.sqrt(max(grad @ solve(grad), 0.0)))
    return theta, Bunch(n_iter=n_iter, decrement=decrement)


# ------------------------------------------------------------------ blocks
def _curvature_root(D, K):
    """``L_i`` with ``D_i = L_i L_i^T``, shape (b, K, K)."""
    if D.ndim == 2:
        return np.sqrt(np.clip(D, 0, None))[:, :, None] * np.eye(K)
    vals, vecs = np.linalg.eigh(D)
    return vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]


def _loo_weights(problem, rows):
    """Row weights of each leave-one-out objective: (n, K', b).

    A zero sample weight is the same as deleting the row; class weights are
    recomputed from the remaining rows, as a refit would.
    """
    family = problem.family
    weights = np.empty(problem.weights.shape + (len(rows),))
    for position, row in enumerate(rows):
        weights[:, :, position] = family.removal_weights(
            problem.y, problem.sample_weight, row)
    return weights


def newton_block(problem, solver, rows, tol=LOO_TOL, max_iter=50, floor=0.0):
    """Leave-one-out optima for a block of rows.

    ``problem`` is bound at the full optimum and ``solver`` holds its
    factorised Hessian (at the fitted coefficients; it only preconditions).
    A row stops when its Newton decrement is ``tol`` times its first one or
    at most ``floor`` (the decrement rounding leaves at the full optimum,
    below which a row whose removal barely moves the optimum cannot go).

    Returns
    -------
    thetas : ndarray of shape (n_parameters, len(rows))
    info : Bunch
        ``n_iter`` and ``converged`` per row, and ``decrement`` (the final
        Newton decrement relative to the first one).
    """
    family = problem.family
    rows = np.asarray(rows, dtype=np.intp)
    K, b = family.n_outputs, len(rows)
    Y3 = problem.Y[:, :, None]
    Z0 = problem.Z[:, :, None]
    weights = _loo_weights(problem, rows)
    G0 = family.training_loss_gradient(problem.Y, problem.Z)[:, :, None]
    # the part of the leave-one-out gradient that does not move with theta
    fixed = problem.rows_to_parameters((weights - problem.weights[:, :, None]) * G0)

    # H_{-i} = H - W_i W_i^T with columns W_i[:, c] = L_i[:, c] (x) x~_i
    L = _curvature_root(problem.curvature[rows], K)
    W = problem.row_gradients(problem.X[np.repeat(rows, K)],
                              np.transpose(L, (0, 2, 1)).reshape(b * K, K))
    HW = solver.solve(W)
    W, HW = (A.reshape(-1, b, K).transpose(1, 0, 2) for A in (W, HW))  # (b, d, K)
    S = np.eye(K) - np.einsum("bdk,bdl->bkl", W, HW)
    usable = np.linalg.det(S) > 1e-12
    S_inv = np.zeros_like(S)
    S_inv[usable] = np.linalg.inv(S[usable])

    def loo_solve(grad):
        u = solver.solve(grad)
        Wu = np.einsum("bdk,db->bk", W, u)
        return u + np.einsum("bdk,bkl,bl->db", HW, S_inv, Wu)

    def penalty_change(delta):
        theta = problem.theta[:, None]
        return problem.penalty_gradient(theta + delta) - problem.penalty_gradient(theta)

    delta = np.zeros((problem.n_parameters, b))
    first = np.zeros(b)
    relative = np.full(b, np.inf)
    absolute = np.full(b, np.inf)
    n_iter = np.zeros(b, dtype=int)
    active = usable.copy()
    for iteration in range(max_iter + 1):
        if not active.any():
            break
        cols = np.flatnonzero(active)
        dZ = problem.parameters_to_rows(delta[:, cols])
        change = family.training_gradient_change(Y3, Z0, dZ)
        grad = (problem.rows_to_parameters(weights[:, :, cols] * change)
                + fixed[:, cols] + penalty_change(delta[:, cols]))
        step = loo_solve(grad) if b == len(cols) else _subset_solve(
            solver, W, HW, S_inv, cols, grad)
        decrement = np.sqrt(np.clip(np.einsum("db,db->b", grad, step), 0.0, None))
        if iteration == 0:
            first[cols] = decrement
        with np.errstate(divide="ignore", invalid="ignore"):
            relative[cols] = np.where(first[cols] > 0, decrement / first[cols], 0.0)
        diverged = ~np.isfinite(decrement) | (relative[cols] > 1e3)
        if diverged.any():  # left to full Newton, from the full optimum
            delta[:, cols[diverged]] = 0.0
            relative[cols[diverged]] = np.inf
            active[cols[diverged]] = False
        done = (relative[cols] <= tol) | (decrement <= floor)
        absolute[cols] = decrement
        active[cols[done]] = False
        if iteration == max_iter:
            break
        go = ~done & ~diverged
        delta[:, cols[go]] -= step[:, go]
        n_iter[cols[go]] += 1
    converged = usable & ((relative <= tol) | (absolute <= floor))
    for position in np.flatnonzero(~converged):
        delta[:, position], n_more, relative[position], absolute[position] = \
            _full_newton(problem, rows[position], delta[:, position],
                         weights[:, :, position], fixed[:, position], first[position],
                         tol, floor=floor)
        n_iter[position] += n_more
        converged[position] = ((relative[position] <= max(tol, 1e-8))
                               or absolute[position] <= floor)
    thetas = problem.theta[:, None] + delta
    return thetas, Bunch(n_iter=n_iter, converged=converged, decrement=relative)


def _subset_solve(solver, W, HW, S_inv, cols, grad):
    u = solver.solve(grad)
    Wu = np.einsum("bdk,db->bk", W[cols], u)
    return u + np.einsum("bdk,bkl,bl->db", HW[cols], S_inv[cols], Wu)


def _full_newton(problem, row, delta, weights, fixed, first, tol, max_iter=50,
                 floor=0.0):
    """Damped Newton on one leave-one-out objective (its exact Hessian at
    every iterate), from ``theta* + delta``, with the gradient in the change
    form. Returns ``(delta, n_iter, relative decrement, decrement)``."""
    family = problem.family
    # the leave-one-out objective on the data without the row (a refit's)
    keep = np.arange(problem.n_samples) != row
    X, y, sample_weight = problem.X[keep], problem.y[keep], problem.sample_weight[keep]
    if not np.all(np.isfinite(delta)):
        delta = np.zeros_like(delta)
    relative, decrement, n_iter = np.inf, np.inf, 0
    loo = family.bind(X, y, sample_weight, problem.theta + delta)
    for n_iter in range(max_iter + 1):
        dZ = problem.parameters_to_rows(delta[:, None])[:, :, 0]
        change = family.training_gradient_change(problem.Y, problem.Z, dZ)
        grad = (problem.rows_to_parameters(weights * change) + fixed
                + problem.penalty_gradient(problem.theta + delta)
                - problem.penalty_gradient(problem.theta))
        step = _hessian_solver(loo)(grad)
        slope = float(grad @ step)
        decrement = float(np.sqrt(max(slope, 0.0)))
        if first == 0:
            first = decrement
        relative = decrement / first if first > 0 else 0.0
        if (relative <= tol or decrement <= floor or n_iter == max_iter
                or not np.isfinite(relative)):
            break
        # Armijo on the leave-one-out objective while far from its optimum
        value = loo.objective()
        near = slope <= 1e3 * np.finfo(float).eps * max(abs(value), 1.0)
        rate = 1.0
        while True:
            trial = family.bind(X, y, sample_weight, problem.theta + delta - rate * step)
            if near or rate < 1e-10 or trial.objective() <= value - 1e-4 * rate * slope:
                break
            rate *= 0.5
        delta, loo = delta - rate * step, trial
    return delta, n_iter, relative, decrement


def _optima_batch(problem, solver, rows, tol, floor):
    with threadpool_limits(1):
        return newton_block(problem, solver, np.asarray(rows), tol, 50, floor)


def newton_optima(problem, solver, rows, *, floor=0.0, tol=LOO_TOL, n_jobs=None,
                  verbose=0, what="Newton leave-one-out", notice=None):
    """The leave-one-out optima of ``rows``: :func:`newton_block` over fixed
    blocks of rows run by joblib (the same numbers for any ``n_jobs``), with
    progress when ``verbose``. ``problem`` is bound at the polished optimum and
    ``floor`` is twice its remaining Newton decrement (see
    :func:`polish_optimum`). Rows that do not converge are named in a warning;
    ``notice`` as in :func:`newton_loo`.

    Returns ``(thetas, info)``: (n_parameters, len(rows)) and a Bunch with
    ``n_iter``, ``converged`` and ``decrement`` per row.
    """
    rows = np.asarray(rows, dtype=np.intp)
    starts = range(0, len(rows), _NEWTON_BLOCK)
    parts = run_tasks(
        [delayed(_optima_batch)(problem, solver, rows[s : s + _NEWTON_BLOCK], tol, floor)
         for s in starts],
        [len(rows[s : s + _NEWTON_BLOCK]) for s in starts], n_jobs=n_jobs,
        progress=Progress(len(rows), what, verbose, notice=notice))
    thetas = (np.hstack([p[0] for p in parts]) if parts
              else np.empty((problem.n_parameters, 0)))
    info = Bunch(**{key: np.concatenate([p[1][key] for p in parts]) if parts
                    else np.empty(0) for key in ("n_iter", "converged", "decrement")})
    _warn_unconverged(rows, info, tol)
    return thetas, info


def _newton_batch(problem, solver, rows, X_test, y_test, tol, max_iter, floor):
    """Test quantities at the leave-one-out optima of a block of rows."""
    with threadpool_limits(1):
        thetas, info = newton_block(problem, solver, np.asarray(rows), tol, max_iter,
                                    floor)
        out = np.stack([problem.family.test_quantity(X_test, y_test, theta)
                        for theta in thetas.T])
    return out, info


def _warn_unconverged(rows, info, tol):
    bad = np.flatnonzero(~info.converged)
    if bad.size:
        listed = ", ".join(str(int(r)) for r in rows[bad][:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        warnings.warn(
            f"The leave-one-out optimum of training row(s) {listed}{more} did not "
            f"converge to tol={tol:g} (final relative Newton decrement "
            f"{np.max(info.decrement[bad]):.2g}); their effects may be off by about "
            "that fraction. Such rows have a leverage close to 1 or a nearly "
            "separable neighbourhood; compare with loo(method='refit').",
            UserWarning, stacklevel=4)


def newton_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
               tol=LOO_TOL, max_iter=50, n_jobs=None, verbose=0, return_info=False,
               notice=None):
    """Exact leave-one-out by Newton's method on the family's own objective.

    The full optimum is first polished to the floor of its Newton decrement
    (:func:`polish_optimum`); each leave-one-out optimum starts from it and
    stops when its Newton decrement falls below ``tol`` times its first one
    (see the module docstring). ``solver`` must hold the factorised Hessian at
    the fitted coefficients. Rows that do not converge are named in a
    warning. Returns (n_test, len(rows)), and with ``return_info=True`` also
    a Bunch with ``n_iter`` and ``converged`` per row. With ``notice`` (and
    ``verbose=0``) a run estimated, after its first block, to take more than
    a minute warns with the estimate and that advice.
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    fitted = family.bind(X, y, sample_weight)
    theta, polished = polish_optimum(family, X, y, sample_weight, solver=solver)
    problem = family.bind(X, y, sample_weight, theta)
    floor = 2.0 * polished.decrement
    if not family.quadratic and np.linalg.norm(problem.curvature - fitted.curvature) > \
            1e-3 * np.linalg.norm(fitted.curvature):
        # the fit was far from its optimum: precondition with the Hessian there
        solver = copy.deepcopy(solver).fit(problem)
    base = family.test_quantity(X_test, y_test, theta)
    rows = np.asarray(rows, dtype=np.intp)
    if family.quadratic:
        # one Newton step with the leave-one-out Hessian is exact
        # (Sherman-Morrison): all rows at once
        M = leverage_blocks(problem, solver, rows)
        rho = newton_rho(problem.curvature[rows], problem.residuals[rows], M)
        dZ = output_shift_block(problem, solver, rho, None, X_test, rows)
        Z = family.decision(X_test, theta)[:, None, :] + dZ  # (m, n_rows, K)
        m, n_rows, K = Z.shape
        info = Bunch(n_iter=np.ones(n_rows, dtype=int),
                     converged=np.ones(n_rows, dtype=bool),
                     decrement=np.zeros(n_rows))
        if y_test is None and K > 1:  # the prediction, one slice per target
            values = Z - base[:, None]
        elif y_test is None:
            values = family.predicted(Z.reshape(m * n_rows, K)).reshape(m, n_rows) \
                - base[:, None]
        else:
            Y = np.repeat(family.encode_target(y_test), n_rows, axis=0)
            moved = family.loss(Y, Z.reshape(m * n_rows, K)).reshape(m, n_rows)
            values = moved - base[:, None]
        return (values, info) if return_info else values
    starts = range(0, len(rows), _NEWTON_BLOCK)
    parts = run_tasks(
        [delayed(_newton_batch)(problem, solver, rows[start : start + _NEWTON_BLOCK],
                                X_test, y_test, tol, max_iter, floor)
         # fixed blocks: the same arithmetic whatever n_jobs or the backend
         for start in starts],
        [len(rows[start : start + _NEWTON_BLOCK]) for start in starts], n_jobs=n_jobs,
        progress=Progress(len(rows), "Newton leave-one-out", verbose, notice=notice))
    values = (np.moveaxis(np.concatenate([p[0] for p in parts]), 0, 1) - base[:, None]
              if parts else np.empty((X_test.shape[0], 0)))
    info = Bunch(**{key: np.concatenate([p[1][key] for p in parts]) if parts
                    else np.empty(0) for key in ("n_iter", "converged", "decrement")})
    _warn_unconverged(rows, info, tol)
    return (values, info) if return_info else values
