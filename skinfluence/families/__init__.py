"""Model families: one loss each, read out of a fitted scikit-learn estimator.

Adding a model family means adding one file and one line to ``_REGISTRY``.
"""

from sklearn.linear_model import (
    GammaRegressor,
    HuberRegressor,
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
    TweedieRegressor,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import LinearSVC, LinearSVR

from ._base import BoundProblem, LinearFamily, safe_dot
from .glm import TweedieFamily
from .huber import HuberFamily
from .sgd import SGDClassifierFamily, SGDRegressorFamily
from .kernel_ridge import KernelRidgeFamily
from .lasso import LassoFamily
from .linear_svc import LinearSVCFamily
from .linear_svr import LinearSVRFamily
from .logistic import BinaryLogisticFamily, MultinomialLogisticFamily, logistic_family
from .multi_output import MultiOutputSquaredFamily, squared_loss_family
from .ridge_classifier import RidgeClassifierFamily
from .squared import SquaredLossFamily

__all__ = [
    "BoundProblem",
    "LinearFamily",
    "SquaredLossFamily",
    "MultiOutputSquaredFamily",
    "RidgeClassifierFamily",
    "KernelRidgeFamily",
    "LassoFamily",
    "BinaryLogisticFamily",
    "MultinomialLogisticFamily",
    "LinearSVCFamily",
    "TweedieFamily",
    "HuberFamily",
    "SGDClassifierFamily",
    "SGDRegressorFamily",
    "LinearSVRFamily",
    "family_for",
    "has_family",
    "SUPPORTED_ESTIMATORS",
    "safe_dot",
]

_REGISTRY = {
    LinearRegression: squared_loss_family,
    Ridge: squared_loss_family,
    RidgeCV: squared_loss_family,
    RidgeClassifier: RidgeClassifierFamily.from_estimator,
    RidgeClassifierCV: RidgeClassifierFamily.from_estimator,
    LogisticRegression: logistic_family,
    LogisticRegressionCV: logistic_family,
    LinearSVC: LinearSVCFamily.from_estimator,
    PoissonRegressor: TweedieFamily.from_estimator,
    GammaRegressor: TweedieFamily.from_estimator,
    TweedieRegressor: TweedieFamily.from_estimator,
    HuberRegressor: HuberFamily.from_estimator,
    SGDClassifier: SGDClassifierFamily.from_estimator,
    SGDRegressor: SGDRegressorFamily.from_estimator,
    KernelRidge: KernelRidgeFamily.from_estimator,
    Lasso: LassoFamily.from_estimator,
    ElasticNet: LassoFamily.from_estimator,
    LassoCV: LassoFamily.from_estimator,
    ElasticNetCV: LassoFamily.from_estimator,
    LinearSVR: LinearSVRFamily.from_estimator,
}

SUPPORTED_ESTIMATORS = tuple(cls.__name__ for cls in _REGISTRY)


def family_for(estimator, *, smoothing=0.03):
    """Return the family describing the objective a fitted ``estimator`` minimised.

    Parameters
    ----------
    estimator : fitted estimator
        One of :data:`SUPPORTED_ESTIMATORS` (subclasses are accepted).
    smoothing : float, default=0.03
        Temperature of the smoothed hinge for ``LinearSVC(loss="hinge")`` and
        ``SGDClassifier(loss="hinge")``.

    Returns
    -------
    family : LinearFamily
    """
    builder = _REGISTRY.get(type(estimator))
    if builder is None:
        for cls, candidate in _REGISTRY.items():
            if isinstance(estimator, cls):
                builder = candidate
                break
    if builder is None and isinstance(estimator, str):
        raise TypeError(
            f"The model to explain is the string {estimator!r} (a Pipeline ending "
            "in 'passthrough' or None has no model at its end). Put the fitted "
            f"model as the last step; supported: {', '.join(SUPPORTED_ESTIMATORS)}.")
    if builder is None and hasattr(estimator, "best_estimator_"):
        raise TypeError(
            f"{type(estimator).__name__} is a search over models, not a model: pass "
            "its refitted best model, InfluenceExplainer(search.best_estimator_) "
            "(requires refit=True), with the data it was refitted on.")
    if builder is None:
        raise TypeError(
            f"{type(estimator).__name__} is not supported. skinfluence computes "
            "closed-form influence for linear models with an L2, L1 or "
            "elastic-net penalty, GLMs and kernel ridge regression: "
            f"{', '.join(SUPPORTED_ESTIMATORS)} (alone, as the last step of a "
            "Pipeline, as a search's best_estimator_ or inside a "
            "TransformedTargetRegressor)."
        )
    return builder(estimator, smoothing=smoothing)


def has_family(estimator):
    """Whether ``estimator`` (fitted or not) is one of the supported linear models."""
    return any(isinstance(estimator, cls) for cls in _REGISTRY)
