"""Model families: one loss each, read out of a fitted scikit-learn estimator.

Adding a model family means adding one file and one line to ``_REGISTRY``.
"""

from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.svm import LinearSVC, LinearSVR

from ._base import BoundProblem, LinearFamily, safe_dot
from .linear_svc import LinearSVCFamily
from .linear_svr import LinearSVRFamily
from .logistic import BinaryLogisticFamily, MultinomialLogisticFamily, logistic_family
from .squared import SquaredLossFamily

__all__ = [
    "BoundProblem",
    "LinearFamily",
    "SquaredLossFamily",
    "BinaryLogisticFamily",
    "MultinomialLogisticFamily",
    "LinearSVCFamily",
    "LinearSVRFamily",
    "family_for",
    "SUPPORTED_ESTIMATORS",
    "safe_dot",
]

_REGISTRY = {
    LinearRegression: SquaredLossFamily.from_estimator,
    Ridge: SquaredLossFamily.from_estimator,
    RidgeCV: SquaredLossFamily.from_estimator,
    LogisticRegression: logistic_family,
    LogisticRegressionCV: logistic_family,
    LinearSVC: LinearSVCFamily.from_estimator,
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
            "closed-form influence for smooth L2-regularised linear models: "
            f"{', '.join(SUPPORTED_ESTIMATORS)} (alone or as the last step of a "
            "Pipeline)."
        )
    return builder(estimator, smoothing=smoothing)
