"""skinfluence: influence functions for scikit-learn linear models.

Which training rows helped or hurt each prediction, by how much, checked
against exact leave-one-out retraining.
"""

from ._explainer import InfluenceExplainer
from ._fitcheck import FitWarning
from .estimators import banzhaf, representer_points, subsample_influence, tmc_shapley
from .evaluation import (
    compare_scores,
    evaluate_estimators,
    linear_datamodeling_score,
    removal_curve,
)
from .exact import loo_refit, tight_clone

__all__ = ["InfluenceExplainer", "FitWarning", "loo_refit", "tight_clone", "representer_points",
           "subsample_influence", "tmc_shapley", "banzhaf", "evaluate_estimators",
           "linear_datamodeling_score", "removal_curve", "compare_scores"]
__version__ = "0.1.0"
