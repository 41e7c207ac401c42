"""Uses of influence: cleaning data, removing groups, moving parameters and
predictions, regression diagnostics, perturbing features, functionals of the
model's outputs (fairness gaps, worst-group loss), support changes of L1 models.

Each function takes a :class:`~skinfluence._fitted.FittedInfluence` and
prepared arrays; :class:`~skinfluence.InfluenceExplainer` exposes them as
methods.
"""

from .cleaning import SUSPICION, loo_self_loss, rank_suspicious, validation_influence
from .diagnostics import (
    glm_diagnostics,
    parameter_influence,
    prediction_influence,
    regression_diagnostics,
)
from .functionals import FUNCTIONALS, functional_influence, functional_of
from .groups import group_index, group_influence, group_steps, refit_groups
from .perturbation import perturbation_influence
from .support import support_changes

__all__ = [
    "FUNCTIONALS",
    "SUSPICION",
    "functional_influence",
    "functional_of",
    "glm_diagnostics",
    "group_index",
    "group_influence",
    "group_steps",
    "loo_self_loss",
    "parameter_influence",
    "perturbation_influence",
    "prediction_influence",
    "rank_suspicious",
    "refit_groups",
    "regression_diagnostics",
    "support_changes",
    "validation_influence",
]
