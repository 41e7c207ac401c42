"""skinfluence: influence functions for scikit-learn linear models.

Which training rows helped or hurt each prediction, by how much, checked
against exact leave-one-out retraining.
"""

from ._explainer import InfluenceExplainer
from ._loo import loo_refit
from ._downsampling import subsample_influence
from ._harness import evaluate_estimators, linear_datamodeling_score
from ._representer import representer_points
from ._shapley import banzhaf, tmc_shapley

__all__ = ["InfluenceExplainer", "loo_refit", "representer_points",
           "subsample_influence", "tmc_shapley", "banzhaf", "evaluate_estimators",
           "linear_datamodeling_score"]
__version__ = "0.1.0"
