"""Huber loss with a fitted scale: HuberRegressor.

scikit-learn minimises jointly over the coefficients and the scale ``sigma``

.. math::

    F(w, b, \\sigma) = \\sum_i s_i \\left(\\sigma
        + \\sigma H_\\epsilon\\!\\left(\\frac{y_i - x_i^\\top w - b}{\\sigma}\\right)\\right)
        + \\alpha \\lVert w \\rVert^2,
    \\qquad H_\\epsilon(u) = \\begin{cases} u^2 & |u| \\le \\epsilon \\\\
                                 2 \\epsilon |u| - \\epsilon^2 & |u| > \\epsilon,
                   \\end{cases}

with no normalisation by ``n`` (a refit without a row just drops its term) and
the intercept unpenalised. The penalty is ``alpha ||w||^2`` (not
``alpha / 2``).

The scale is a parameter of the objective and a refit re-estimates it. With
``u_i = (y_i - z_i) / sigma`` each row's Hessian in ``(theta, sigma)`` is
``(s_i H''(u_i) / sigma) a_i a_i^T`` with ``a_i = [x~_i, u_i]``, so the joint
Hessian is ``[[H_tt, b], [b^T, h]]`` with ``H_tt`` the Hessian at fixed scale,
``b = sum_i D_i u_i x~_i`` and ``h = sum_i D_i u_i^2`` (``D_i = s_i H''/sigma``,
zero for outliers). Profiling the scale out (minimising over ``sigma`` for
each ``theta``) gives the Hessian ``H_tt - b b^T / h`` (a rank-one
:meth:`HuberFamily.hessian_correction`) and the removal gradient
``g_i - b g_i^sigma / h`` with ``g_i^sigma = s_i (1 + H(u_i) - u_i H'(u_i))``
(:meth:`HuberFamily.removal_shift`): exactly the coefficient part of the joint
influence function. ``benchmarks/glm_families.py`` measures how much closer to
refits this is than holding the scale fixed.

The test loss is ``sigma H_eps((y - z) / sigma)`` at the fitted scale
``scale_``, held fixed (a refit's new scale moves the coefficients, not the
yardstick). ``H`` is not twice differentiable at ``|u| = eps``; the second
derivative used is the one of the side each row is on.
"""

import numpy as np
from sklearn.linear_model import HuberRegressor

from ._base import LinearFamily, target_column


class HuberFamily(LinearFamily):
    """Huber loss at scale ``scale`` with the scale profiled out.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    scale : float
        The fitted ``scale_`` (``sigma``).
    epsilon : float
    alpha : float
        Penalty ``alpha ||w||^2``.
    fit_intercept : bool
    profile_scale : bool, default=True
        Include the refit's change of scale (the profile Hessian and removal
        gradient); False holds the scale fixed.
    """

    supported = (HuberRegressor,)
    #: the scale is re-estimated by the exact engine too
    exact_engine = "huber"

    def __init__(self, coef, intercept, *, scale, epsilon=1.35, alpha=1e-4,
                 fit_intercept=True, profile_scale=True):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))
        self.scale = float(scale)
        self.epsilon = float(epsilon)
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)
        self.profile_scale = bool(profile_scale)

    @classmethod
    def from_estimator(cls, estimator, **_):
        return cls(
            np.ravel(estimator.coef_),
            float(estimator.intercept_) if estimator.fit_intercept else 0.0,
            scale=estimator.scale_, epsilon=estimator.epsilon, alpha=estimator.alpha,
            fit_intercept=estimator.fit_intercept,
        )

    # ----------------------------------------------------------------- loss
    def encode_target(self, y):
        return target_column(y)

    def _u(self, Y, Z, scale=None):
        return (Y - Z) / (self.scale if scale is None else scale)

    def huber(self, u):
        """``H_eps(u)``, its first and its second derivative."""
        eps = self.epsilon
        inlier = np.abs(u) <= eps
        value = np.where(inlier, u**2, 2 * eps * np.abs(u) - eps**2)
        first = np.where(inlier, 2 * u, 2 * eps * np.sign(u))
        second = np.where(inlier, 2.0, 0.0)
        return value, first, second

    def output_losses(self, Y, Z):
        return self.scale * self.huber(self._u(Y, Z))[0]

    def training_output_losses(self, Y, Z):
        return self.scale * (1.0 + self.huber(self._u(Y, Z))[0])

    def loss_gradient(self, Y, Z):
        return -self.huber(self._u(Y, Z))[1]

    def loss_hessian(self, Y, Z):
        return self.huber(self._u(Y, Z))[2] / self.scale

    def row_weights(self, y, sample_weight):
        return np.asarray(sample_weight, dtype=float)[:, None]

    def penalty_diagonal(self):
        p = np.full(self.n_columns, 2.0 * self.alpha)
        if self.fit_intercept:
            p[-1] = 0.0
        return p

    def prediction_gradient(self, Z):
        return np.ones_like(Z)

    # ----------------------------------------------------- profiled scale
    def scale_gradients(self, Y, Z, sample_weight, scale=None):
        """``g_i^sigma = s_i (1 + H(u_i) - u_i H'(u_i))``, shape (n,)."""
        u = self._u(Y, Z, scale)[:, 0]
        value, first, _ = self.huber(u)
        return np.asarray(sample_weight) * (1.0 + value - u * first)

    def _scale_block(self, problem):
        """``(b, h)``: the coefficient-scale and the scale-scale Hessian."""
        u = self._u(problem.Y, problem.Z)
        b = problem.rows_to_parameters(problem.curvature * u)
        h = float(np.sum(problem.curvature * u**2))
        return b, h

    def hessian_correction(self, problem):
        if not self.profile_scale:
            return None
        b, h = self._scale_block(problem)
        if h <= 0:  # every row an outlier: the scale has no curvature
            raise ValueError(
                "Every training row is an outlier of the HuberRegressor "
                f"(|residual| > epsilon * scale_ with epsilon={self.epsilon:g}), so "
                "its scale is not determined by a stationary point. Increase "
                "epsilon or check that X and y are the data it was fitted on.")
        return b[:, None], np.array([-1.0 / h])

    def removal_shift(self, problem):
        if not self.profile_scale:
            return None
        b, h = self._scale_block(problem)
        g_scale = self.scale_gradients(problem.Y, problem.Z, problem.sample_weight)
        return b[:, None], (g_scale / h)[:, None]

    # --------------------------------------------- joint objective (exact)
    def joint_parts(self, X, y, sample_weight, theta, scale):
        """Objective, gradient and Hessian in ``(theta, sigma)``, sigma last."""
        family = self.with_theta(theta)
        family.scale, family.profile_scale = float(scale), False
        problem = family.bind(X, y, sample_weight)
        b, h = family._scale_block(problem)
        g_scale = family.scale_gradients(problem.Y, problem.Z, problem.sample_weight)
        d = problem.n_parameters
        hessian = np.empty((d + 1, d + 1))
        hessian[:d, :d] = problem.hessian()
        hessian[:d, d] = hessian[d, :d] = b
        hessian[d, d] = h
        gradient = np.append(problem.gradient(), g_scale.sum())
        return problem.objective(), gradient, hessian
