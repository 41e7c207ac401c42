"""Estimators of training-set influence other than influence functions.

Representer points split a prediction into per-row terms; downsampling,
Data Shapley and Data Banzhaf refit models on subsets of the rows (the
shared subset engine of the linear models is :mod:`.subsets`; any other
estimator is refitted whole, :mod:`.any_model`).
"""

from .downsampling import subsample_influence
from .representer import representer_decomposition, representer_points
from .shapley import banzhaf, tmc_shapley
from .subsets import SubsetEngine, draw_subsets, evaluate_subsets, utility_values

__all__ = [
    "SubsetEngine",
    "banzhaf",
    "draw_subsets",
    "evaluate_subsets",
    "representer_decomposition",
    "representer_points",
    "subsample_influence",
    "tmc_shapley",
    "utility_values",
]
