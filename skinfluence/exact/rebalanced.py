"""Exact leave-one-out for squared loss with re-balanced class weights.

With ``class_weight="balanced"`` counted in rows (RidgeClassifier), a refit
without row ``i`` re-weights every class, but the new class weights depend only
on the class of ``i``. So all the refits without a row of class ``a`` minimise
one objective ``F^(a)`` (fixed class weights ``cw^(a)``) minus their own row's
term: a rank-one change. Per class: one factorisation of ``F^(a)``'s Hessian,
its optimum ``theta^(a)`` (one Newton step), and the closed-form
(Sherman-Morrison) removal of each of its rows,

.. math::

    q(\\theta_{-i}) - q(\\theta) = [q(\\theta_{-i}) - q(\\theta^{(a)})]
                                  + [q(\\theta^{(a)}) - q(\\theta)].
"""

import numpy as np

from ..solvers import make_solver
from .newton import newton_loo, newton_minimize

__all__ = ["rebalanced_loo"]


def rebalanced_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
                   n_jobs=None, verbose=0):
    """``q(theta_{-i}) - q(theta)`` for the rows ``rows``: (n_test, len(rows)).

    ``family.removal_groups(y, sample_weight)`` gives, for each group of rows,
    the quadratic family whose objective every refit without one of them
    minimises (up to that row's own term). ``solver`` is unused (each group
    factorises its own Hessian).
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    rows = np.asarray(rows)
    theta, _ = newton_minimize(family, X, y, sample_weight)
    base = family.test_quantity(X_test, y_test, theta)
    out = None
    for members, group_family in family.removal_groups(y, sample_weight):
        wanted = np.flatnonzero(np.isin(rows, members))
        if wanted.size == 0:
            continue
        group_theta, _ = newton_minimize(group_family, X, y, sample_weight, theta)
        group_family = group_family.with_theta(group_theta)
        group_solver = make_solver("direct", pinv_rtol=group_family.pinv_rtol).fit(
            group_family.bind(X, y, sample_weight))
        part = newton_loo(group_family, X, y, sample_weight, group_solver, X_test,
                          y_test, rows[wanted], n_jobs=n_jobs, verbose=verbose)
        shift = group_family.test_quantity(X_test, y_test) - base
        part = part + shift[:, None]
        if out is None:
            out = np.empty((part.shape[0], len(rows)) + part.shape[2:])
        out[:, wanted] = part
    return out
