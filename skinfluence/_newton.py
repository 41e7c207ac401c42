"""Newton's method on a family's closed-form objective."""

import numpy as np
import scipy.linalg as la

__all__ = ["newton_minimize"]


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
