"""Exact effects of removing training rows: what influence estimates.

Refits of estimator clones (:mod:`.refit`) work for every model; Newton's
method on the family's own objective (:mod:`.newton`) is exact in closed form
for squared loss and converges in a few steps for the other smooth losses; the
decremental path (:mod:`.hinge_path`) is exact for the hinge, and
:mod:`.certified` returns intervals that provably contain the exact effects.
"""

import inspect

import numpy as np
from sklearn.utils import Bunch

from .active_set import active_set_loo, active_set_loo_parameters, l1_minimize
from .certified import certified_loo, has_certificate
from .hinge_path import hinge_path_loo, hinge_path_self_loss
from .huber import huber_loo
from .newton import (
    LOO_TOL,
    newton_block,
    newton_loo,
    newton_minimize,
    newton_optima,
    polish_optimum,
)
from .polish import POLISHERS, polish
from .rebalanced import rebalanced_loo
from .refit import loo_refit, refit_loo, refit_pipeline_loo, tight_clone

#: exact leave-one-out engines by the name a family gives in ``exact_engine``;
#: each takes ``(family, X, y, sample_weight, solver, X_test, y_test, rows)``
#: and the keywords ``n_jobs`` and ``verbose``
ENGINES = {
    "newton": newton_loo,
    "huber": huber_loo,
    "rebalanced": rebalanced_loo,
    "active_set": active_set_loo,
    "hinge_path": hinge_path_loo,
}


def exact_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
              n_jobs=None, verbose=0, tol=LOO_TOL, return_info=False, notice=None):
    """The family's exact leave-one-out engine (``loo(method="exact")``).

    Closed form for squared loss, Newton's method for the smooth losses, the
    decremental path for the hinge.
    Families without an exact engine raise a ``ValueError`` that names the
    alternative. ``tol``, ``return_info`` and ``notice`` (advice for a warning
    when a silent run will be long) as in :func:`newton_loo`.
    """
    name = getattr(family, "exact_engine", None)
    if name is None:
        raise ValueError(
            f"{type(family).__name__} has no exact leave-one-out engine for this "
            "loss; use method='refit' (refits of the estimator).")
    engine = ENGINES[name]
    accepts = inspect.signature(engine).parameters
    if "return_info" in accepts:
        options = {"tol": tol} if "tol" in accepts else {}
        if "notice" in accepts:
            options["notice"] = notice
        return engine(family, X, y, sample_weight, solver, X_test, y_test, rows,
                      n_jobs=n_jobs, verbose=verbose, return_info=return_info,
                      **options)
    # an engine exact by construction (closed form, path, active set)
    values = engine(family, X, y, sample_weight, solver, X_test, y_test, rows,
                    n_jobs=n_jobs, verbose=verbose)
    if not return_info:
        return values
    n_rows = len(rows)
    return values, Bunch(n_iter=np.ones(n_rows, dtype=int),
                         converged=np.ones(n_rows, dtype=bool),
                         decrement=np.zeros(n_rows))


__all__ = [
    "ENGINES",
    "certified_loo",
    "has_certificate",
    "LOO_TOL",
    "POLISHERS",
    "active_set_loo",
    "active_set_loo_parameters",
    "l1_minimize",
    "exact_loo",
    "huber_loo",
    "hinge_path_loo",
    "hinge_path_self_loss",
    "loo_refit",
    "newton_block",
    "newton_loo",
    "newton_minimize",
    "newton_optima",
    "polish",
    "polish_optimum",
    "rebalanced_loo",
    "refit_loo",
    "refit_pipeline_loo",
    "tight_clone",
]
