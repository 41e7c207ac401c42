"""Which training rows would change an L1 model's support if removed.

The influence of an L1 / elastic-net model is that of the smooth problem on
its support (:mod:`skinfluence.families._active_set`): exact for squared loss
while the support survives the removal. The Newton step of each removal
predicts the leave-one-out parameters ``theta + Delta_i``; there the KKT
conditions of the leave-one-out problem tell whether the support survives: a
support coefficient that reaches zero or changes sign leaves it, an inactive
coordinate whose gradient exceeds its L1 strength enters it.
"""

import numpy as np

from .._result import Result
from ..families import BoundProblem
from ._memory import row_blocks
from .diagnostics import parameter_influence

__all__ = ["support_changes"]


def support_changes(fitted, rows=None):
    """KKT check of the predicted leave-one-out parameters of each row.

    Returns a Bunch: ``changed`` (bool, n_rows), ``leaving`` and ``entering``
    (number of coordinates that leave or enter the support), ``slack``
    (smallest ``1 - |grad_j| / lambda_j`` over the inactive coordinates;
    negative where one enters) and ``rows``.
    """
    family, problem = fitted.family, fitted.problem
    if not hasattr(family, "support"):
        raise ValueError(
            f"support_changes needs a model with an L1 part (Lasso, ElasticNet, "
            f"LogisticRegression with l1_ratio > 0); got the {type(family).__name__} "
            "family, whose influence does not depend on a support.")
    rows = fitted.train_rows(rows)
    lam = family.l1_strength()
    penalised = family.support & (lam > 0)
    inactive = ~family.support
    y, sw, Y = problem.y, problem.sample_weight, problem.Y
    n, K = problem.n_samples, family.n_outputs
    leaving = np.zeros(len(rows), dtype=np.intp)
    entering = np.zeros(len(rows), dtype=np.intp)
    slack = np.full(len(rows), np.inf)
    for block in row_blocks(len(rows), 8 * (problem.n_parameters + 3 * n * K)):
        idx = rows[block]
        thetas = problem.theta[:, None] + parameter_influence(fitted, idx, "newton").T
        leaving[block] = (penalised[:, None]
                          & (family.signs[:, None] * thetas <= 0)).sum(axis=0)
        if not inactive.any():
            continue
        weights = np.stack([family.removal_weights(y, sw, i) for i in idx], axis=2)
        Z = problem.parameters_to_rows(thetas)  # (n, K, b)
        R = weights * family.training_loss_gradient(Y[:, :, None], Z)
        grad = BoundProblem.rows_to_parameters(problem, R)[inactive]
        ratio = np.abs(grad) / lam[inactive, None]
        entering[block] = (ratio > 1.0).sum(axis=0)
        slack[block] = 1.0 - ratio.max(axis=0)
    return Result(changed=(leaving > 0) | (entering > 0), leaving=leaving,
                 entering=entering, slack=slack, rows=rows)
