"""Tweedie deviance: PoissonRegressor, GammaRegressor and TweedieRegressor.

scikit-learn minimises

.. math::

    F(w, b) = \\frac{1}{2 \\sum_i s_i} \\sum_i s_i\\, d_p(y_i, \\mu_i)
              + \\frac{\\alpha}{2} \\lVert w \\rVert^2,
    \\qquad \\mu_i = h(x_i^\\top w + b),

with ``d_p`` the unit Tweedie deviance of power ``p`` (0 normal, 1 Poisson,
(1, 2) compound Poisson-gamma, 2 gamma, 3 inverse Gaussian, any other real
power) and ``h`` the inverse link, ``exp`` (log link) or the identity.
PoissonRegressor is ``p = 1`` and GammaRegressor ``p = 2``, both with the log
link; TweedieRegressor's ``link="auto"`` is the identity for ``p <= 0`` and the
log otherwise. The intercept is not penalised.

The objective is normalised by the total sample weight, so a refit without
row ``i`` minimises

.. math::

    F_{-i} \\propto F - f_i - \\frac{s_i}{\\sum_j s_j}\\,
                   \\frac{\\alpha}{2} \\lVert w \\rVert^2 :

the row takes its share of the penalty with it, and its removal gradient is
``g_i + (s_i / sum_j s_j) alpha w`` (:meth:`TweedieFamily.removal_shift`).
The exact leave-one-out engine renormalises the remaining weights, as a refit
does.

The test loss is the unit deviance ``d_p(y, mu)`` itself (twice the training
term), the per-row value of :func:`sklearn.metrics.mean_tweedie_deviance`.
Without test targets the explained quantity is ``predict``: the mean ``mu``,
whose change is ``mu`` times the change of the linear predictor for the log
link (chain rule).

Per-row curvatures are not always positive: ``d_p`` is not convex in the
linear predictor for ``p < 1`` or ``p > 2`` with the log link, nor for
``p > 1`` with the identity link. The Hessian at the optimum is still positive
definite, and is then factorised in its primal form.
"""

import numpy as np
from scipy.special import xlogy
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor

from ._base import LinearFamily, target_column


def _read_power_link(estimator):
    """``(power, link)`` of a fitted GLM, ``link`` in {"log", "identity"}."""
    if isinstance(estimator, PoissonRegressor):
        return 1.0, "log"
    if isinstance(estimator, GammaRegressor):
        return 2.0, "log"
    power = float(estimator.power)
    link = estimator.link
    if link == "auto":
        link = "identity" if power <= 0 else "log"
    return power, link


class TweedieFamily(LinearFamily):
    """Tweedie deviance of power ``power`` with a log or identity link.

    Parameters
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    alpha : float
        L2 penalty strength (``alpha / 2 ||w||^2``).
    power : float
        Tweedie power.
    link : {"log", "identity"}
    fit_intercept : bool
    """

    supported = (PoissonRegressor, GammaRegressor, TweedieRegressor)

    def __init__(self, coef, intercept, *, alpha=1.0, power=1.0, link="log",
                 fit_intercept=True):
        self.coef = np.array(coef, dtype=float).reshape(1, -1)
        self.intercept = np.atleast_1d(np.array(intercept, dtype=float))
        self.alpha = float(alpha)
        self.power = float(power)
        if link not in ("log", "identity"):
            raise ValueError(f"link must be 'log' or 'identity'; got {link!r}.")
        self.link = link
        self.fit_intercept = bool(fit_intercept)

    @classmethod
    def from_estimator(cls, estimator, **_):
        power, link = _read_power_link(estimator)
        return cls(
            np.ravel(estimator.coef_),
            float(estimator.intercept_) if estimator.fit_intercept else 0.0,
            alpha=estimator.alpha, power=power, link=link,
            fit_intercept=estimator.fit_intercept,
        )

    # ---------------------------------------------------------------- target
    def encode_target(self, y):
        y = target_column(y)[:, 0]
        p = self.power
        if p > 0 and np.any(y < 0) or p >= 2 and np.any(y <= 0):
            allowed = "positive" if p >= 2 else "non-negative"
            raise ValueError(
                f"The Tweedie deviance of power {p:g} needs {allowed} targets; y has "
                f"values down to {y.min():g}.")
        return y[:, None]

    def mean(self, Z):
        return np.exp(Z[:, 0]) if self.link == "log" else Z[:, 0]

    def prediction_gradient(self, Z):
        return np.exp(Z) if self.link == "log" else np.ones_like(Z)

    # ------------------------------------------------------------------ loss
    def _mu(self, Z):
        return np.exp(Z) if self.link == "log" else Z

    def _test_mean(self, Z):
        """The mean of test rows, refusing a non-positive one where the
        deviance is undefined (identity link, power > 0)."""
        mu = self._mu(Z)
        if self.link == "identity" and self.power > 0 and np.any(mu <= 0):
            raise ValueError(
                f"The identity link predicts a mean <= 0 for {int(np.sum(mu <= 0))} "
                f"rows, where the Tweedie deviance of power {self.power:g} is "
                "undefined. Explain predictions (y=None) instead, or fit with "
                "link='log'.")
        return mu

    def output_losses(self, Y, Z):
        """Unit deviance ``d_p(y, mu)`` (zero at ``mu = y``) of test rows."""
        return self._deviance(Y, self._test_mean(Z))

    def _deviance(self, Y, mu):
        p = self.power
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 0:
                return (Y - mu) ** 2
            if p == 1:
                return 2.0 * (xlogy(Y, Y / mu) - Y + mu)
            if p == 2:
                return 2.0 * (np.log(mu / Y) + Y / mu - 1.0)
            return 2.0 * (np.maximum(Y, 0) ** (2 - p) / ((1 - p) * (2 - p))
                          - Y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))

    def training_output_losses(self, Y, Z):
        """Half the unit deviance: scikit-learn's ``HalfTweedieLoss`` terms."""
        return 0.5 * self._deviance(Y, self._mu(Z))

    def training_loss_gradient(self, Y, Z):
        # d/dmu of the half deviance is mu^-p (mu - y); times dmu/dz
        mu, p = self._mu(Z), self.power
        if self.link == "log":
            return mu ** (2 - p) - Y * mu ** (1 - p)
        return mu ** (1 - p) - Y * mu ** (-p)

    def loss_gradient(self, Y, Z):
        self._test_mean(Z)
        return 2.0 * self.training_loss_gradient(Y, Z)

    def loss_hessian(self, Y, Z):
        mu, p = self._mu(Z), self.power
        if self.link == "log":
            return (2 - p) * mu ** (2 - p) - (1 - p) * Y * mu ** (1 - p)
        return (1 - p) * mu ** (-p) + p * Y * mu ** (-p - 1)

    # ------------------------------------------------------------- objective
    def row_weights(self, y, sample_weight):
        sample_weight = np.asarray(sample_weight, dtype=float)
        return (sample_weight / sample_weight.sum())[:, None]

    def penalty_diagonal(self):
        p = np.full(self.n_columns, self.alpha)
        if self.fit_intercept:
            p[-1] = 0.0
        return p

    def removal_shift(self, problem):
        if self.alpha == 0:
            return None
        share = problem.sample_weight / problem.sample_weight.sum()
        return (problem.penalty * problem.theta)[:, None], -share[:, None]
