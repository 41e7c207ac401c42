"""Exact leave-one-out for the piecewise-linear losses: the decremental path.

For ``LinearSVC(loss="hinge")`` (and the epsilon-insensitive ``LinearSVR``) the
fitted problem is the box QP of :mod:`skinfluence.families._svm_dual`. Removing
sample ``c`` shrinks its box to ``[0, 0]``; with ``class_weight="balanced"``
every other box moves too (the class weights are recomputed). Let the boxes
move linearly, ``[l + s dl, u + s du]`` for ``s`` from 0 to 1: the optimum
moves linearly in ``s`` between breakpoints (Cauwenberghs & Poggio, 2001, with
the intercept penalised, so without their bias bookkeeping). Between
breakpoints every free row ``F`` stays on its margin and every bound row
follows its bound, so with ``q' = sum_{bound} (dl or du)_j z_j``,

.. math::

    \\dot\\alpha_F = -(Z_F Z_F^\\top)^+ Z_F q', \\qquad
    \\dot\\theta = (I - P_F)\\, q', \\qquad \\dot m = Z \\dot\\theta,

``P_F`` the projection on the span of the free rows (min-norm solves, so a
rank-deficient margin set is fine). A piece ends at the first event: a free
row's multiplier reaches a bound (it leaves ``F``), a bound row reaches its
margin (it joins ``F``), or ``s = 1``. The row that just changed state may not
trigger the next event (no zero-length cycling). Each piece costs one SVD of
the ``|F| x q`` free rows (``|F| <= q``, the number of columns, apart from
degenerate ties) and one product with ``X``.

A sample whose multipliers are 0 in every problem (not a support vector) and
whose removal moves no other box leaves the optimum exactly unchanged: its
column is exactly 0 and costs nothing. Every path's end point is checked by
its KKT conditions and duality gap; one that fails is finished by the
active-set solver from where the path ended, and a row that still cannot be
certified is named in a warning.
"""

import warnings

import numpy as np
from scipy.linalg import lapack
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from sklearn.utils import Bunch

from ..families._svm_dual import (
    AT_LOWER,
    AT_UPPER,
    FIXED,
    FREE,
    RANK_RTOL,
    certify_box,
    solve_box,
)

__all__ = ["hinge_path_loo", "hinge_path_self_loss", "removal_path"]

#: rows per joblib task; fixed, so the arithmetic is the same for any n_jobs
_BLOCK = 64


def removal_path(problem, start, new_lower, new_upper, *, max_pieces=None):
    """Follow the exact optimum while the boxes move to ``[new_lower, new_upper]``.

    Only bound rows near their margin are watched: a row whose slack exceeds
    ``||z_j|| r`` keeps its sign while ``theta`` travels a distance ``r``; the
    watched set is rebuilt (with ``r`` doubled) when the path has travelled
    that far.

    Parameters
    ----------
    problem : Bunch
        ``rows`` (:class:`~skinfluence.families._svm_dual.LinearRows`),
        ``target``, ``lower``, ``upper``: the box problem solved by ``start``.
    start : Bunch
        Its exact solution: ``alpha``, ``state`` and ``theta``.
    new_lower, new_upper : ndarray of shape (n_rows,)
    max_pieces : int, default=None
        Most pieces (``10 * n_rows + 100`` when None).

    Returns
    -------
    end : Bunch
        ``alpha``, ``state``, ``theta`` (``Z^T alpha``) at ``s = 1``,
        ``n_pieces``; ``complete`` is False when ``max_pieces`` ran out first.
    """
    rows, target = problem.rows, problem.target
    alpha, state, theta = start.alpha.copy(), start.state.copy(), start.theta.copy()
    lower, upper = problem.lower.copy(), problem.upper.copy()
    d_lower, d_upper = new_lower - lower, new_upper - upper
    moving = np.flatnonzero((d_lower != 0) | (d_upper != 0))
    Z_moving = rows.dense(moving) if moving.size < 64 else None
    free = np.flatnonzero(state == FREE)
    Z_free = rows.dense(free)
    # the free multipliers' room to their bounds and its rate of change: the
    # first half of ``room`` is to the lower bound, the second to the upper
    max_pieces = 10 * rows.n_rows + 100 if max_pieces is None else max_pieces
    s, barred, came_from, complete, n_pieces = 0.0, -1, FIXED, False, 0
    radius, travelled = 0.0, np.inf
    while n_pieces < max_pieces:
        # rates of the multipliers held at a moving bound, and what they push
        moving_state = state[moving]
        rate = np.where(moving_state == AT_LOWER, d_lower[moving],
                        np.where(moving_state == AT_UPPER, d_upper[moving], 0.0))
        if Z_moving is not None:
            q_dot = rate @ Z_moving
        else:
            coefficients = np.zeros(rows.n_rows)
            coefficients[moving] = rate
            q_dot = rows.combine(coefficients)
        alpha_dot, theta_dot = _free_response(Z_free, q_dot)
        speed = float(np.sqrt(theta_dot @ theta_dot))

        # the first event: a free multiplier meets its (moving) bound ...
        t, event, to_state = 1.0 - s, -1, FREE
        if free.size:
            room = np.concatenate([alpha[free] - lower[free], upper[free] - alpha[free]])
            closing = np.concatenate([d_lower[free] - alpha_dot, alpha_dot - d_upper[free]])
            # a row that just left a bound may not return to it at once
            skip = -1
            if came_from in (AT_LOWER, AT_UPPER):
                skip = int(np.flatnonzero(free == barred)[0]) + (
                    free.size if came_from == AT_UPPER else 0)
            k, time = _first(room, closing, skip)
            if time < t:
                t, event = time, free[k % free.size]
                to_state = AT_LOWER if k < free.size else AT_UPPER
        # ... or a watched bound row reaches its margin
        if travelled + t * speed > radius:
            # the step may reach rows not watched: watch more, from here
            radius, travelled = max(2.0 * radius, t * speed), 0.0
            slack_all = target - rows.margins(theta)
            watched = np.flatnonzero(((state == AT_LOWER) | (state == AT_UPPER))
                                     & (np.abs(slack_all) <= rows.row_norms * radius))
            Z_watched, slack = rows.dense(watched), slack_all[watched]
            # the slack of a row at its upper bound may not fall below 0, at
            # its lower bound not rise above 0: ``side * slack`` stays >= 0
            side = np.where(state[watched] == AT_UPPER, 1.0, -1.0)
        n_pieces += 1
        margin_dot = Z_watched @ theta_dot
        # a row that just left the free set may not rejoin it at once
        hit = np.flatnonzero(watched == barred) if came_from == FREE else ()
        skip = int(hit[0]) if len(hit) else -1
        k, time = _first(side * slack, side * margin_dot, skip)
        if time < t:
            t, event, to_state = time, watched[k], FREE

        # move to it
        s += t
        alpha[free] += t * alpha_dot
        alpha[moving] += t * rate
        lower[moving] += t * d_lower[moving]
        upper[moving] += t * d_upper[moving]
        theta += t * theta_dot
        slack -= t * margin_dot
        travelled += t * speed
        if event < 0:
            complete = True
            break
        if to_state == FREE:
            free = np.append(free, event)
            Z_free = np.vstack([Z_free, Z_watched[k]])
            side[k] = 0.0  # no longer a bound row
        else:
            alpha[event] = lower[event] if to_state == AT_LOWER else upper[event]
            keep = free != event
            z = Z_free[~keep]
            free, Z_free = free[keep], Z_free[keep]
            # it sits on its margin: watch it
            watched = np.append(watched, event)
            Z_watched = np.vstack([Z_watched, z])
            slack = np.append(slack, 0.0)
            side = np.append(side, 1.0 if to_state == AT_UPPER else -1.0)
        barred, came_from = event, state[event]
        state[event] = to_state
    # the end point: exactly inside the new boxes, rows of zero width fixed
    alpha = np.clip(alpha, new_lower, new_upper)
    state[new_lower >= new_upper] = FIXED
    return Bunch(alpha=alpha, state=state, theta=rows.combine(alpha), n_pieces=n_pieces,
                 complete=complete)


#: rates below this fraction of the largest count as zero (round-off)
_TINY = 1e-12


def _first(room, closing, skip=-1):
    """Position and time of the first ``room / closing`` over closing rates.

    Rates below ``_TINY`` of the largest are round-off; the entry ``skip`` (a
    row that just changed state, which may not change back at once) is left
    out. Returns ``(-1, inf)`` for none.
    """
    if closing.size == 0:
        return -1, np.inf
    closes = closing > _TINY * np.abs(closing).max()
    if skip >= 0:
        closes[skip] = False
    times = np.full(closing.shape, np.inf)
    np.divide(room, closing, out=times, where=closes)
    k = int(np.argmin(times))
    return k, max(float(times[k]), 0.0)


def _free_response(Z_free, q_dot):
    """Rates of the free multipliers and of ``theta`` when the bounds push ``q_dot``.

    ``theta' = (I - P_F) q'`` and ``Z_F^T alpha_F' = -P_F q'`` with ``P_F`` the
    projection on the span of the free rows, from a pivoted QR of ``Z_F^T``
    (LAPACK directly: this runs once per piece). Rows beyond the rank keep a
    rate of 0.
    """
    alpha_dot = np.zeros(Z_free.shape[0])
    if Z_free.shape[0] == 0:
        return alpha_dot, q_dot
    qr, pivots, tau, _, _ = lapack.dgeqp3(np.asfortranarray(Z_free.T))
    diagonal = np.abs(qr.diagonal())
    rank = int(np.count_nonzero(diagonal > RANK_RTOL * diagonal[0])) if diagonal[0] > 0 \
        else 0
    if rank == 0:
        return alpha_dot, q_dot
    qr = qr[:, : tau.size]
    c = lapack.dormqr("L", "T", qr, tau, q_dot[:, None], 1)[0][:, 0]
    alpha_dot[pivots[:rank] - 1] = -lapack.dtrtrs(qr[:rank, :rank], c[:rank])[0]
    c[:rank] = 0.0
    theta_dot = lapack.dormqr("L", "N", qr, tau, c[:, None], 1)[0][:, 0]
    return alpha_dot, theta_dot


def _removal(family, solution, y, sample_weight, row):
    """Exact optimum without ``row``: flat parameters and how they were found."""
    weight = sample_weight.copy()
    weight[row] = 0.0
    new_bounds = family.dual_bounds(y, weight)
    thetas, info = [], Bunch(n_pieces=0, finished=0, certified=True, worst_gap=0.0,
                             worst_kkt=0.0)
    for problem, start, (new_lower, new_upper) in zip(
            solution.problems, solution.solutions, new_bounds):
        if not (np.all(np.isfinite(new_lower)) and np.all(np.isfinite(new_upper))):
            raise ValueError(
                f"Removing training row {row} leaves its class without rows, so a "
                "refit without it would be a different problem; leave it out of "
                "train_indices.")
        moving = (new_lower != problem.lower) | (new_upper != problem.upper)
        if not np.any(start.alpha[moving]):
            # its multipliers are 0 and no other box moves: the optimum stays
            thetas.append(start.theta)
            continue
        end = removal_path(problem, start, new_lower, new_upper)
        moved = Bunch(rows=problem.rows, target=problem.target, lower=new_lower,
                      upper=new_upper)
        check = certify_box(moved, end.alpha)
        info.n_pieces += end.n_pieces
        if not (end.complete and check.certified):
            check = solve_box(moved, check.theta, alpha=end.alpha, state=end.state)
            info.finished += 1
        info.certified &= check.certified
        info.worst_gap = max(info.worst_gap, check.relative_gap)
        info.worst_kkt = max(info.worst_kkt, check.kkt_violation)
        thetas.append(check.theta)
    return family.from_liblinear(thetas), info


def _path_block(family, solution, y, sample_weight, rows, X_test, Y_test):
    """Test quantities without each of ``rows``: (len(rows), n_test), and infos."""
    with threadpool_limits(1):
        removed = [_removal(family, solution, y, sample_weight, row) for row in rows]
        b, K = len(rows), family.n_outputs
        Z = np.stack([family.decision(X_test, theta) for theta, _ in removed],
                     axis=1)  # (m, b, K)
        m = Z.shape[0]
        if Y_test is None:
            values = Z[:, :, 0].T
        else:
            Y = np.repeat(Y_test, b, axis=0)
            values = family.loss(Y, Z.reshape(m * b, K)).reshape(m, b).T
    return values, [info for _, info in removed]


def hinge_path_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
                   n_jobs=None, verbose=0):
    """Exact leave-one-out of a piecewise-linear support-vector family.

    The exact full optimum and its dual come from ``family.exact_solution``
    (a certified polish of the fitted coefficients); each removal follows
    :func:`removal_path` from it, in fixed blocks of rows (the same numbers
    for any ``n_jobs`` or joblib backend). Rows that are not support vectors
    (when removing a row moves no other row's box, that is without
    ``class_weight="balanced"``) keep the full optimum: their columns are
    exactly 0 and cost nothing. ``solver`` is not used. Returns
    (n_test, len(rows)); a ``ConvergenceWarning`` names the rows whose
    leave-one-out optimum could not be certified.
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    solution = family.exact_solution(X, y, sample_weight)
    if not solution.certified:
        warnings.warn(solution.warning, UserWarning, stacklevel=3)
    rows = np.asarray(rows, dtype=np.intp)
    Y_test = None if y_test is None else family.encode_target(y_test)
    base = family.test_quantity(X_test, y_test, solution.theta)
    moves = np.ones(len(rows), dtype=bool) if family.removal_moves_others else \
        solution.support[rows].any(axis=1)
    active = rows[moves]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_path_block)(family, solution, y, sample_weight,
                             active[start:start + _BLOCK], X_test, Y_test)
        for start in range(0, len(active), _BLOCK)
    )
    values = np.repeat(base[None, :], len(rows), axis=0)
    if parts:
        values[moves] = np.vstack([part for part, _ in parts])
    infos = [info for _, block in parts for info in block]
    failed = [int(row) for row, info in zip(active, infos) if not info.certified]
    if failed:
        worst = max(max(i.worst_gap, i.worst_kkt) for i in infos if not i.certified)
        warnings.warn(
            f"The exact leave-one-out optimum could not be certified for "
            f"{len(failed)} training row(s): {failed[:20]}"
            f"{' ...' if len(failed) > 20 else ''} (worst relative duality gap or KKT "
            f"violation {worst:.2g}); their columns may be inexact.",
            ConvergenceWarning, stacklevel=3)
    return values.T - base[:, None]


def _self_block(family, solution, X, y, sample_weight, rows):
    """Each row's own test quantity at its leave-one-out optimum, and infos."""
    with threadpool_limits(1):
        removed = [_removal(family, solution, y, sample_weight, row) for row in rows]
        Y = family.encode_target(y[rows])
        Z = np.vstack([family.decision(X[[row]], theta) for row, (theta, _) in
                       zip(rows, removed)])
        values = family.loss(Y, Z)
    return values, [info for _, info in removed]


def hinge_path_self_loss(family, X, y, sample_weight=None, *, n_jobs=None):
    """``L(z_i; theta_{-i}) - L(z_i; theta)`` for every training row, exactly.

    The diagonal of :func:`hinge_path_loo` on the training rows, without the
    ``n x n`` matrix: one decremental path per support vector, 0 for the
    other rows (without ``class_weight="balanced"``).
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    solution = family.exact_solution(X, y, sample_weight)
    n = X.shape[0]
    moves = np.ones(n, dtype=bool) if family.removal_moves_others else \
        solution.support.any(axis=1)
    active = np.flatnonzero(moves)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_self_block)(family, solution, X, y, sample_weight,
                             active[start:start + _BLOCK])
        for start in range(0, len(active), _BLOCK))
    out = np.zeros(n)
    if parts:
        base = family.loss(family.encode_target(y[active]),
                           family.decision(X[active], solution.theta))
        out[active] = np.concatenate([values for values, _ in parts]) - base
    failed = [int(r) for r, info in zip(active, (i for _, b in parts for i in b))
              if not info.certified]
    if failed:
        warnings.warn(
            f"The exact leave-one-out optimum could not be certified for "
            f"{len(failed)} training row(s): {failed[:20]}; their values may be "
            "inexact.", ConvergenceWarning, stacklevel=3)
    return out
