"""Newton's method on a family's closed-form objective, and the exact
leave-one-out engine built on it.

:func:`newton_minimize` polishes a fit (or fits a subset) by damped Newton
steps. :func:`newton_loo` finds every leave-one-out optimum by Newton steps
with the leave-one-out Hessian applied through the full factorisation
(Woodbury); for a quadratic objective one step is exact (Sherman-Morrison),
all rows at once.
"""

import numpy as np
import scipy.linalg as la
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from .._influence import leverage_blocks, newton_rho, output_shift_block

__all__ = ["newton_minimize", "newton_loo", "newton_block"]

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
    null = problem.null_space()
    for n_iter in range(max_iter):
        rel = problem.relative_gradient_norm()
        if rel < tol:
            break
        grad = problem.gradient()
        H = problem.hessian()
        if null is not None:
            H += null @ null.T
        H[np.diag_indices_from(H)] += 1e-12 * max(1.0, np.abs(np.diag(H)).max())
        step = la.solve(H, grad, assume_a="sym")
        value = problem.objective()
        # backtracking line search on the objective (Armijo)
        slope = grad @ step
        rate = 1.0
        while rate > 1e-10:
            trial = family.bind(X, y, sample_weight, theta - rate * step)
            if trial.objective() <= value - 1e-4 * rate * slope:
                break
            rate *= 0.5
        theta = theta - rate * step
        problem = trial
    return theta, {"n_iter": n_iter, "relative_gradient_norm": rel}


_NEWTON_BLOCK = 64


def _newton_batch(problem, solver, rows, X_test, y_test, tol, max_iter):
    """Exact leave-one-out optima by Newton steps with the LOO Hessian.

    The Hessian of the leave-one-out objective is taken at the full optimum,
    ``H - D_i (x) x~_i x~_i^T``, and applied by the Woodbury identity through
    the full factorisation; the gradient is recomputed exactly at every step
    (a simplified Newton method: linear convergence at rate O(1/n), one step
    for squared loss). The rows are iterated together as matrix products. Rows that do not converge in ``max_iter`` steps fall back to
    full Newton.
    """
    with threadpool_limits(1):
        thetas = newton_block(problem, solver, np.asarray(rows), tol, max_iter)
        return np.stack([problem.family.test_quantity(X_test, y_test, theta)
                         for theta in thetas.T])


def newton_block(problem, solver, rows, tol, max_iter):
    """Leave-one-out optima for a block of rows: (n_parameters, len(rows))."""
    family = problem.family
    X, y, sample_weight, Y = problem.X, problem.y, problem.sample_weight, problem.Y
    K, b = family.n_outputs, len(rows)
    # a zero sample weight is the same as deleting the row; class weights are
    # recomputed from the remaining rows as a refit would
    weights = np.empty((X.shape[0], problem.weights.shape[1], b))
    for position, row in enumerate(rows):
        weights[:, :, position] = family.removal_weights(y, sample_weight, row)
    # H_{-i} = H - W_i W_i^T with columns W_i[:, c] = L_i[:, c] (x) x~_i
    D = problem.curvature[rows]
    if D.ndim == 2:
        L = np.sqrt(np.clip(D, 0, None))[:, :, None] * np.eye(K)
    else:
        vals, vecs = np.linalg.eigh(D)
        L = vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]
    W = problem.row_gradients(X[np.repeat(rows, K)],
                              np.transpose(L, (0, 2, 1)).reshape(b * K, K))
    HW = solver.solve(W)
    W, HW = (A.reshape(-1, b, K).transpose(1, 0, 2) for A in (W, HW))  # (b, d, K)
    S = np.eye(K) - np.einsum("bdk,bdl->bkl", W, HW)
    usable = np.linalg.det(S) > 1e-12
    S_inv = np.zeros_like(S)
    S_inv[usable] = np.linalg.inv(S[usable])

    theta = np.repeat(problem.theta[:, None], b, axis=1)
    abs_X = abs(X)
    Y3 = Y[:, :, None]
    scale = None
    converged = np.zeros(b, dtype=bool)
    for _ in range(max_iter):
        Z = problem.parameters_to_rows(theta)  # (n, K, b)
        R = weights * family.training_loss_gradient(Y3, Z)
        penalty = problem.penalty_gradient(theta)
        grad = problem.rows_to_parameters(R) + penalty
        if scale is None:  # the relative gradient norm's denominator
            scale = (np.linalg.norm(problem.rows_to_parameters(np.abs(R), abs_X), axis=0)
                     + np.linalg.norm(penalty, axis=0))
        converged = np.linalg.norm(grad, axis=0) < tol * scale
        if converged.all():
            break
        u = solver.solve(grad)
        Wu = np.einsum("bdk,db->bk", W, u)
        step = u + np.einsum("bdk,bkl,bl->db", HW, S_inv, Wu)
        step[:, converged | ~usable] = 0.0
        theta = theta - step
    for position in np.flatnonzero(~(converged & usable)):
        keep = np.arange(X.shape[0]) != rows[position]
        theta[:, position], _ = newton_minimize(
            family, X[keep], y[keep], sample_weight[keep], theta[:, position], tol=tol)
    return theta


def newton_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
               tol=1e-10, max_iter=50, n_jobs=None, verbose=0):
    """Exact leave-one-out by Newton's method on the family's own objective.

    The full optimum is first polished by Newton's method from the fitted
    coefficients; each leave-one-out optimum starts from it. ``solver`` must
    hold the factorised Hessian at the fitted coefficients. Returns
    (n_test, len(rows)).
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    theta, _ = newton_minimize(family, X, y, sample_weight, tol=tol)
    problem = family.bind(X, y, sample_weight, theta)
    base = family.test_quantity(X_test, y_test, theta)
    rows = np.asarray(rows)
    if family.quadratic:
        # one Newton step with the leave-one-out Hessian is exact
        # (Sherman-Morrison): all rows at once
        M = leverage_blocks(problem, solver, rows)
        rho = newton_rho(problem.curvature[rows], problem.residuals[rows], M)
        dZ = output_shift_block(problem, solver, rho, None, X_test, rows)
        Z = family.decision(X_test, theta)[:, None, :] + dZ  # (m, n_rows, K)
        m, n_rows, K = Z.shape
        if y_test is None:  # the prediction (one slice per target)
            return (Z[:, :, 0] if K == 1 else Z) - base[:, None]
        Y = np.repeat(family.encode_target(y_test), n_rows, axis=0)
        moved = family.loss(Y, Z.reshape(m * n_rows, K)).reshape(m, n_rows)
        return moved - base[:, None]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_newton_batch)(problem, solver, rows[start : start + _NEWTON_BLOCK],
                               X_test, y_test, tol, max_iter)
        # fixed blocks: the same arithmetic whatever n_jobs or the backend
        for start in range(0, len(rows), _NEWTON_BLOCK)
    )
    return np.moveaxis(np.concatenate(parts), 0, 1) - base[:, None]
