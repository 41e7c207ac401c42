"""L1 and elastic net on squared loss: Lasso, ElasticNet, LassoCV, ElasticNetCV.

scikit-learn minimises, with the sample weights normalised to their sum
``S = sum_i s_i``,

.. math::

    F(w, b) = \\frac{1}{2S} \\sum_i s_i (y_i - x_i^\\top w - b)^2
              + \\alpha \\rho \\lVert w \\rVert_1
              + \\tfrac12 \\alpha (1 - \\rho) \\lVert w \\rVert^2,

``rho = l1_ratio`` (1 for Lasso); the intercept is not penalised. On the
support of ``w`` (see :mod:`._active_set`) the objective is a smooth quadratic.

A refit without row ``i`` normalises by ``S - s_i``: multiplied by
``(S - s_i) / S`` its objective is the full one without row ``i``'s term and
with the penalty shrunk by ``1 - s_i / S``. At the optimum the penalty's
gradient on the support is minus the data gradient ``G``, so the refit's
gradient at ``theta`` is ``-(g_i - (s_i / S) G)``: the removal terms, one group
holding every row. For the Lasso the shrunk objective's Hessian differs from
the full one by row ``i``'s term only, so a Newton step with the leave-one-out
Hessian stays (nearly) exact while the support does not change.
"""

import numpy as np
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    MultiTaskElasticNet,
)

from ._active_set import ActiveSetMixin
from ._base import LinearFamily, target_column
from .squared import SquaredTerms


class LassoFamily(ActiveSetMixin, SquaredTerms, LinearFamily):
    """Squared loss with scikit-learn's L1 / elastic-net penalty.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    alpha : float
    l1_ratio : float
        1 for the Lasso.
    fit_intercept : bool
    """

    supported = (Lasso, ElasticNet, LassoCV, ElasticNetCV)

    def __init__(self, coef, intercept, alpha, l1_ratio, fit_intercept):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))
        self.alpha = float(alpha)
        self.l1_ratio = float(l1_ratio)
        self.fit_intercept = bool(fit_intercept)
        self.fix_support()

    @classmethod
    def from_estimator(cls, estimator, **_):
        coef = np.asarray(estimator.coef_, dtype=float)
        name = type(estimator).__name__
        if isinstance(estimator, MultiTaskElasticNet):  # MultiTaskLasso too
            raise ValueError(
                f"{name} penalises the rows of its coefficient matrix jointly (a "
                "group penalty), which skinfluence does not support. Use one Lasso "
                "or ElasticNet per target.")
        if coef.ndim > 1 and coef.shape[0] != 1:
            raise ValueError(
                f"{name} was fitted on a {coef.shape[0]}-column target; skinfluence "
                "supports a single target for L1 models. Fit one model per column.")
        if estimator.positive:
            raise ValueError(
                f"{name}(positive=True) constrains the coefficients; skinfluence "
                "supports the unconstrained L1 problem. Refit with positive=False.")
        cv = isinstance(estimator, (LassoCV, ElasticNetCV))
        alpha = estimator.alpha_ if cv else estimator.alpha
        l1_ratio = (estimator.l1_ratio_ if isinstance(estimator, ElasticNetCV)
                    else 1.0 if isinstance(estimator, (Lasso, LassoCV))
                    else estimator.l1_ratio)
        intercept = np.ravel(estimator.intercept_)[0] if estimator.fit_intercept else 0.0
        return cls(coef.ravel(), intercept, alpha, l1_ratio, estimator.fit_intercept)

    # ------------------------------------------------------------- penalty
    def l1_strength(self):
        lam = np.full(self.n_columns, self.alpha * self.l1_ratio)
        if self.fit_intercept:
            lam[-1] = 0.0
        return lam

    def l2_penalty(self):
        p = np.full(self.n_columns, self.alpha * (1.0 - self.l1_ratio))
        if self.fit_intercept:
            p[-1] = 0.0
        return p

    # ---------------------------------------------------------------- loss
    def encode_target(self, y):
        return target_column(y)

    def row_weights(self, y, sample_weight):
        sw = np.asarray(sample_weight, dtype=float)
        return (sw / (2.0 * sw.sum()))[:, None]

    def removal_terms(self, y, sample_weight, Y, Z):
        sw = np.asarray(sample_weight, dtype=float)
        weights = self.row_weights(y, sw)
        residuals = weights * self.loss_gradient(Y, Z)
        delta = (sw / sw.sum())[:, None]  # the penalty shrinks by s_i / S
        return np.ones_like(weights), delta, residuals[None]

    def prediction_gradient(self, Z):
        return np.ones_like(Z)
