"""Epsilon-insensitive loss: LinearSVR (liblinear).

.. math::

    F(\\theta) = C \\sum_i s_i\\, \\ell(y_i - \\tilde x_i^\\top \\theta)
                 + \\tfrac12 \\lVert w \\rVert^2 + \\frac{b^2}{2\\,\\mathrm{is}^2},

with ``l(r) = max(0, |r| - eps)`` (``loss="epsilon_insensitive"``) or its
square (``loss="squared_epsilon_insensitive"``); liblinear appends the feature
``intercept_scaling`` (``is``) and penalises its coefficient, like LinearSVC.
The squared loss has the generalised second derivative ``2 [|r| > eps]``. The
absolute loss is not twice differentiable; the training objective is smoothed
to

.. math::

    h_t(r - \\epsilon) + h_t(-r - \\epsilon), \\qquad
    h_t(u) = t \\log(1 + e^{u / t}),

(``t`` the smoothing, as for the hinge); the test loss stays the true one.
Its exact optimum and leave-one-out use the same box QP as the hinge
(:mod:`._svm_dual`): each sample is two hinge rows, ``+x~_i`` with target
``y_i - eps`` and ``-x~_i`` with target ``-y_i - eps``, or, for ``eps = 0``,
one row with the box ``[-C s_i, C s_i]``.
"""

import numpy as np
from scipy.optimize import lsq_linear
from scipy.special import expit
from sklearn.svm import LinearSVR
from sklearn.utils import Bunch

from ._base import LinearFamily, target_column
from ._svm_dual import LinearRows, SupportVectorDual


class LinearSVRFamily(SupportVectorDual, LinearFamily):
    """(Squared) epsilon-insensitive loss with liblinear's penalised intercept.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    C, epsilon : float
    loss : {"epsilon_insensitive", "squared_epsilon_insensitive"}
    smoothing : float
        Temperature ``t`` of the smoothed loss (only for
        ``loss="epsilon_insensitive"``).
    fit_intercept : bool
    intercept_scaling : float
    """

    supported = (LinearSVR,)
    estimator_name = "LinearSVR"
    #: removing a row changes no other row's weight
    removal_moves_others = False
    #: residuals within this distance of a kink (``|r| = eps``) count as on it
    margin_band = 1e-2

    def __init__(self, coef, intercept, *, C=1.0, epsilon=0.0, loss="epsilon_insensitive",
                 smoothing=0.03, fit_intercept=True, intercept_scaling=1.0):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))
        self.C = float(C)
        self.epsilon = float(epsilon)
        self.loss_name = loss
        self.smoothed = loss == "epsilon_insensitive"
        self.squared_slack = not self.smoothed
        self.exact_engine = "hinge_path" if self.smoothed else "newton"
        self.smoothing = float(smoothing)
        self.fit_intercept = bool(fit_intercept)
        self.intercept_scaling = float(intercept_scaling)
        #: the estimator's own parameters (kept when :meth:`with_theta` moves)
        self.fitted_theta = self.theta

    @classmethod
    def from_estimator(cls, estimator, *, smoothing=0.03, **_):
        intercept = np.ravel(estimator.intercept_)[0] if estimator.fit_intercept else 0.0
        return cls(
            np.ravel(estimator.coef_), intercept, C=estimator.C,
            epsilon=estimator.epsilon, loss=estimator.loss, smoothing=smoothing,
            fit_intercept=estimator.fit_intercept,
            intercept_scaling=estimator.intercept_scaling,
        )

    # ---------------------------------------------------------------- loss
    def encode_target(self, y):
        return target_column(y)

    def output_losses(self, Y, Z):
        excess = np.maximum(0.0, np.abs(Y - Z) - self.epsilon)
        return excess**2 if self.squared_slack else excess

    def loss_gradient(self, Y, Z):
        r = Y - Z
        excess = np.maximum(0.0, np.abs(r) - self.epsilon)
        if self.squared_slack:
            return -2.0 * np.sign(r) * excess
        return -np.sign(r) * (excess > 0)

    def training_output_losses(self, Y, Z):
        if self.squared_slack:
            return self.output_losses(Y, Z)
        t, r = self.smoothing, Y - Z
        return t * (np.logaddexp(0.0, (r - self.epsilon) / t)
                    + np.logaddexp(0.0, (-r - self.epsilon) / t))

    def training_loss_gradient(self, Y, Z):
        if self.squared_slack:
            return self.loss_gradient(Y, Z)
        t, r = self.smoothing, Y - Z
        return expit((-r - self.epsilon) / t) - expit((r - self.epsilon) / t)

    def loss_hessian(self, Y, Z):
        r = Y - Z
        if self.squared_slack:
            return 2.0 * (np.abs(r) > self.epsilon)
        t = self.smoothing
        up, down = expit((r - self.epsilon) / t), expit((-r - self.epsilon) / t)
        return (up * (1.0 - up) + down * (1.0 - down)) / t

    def row_weights(self, y, sample_weight):
        return (self.C * np.asarray(sample_weight, dtype=float))[:, None]

    def penalty_diagonal(self):
        p = np.ones(self.n_columns)
        if self.fit_intercept:
            p[-1] = 1.0 / self.intercept_scaling**2
        return p

    def prediction_gradient(self, Z):
        return np.ones_like(Z)

    def stationarity_gradient(self, problem):
        """Smallest subgradient of the true (absolute) objective.

        Rows within ``margin_band`` of a kink take any weight of their
        subgradient there (``[0, 1]`` at ``|r| = eps > 0``, ``[-1, 1]`` at
        ``r = 0`` when ``eps = 0``), chosen by bounded least squares.
        """
        if not self.smoothed:
            return None
        r = (problem.Y - problem.Z)[:, 0]
        kink = np.abs(np.abs(r) - self.epsilon) <= self.margin_band
        fixed = np.where(kink, 0.0, self.loss_gradient(problem.Y, problem.Z)[:, 0])
        weights = problem.weights[:, 0]
        gradient = (problem.rows_to_parameters((weights * fixed)[:, None])
                    + problem.penalty * problem.theta)
        rows = np.flatnonzero(kink)
        if rows.size == 0:
            return gradient
        # at r = +eps the loss falls with Z (subgradient -[0, 1]); at -eps it rises
        direction = np.where(r[rows] > 0, -1.0, 1.0) if self.epsilon > 0 else -np.ones(rows.size)
        lower = 0.0 if self.epsilon > 0 else -1.0
        columns = problem.row_gradients(problem.X[rows], (weights[rows] * direction)[:, None])
        fit = lsq_linear(columns, -gradient, bounds=(lower, 1.0))
        return gradient + columns @ fit.x

    # ------------------------------------------------------ exact solution
    def dual_problems(self, X, y, sample_weight):
        """liblinear's problem: two hinge rows per sample (one for ``eps = 0``)."""
        y = self.encode_target(y)[:, 0]
        n = X.shape[0]
        scaling = self.intercept_scaling if self.fit_intercept else None
        (lower, upper), = self.dual_bounds(y, sample_weight)
        if self.epsilon == 0.0 and not self.squared_slack:
            rows = LinearRows(X, np.ones(n), intercept_scaling=scaling)
            target = y
        else:
            index = np.concatenate([np.arange(n), np.arange(n)])
            rows = LinearRows(X, np.repeat([1.0, -1.0], n), index=index,
                              intercept_scaling=scaling)
            target = np.concatenate([y - self.epsilon, -y - self.epsilon])
        return [Bunch(rows=rows, target=target, lower=lower, upper=upper)]

    def dual_bounds(self, y, sample_weight):
        """``[(lower, upper)]`` of the rows for these sample weights."""
        weight = self.C * np.asarray(sample_weight, dtype=float)
        if self.epsilon == 0.0 and not self.squared_slack:
            return [(-weight, weight.copy())]
        return [(np.zeros(2 * weight.size), np.concatenate([weight, weight]))]

    def liblinear_theta(self, theta):
        """``[w, b / intercept_scaling]`` as a one-element list."""
        theta = np.array(theta, dtype=float)
        if self.fit_intercept:
            theta[-1] /= self.intercept_scaling
        return [theta]

    def from_liblinear(self, thetas):
        """The flat parameters of liblinear's vector."""
        theta = np.array(thetas[0], dtype=float)
        if self.fit_intercept:
            theta[-1] *= self.intercept_scaling
        return theta
