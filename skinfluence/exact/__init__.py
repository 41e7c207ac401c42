"""Exact effects of removing training rows: what influence estimates.

Refits of estimator clones (:mod:`.refit`) work for every model; Newton's
method on the family's own objective (:mod:`.newton`) is exact in closed form
for squared loss and converges in a few steps for the other smooth losses;
:mod:`.certified` returns intervals that provably contain the exact effects.
"""

from .certified import certified_loo, has_certificate
from .newton import LOO_TOL, newton_block, newton_loo, newton_minimize, polish_optimum
from .refit import loo_refit, refit_loo, tight_clone

#: exact leave-one-out engines by the name a family gives in ``exact_engine``;
#: each takes ``(family, X, y, sample_weight, solver, X_test, y_test, rows)``
#: and the keywords ``n_jobs`` and ``verbose``
ENGINES = {
    "newton": newton_loo,
}


def exact_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
              n_jobs=None, verbose=0, tol=LOO_TOL, return_info=False):
    """The family's exact leave-one-out engine (``loo(method="exact")``).

    Closed form for squared loss, Newton's method for the smooth losses.
    Families without an exact engine raise a ``ValueError`` that names the
    alternative. ``tol`` and ``return_info`` as in :func:`newton_loo`.
    """
    name = getattr(family, "exact_engine", None)
    if name is None:
        raise ValueError(
            f"{type(family).__name__} has no exact leave-one-out engine for this "
            "loss; use method='refit' (refits of the estimator).")
    return ENGINES[name](family, X, y, sample_weight, solver, X_test, y_test, rows,
                         n_jobs=n_jobs, verbose=verbose, tol=tol,
                         return_info=return_info)


__all__ = [
    "ENGINES",
    "certified_loo",
    "has_certificate",
    "LOO_TOL",
    "exact_loo",
    "loo_refit",
    "newton_block",
    "newton_loo",
    "newton_minimize",
    "polish_optimum",
    "refit_loo",
    "tight_clone",
]
