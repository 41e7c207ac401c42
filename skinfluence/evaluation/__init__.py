"""How far to trust an estimate: comparisons with exact leave-one-out.

The trust report checks one explainer against exact LOO; the harness scores
every estimator of training-set influence on one task; removal curves refit
without the top rows of a score; compare_scores measures how two scores agree.
"""

from .compare import compare_scores
from .harness import METHODS, evaluate_estimators, linear_datamodeling_score
from .removal import removal_curve
from .optimality import optimality_gap
from .trust import plot_estimated_vs_actual, trust_report

__all__ = [
    "METHODS",
    "compare_scores",
    "evaluate_estimators",
    "linear_datamodeling_score",
    "optimality_gap",
    "plot_estimated_vs_actual",
    "removal_curve",
    "trust_report",
]
