"""How far to trust an estimate: comparisons with exact leave-one-out.

The trust report checks one explainer against exact LOO; the harness scores
every estimator of training-set influence on one task.
"""

from .harness import METHODS, evaluate_estimators, linear_datamodeling_score
from .optimality import optimality_gap
from .trust import plot_estimated_vs_actual, trust_report

__all__ = [
    "METHODS",
    "evaluate_estimators",
    "linear_datamodeling_score",
    "optimality_gap",
    "plot_estimated_vs_actual",
    "trust_report",
]
