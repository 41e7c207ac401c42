"""Log-loss with an L1 part: LogisticRegression(CV) with ``l1_ratio > 0``.

.. math::

    F(w, b) = C \\sum_i s_i\\, \\mathrm{logloss}_i
              + \\tfrac{1 - \\rho}{2} \\lVert w \\rVert^2 + \\rho \\lVert w \\rVert_1
              + \\frac{|b|}{\\mathrm{is}}[\\text{liblinear}],

``rho = l1_ratio`` (saga: any, liblinear: 1). liblinear treats the intercept as
a feature of value ``intercept_scaling`` (``is``) and penalises it like the
others: by ``|b| / is`` under L1, so the intercept can be exactly zero. Binary
or multinomial (saga), with the families of :mod:`.logistic`; on the support
the objective is smooth (see :mod:`._active_set`).

The multinomial Hessian keeps the softmax's redundant directions on the
support: the free intercepts, and a feature without L2 part that every class
keeps in its support (moving all its coefficients together changes neither a
probability nor, at the optimum, the L1 term, whose signs balance there).
"""

import numpy as np

from ._active_set import ActiveSetMixin
from .logistic import BinaryLogisticFamily, MultinomialLogisticFamily, penalty_parts


class _L1Logistic(ActiveSetMixin):
    def __init__(self, coef, intercept, classes, *, C=1.0, l1_ratio=1.0, **kwargs):
        super().__init__(coef, intercept, classes, C=C, **kwargs)
        self.l1_ratio = float(l1_ratio)
        self.fix_support()

    @classmethod
    def from_estimator(cls, estimator, **_):
        C, l1_ratio = penalty_parts(estimator)
        liblinear = estimator.solver == "liblinear"
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = (np.ravel(estimator.intercept_) if estimator.fit_intercept
                     else np.zeros(coef.shape[0]))
        return cls(coef, intercept, estimator.classes_, C=C, l1_ratio=l1_ratio,
                   fit_intercept=estimator.fit_intercept,
                   class_weight=estimator.class_weight,
                   intercept_scaling=estimator.intercept_scaling if liblinear else None)

    def l1_strength(self):
        lam = np.full((self.n_outputs, self.n_columns), self.l1_ratio)
        if self.fit_intercept:
            lam[:, -1] = (0.0 if self.intercept_scaling is None
                          else 1.0 / self.intercept_scaling)
        return lam.ravel()

    def l2_penalty(self):
        p = np.full((self.n_outputs, self.n_columns), 1.0 - self.l1_ratio)
        if self.fit_intercept:
            p[:, -1] = 0.0
        return p.ravel()


class BinaryL1LogisticFamily(_L1Logistic, BinaryLogisticFamily):
    """Binary log-loss with an L1 or elastic-net penalty."""


class MultinomialL1LogisticFamily(_L1Logistic, MultinomialLogisticFamily):
    """Softmax cross-entropy with an L1 or elastic-net penalty."""

    def null_space(self):
        K, P = self.n_outputs, self.n_columns
        support = self.support.reshape(K, P)
        flat = (self.l1_strength() == 0) | (self.l2_penalty() == 0)
        free = np.flatnonzero(support.all(axis=0) & flat.reshape(K, P).all(axis=0))
        if free.size == 0:
            return None
        basis = np.zeros((K, P, free.size))
        basis[:, free, np.arange(free.size)] = 1.0 / np.sqrt(K)
        return basis.reshape(K * P, free.size)


def l1_logistic_family(estimator, **kwargs):
    """The binary or multinomial L1 family of a fitted logistic model."""
    if len(estimator.classes_) == 2:
        return BinaryL1LogisticFamily.from_estimator(estimator, **kwargs)
    return MultinomialL1LogisticFamily.from_estimator(estimator, **kwargs)
