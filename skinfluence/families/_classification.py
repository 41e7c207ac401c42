"""What the classification families share: labels, class weights, re-balancing.

With ``class_weight="balanced"`` the weight of class ``a`` is
``N / (n_classes * N_a)`` (``N_a`` the summed sample weight of class ``a``), so a
refit without row ``i`` recomputes every class weight. The weights ``c_ik`` of
the objective are linear in the class weights, hence the refit objective is
exactly

.. math::

    F_{-i} = F - f_i + \\sum_a \\delta_a^{(i)} \\sum_{j \\ne i}
             \\frac{\\partial f_j}{\\partial \\mathrm{cw}_a},

and its gradient at the fitted parameters is
``-c'_i / c_i * grad f_i + sum_a delta_a^(i) G_a`` with ``G_a`` the total
gradient of class ``a``'s rows per unit of its class weight. The explainer
subtracts ``H^{-1} sum_a delta_a^(i) G_a`` (one extra solve per class).
"""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ._base import LinearFamily


class ClassificationFamily(LinearFamily):
    """Base of the classifier families: label encoding and class weights.

    Subclasses define :meth:`class_weight_jacobian`, the ``(n, K)`` derivative of
    the row weights ``c_ik`` with respect to the weight of class ``a``.
    """

    is_classifier = True
    #: False when ``class_weight="balanced"`` counts rows instead of summing
    #: their sample weights (SGDClassifier)

    def _init_classes(self, classes, class_weight, C):
        self.classes = np.asarray(classes)
        self.class_weight = class_weight
        self.C = float(C)

    def class_index(self, y):
        """Positions of the labels ``y`` in ``classes``; unseen labels raise."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be one-dimensional; got shape {y.shape}.")
        if (y.dtype.kind in "biuf" and self.classes.dtype.kind in "biuf"
                and len(self.classes) <= 8):  # a few numeric classes: compare
            # the classes are distinct, so the masks are disjoint: a sum of
            # position * mask (a boolean putmask of 1,000,000 labels took 6.2 ms,
            # this 1.4 ms)
            idx = np.zeros(len(y), dtype=np.intp)
            seen = y == self.classes[0]
            for position, label in enumerate(self.classes[1:], 1):
                match = y == label
                seen |= match
                idx += position * match
            if not seen.all():
                self._refuse_unseen(y, ~seen)
            return idx
        try:
            idx = np.searchsorted(self.classes, y)
            idx = np.clip(idx, 0, len(self.classes) - 1)
            unseen = np.asarray(self.classes[idx] != y, dtype=bool)
        except TypeError:  # labels of another type than the classes (int vs str)
            idx = np.zeros(len(y), dtype=np.intp)
            unseen = np.ones(len(y), dtype=bool)
        if np.any(unseen):
            self._refuse_unseen(y, unseen)
        return idx

    def plus_minus_targets(self, y):
        """One-vs-rest targets in {-1, +1}: one column for two classes, else
        +1 in the row's own class's column and -1 elsewhere."""
        idx = self.class_index(y)
        if self.n_outputs == 1:
            return np.where(idx == 1, 1.0, -1.0)[:, None]
        Y = -np.ones((len(idx), self.n_outputs))
        Y[np.arange(len(idx)), idx] = 1.0
        return Y

    def own_class_weights(self, labels, cw):
        """Each row's weight of its own class: ``cw`` has one weight per class,
        shape (n_classes,) (a take, not a two-dimensional fancy index), or one
        such vector per row, shape (n, n_classes)."""
        cw = np.asarray(cw, dtype=float)
        if cw.ndim == 1:
            return cw[labels]
        cw = np.broadcast_to(cw, (len(labels), len(self.classes)))
        return cw[np.arange(len(labels)), labels]

    def one_vs_rest_weights(self, labels, row_scale, cw):
        """Row weights of one-vs-rest problems (liblinear, SGD): ``row_scale_i``
        times the row's class weight in its own class's problem and times 1 in
        the others (one problem for two classes)."""
        n = len(labels)
        own = self.own_class_weights(labels, cw)
        if self.n_outputs == 1:
            return (row_scale * own)[:, None]
        weights = np.ones((n, self.n_outputs))
        weights[np.arange(n), labels] = own
        return row_scale[:, None] * weights

    def one_vs_rest_jacobian(self, labels, row_scale, a):
        """Derivative of :meth:`one_vs_rest_weights` in the weight of class ``a``."""
        own = row_scale * (labels == a)
        if self.n_outputs == 1:
            return own[:, None]
        out = np.zeros((len(labels), self.n_outputs))
        out[:, a] = own
        return out

    def balance_counts(self, sample_weight):
        """What each row adds to its class's count under ``class_weight="balanced"``:
        its sample weight (LogisticRegression, LinearSVC)."""
        return np.asarray(sample_weight, dtype=float)

    def _refuse_unseen(self, y, unseen):
        shown = sorted({repr(v) for v in y[unseen].tolist()})[:10]
        raise ValueError(
            f"y contains labels the estimator was not fitted on: "
            f"[{', '.join(shown)}]. Known classes are "
            f"{self.classes.tolist()} (of type {type(self.classes[0]).__name__}); "
            "pass the labels in the same form the estimator was fitted with."
        )

    def class_weights(self, y, sample_weight):
        """Class weights as the estimator computed them on ``(y, sample_weight)``."""
        if self.class_weight is None:
            return np.ones(len(self.classes))
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # compute_class_weight's formula, without its validation overhead
            totals = np.bincount(self.class_index(y),
                                 weights=self.balance_counts(sample_weight),
                                 minlength=len(self.classes))
            with np.errstate(divide="ignore"):
                return totals.sum() / (len(self.classes) * totals)
        return compute_class_weight(
            self.class_weight, classes=self.classes, y=y, sample_weight=sample_weight
        )

    def class_weight_jacobian(self, labels, sample_weight, a):
        raise NotImplementedError

    def row_weights_from_class_weights(self, labels, sample_weight, cw):
        """Row weights ``c_ik``, linear in the class weights.

        ``cw`` is one weight per class, shape (n_classes,), or one such vector
        per row, shape (n, n_classes).
        """
        raise NotImplementedError

    def row_weights(self, y, sample_weight):
        cw = self.class_weights(y, sample_weight)
        return self.row_weights_from_class_weights(self.class_index(y), sample_weight, cw)

    def sole_members(self, y, sample_weight):
        labels = self.class_index(y)
        present = np.asarray(sample_weight, dtype=float) > 0
        counts = np.bincount(labels[present], minlength=len(self.classes))
        return present & (counts[labels] == 1)

    def removal_terms(self, y, sample_weight, Y, Z):
        if not (isinstance(self.class_weight, str) and self.class_weight == "balanced"):
            return None
        labels = self.class_index(y)
        sw = np.asarray(sample_weight, dtype=float)
        counts = self.balance_counts(sw)
        n_classes = len(self.classes)
        totals = np.bincount(labels, weights=counts, minlength=n_classes)
        cw = totals.sum() / (n_classes * totals)
        # class weights after removing each row (exact, not linearised)
        new_totals = np.broadcast_to(totals, (len(y), n_classes)).copy()
        new_totals[np.arange(len(y)), labels] -= counts
        with np.errstate(divide="ignore", invalid="ignore"):
            new_cw = (totals.sum() - counts)[:, None] / (n_classes * new_totals)
        # a row that is the last of its class would remove the class: no term
        lonely = ~np.isfinite(new_cw).all(axis=1)
        delta = np.where(lonely[:, None], 0.0, new_cw - cw)
        c_old = self.row_weights_from_class_weights(labels, sw, cw)
        c_new = self.row_weights_from_class_weights(labels, sw, cw + delta)
        with np.errstate(divide="ignore", invalid="ignore"):
            row_scale = np.where(c_old > 0, c_new / c_old, 1.0)
        row_scale[lonely] = 1.0
        gradient = self.training_loss_gradient(Y, Z)
        class_residuals = np.stack(
            [self.class_weight_jacobian(labels, sw, a) * gradient for a in range(n_classes)]
        )
        return row_scale, delta, class_residuals
