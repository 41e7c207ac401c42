"""Model families: one loss each, read out of a fitted scikit-learn estimator.

Adding a model family means adding one file and one line to ``_REGISTRY``.
"""

from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import LinearSVC

from ._base import BoundProblem, LinearFamily, safe_dot
from .kernel_ridge import KernelRidgeFamily
from .lasso import LassoFamily
from .linear_svc import LinearSVCFamily
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
    "family_for",
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
    KernelRidge: KernelRidgeFamily.from_estimator,
    Lasso: LassoFamily.from_estimator,
    ElasticNet: LassoFamily.from_estimator,
    LassoCV: LassoFamily.from_estimator,
    ElasticNetCV: LassoFamily.from_estimator,
}

SUPPORTED_ESTIMATORS = tuple(cls.__name__ for cls in _REGISTRY)


def family_for(estimator, *, smoothing=0.03):
    """Return the family describing the objective a fitted ``estimator`` minimised.

    Parameters
    ----------
    estimator : fitted estimator
        One of :data:`SUPPORTED_ESTIMATORS` (subclasses are accepted).
    smoothing : float, default=0.03
        Temperature of the smoothed hinge for ``LinearSVC(loss="hinge")``.

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
    if builder is None:
        raise TypeError(
            f"{type(estimator).__name__} is not supported. skinfluence computes "
            "closed-form influence for linear models with an L2, L1 or "
            "elastic-net penalty and for kernel ridge regression: "
            f"{', '.join(SUPPORTED_ESTIMATORS)} (alone or as the last step of a "
            "Pipeline)."
        )
    return builder(estimator, smoothing=smoothing)
