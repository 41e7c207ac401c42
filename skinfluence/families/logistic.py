"""Log-loss: LogisticRegression and LogisticRegressionCV, binary and multinomial.

Binary (``coef_`` of shape (1, p), one logit for ``classes_[1]``):

.. math::

    F(w, b) = C \\sum_i s_i \\left[\\log(1 + e^{z_i}) - y_i z_i\\right]
              + \\tfrac12 \\lVert w \\rVert^2 + \\frac{b^2}{2\\,\\mathrm{is}^2}[\\text{liblinear}],

with ``z_i = x_i^T w + b``, ``y_i in {0, 1}`` and ``s_i`` the product of sample and
class weight. Three or more classes are multinomial: softmax cross-entropy over
the ``K`` rows of ``coef_`` plus ``1/2 ||W||_F^2``.

``C = inf`` (no penalty) drops both the ``C`` factor and the penalty. liblinear
treats the intercept as a feature of value ``intercept_scaling`` (``is``) and
penalises it, which is the ``b^2 / (2 is^2)`` term.

The multinomial Hessian is singular: adding the same vector to every class's
unpenalised coefficients (the intercepts, or all coefficients when ``C = inf``)
leaves every probability unchanged. Gradients of the loss sum to zero over the
classes, so they are orthogonal to that null space; :meth:`null_space` returns
it and the solvers invert the Hessian on its complement (the pseudo-inverse),
which is the parameter change of a refit up to that unobservable shift.
"""

import numpy as np
from scipy.special import expit, log_expit, logsumexp, softmax
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

from ._classification import ClassificationFamily


def penalty_parts(estimator):
    """Return ``(C, l1_ratio)`` of a fitted logistic model (``C = inf``: no
    penalty; ``l1_ratio`` 0 for L2, 1 for L1).

    Reads the deprecated ``penalty`` when it was set, else ``l1_ratio``.
    """
    if isinstance(estimator, LogisticRegressionCV):
        C = float(np.ravel(estimator.C_)[0])
        l1_ratio = np.ravel(np.asarray(estimator.l1_ratio_, dtype=float))[0]
    else:
        C = float(estimator.C)
        l1_ratio = estimator.l1_ratio
    l1_ratio = 0.0 if l1_ratio is None or np.isnan(l1_ratio) else float(l1_ratio)
    penalty = getattr(estimator, "penalty", "deprecated")
    if penalty == "l1":
        l1_ratio = 1.0
    elif penalty == "l2":
        l1_ratio = 0.0
    elif penalty is None:
        C = np.inf
    if np.isinf(C):
        l1_ratio = 0.0
    return C, l1_ratio


def _read_penalty(estimator):
    """Return ``C`` (``inf`` for no penalty) after refusing any L1 part."""
    C, l1_ratio = penalty_parts(estimator)
    penalty = getattr(estimator, "penalty", "deprecated")
    if l1_ratio > 0:
        raise ValueError(
            f"{type(estimator).__name__} with an L1 part in its penalty "
            f"(penalty={penalty!r}, l1_ratio={l1_ratio!r}) has a non-smooth "
            "objective, so influence functions are undefined. Use an L2 penalty "
            "(l1_ratio=0) or no penalty (C=np.inf)."
        )
    return C


class _LogisticBase(ClassificationFamily):
    supported = (LogisticRegression, LogisticRegressionCV)

    def __init__(self, coef, intercept, classes, *, C=1.0, fit_intercept=True,
                 class_weight=None, intercept_scaling=None):
        self.coef = np.array(coef, dtype=float)
        self.intercept = np.array(intercept, dtype=float).ravel()
        self.fit_intercept = bool(fit_intercept)
        self.intercept_scaling = intercept_scaling
        self._init_classes(classes, class_weight, C)

    @classmethod
    def from_estimator(cls, estimator, **_):
        C = _read_penalty(estimator)
        liblinear = estimator.solver == "liblinear"
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = (
            np.ravel(estimator.intercept_) if estimator.fit_intercept
            else np.zeros(coef.shape[0])
        )
        return cls(
            coef, intercept, estimator.classes_, C=C,
            fit_intercept=estimator.fit_intercept,
            class_weight=estimator.class_weight,
            intercept_scaling=estimator.intercept_scaling if liblinear else None,
        )

    @property
    def _data_scale(self):
        return 1.0 if np.isinf(self.C) else self.C

    def row_weights_from_class_weights(self, labels, sample_weight, cw):
        per_row = self.own_class_weights(labels, cw)
        return (self._data_scale * np.asarray(sample_weight) * per_row)[:, None]

    def class_weight_jacobian(self, labels, sample_weight, a):
        return (self._data_scale * np.asarray(sample_weight) * (labels == a))[:, None]

    def penalty_diagonal(self):
        strength = 0.0 if np.isinf(self.C) else 1.0
        p = np.full((self.n_outputs, self.n_columns), strength)
        if self.fit_intercept:
            p[:, -1] = (
                0.0 if self.intercept_scaling is None
                else 1.0 / self.intercept_scaling**2
            )
        return p.ravel()


class BinaryLogisticFamily(_LogisticBase):
    """Binary log-loss on one logit for ``classes[1]``."""

    def encode_target(self, y):
        return (self.class_index(y) == 1).astype(float)[:, None]

    def output_losses(self, Y, Z):
        # log(1 + e^z) - y z  ==  -log sigmoid(z) for y=1, -log sigmoid(-z) for y=0
        return -log_expit(np.where(Y > 0.5, Z, -Z))

    def loss_gradient(self, Y, Z):
        return expit(Z) - Y

    def loss_hessian(self, Y, Z):
        p = expit(Z)
        return p * (1.0 - p)

    def training_derivatives(self, Y, Z):
        p = expit(Z)
        return p - Y, p * (1.0 - p)

    def training_gradient_change(self, Y, Z, dZ):
        # sigma(z + d) - sigma(z) = sigma(z) (1 - sigma(z + d)) expm1(d);
        # sigma(z) before broadcasting (Z is often one column for many dZ)
        shape = np.broadcast_shapes(np.shape(Y), np.shape(Z), np.shape(dZ))
        change = expit(-(Z + dZ))
        change *= np.expm1(np.minimum(dZ, 700.0))
        change *= expit(Z)
        return np.broadcast_to(change, shape)


class MultinomialLogisticFamily(_LogisticBase):
    """Softmax cross-entropy over ``K >= 3`` classes."""

    full_output_hessian = True

    def encode_target(self, y):
        idx = self.class_index(y)
        Y = np.zeros((len(idx), len(self.classes)))
        Y[np.arange(len(idx)), idx] = 1.0
        return Y

    def output_losses(self, Y, Z):
        return (_logsumexp(Z) - np.sum(Y * Z, axis=1))[:, None]

    def loss_gradient(self, Y, Z):
        return softmax(Z, axis=1) - Y

    def training_derivatives(self, Y, Z):
        P = softmax(Z, axis=1)
        return P - Y, _softmax_hessian(P)

    def training_gradient_change(self, Y, Z, dZ):
        # softmax(z + d)_k - softmax(z)_k
        #   = p_k (expm1(d_k) - sum_m p_m expm1(d_m)) / (1 + sum_m p_m expm1(d_m))
        Y, Z, dZ = np.broadcast_arrays(Y, Z, dZ)
        P = softmax(Z, axis=1)
        grow = np.expm1(np.minimum(dZ, 700.0))
        mean = np.sum(P * grow, axis=1, keepdims=True)
        return P * (grow - mean) / (1.0 + mean)

    def loss_hessian(self, Y, Z):
        return _softmax_hessian(softmax(Z, axis=1))

    def null_space(self):
        K, P = self.n_outputs, self.n_columns
        free = np.flatnonzero(self.penalty_diagonal().reshape(K, P)[0] == 0)
        if free.size == 0:
            return None
        basis = np.zeros((K, P, free.size))
        basis[:, free, np.arange(free.size)] = 1.0 / np.sqrt(K)
        return basis.reshape(K * P, free.size)


def _softmax_hessian(P):
    """``diag(p_i) - p_i p_i^T`` of each row: (n, K, K)."""
    H = -P[:, :, None] * P[:, None, :]
    idx = np.arange(P.shape[1])
    H[:, idx, idx] += P
    return H


def _logsumexp(Z):
    """``log sum_k exp(z_k)`` of each row, shifted by the row's largest value
    (scipy's ``logsumexp`` took 138 against 17 microseconds on 124 x 3,
    called at every step of a leave-out Newton solve); scipy's for rows
    whose largest value is not finite."""
    top = np.max(Z, axis=1, keepdims=True)
    if not np.all(np.isfinite(top)):
        return logsumexp(Z, axis=1)
    return (top + np.log(np.sum(np.exp(Z - top), axis=1, keepdims=True)))[:, 0]


def logistic_family(estimator, **kwargs):
    """Pick the binary or the multinomial family for a fitted logistic model
    (L1 and elastic-net penalties: their active-set families)."""
    if penalty_parts(estimator)[1] > 0:
        from .logistic_l1 import l1_logistic_family  # they build on the families here

        return l1_logistic_family(estimator, **kwargs)
    if len(estimator.classes_) == 2:
        return BinaryLogisticFamily.from_estimator(estimator, **kwargs)
    return MultinomialLogisticFamily.from_estimator(estimator, **kwargs)
