"""skinfluence: influence functions for scikit-learn linear models.

Which training rows helped or hurt each prediction, by how much, checked
against exact leave-one-out retraining.
"""

from ._explainer import InfluenceExplainer
from ._loo import loo_refit

__all__ = ["InfluenceExplainer", "loo_refit"]
__version__ = "0.1.0"
