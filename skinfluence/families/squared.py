"""Squared loss: LinearRegression, Ridge and RidgeCV.

.. math::

    F(w, b) = \\sum_i s_i (y_i - x_i^\\top w - b)^2 + \\alpha \\lVert w \\rVert^2

with ``alpha = 0`` for LinearRegression. The intercept is never penalised.
"""

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV

from ._base import LinearFamily, target_column


class SquaredTerms:
    """The squared loss ``(y - z)^2`` per output and its derivatives, for every
    family built on it (least squares, ridge classification, the Lasso's
    smooth part, several targets)."""

    def output_losses(self, Y, Z):
        return (Y - Z) ** 2

    def loss_gradient(self, Y, Z):
        return -2.0 * (Y - Z)

    def loss_hessian(self, Y, Z):
        return np.full_like(Z, 2.0)


class SquaredLossFamily(SquaredTerms, LinearFamily):
    """Squared error of a single-output linear regressor.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    alpha : float
        Ridge penalty (0 for ordinary least squares).
    fit_intercept : bool
    pinv_rtol : float or None
        When set, the Hessian is inverted as a pseudo-inverse that drops
        eigenvalues below ``pinv_rtol`` times the largest, the way
        ``LinearRegression`` truncates small singular values.
    """

    supported = (LinearRegression, Ridge, RidgeCV)
    #: the objective is quadratic: one Newton step is exact
    quadratic = True

    def __init__(self, coef, intercept, alpha, fit_intercept, pinv_rtol=None):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)
        self.pinv_rtol = pinv_rtol

    @classmethod
    def from_estimator(cls, estimator, **_):
        coef = np.asarray(estimator.coef_)
        if coef.ndim > 1 and coef.shape[0] != 1:
            raise ValueError(
                f"{type(estimator).__name__} was fitted on a {coef.shape[0]}-column "
                "target; skinfluence supports single-output regression. Explain "
                "one target at a time (fit one model per column)."
            )
        if getattr(estimator, "positive", False):
            raise ValueError(
                "positive=True constrains the coefficients, so the optimum is not a "
                "stationary point and influence functions do not apply. Refit with "
                "positive=False."
            )
        pinv_rtol = None
        if isinstance(estimator, LinearRegression):
            alpha = 0.0
            n_features = coef.size
            if getattr(estimator, "rank_", n_features) < n_features:
                # lstsq drops singular values below tol * s_max; the Hessian's
                # eigenvalues are the squares of those singular values.
                pinv_rtol = max(estimator.tol, np.sqrt(np.finfo(float).eps)) ** 2
        elif isinstance(estimator, RidgeCV):
            alpha = np.asarray(estimator.alpha_, dtype=float)
            if alpha.size != 1:
                raise ValueError("RidgeCV with one alpha per target is not supported.")
            alpha = float(alpha.ravel()[0])
        else:
            alpha = np.asarray(estimator.alpha, dtype=float)
            if alpha.size != 1:
                raise ValueError("Ridge with one alpha per target is not supported.")
            alpha = float(alpha.ravel()[0])
        return cls(
            coef.ravel(),
            np.ravel(estimator.intercept_)[0] if estimator.fit_intercept else 0.0,
            alpha,
            estimator.fit_intercept,
            pinv_rtol,
        )

    def encode_target(self, y):
        return target_column(y)

    def training_gradient_change(self, Y, Z, dZ):
        return 2.0 * np.broadcast_to(dZ, np.broadcast(Y, Z, dZ).shape)

    def row_weights(self, y, sample_weight):
        return np.asarray(sample_weight, dtype=float)[:, None]

    def penalty_diagonal(self):
        p = np.full(self.n_columns, 2.0 * self.alpha)
        if self.fit_intercept:
            p[-1] = 0.0
        return p

    def prediction_gradient(self, Z):
        return np.ones_like(Z)
