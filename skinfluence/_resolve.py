"""Find the one linear model inside what the user passed, and what wraps it.

:func:`resolve` unwraps, recursively,

* ``FrozenEstimator``: the frozen estimator;
* ``Pipeline``: the last step, the others become the (fixed) preprocessing;
* ``GridSearchCV``, ``RandomizedSearchCV``, ``HalvingGridSearchCV``,
  ``HalvingRandomSearchCV``: the ``best_estimator_``, refitted on all rows with
  the chosen hyperparameters. Those are held fixed: the leave-one-out truth is
  a refit of ``best_estimator_`` without the row, not a new search;
* ``TransformedTargetRegressor``: the regressor, fitted on transformed targets
  ``t = f(y)``. Its (fitted) transformer is held fixed, like a Pipeline's
  preprocessing; losses are measured in the transformed space and predictions
  go back through ``f^{-1}`` (chain rule: ``d predict = (f^{-1})'(t) dt``).

Wrappers whose prediction is not one linear model's are refused with the
reason (:data:`REFUSED`); anything else reaches the families, whose error
lists the supported estimators.
"""

from collections import namedtuple

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection._search import BaseSearchCV
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier, MultiOutputRegressor
from sklearn.pipeline import Pipeline

__all__ = ["REFUSED", "Resolved", "TargetTransform", "resolve", "sample_weight_key"]

#: the estimator explained, the preprocessing before it (a callable on X, or
#: None) and the target transform around it (or None)
Resolved = namedtuple("Resolved", ["final", "transform", "target"])

_ENSEMBLE = (
    "{name} combines several models fitted on resampled or reweighted rows (or "
    "on each other's predictions); a training row's removal changes all of them, "
    "which no single linear model's influence describes. Explain one of its "
    "linear models fitted on all rows instead."
)
#: wrappers refused, with the reason
REFUSED = {
    CalibratedClassifierCV: (
        "{name} averages classifiers fitted on cross-validation folds, each with "
        "a sigmoid or isotonic calibrator fitted on the held-out fold (or "
        "calibrates a prefit model on separate data); its probabilities are not "
        "one linear model's, and removing a row changes every fold's model and "
        "calibrator. Explain the uncalibrated estimator fitted on all rows (for "
        "example InfluenceExplainer(LogisticRegression(...))): its decision "
        "function is what the calibrator maps."),
    OneVsRestClassifier: (
        "{name} fits one independent binary model per class; explain each of its "
        "estimators_ on its own one-vs-rest labels, or use a model whose own "
        "objective is one-vs-rest (LinearSVC, SGDClassifier)."),
    OneVsOneClassifier: (
        "{name} fits one model per pair of classes on that pair's rows and votes; "
        "a removal changes the models of its class's pairs and the vote is not "
        "differentiable. Explain the pairwise estimators_ one by one."),
    MultiOutputRegressor: (
        "{name} fits one independent model per target; explain each of its "
        "estimators_ on its own target column."),
    MultiOutputClassifier: (
        "{name} fits one independent model per target; explain each of its "
        "estimators_ on its own target column."),
    **{cls: _ENSEMBLE for cls in (
        BaggingClassifier, BaggingRegressor, AdaBoostClassifier, AdaBoostRegressor,
        VotingClassifier, VotingRegressor, StackingClassifier, StackingRegressor)},
}


def _unfreeze(estimator):
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


def _compose(first, second):
    """Preprocessing ``second(first(X))``; None stands for the identity."""
    if first is None:
        return second
    if second is None:
        return first
    return lambda X: second(first(X))


def resolve(estimator):
    """Unwrap a fitted estimator down to the linear model to explain.

    Parameters
    ----------
    estimator : fitted estimator

    Returns
    -------
    resolved : Resolved
        ``final`` (the linear model), ``transform`` (callable on ``X`` or None)
        and ``target`` (:class:`TargetTransform` or None).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.compose import TransformedTargetRegressor
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 3)), rng.uniform(1, 2, 40)
    >>> model = TransformedTargetRegressor(
    ...     make_pipeline(StandardScaler(), Ridge()), func=np.log, inverse_func=np.exp)
    >>> search = GridSearchCV(model, {"regressor__ridge__alpha": [0.1, 1.0]}, cv=3)
    >>> final, transform, target = resolve(search.fit(X, y))
    >>> type(final).__name__, transform is not None, target is not None
    ('Ridge', True, True)
    """
    estimator = _unfreeze(estimator)
    name = type(estimator).__name__
    for cls, reason in REFUSED.items():
        if isinstance(estimator, cls):
            raise TypeError(f"{name} is not supported: " + reason.format(name=name))
    if isinstance(estimator, BaseSearchCV):
        if not hasattr(estimator, "best_estimator_"):
            raise ValueError(
                f"{name} was fitted with refit=False, so it holds no model fitted on "
                "all rows to explain. Fit it with refit=True (or a scoring name for "
                "refit with several metrics), or explain "
                f"{name}.estimator.set_params(**best_params_) fitted on the rows.")
        return resolve(estimator.best_estimator_)
    if isinstance(estimator, TransformedTargetRegressor):
        inner = resolve(estimator.regressor_)
        if inner.target is not None:
            raise TypeError(
                f"A {name} inside another {name} is not supported; compose the two "
                "target transforms into one.")
        return Resolved(inner.final, inner.transform,
                        TargetTransform(estimator.transformer_))
    if isinstance(estimator, Pipeline):
        inner = resolve(estimator.steps[-1][1])
        head = estimator[:-1].transform if len(estimator.steps) > 1 else None
        return Resolved(inner.final, _compose(head, inner.transform), inner.target)
    return Resolved(estimator, None, None)


def sample_weight_key(estimator):
    """The ``fit`` keyword that carries sample weights to the final model."""
    estimator = _unfreeze(estimator)
    if isinstance(estimator, Pipeline):
        return f"{estimator.steps[-1][0]}__{sample_weight_key(estimator.steps[-1][1])}"
    if isinstance(estimator, BaseSearchCV):
        return sample_weight_key(estimator.estimator)
    if isinstance(estimator, TransformedTargetRegressor):
        regressor = estimator.regressor
        return "sample_weight" if regressor is None else sample_weight_key(regressor)
    return "sample_weight"


class TargetTransform:
    """A fitted one-column target transformer as a pair of functions.

    ``forward(y)`` and ``inverse(t)`` apply the transformer;
    ``derivative(t)`` is the derivative of ``inverse`` by central differences
    (step ``1e-5 max(1, |t|)``, relative error about 1e-10 for smooth
    inverses).

    Parameters
    ----------
    transformer : fitted transformer
        ``TransformedTargetRegressor.transformer_`` (a ``FunctionTransformer``
        when the regressor was given ``func`` and ``inverse_func``).
    """

    step = 1e-5

    def __init__(self, transformer):
        self.transformer = transformer

    def forward(self, y):
        y = np.asarray(y, dtype=float)
        return np.asarray(self.transformer.transform(y.reshape(-1, 1)),
                          dtype=float).reshape(y.shape)

    def inverse(self, t):
        t = np.asarray(t, dtype=float)
        return np.asarray(self.transformer.inverse_transform(t.reshape(-1, 1)),
                          dtype=float).reshape(t.shape)

    def derivative(self, t):
        t = np.asarray(t, dtype=float)
        h = self.step * np.maximum(1.0, np.abs(t))
        return (self.inverse(t + h) - self.inverse(t - h)) / (2 * h)

    def check_invertible(self, y, rtol=1e-7):
        """Raise when ``inverse(forward(y))`` is not ``y`` on the training targets."""
        y = np.asarray(y, dtype=float)
        back = self.inverse(self.forward(y))
        scale = max(np.abs(y).max(), np.finfo(float).tiny)
        error = np.abs(back - y).max() / scale
        if not np.all(np.isfinite(back)) or error > rtol:
            raise ValueError(
                "The TransformedTargetRegressor's target transform is not invertible "
                f"on the training targets: inverse(forward(y)) differs from y by "
                f"{error:.3g} relative to max |y|. Influence on predictions goes back "
                "through the inverse by the chain rule, so it needs an exact inverse: "
                "pass func and inverse_func that are inverses of each other (or an "
                "invertible transformer).")
