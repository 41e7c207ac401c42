"""Squared loss on +-1 targets: RidgeClassifier and RidgeClassifierCV.

scikit-learn binarises the labels to ``Y`` with ``+1`` for the row's class and
``-1`` elsewhere (one column for two classes, the positive class being
``classes_[1]``; one column per class otherwise), multiplies the sample weights
by the class weights and fits a Ridge regression on ``Y``:

.. math::

    F(W, b) = \\sum_k \\Big[ \\sum_i s_i\\, \\mathrm{cw}_{y_i}
              (Y_{ik} - x_i^\\top w_k - b_k)^2 + \\alpha \\lVert w_k \\rVert^2 \\Big].

The test loss is that squared error summed over the columns; without test
labels a row is explained at its predicted class (``prediction_influence``
gives the change of ``decision_function``).

``class_weight="balanced"`` counts rows, not their sample weights
(``compute_sample_weight("balanced", y)``): the weight of class ``a`` is
``n / (n_classes * n_a)``, so a refit without a row re-balances every class
and a row of weight 0 still counts. The removal terms and the leave-one-out
objective use those counts.
"""

import copy

import numpy as np
from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV

from ._classification import ClassificationFamily
from .squared import SquaredTerms


class RidgeClassifierFamily(SquaredTerms, ClassificationFamily):
    """Squared loss of a ridge regression on the +-1 binarised labels.

    Parameters
    ----------
    coef : ndarray of shape (n_outputs, n_features)
        One row for two classes, one per class otherwise.
    intercept : ndarray of shape (n_outputs,)
    classes : ndarray
    alpha : float
    fit_intercept : bool
    class_weight : dict, "balanced" or None
    """

    supported = (RidgeClassifier, RidgeClassifierCV)

    def __init__(self, coef, intercept, classes, *, alpha=1.0, fit_intercept=True,
                 class_weight=None):
        self.coef = np.array(coef, dtype=float, ndmin=2)
        self.intercept = np.array(intercept, dtype=float).ravel()
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)
        self._init_classes(classes, class_weight, 1.0)
        # re-balanced class weights make a refit's objective differ from the
        # full one in every row: not a rank-one change, so no one-step formula;
        # Newton's method on the exact refit objective still is exact
        self.quadratic = not self._balanced
        self.exact_engine = "rebalanced" if self._balanced else "newton"

    @property
    def _balanced(self):
        return isinstance(self.class_weight, str) and self.class_weight == "balanced"

    @classmethod
    def from_estimator(cls, estimator, **_):
        if estimator._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError(
                f"{type(estimator).__name__} was fitted on multilabel targets; "
                "skinfluence supports binary and multiclass labels. Fit a Ridge "
                "regression on the +-1 label matrix instead (a multi-output "
                "regressor skinfluence explains).")
        if getattr(estimator, "positive", False):
            raise ValueError(
                "positive=True constrains the coefficients, so the optimum is not a "
                "stationary point and influence functions do not apply. Refit with "
                "positive=False.")
        alpha = (estimator.alpha_ if isinstance(estimator, RidgeClassifierCV)
                 else estimator.alpha)
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = (np.ravel(estimator.intercept_) if estimator.fit_intercept
                     else np.zeros(coef.shape[0]))
        return cls(coef, intercept, estimator.classes_, alpha=float(np.ravel(alpha)[0]),
                   fit_intercept=estimator.fit_intercept,
                   class_weight=estimator.class_weight)

    # -------------------------------------------------------------- labels
    def encode_target(self, y):
        return self.plus_minus_targets(y)

    def balance_counts(self, sample_weight):
        return np.ones(len(sample_weight))

    def row_weights_from_class_weights(self, labels, sample_weight, cw):
        per_row = (np.asarray(sample_weight, dtype=float)
                   * self.own_class_weights(labels, cw))
        return np.repeat(per_row[:, None], self.n_outputs, axis=1)

    def class_weight_jacobian(self, labels, sample_weight, a):
        per_row = np.asarray(sample_weight, dtype=float) * (labels == a)
        return np.repeat(per_row[:, None], self.n_outputs, axis=1)

    def _balanced_weights(self, counts):
        """``n / (n_classes * n_a)`` from the row counts (0 for an empty class)."""
        counts = np.asarray(counts, dtype=float)
        with np.errstate(divide="ignore"):
            cw = counts.sum() / (len(self.classes) * counts)
        cw[counts == 0] = 0.0
        return cw

    def removal_weights(self, y, sample_weight, rows):
        weight = np.array(sample_weight, dtype=float)
        weight[rows] = 0.0
        if not self._balanced:
            return self.row_weights(y, weight)
        labels = self.class_index(y)
        keep = np.ones(len(labels), dtype=bool)
        keep[rows] = False
        cw = self._balanced_weights(np.bincount(labels[keep],
                                                minlength=len(self.classes)))
        return self.row_weights_from_class_weights(labels, weight, cw)

    def removal_groups(self, y, sample_weight):
        """``(rows, family)`` per class ``a``: the rows of ``a`` and the family
        with the fixed class weights every refit without one of them uses
        (for the exact "rebalanced" engine)."""
        labels = self.class_index(y)
        counts = np.bincount(labels, minlength=len(self.classes))
        groups = []
        for a in np.flatnonzero(counts):
            removed = counts.copy()
            removed[a] -= 1
            fixed = copy.copy(self)
            fixed.class_weight = dict(zip(self.classes.tolist(),
                                          self._balanced_weights(removed)))
            fixed.quadratic, fixed.exact_engine = True, "newton"
            groups.append((np.flatnonzero(labels == a), fixed))
        return groups

    # ---------------------------------------------------------------- loss
    def penalty_diagonal(self):
        p = np.full((self.n_outputs, self.n_columns), 2.0 * self.alpha)
        if self.fit_intercept:
            p[:, -1] = 0.0
        return p.ravel()

    def prediction_gradient(self, Z):
        return np.ones_like(Z)
