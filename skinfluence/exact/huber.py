"""Exact leave-one-out for HuberRegressor: Newton's method in (theta, sigma).

A refit re-estimates the scale, so each leave-one-out optimum is found by
damped Newton steps on the joint objective of
:class:`~skinfluence.families.huber.HuberFamily`, from the polished full
optimum. The Huber function is piecewise quadratic in the residual; Newton's
method converges in a few steps once each row stays on its side of the kink.
"""

import warnings

import numpy as np
import scipy.linalg as la
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from .._progress import Progress, run_tasks

__all__ = ["huber_loo", "huber_polish", "joint_newton"]

_BLOCK = 64


def joint_newton(family, X, y, sample_weight, theta, scale, *, tol=1e-26,
                 max_iter=100):
    """Minimise the Huber objective over ``(theta, sigma)`` by damped Newton.

    Stops when the Newton decrement ``g^T H^{-1} g`` (affine-invariant) is
    below ``tol`` times the objective's value.

    Returns
    -------
    theta : ndarray of shape (n_parameters,)
    scale : float
    converged : bool
    """
    theta = np.asarray(theta, dtype=float)
    scale = float(scale)
    value, gradient, hessian = family.joint_parts(X, y, sample_weight, theta, scale)
    for _ in range(max_iter):
        try:
            step = la.solve(hessian, gradient, assume_a="sym")
        except la.LinAlgError:
            step = la.lstsq(hessian, gradient)[0]
        decrement = float(gradient @ step)
        if decrement <= tol * max(abs(value), np.finfo(float).tiny):
            return theta, scale, True
        rate = 1.0
        while scale - rate * step[-1] <= 0:  # the scale stays positive
            rate *= 0.5
        # near the optimum the objective's decrease is below its rounding:
        # take the full step (quadratic convergence) without a line search
        search = decrement > 1e-10 * abs(value)
        trial = None if search else family.joint_parts(
            X, y, sample_weight, theta - rate * step[:-1], scale - rate * step[-1])
        while search and rate > 1e-12:
            trial = family.joint_parts(X, y, sample_weight, theta - rate * step[:-1],
                                       scale - rate * step[-1])
            if trial[0] <= value - 1e-4 * rate * decrement:
                break
            rate *= 0.5
        theta, scale = theta - rate * step[:-1], scale - rate * step[-1]
        value, gradient, hessian = trial
    return theta, scale, False


def huber_polish(family, X, y, sample_weight):
    """The family at the joint optimum in ``(theta, sigma)``."""
    theta, scale, _ = joint_newton(family, X, y, sample_weight, family.theta,
                                   family.scale)
    polished = family.with_theta(theta)
    polished.scale = scale
    return polished


def _huber_batch(family, X, y, sample_weight, theta, scale, rows, X_test, y_test):
    out = np.empty((len(rows), X_test.shape[0]))
    failed = []
    with threadpool_limits(1):
        for position, row in enumerate(rows):
            weight = sample_weight.copy()
            weight[row] = 0.0  # no normalisation: the same as deleting the row
            theta_i, _, converged = joint_newton(family, X, y, weight, theta, scale)
            if not converged:
                failed.append(row)
            out[position] = family.test_quantity(X_test, y_test, theta_i)
    return out, failed


def huber_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
              n_jobs=None, verbose=0, tol=None, return_info=False):
    """Exact leave-one-out of a HuberRegressor, scale re-estimated.

    The test quantity uses the family's own (fitted) scale. Returns
    (n_test, len(rows)); rows whose Newton iteration did not converge are
    named in a ``ConvergenceWarning``. The joint Newton stops on its own
    decrement criterion (``tol`` is accepted for the engines' common
    signature); ``return_info`` adds ``converged`` per row.
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    theta, scale, converged = joint_newton(family, X, y, sample_weight, family.theta,
                                           family.scale)
    if not converged:
        warnings.warn("Newton's method did not converge on the full HuberRegressor "
                      "objective; the leave-one-out effects are not exact.",
                      ConvergenceWarning, stacklevel=3)
    base = family.test_quantity(X_test, y_test, theta)
    rows = np.asarray(rows)
    starts = range(0, len(rows), _BLOCK)
    parts = run_tasks(
        [delayed(_huber_batch)(family, X, y, sample_weight, theta, scale,
                               rows[start : start + _BLOCK], X_test, y_test)
         for start in starts],
        [len(rows[start : start + _BLOCK]) for start in starts], n_jobs=n_jobs,
        progress=Progress(len(rows), "Huber leave-one-out", verbose))
    failed = [row for _, part in parts for row in part]
    if failed:
        warnings.warn(
            f"Newton's method did not converge for the leave-one-out refits of rows "
            f"{failed[:10]}{' ...' if len(failed) > 10 else ''} (a residual on the "
            "Huber kink); their columns are not exact. Check them with "
            "method='refit'.", ConvergenceWarning, stacklevel=3)
    values = np.vstack([out for out, _ in parts]).T - base[:, None]
    if not return_info:
        return values
    converged = ~np.isin(rows, failed)
    return values, Bunch(n_iter=np.ones(len(rows), dtype=int), converged=converged,
                         decrement=np.where(converged, 0.0, np.inf))
