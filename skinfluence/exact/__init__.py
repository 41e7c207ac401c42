"""Exact effects of removing training rows: what influence estimates.

Refits of estimator clones (:mod:`.refit`) work for every model; Newton's
method on the family's own objective (:mod:`.newton`) is exact in closed form
for squared loss and converges in a few steps for the other smooth losses.
"""

from .newton import newton_block, newton_loo, newton_minimize
from .refit import loo_refit, refit_loo, tight_clone

__all__ = [
    "loo_refit",
    "newton_block",
    "newton_loo",
    "newton_minimize",
    "refit_loo",
    "tight_clone",
]
