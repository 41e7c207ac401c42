"""Squared loss with several targets: LinearRegression, Ridge and RidgeCV on 2-D ``y``.

scikit-learn fits the ``K`` columns of ``y`` as independent problems that share
the design matrix and the sample weights:

.. math::

    F(W, b) = \\sum_k \\Big[ \\sum_i s_i (y_{ik} - x_i^\\top w_k - b_k)^2
              + \\alpha_k \\lVert w_k \\rVert^2 \\Big],

one ``alpha_k`` per target (``Ridge(alpha=array)``,
``RidgeCV(alpha_per_target=True)``) or the same for all; ``alpha = 0`` for
LinearRegression. The test loss is the squared error summed over the targets;
without test targets the explained quantity is each target's prediction, one
slice per target.
"""

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV

from ._base import LinearFamily
from .squared import SquaredLossFamily, SquaredTerms


class MultiOutputSquaredFamily(SquaredTerms, LinearFamily):
    """Squared error of a linear regressor with ``K`` targets.

    Parameters
    ----------
    coef : ndarray of shape (n_targets, n_features)
    intercept : ndarray of shape (n_targets,)
    alpha : float or ndarray of shape (n_targets,)
        Ridge penalty of each target (0 for ordinary least squares).
    fit_intercept : bool
    pinv_rtol : float or None
        Pseudo-inverse cut-off, as in :class:`SquaredLossFamily`.
    """

    supported = (LinearRegression, Ridge, RidgeCV)
    quadratic = True

    def __init__(self, coef, intercept, alpha, fit_intercept, pinv_rtol=None):
        self.coef = np.array(coef, dtype=float, ndmin=2)
        K = self.coef.shape[0]
        self.intercept = np.broadcast_to(np.asarray(intercept, dtype=float), (K,)).copy()
        self.alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (K,)).copy()
        self.fit_intercept = bool(fit_intercept)
        self.pinv_rtol = pinv_rtol

    @classmethod
    def from_estimator(cls, estimator, **_):
        coef = np.asarray(estimator.coef_, dtype=float)
        if getattr(estimator, "positive", False):
            raise ValueError(
                "positive=True constrains the coefficients, so the optimum is not a "
                "stationary point and influence functions do not apply. Refit with "
                "positive=False.")
        pinv_rtol = None
        if isinstance(estimator, LinearRegression):
            alpha = 0.0
            if getattr(estimator, "rank_", coef.shape[1]) < coef.shape[1]:
                pinv_rtol = max(estimator.tol, np.sqrt(np.finfo(float).eps)) ** 2
        else:
            alpha = estimator.alpha_ if isinstance(estimator, RidgeCV) else estimator.alpha
            alpha = np.ravel(np.asarray(alpha, dtype=float))
            if alpha.size not in (1, coef.shape[0]):
                raise ValueError(
                    f"{type(estimator).__name__} has {alpha.size} alphas for "
                    f"{coef.shape[0]} targets; give one alpha or one per target.")
        intercept = (np.ravel(estimator.intercept_) if estimator.fit_intercept
                     else np.zeros(coef.shape[0]))
        return cls(coef, intercept, alpha, estimator.fit_intercept, pinv_rtol)

    def encode_target(self, y):
        y = np.asarray(y, dtype=float)
        K = self.n_outputs
        if y.ndim == 1 and K == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != K:
            raise ValueError(
                f"y must have shape (n_samples, {K}): one column per target of the "
                f"fitted model; got shape {y.shape}.")
        return y

    def row_weights(self, y, sample_weight):
        sw = np.asarray(sample_weight, dtype=float)[:, None]
        return np.repeat(sw, self.n_outputs, axis=1)

    def penalty_diagonal(self):
        p = np.repeat(2.0 * self.alpha[:, None], self.n_columns, axis=1)
        if self.fit_intercept:
            p[:, -1] = 0.0
        return p.ravel()

    def prediction_gradient(self, Z):
        if Z.shape[1] > 1:
            raise ValueError(
                f"The model has {Z.shape[1]} targets, so without test targets there "
                "is one prediction per target and no single quantity to explain "
                "here. Pass y (the squared error summed over the targets), or use "
                "explain(X), loo(X) or prediction_influence(X), which return one "
                "slice per target, shape (n_test, n_train, n_targets).")
        return np.ones_like(Z)


def squared_loss_family(estimator, **kwargs):
    """The single- or the multi-output squared-loss family of a fitted regressor."""
    if np.ndim(estimator.coef_) == 2 and np.shape(estimator.coef_)[0] > 1:
        return MultiOutputSquaredFamily.from_estimator(estimator, **kwargs)
    return SquaredLossFamily.from_estimator(estimator, **kwargs)
