"""Hinge and squared hinge: LinearSVC (liblinear), one-vs-rest.

Each of the ``K`` one-vs-rest problems (one when there are two classes) solves

.. math::

    F_k(\\theta_k) = \\sum_i c_{ik}\\, \\ell(y_{ik} \\tilde x_i^\\top \\theta_k)
                     + \\tfrac12 \\lVert w_k \\rVert^2 + \\frac{b_k^2}{2\\,\\mathrm{is}^2},

``y_ik = +1`` for rows of class ``k`` and ``-1`` otherwise. liblinear appends the
feature ``intercept_scaling`` (``is``) and penalises its coefficient, hence the
intercept term. Weights: ``c_ik = C s_i cw_k`` for the positive rows of problem
``k`` and ``C s_i`` for its negatives; with two classes, ``C s_i cw_{y_i}``.

``loss="squared_hinge"``: ``l(m) = max(0, 1 - m)^2`` with the generalised second
derivative ``2 [m < 1]``. ``loss="hinge"`` is not twice differentiable; the
training objective is smoothed to

.. math::

    h_t(m) = t \\log\\left(1 + e^{(1 - m) / t}\\right),

whose Hessian is ``sigma(u)(1 - sigma(u)) / t`` with ``u = (1 - m)/t``. The test
loss stays the true hinge.
"""

import numpy as np
from scipy.optimize import lsq_linear
from scipy.special import expit
from sklearn.svm import LinearSVC
from sklearn.utils import Bunch

from ._classification import ClassificationFamily
from ._svm_dual import LinearRows, SupportVectorDual


class LinearSVCFamily(SupportVectorDual, ClassificationFamily):
    """One-vs-rest (squared) hinge loss with liblinear's penalised intercept.

    Parameters
    ----------
    coef : ndarray of shape (n_problems, n_features)
    intercept : ndarray of shape (n_problems,)
    classes : ndarray
    C : float
    loss : {"squared_hinge", "hinge"}
    smoothing : float
        Temperature ``t`` of the smoothed hinge (only for ``loss="hinge"``).
    fit_intercept : bool
    intercept_scaling : float
    class_weight : dict, "balanced" or None
    """

    supported = (LinearSVC,)
    estimator_name = "LinearSVC"
    #: rows whose margin is within this distance of 1 count as on the margin
    margin_band = 1e-2

    def __init__(self, coef, intercept, classes, *, C=1.0, loss="squared_hinge",
                 smoothing=0.03, fit_intercept=True, intercept_scaling=1.0,
                 class_weight=None):
        self.coef = np.array(coef, dtype=float)
        self.intercept = np.array(intercept, dtype=float).ravel()
        self.loss_name = loss
        self.smoothed = loss == "hinge"
        self.squared_slack = not self.smoothed
        # the hinge's exact LOO is the decremental path, not Newton on the
        # smoothed objective
        self.exact_engine = "hinge_path" if self.smoothed else "newton"
        self.smoothing = float(smoothing)
        self.fit_intercept = bool(fit_intercept)
        self.intercept_scaling = float(intercept_scaling)
        self._init_classes(classes, class_weight, C)
        #: the estimator's own parameters (kept when :meth:`with_theta` moves)
        self.fitted_theta = self.theta

    @classmethod
    def from_estimator(cls, estimator, *, smoothing=0.03, **_):
        if estimator.penalty != "l2":
            raise ValueError(
                f"LinearSVC with penalty={estimator.penalty!r} has a non-smooth "
                "objective, so influence functions are undefined. Use penalty='l2'."
            )
        if estimator.multi_class != "ovr":
            raise ValueError(
                f"LinearSVC with multi_class={estimator.multi_class!r} is not "
                "supported: its joint objective is not a sum of per-row losses on "
                "one linear predictor. Use multi_class='ovr'."
            )
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = (
            np.ravel(estimator.intercept_) if estimator.fit_intercept
            else np.zeros(coef.shape[0])
        )
        return cls(
            coef, intercept, estimator.classes_, C=estimator.C, loss=estimator.loss,
            smoothing=smoothing, fit_intercept=estimator.fit_intercept,
            intercept_scaling=estimator.intercept_scaling,
            class_weight=estimator.class_weight,
        )

    # -------------------------------------------------------------- labels
    def encode_target(self, y):
        return self.plus_minus_targets(y)

    def row_weights_from_class_weights(self, labels, sample_weight, cw):
        return self.one_vs_rest_weights(
            labels, self.C * np.asarray(sample_weight, dtype=float), cw)

    def class_weight_jacobian(self, labels, sample_weight, a):
        return self.one_vs_rest_jacobian(
            labels, self.C * np.asarray(sample_weight, dtype=float), a)

    def penalty_diagonal(self):
        p = np.ones((self.n_outputs, self.n_columns))
        if self.fit_intercept:
            p[:, -1] = 1.0 / self.intercept_scaling**2
        return p.ravel()

    # ---------------------------------------------------------------- loss
    def output_losses(self, Y, Z):
        slack = np.maximum(0.0, 1.0 - Y * Z)
        return slack**2 if self.loss_name == "squared_hinge" else slack

    def loss_gradient(self, Y, Z):
        slack = np.maximum(0.0, 1.0 - Y * Z)
        if self.loss_name == "squared_hinge":
            return -2.0 * Y * slack
        return -Y * (slack > 0)

    def training_output_losses(self, Y, Z):
        if self.loss_name == "squared_hinge":
            return self.output_losses(Y, Z)
        t = self.smoothing
        return t * np.logaddexp(0.0, (1.0 - Y * Z) / t)

    def training_loss_gradient(self, Y, Z):
        if self.loss_name == "squared_hinge":
            return self.loss_gradient(Y, Z)
        return -Y * expit((1.0 - Y * Z) / self.smoothing)

    def training_gradient_change(self, Y, Z, dZ):
        if self.loss_name != "squared_hinge":
            return super().training_gradient_change(Y, Z, dZ)
        # -2 y max(0, 1 - y z): where both sides are active the change is 2 dz;
        # the slack before the change in the shape of Y and Z (often one
        # column for many dZ)
        shape = np.broadcast_shapes(np.shape(Y), np.shape(Z), np.shape(dZ))
        before = 1.0 - Y * Z
        after = 1.0 - Y * (Z + dZ)
        both = (before > 0) & (after > 0)
        change = np.maximum(after, 0.0)
        change -= np.maximum(before, 0.0)
        change *= -2.0 * Y
        return np.broadcast_to(np.where(both, 2.0 * dZ, change), shape)

    def loss_hessian(self, Y, Z):
        if self.loss_name == "squared_hinge":
            return 2.0 * (Y * Z < 1.0)
        s = expit((1.0 - Y * Z) / self.smoothing)
        return s * (1.0 - s) / self.smoothing

    def stationarity_gradient(self, problem):
        """Smallest subgradient of the true hinge objective.

        Rows on the margin (within ``margin_band``) take any weight in
        ``[0, 1]`` of their hinge subgradient; the weights are chosen by
        bounded least squares. Squared hinge is differentiable: its gradient.
        """
        if not self.smoothed:
            return None
        Y, Z = problem.Y, problem.Z
        margin = Y * Z
        on_margin = np.abs(1.0 - margin) <= self.margin_band
        fixed = np.where(on_margin, 0.0, problem.weights * -Y * (margin < 1.0))
        gradient = problem.rows_to_parameters(fixed) + problem.penalty * problem.theta
        rows, outputs = np.nonzero(on_margin)
        if rows.size == 0:
            return gradient
        R = np.zeros((rows.size, self.n_outputs))
        R[np.arange(rows.size), outputs] = (problem.weights * -Y)[rows, outputs]
        columns = problem.row_gradients(problem.X[rows], R)
        fit = lsq_linear(columns, -gradient, bounds=(0.0, 1.0))
        return gradient + columns @ fit.x

    # ------------------------------------------------------ exact solution
    @property
    def removal_moves_others(self):
        """True when removing a row changes other rows' weights ("balanced")."""
        return isinstance(self.class_weight, str) and self.class_weight == "balanced"

    def dual_problems(self, X, y, sample_weight):
        """liblinear's problem of each one-vs-rest output (see :mod:`._svm_dual`).

        Rows ``z_i = y_ik [x_i, intercept_scaling]``, targets 1, boxes
        ``[0, c_ik]`` (the hinge) or weights ``c_ik`` (the squared hinge).
        """
        Y = self.encode_target(y)
        bounds = self.dual_bounds(y, sample_weight)
        scaling = self.intercept_scaling if self.fit_intercept else None
        n = X.shape[0]
        return [
            Bunch(rows=LinearRows(X, Y[:, k], intercept_scaling=scaling),
                  target=np.ones(n), lower=lower, upper=upper)
            for k, (lower, upper) in enumerate(bounds)
        ]

    def dual_bounds(self, y, sample_weight):
        """``(lower, upper)`` of every output's rows for these sample weights."""
        weights = self.row_weights(y, sample_weight)
        return [(np.zeros(weights.shape[0]), weights[:, k].copy())
                for k in range(weights.shape[1])]

    def liblinear_theta(self, theta):
        """One liblinear parameter vector ``[w_k, b_k / intercept_scaling]`` per output."""
        Theta = np.array(theta, dtype=float).reshape(self.n_outputs, self.n_columns)
        if self.fit_intercept:
            Theta[:, -1] /= self.intercept_scaling
        return list(Theta)

    def from_liblinear(self, thetas):
        """The flat parameters of one liblinear vector per output."""
        Theta = np.array(thetas, dtype=float).reshape(self.n_outputs, self.n_columns)
        if self.fit_intercept:
            Theta[:, -1] *= self.intercept_scaling
        return Theta.ravel()
