"""Stochastic gradient descent: SGDClassifier and SGDRegressor with an L2 penalty.

SGD updates each row's loss gradient plus a weight decay ``alpha w`` once per
visit, so the fixed point it approaches is the minimiser of

.. math::

    F(\\theta) = \\frac1n \\sum_i \\sum_k c_{ik}\\, \\ell(y_{ik}, z_{ik})
                 + \\frac{\\alpha}{2} \\sum_k \\lVert w_k \\rVert^2,

``n`` the number of rows (rows of sample weight 0 count: they still decay the
weights), the intercepts unpenalised, ``c_ik = s_i`` times the class weight:
``cw_{y_i}`` with two classes, and in the one-vs-rest problem ``k`` of more
classes ``cw_k`` for its positive rows and 1 for the others.
``class_weight="balanced"`` counts rows (sample weights are ignored), and a
refit without a row recomputes it. A refit also divides by ``n - 1``: each
row takes ``1/n`` of the penalty with it (:meth:`removal_shift`).

Losses (``m = y z`` with ``y = +-1``, ``r = y - z``): ``log_loss``
``log(1 + e^{-m})``; ``modified_huber`` ``(1 - m)^2`` on ``[-1, 1)``, ``-4m``
below, 0 above; ``squared_hinge`` ``max(0, 1 - m)^2``; ``hinge``
``max(0, 1 - m)``, smoothed in the training objective to
``t log(1 + e^{(1 - m)/t})`` as for LinearSVC; ``squared_error`` ``r^2 / 2``;
``huber`` ``r^2 / 2`` for ``|r| <= epsilon``, ``epsilon |r| - epsilon^2 / 2``
beyond; ``squared_epsilon_insensitive`` ``max(0, |r| - epsilon)^2``. The test
loss is the same loss, unweighted (summed over the one-vs-rest problems).
``epsilon_insensitive`` and ``perceptron`` are piecewise linear and refused.

SGD stops long before the optimum. The influence is that of the objective;
:func:`skinfluence.evaluation.optimality_gap` measures how far the iterate is
from the optimum, and ``InfluenceExplainer(polish=True)`` moves there first.
"""

import numpy as np
from scipy.special import expit
from sklearn.linear_model import SGDClassifier, SGDRegressor

from ._base import LinearFamily, target_column
from ._classification import ClassificationFamily

_MARGIN_LOSSES = ("log_loss", "modified_huber", "squared_hinge", "hinge")
_RESIDUAL_LOSSES = ("squared_error", "huber", "squared_epsilon_insensitive")
SUPPORTED_LOSSES = _MARGIN_LOSSES + _RESIDUAL_LOSSES


def _loss(name, Y, Z, epsilon, order):
    """Value (order 0), first (1) or second (2) derivative in ``Z`` of a loss."""
    if name in _MARGIN_LOSSES:
        m = Y * Z
        if name == "log_loss":
            if order == 0:
                return np.logaddexp(0.0, -m)
            return -Y * expit(-m) if order == 1 else expit(m) * expit(-m)
        if name == "modified_huber":
            middle = (m >= -1.0) & (m < 1.0)
            if order == 0:
                return np.where(m >= 1.0, 0.0, np.where(middle, (1.0 - m) ** 2, -4.0 * m))
            if order == 1:
                return Y * np.where(m >= 1.0, 0.0, np.where(middle, -2.0 * (1.0 - m), -4.0))
            return np.where(middle, 2.0, 0.0)
        slack = np.maximum(0.0, 1.0 - m)
        if name == "squared_hinge":
            if order == 0:
                return slack**2
            return -2.0 * Y * slack if order == 1 else 2.0 * (m < 1.0)
        # the hinge (test loss; the training objective is smoothed)
        return slack if order == 0 else -Y * (m < 1.0)
    r = Y - Z
    if name == "squared_error":
        if order == 0:
            return 0.5 * r**2
        return -r if order == 1 else np.ones_like(r)
    if name == "huber":
        inside = np.abs(r) <= epsilon
        if order == 0:
            return np.where(inside, 0.5 * r**2, epsilon * np.abs(r) - 0.5 * epsilon**2)
        return -np.clip(r, -epsilon, epsilon) if order == 1 else inside.astype(float)
    excess = np.maximum(0.0, np.abs(r) - epsilon)  # squared epsilon-insensitive
    if order == 0:
        return excess**2
    return -2.0 * np.sign(r) * excess if order == 1 else 2.0 * (np.abs(r) > epsilon)


def _check_sgd(estimator):
    """Refuse the settings whose objective is not the smooth L2 one."""
    name = type(estimator).__name__
    if estimator.loss not in SUPPORTED_LOSSES:
        raise ValueError(
            f"{name}(loss={estimator.loss!r}) is piecewise linear, so influence "
            f"functions are undefined. Use one of {list(SUPPORTED_LOSSES)} "
            "(loss='hinge' is smoothed).")
    l1_ratio = estimator.l1_ratio if estimator.penalty == "elasticnet" else 0.0
    if estimator.penalty == "l1" or (l1_ratio or 0.0) > 0:
        raise ValueError(
            f"{name} with penalty={estimator.penalty!r} has an L1 part in its "
            "objective, which is not smooth. Use penalty='l2' (or None).")
    if estimator.early_stopping:
        raise ValueError(
            f"{name}(early_stopping=True) learns on a random part of the rows only "
            "(the rest is its validation set), so its objective does not cover the "
            "training data. Refit with early_stopping=False.")
    if estimator.learning_rate in ("pa1", "pa2"):
        raise ValueError(f"{name} with the passive-aggressive learning rate "
                         f"{estimator.learning_rate!r} minimises no fixed objective.")
    return 0.0 if estimator.penalty is None else float(estimator.alpha)


class _SGDMixin:
    """What the two SGD families share: the loss table, 1/n and the penalty."""

    stochastic = True

    def _init_sgd(self, loss, alpha, epsilon, smoothing):
        self.loss_name = loss
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.smoothing = float(smoothing)
        self.smoothed = loss == "hinge"
        # the smoothed objective's Newton LOO is not the hinge's exact LOO
        self.exact_engine = None if self.smoothed else "newton"

    def output_losses(self, Y, Z):
        return _loss(self.loss_name, Y, Z, self.epsilon, 0)

    def loss_gradient(self, Y, Z):
        return _loss(self.loss_name, Y, Z, self.epsilon, 1)

    def training_output_losses(self, Y, Z):
        if not self.smoothed:
            return self.output_losses(Y, Z)
        t = self.smoothing
        return t * np.logaddexp(0.0, (1.0 - Y * Z) / t)

    def training_loss_gradient(self, Y, Z):
        if not self.smoothed:
            return self.loss_gradient(Y, Z)
        return -Y * expit((1.0 - Y * Z) / self.smoothing)

    def loss_hessian(self, Y, Z):
        if not self.smoothed:
            return _loss(self.loss_name, Y, Z, self.epsilon, 2)
        s = expit((1.0 - Y * Z) / self.smoothing)
        return s * (1.0 - s) / self.smoothing

    def penalty_diagonal(self):
        p = np.full((self.n_outputs, self.n_columns), self.alpha)
        if self.fit_intercept:
            p[:, -1] = 0.0
        return p.ravel()

    def removal_shift(self, problem):
        if self.alpha == 0:
            return None
        share = np.full(problem.n_samples, 1.0 / problem.n_samples)
        return (problem.penalty * problem.theta)[:, None], -share[:, None]

    def removal_weights(self, y, sample_weight, rows):
        # a refit divides by n - 1 and recounts balanced class weights
        keep = np.ones(len(y), dtype=bool)
        keep[rows] = False
        y = np.asarray(y)
        sample_weight = np.asarray(sample_weight, dtype=float)
        out = np.zeros((len(y), self.n_outputs))
        out[keep] = self.row_weights(y[keep], sample_weight[keep])
        return out


class SGDRegressorFamily(_SGDMixin, LinearFamily):
    """An SGDRegressor's objective: ``1/n sum s_i l(y_i, z_i) + alpha/2 ||w||^2``."""

    supported = (SGDRegressor,)

    def __init__(self, coef, intercept, *, loss="squared_error", alpha=1e-4,
                 epsilon=0.1, fit_intercept=True):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))[:1]
        self.fit_intercept = bool(fit_intercept)
        self._init_sgd(loss, alpha, epsilon, 0.03)

    @classmethod
    def from_estimator(cls, estimator, **_):
        alpha = _check_sgd(estimator)
        return cls(np.ravel(estimator.coef_),
                   np.ravel(estimator.intercept_)[0] if estimator.fit_intercept else 0.0,
                   loss=estimator.loss, alpha=alpha, epsilon=estimator.epsilon,
                   fit_intercept=estimator.fit_intercept)

    def encode_target(self, y):
        return target_column(y)

    def row_weights(self, y, sample_weight):
        sample_weight = np.asarray(sample_weight, dtype=float)
        return (sample_weight / len(sample_weight))[:, None]

    def prediction_gradient(self, Z):
        return np.ones_like(Z)


class SGDClassifierFamily(_SGDMixin, ClassificationFamily):
    """An SGDClassifier's objective, one-vs-rest for three or more classes."""

    supported = (SGDClassifier,)

    def balance_counts(self, sample_weight):
        """SGD counts rows for ``class_weight="balanced"``, not sample weights."""
        return np.ones(len(sample_weight))

    def __init__(self, coef, intercept, classes, *, loss="hinge", alpha=1e-4,
                 epsilon=0.1, smoothing=0.03, fit_intercept=True, class_weight=None):
        self.coef = np.array(coef, dtype=float)
        self.intercept = np.array(intercept, dtype=float).ravel()
        self.fit_intercept = bool(fit_intercept)
        self._init_sgd(loss, alpha, epsilon, smoothing)
        self._init_classes(classes, class_weight, 1.0)

    @classmethod
    def from_estimator(cls, estimator, *, smoothing=0.03, **_):
        alpha = _check_sgd(estimator)
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = (np.ravel(estimator.intercept_) if estimator.fit_intercept
                     else np.zeros(coef.shape[0]))
        return cls(coef, intercept, estimator.classes_, loss=estimator.loss,
                   alpha=alpha, epsilon=estimator.epsilon, smoothing=smoothing,
                   fit_intercept=estimator.fit_intercept,
                   class_weight=estimator.class_weight)

    def encode_target(self, y):
        return self.plus_minus_targets(y)

    def row_weights_from_class_weights(self, labels, sample_weight, cw):
        # SGD's objective is a mean over the rows: each row counts 1/n
        return self.one_vs_rest_weights(
            labels, np.asarray(sample_weight, dtype=float) / len(labels), cw)

    def class_weight_jacobian(self, labels, sample_weight, a):
        return self.one_vs_rest_jacobian(
            labels, np.asarray(sample_weight, dtype=float) / len(labels), a)
