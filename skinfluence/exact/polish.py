"""Moving a fitted model to the exact optimum of its objective.

Newton's method on the family's parameters (:func:`~.newton.polish_optimum`),
or a family's own polisher (jointly with the scale for HuberRegressor).
"""

from .huber import huber_polish
from .newton import polish_optimum

__all__ = ["POLISHERS", "polish"]

#: how a family is moved to the exact optimum of its objective, by engine name
#: (Newton on the family's parameters otherwise)
POLISHERS = {
    "huber": huber_polish,
}


def polish(family, X, y, sample_weight):
    """The family at the exact optimum of its objective on ``(X, y, sample_weight)``.

    Newton's method from the fitted parameters to the floor of its decrement
    (jointly with the scale for HuberRegressor). The estimator is untouched.
    """
    polisher = POLISHERS.get(getattr(family, "exact_engine", None))
    if polisher is not None:
        return polisher(family, X, y, sample_weight)
    theta, _ = polish_optimum(family, X, y, sample_weight)
    return family.with_theta(theta)
