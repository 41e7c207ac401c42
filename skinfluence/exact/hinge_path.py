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
change back at the next event (no zero-length cycling). Each piece costs one
pivoted QR of the ``|F| x q`` free rows (``|F| <= q``, the number of columns,
apart from degenerate ties) and one product with the bound rows near their
margin.

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
from sklearn.utils import Bunch
from sklearn.utils.parallel import Parallel, delayed

from .._progress import Progress, run_tasks
from .._threads import one_blas_thread
from ..families._svm_dual import (
    AT_LOWER,
    AT_UPPER,
    FIXED,
    FREE,
    RANK_RTOL,
    certify_box,
    solve_box,
)

__all__ = ["hinge_path_loo", "hinge_path_self_loss", "removal_path", "removal_paths"]

#: rows per joblib task; fixed, so the arithmetic is the same for any n_jobs
_BLOCK = 64
#: entries of one stacked array of the lockstep paths (8 MiB of float64 x 8)
_SLOT_BUDGET = 2**23


def removal_path(problem, start, new_lower, new_upper, *, max_pieces=None):
    """Follow the exact optimum while the boxes move to ``[new_lower, new_upper]``.

    Only bound rows near their margin are watched: a row whose slack exceeds
    ``||z_j|| r`` keeps its sign while ``theta`` travels a distance ``r``, so
    the watched set covers at least the rest of the path at the current speed
    and is rebuilt (with ``r`` four times larger) when it might not.

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
    lower, upper = problem.lower, problem.upper
    d_lower, d_upper = new_lower - lower, new_upper - upper
    moving = np.flatnonzero((d_lower != 0) | (d_upper != 0))
    Z_moving = rows.dense(moving) if moving.size < 64 else None
    free = _FreeRows(rows, np.flatnonzero(state == FREE), alpha, lower, upper,
                     d_lower, d_upper)
    max_pieces = 10 * rows.n_rows + 100 if max_pieces is None else max_pieces
    s, barred, came_from, skip, complete, n_pieces = 0.0, -1, FIXED, -1, False, 0
    radius, travelled, q_dot = 0.0, np.inf, None
    # beyond this distance every bound row is watched
    reach = float(np.abs(target).max(initial=1.0) / max(rows.row_norms.min(initial=1.0),
                                                        1e-300) + np.linalg.norm(theta))
    while n_pieces < max_pieces:
        if q_dot is None:
            # the multipliers held at a moving bound, and what they push
            moving_state = state[moving]
            rate = np.where(moving_state == AT_LOWER, d_lower[moving],
                            np.where(moving_state == AT_UPPER, d_upper[moving], 0.0))
            if Z_moving is not None:
                q_dot = rate @ Z_moving
            else:
                coefficients = np.zeros(rows.n_rows)
                coefficients[moving] = rate
                q_dot = rows.combine(coefficients)
        alpha_dot, theta_dot = free.response(q_dot)
        speed = float(np.sqrt(theta_dot @ theta_dot))

        # the watched rows must cover the longest step this piece can take
        if travelled + (1.0 - s) * speed > radius:
            radius, travelled = max(4.0 * radius, 2.0 * (1.0 - s) * speed), 0.0
            if radius > 0.25 * reach:  # as good as watching every bound row
                radius = np.inf
            slack_all = target - rows.margins(theta)
            watched = np.flatnonzero(((state == AT_LOWER) | (state == AT_UPPER))
                                     & (np.abs(slack_all) <= rows.row_norms * radius))
            watch = _Watched(rows.dense(watched), watched, slack_all[watched],
                             state[watched])
            if came_from == FREE:  # the barred row moved in the new watch
                skip = watch.position(barred)
                skip = skip + 2 * free.n if skip >= 0 else -1
        n_pieces += 1
        closing_w = watch.Z[: watch.n] @ theta_dot
        # the first event: a free multiplier meets its (moving) bound, or a
        # watched bound row its margin; a row that just changed state may not
        # change back at once
        room_f, closing_f = free.room(s, alpha_dot)
        room = np.concatenate([room_f.ravel(), watch.room[: watch.n]])
        closing = np.concatenate([closing_f.ravel(), closing_w])
        k, time = _first(room, closing, skip)
        t, event, to_state = 1.0 - s, -1, FREE
        if time < t:
            t = time
            if k < 2 * free.n:
                side, j = divmod(k, free.n)
                event, to_state = free.index[j], AT_LOWER if side == 0 else AT_UPPER
            else:
                k -= 2 * free.n
                event, to_state = watch.index[k], FREE

        # move to it
        s += t
        free.alpha[: free.n] += t * alpha_dot
        theta += t * theta_dot
        watch.room[: watch.n] -= t * closing_w
        travelled += t * speed
        if event < 0:
            complete = True
            break
        came_from = state[event]
        # it may not change back at once: ``skip`` is its way back
        if to_state == FREE:
            # its multiplier: its bound at s
            value = (lower[event] + s * d_lower[event] if came_from == AT_LOWER
                     else upper[event] + s * d_upper[event])
            free.add(event, watch.release(k), value)
            skip = free.n - 1 + (free.n if came_from == AT_UPPER else 0)
        else:
            z = free.remove(event)
            alpha[event] = (lower[event] + s * d_lower[event] if to_state == AT_LOWER
                            else upper[event] + s * d_upper[event])
            watch.add(event, z, to_state)  # it sits on its margin
            skip = 2 * free.n + watch.n - 1
        if d_lower[event] != 0 or d_upper[event] != 0:
            q_dot = None  # a moving row changed state
        barred = event
        state[event] = to_state
    # the end point: free multipliers as followed, moving bound rows at their
    # new bounds, everything exactly inside the new boxes
    alpha[free.index[: free.n]] = free.alpha[: free.n]
    at_moving = moving[state[moving] == AT_LOWER]
    alpha[at_moving] = new_lower[at_moving]
    at_moving = moving[state[moving] == AT_UPPER]
    alpha[at_moving] = new_upper[at_moving]
    alpha = np.clip(alpha, new_lower, new_upper)
    state[new_lower >= new_upper] = FIXED
    return Bunch(alpha=alpha, state=state, theta=rows.combine(alpha), n_pieces=n_pieces,
                 complete=complete)


class _FreeRows:
    """The free rows of a path: their rows of ``Z``, multipliers and bounds.

    Kept in preallocated arrays (a removed row is replaced by the last one),
    so a piece touches no ``n``-sized array.
    """

    def __init__(self, rows, index, alpha, lower, upper, d_lower, d_upper):
        capacity = max(2 * rows.n_columns, index.size + 8)
        self.n = index.size
        self.index = np.empty(capacity, dtype=np.intp)
        self.Z = np.empty((capacity, rows.n_columns))
        self.alpha = np.empty(capacity)
        # rows 0 and 1: the lower and the upper bound at s = 0, and their rates
        self.bound = np.empty((2, capacity))
        self.d_bound = np.empty((2, capacity))
        self._all = (lower, upper, d_lower, d_upper)
        self.index[: self.n] = index
        self.Z[: self.n] = rows.dense(index)
        self.alpha[: self.n] = alpha[index]
        self.bound[:, : self.n] = lower[index], upper[index]
        self.d_bound[:, : self.n] = d_lower[index], d_upper[index]

    def response(self, q_dot):
        """``(alpha_F', theta')`` when the bounds push ``q_dot``.

        ``theta' = (I - P_F) q'`` and ``Z_F^T alpha_F' = -P_F q'`` with
        ``P_F`` the projection on the span of the free rows, from a pivoted QR
        of ``Z_F^T`` (LAPACK directly: this runs once per piece). Rows beyond
        the rank keep a rate of 0.
        """
        alpha_dot = np.zeros(self.n)
        if self.n == 0:
            return alpha_dot, q_dot
        qr, pivots, tau, _, _ = lapack.dgeqp3(self.Z[: self.n].T)
        diagonal = np.abs(qr.diagonal())
        rank = int(np.count_nonzero(diagonal > RANK_RTOL * diagonal[0])) \
            if diagonal[0] > 0 else 0
        if rank == 0:
            return alpha_dot, q_dot
        qr = qr[:, : tau.size]
        c = lapack.dormqr("L", "T", qr, tau, q_dot[:, None], 1)[0][:, 0]
        alpha_dot[pivots[:rank] - 1] = -lapack.dtrtrs(qr[:rank, :rank], c[:rank])[0]
        c[:rank] = 0.0
        return alpha_dot, lapack.dormqr("L", "N", qr, tau, c[:, None], 1)[0][:, 0]

    def room(self, s, alpha_dot):
        """Room to each bound (``2 x n``: lower, upper) and its closing rate."""
        n = self.n
        gap = self.bound[:, :n] + s * self.d_bound[:, :n] - self.alpha[:n]
        rate = alpha_dot - self.d_bound[:, :n]
        return gap * _SIDES, rate * _SIDES

    def add(self, row, z, value):
        if self.n == self.index.size:  # grow (more free rows than columns)
            self.index = np.resize(self.index, 2 * self.n)
            self.Z = np.resize(self.Z, (2 * self.n, self.Z.shape[1]))
            self.alpha = np.resize(self.alpha, 2 * self.n)
            self.bound = np.hstack([self.bound, self.bound])
            self.d_bound = np.hstack([self.d_bound, self.d_bound])
        lower, upper, d_lower, d_upper = self._all
        n = self.n
        self.index[n], self.Z[n], self.alpha[n] = row, z, value
        self.bound[:, n] = lower[row], upper[row]
        self.d_bound[:, n] = d_lower[row], d_upper[row]
        self.n += 1

    def remove(self, row):
        """Drop ``row``; returns its row of ``Z``."""
        j = int(np.flatnonzero(self.index[: self.n] == row)[0])
        z = self.Z[j].copy()
        last = self.n - 1
        for array in (self.index, self.Z, self.alpha):
            array[j] = array[last]
        self.bound[:, j], self.d_bound[:, j] = self.bound[:, last], self.d_bound[:, last]
        self.n = last
        return z


class _Watched:
    """Bound rows near their margin, each row of ``Z`` signed by its side.

    ``side`` is ``+1`` at the upper bound (the slack ``a - z.theta`` may not
    fall below 0) and ``-1`` at the lower one (it may not rise above 0), so
    ``room = side * slack >= 0`` and it closes at the rate ``(side z).theta'``.
    A row that turns free gets side 0: it never closes again.
    """

    def __init__(self, Z, index, slack, state):
        capacity = index.size + 64
        side = np.where(state == AT_UPPER, 1.0, -1.0)
        self.n = index.size
        self.Z = np.empty((capacity, Z.shape[1]))
        self.Z[: self.n] = side[:, None] * Z
        self.index = np.resize(index, capacity)
        self.room = np.resize(side * slack, capacity)
        self.side = np.resize(side, capacity)

    def position(self, row):
        hit = np.flatnonzero(self.index[: self.n] == row)
        return int(hit[0]) if hit.size else -1

    def release(self, k):
        """Row ``k`` turns free; returns its row of ``Z``."""
        z = self.side[k] * self.Z[k]
        self.Z[k] = 0.0
        self.side[k] = 0.0
        return z

    def add(self, row, z, state):
        if self.n == self.index.size:
            self.Z = np.resize(self.Z, (2 * self.n, self.Z.shape[1]))
            self.index, self.room, self.side = (np.resize(a, 2 * self.n) for a in
                                                (self.index, self.room, self.side))
        n = self.n
        side = 1.0 if state == AT_UPPER else -1.0
        self.Z[n], self.index[n], self.room[n], self.side[n] = side * z, row, 0.0, side
        self.n += 1


#: sign of the room to the lower (alpha - l) and the upper bound (u - alpha)
_SIDES = np.array([[-1.0], [1.0]])


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
    closes = closing > _TINY * abs(closing).max()
    if skip >= 0:
        closes[skip] = False
    times = np.where(closes, room, np.inf)
    np.divide(times, closing, out=times, where=closes)
    k = int(times.argmin())
    return k, max(float(times[k]), 0.0)
def removal_paths(problem, start, removals, *, width=64, max_pieces=None):
    """:func:`removal_path` for many removals at once, in lockstep.

    Up to ``width`` paths advance together, one piece each per step, as stacked
    array operations (one batched QR of the free rows, one product for the
    watched rows' margin rates, one event search), and a finished path's slot
    takes the next removal; a path's arithmetic does not depend on the others.
    The watched rows are shared: every bound row whose slack at the start
    is at most ``||z_j|| r``, with ``r`` at least as long as any path has come
    from the start; a step that would go further first doubles ``r``. A path
    whose free rows turn linearly dependent (or outnumber the columns) leaves
    the batch: its entry is None, for :func:`removal_path` (pivoted QR).

    Parameters
    ----------
    problem : Bunch
        ``rows``, ``target``, ``lower``, ``upper``.
    start : Bunch
        Its exact solution: ``alpha``, ``state``, ``theta`` and ``margins``.
    removals : list of (new_lower, new_upper)
    width : int, default=64
    max_pieces : int, default=None
        Most pieces per path (``10 * n_rows + 100`` when None).

    Returns
    -------
    ends : list of Bunch or None
        As :func:`removal_path`, one per removal.
    """
    rows, target, lower, upper = problem.rows, problem.target, problem.lower, problem.upper
    n, q = rows.n_rows, rows.n_columns
    ends = [None] * len(removals)
    max_pieces = 10 * n + 100 if max_pieces is None else max_pieces
    free0 = np.flatnonzero(start.state == FREE)
    if free0.size > q or not removals:
        return ends
    cap = min(q, free0.size + 8)  # room for free rows, grown as needed
    # every slot holds a few arrays of n and one of q x q: about 64 MiB each at most
    width = int(np.clip(min(width, len(removals), _SLOT_BUDGET // n,
                            _SLOT_BUDGET // (q * q)), 1, None))
    slots = np.arange(width)
    # per slot: every row's state, the removal's bound rates, theta, and the
    # free rows in the columns of ``Z_free`` (zero beyond ``n_free``)
    state = np.empty((width, n), dtype=np.int8)
    d_lower, d_upper = np.empty((width, n)), np.empty((width, n))
    theta = np.empty((width, q))
    Z_free = np.zeros((width, q, cap))
    alpha_free = np.zeros((width, cap))
    bound = np.zeros((width, 2, cap))  # lower and upper bound at s = 0
    d_bound = np.zeros((width, 2, cap))
    index = np.zeros((width, cap), dtype=np.intp)
    n_free = np.zeros(width, dtype=np.intp)
    s, skip = np.ones(width), np.full(width, -1)
    pieces, travelled = np.zeros(width, dtype=np.intp), np.zeros(width)
    q_dot = np.zeros((width, q))
    job = np.full(width, -1)
    # the watched rows (shared): their rows of Z, and per slot the side
    # (+1 at the upper bound, -1 at the lower, 0 free) and ``side * slack``
    slack0 = np.abs(target - start.margins)
    side0 = np.where(start.state == AT_UPPER, 1.0,
                     np.where(start.state == AT_LOWER, -1.0, 0.0))
    position = np.full(n, -1)  # row -> watched column
    watched = np.zeros(0, dtype=np.intp)
    Z_watched = np.zeros((0, q))
    side = np.zeros((width, 0))
    room = np.zeros((width, 0))
    radius = 0.0
    Z0 = rows.dense(free0).T
    pending = iter(range(len(removals)))

    def watch(new_radius):
        nonlocal watched, Z_watched, side, room, radius
        radius = new_radius
        near = (slack0 <= rows.row_norms * radius) | (start.state == FREE)
        new = np.flatnonzero(near & (position < 0))
        if new.size == 0:
            return
        position[new] = watched.size + np.arange(new.size)
        watched = np.concatenate([watched, new])
        Z_new = rows.dense(new)
        Z_watched = np.vstack([Z_watched, Z_new])
        st = state[:, new]
        new_side = np.where(st == AT_UPPER, 1.0, np.where(st == AT_LOWER, -1.0, 0.0))
        side = np.hstack([side, new_side])
        room = np.hstack([room, new_side * (target[new] - theta @ Z_new.T)])

    def grow():
        """Room for more free rows (at most q: beyond, they are dependent)."""
        nonlocal cap, Z_free, alpha_free, bound, d_bound, index
        more = min(q, 2 * cap) - cap
        cap += more
        Z_free = np.concatenate([Z_free, np.zeros((width, q, more))], axis=2)
        alpha_free = np.concatenate([alpha_free, np.zeros((width, more))], axis=1)
        bound = np.concatenate([bound, np.zeros((width, 2, more))], axis=2)
        d_bound = np.concatenate([d_bound, np.zeros((width, 2, more))], axis=2)
        index = np.concatenate([index, np.zeros((width, more), dtype=np.intp)], axis=1)

    def push(b):
        """The multipliers held at a moving bound, and what they push."""
        moving = np.flatnonzero((d_lower[b] != 0) | (d_upper[b] != 0))
        st = state[b, moving]
        rate = np.where(st == AT_LOWER, d_lower[b, moving],
                        np.where(st == AT_UPPER, d_upper[b, moving], 0.0))
        if moving.size < 64:
            q_dot[b] = rate @ rows.dense(moving)
        else:
            coefficients = np.zeros(n)
            coefficients[moving] = rate
            q_dot[b] = rows.combine(coefficients)

    def load(b):
        j = next(pending, None)
        job[b] = -1 if j is None else j
        n_free[b], skip[b], pieces[b], travelled[b] = 0, -1, 0, 0.0
        if j is None:
            q_dot[b], s[b] = 0.0, 1.0
            side[b] = 0.0
            return
        new_lower, new_upper = removals[j]
        state[b], theta[b] = start.state, start.theta
        side[b] = side0[watched]
        room[b] = side0[watched] * (target[watched] - start.margins[watched])
        d_lower[b], d_upper[b] = new_lower - lower, new_upper - upper
        m = free0.size
        Z_free[b] = 0.0
        Z_free[b, :, :m] = Z0
        alpha_free[b, :m], index[b, :m] = start.alpha[free0], free0
        bound[b, 0, :m], bound[b, 1, :m] = lower[free0], upper[free0]
        d_bound[b, 0, :m], d_bound[b, 1, :m] = d_lower[b, free0], d_upper[b, free0]
        n_free[b], s[b] = m, 0.0
        push(b)

    def finish(b, complete):
        new_lower, new_upper = lower + d_lower[b], upper + d_upper[b]
        st = state[b].copy()
        alpha = np.where(st == AT_UPPER, new_upper, new_lower)
        m = n_free[b]
        alpha[index[b, :m]] = alpha_free[b, :m]
        alpha = np.clip(alpha, new_lower, new_upper)
        st[new_lower >= new_upper] = FIXED
        ends[job[b]] = Bunch(alpha=alpha, state=st, theta=rows.combine(alpha),
                             n_pieces=int(pieces[b]), complete=complete)
        load(b)

    state[:] = start.state
    theta[:] = start.theta
    watch(0.0)  # the free rows, which may leave for a bound
    for b in range(width):
        load(b)
    while np.any(job >= 0):
        columns = np.arange(cap)
        valid = columns < n_free[:, None]
        # the free rows' response, theta' = (I - P_F) q' and Z_F^T alpha' =
        # -P_F q', from a QR of each busy slot's free rows
        busy = np.flatnonzero(job >= 0)
        Q, R = np.linalg.qr(Z_free[busy])
        diagonal = np.abs(np.diagonal(R, axis1=1, axis2=2))
        mask = valid[busy]
        largest = np.where(mask, diagonal, 0.0).max(axis=1, keepdims=True)
        dependent = np.any(mask & (diagonal <= RANK_RTOL * largest), axis=1)
        if dependent.any():
            for b in busy[dependent]:
                load(b)  # its entry stays None, for the single (pivoted) path
            continue
        R[:, columns, columns] += ~mask  # a unit diagonal for the empty columns
        c = np.einsum("wqf,wq->wf", Q, q_dot[busy]) * mask
        theta_dot, alpha_dot = np.zeros((width, q)), np.zeros((width, cap))
        theta_dot[busy] = q_dot[busy] - np.einsum("wqf,wf->wq", Q, c)
        alpha_dot[busy] = -np.linalg.solve(R, c[:, :, None])[:, :, 0]
        speed = np.sqrt(np.einsum("wq,wq->w", theta_dot, theta_dot))

        # the first event of each path: a free multiplier meets its (moving)
        # bound, or a watched bound row its margin; a row that just changed
        # state may not change back at once
        room_free = _SIDES * (bound + s[:, None, None] * d_bound - alpha_free[:, None, :])
        closing_free = _SIDES * (alpha_dot[:, None, :] - d_bound) * valid[:, None, :]
        times_free = _times(room_free.reshape(width, -1), closing_free.reshape(width, -1))
        barred = skip >= 0
        while True:
            closing_w = side * (theta_dot @ Z_watched.T)
            times = np.concatenate([times_free, _times(room, closing_w)], axis=1)
            times[slots[barred], skip[barred]] = np.inf
            k = times.argmin(axis=1)
            t = np.maximum(times[slots, k], 0.0)
            end = t >= 1.0 - s
            t = np.where(end, 1.0 - s, t)
            reach = np.where(job >= 0, travelled + t * speed, 0.0).max()
            if reach <= radius:
                break
            # a step may reach rows not watched: watch more and look again (the
            # step itself may shrink, so grow from a fraction of it)
            watch(2.0 * radius if radius > 0 else reach / 64)

        # move to it
        s += t
        alpha_free += t[:, None] * alpha_dot
        theta += t[:, None] * theta_dot
        room -= t[:, None] * closing_w
        travelled += t * speed
        pieces += 1
        active = job >= 0
        for b in np.flatnonzero(active & (end | (pieces >= max_pieces))):
            finish(b, bool(end[b]))
        step = active & ~end & (pieces < max_pieces)

        # a free row reaches a bound: it leaves the free set
        leave = np.flatnonzero(step & (k < 2 * cap))
        if leave.size:
            j, up = k[leave] % cap, k[leave] >= cap
            row = index[leave, j]
            w = position[row]
            state[leave, row] = np.where(up, AT_UPPER, AT_LOWER)
            side[leave, w] = np.where(up, 1.0, -1.0)
            room[leave, w] = 0.0  # on its margin
            last = n_free[leave] - 1  # the last free row takes its place
            Z_free[leave, :, j] = Z_free[leave, :, last]
            Z_free[leave, :, last] = 0.0
            alpha_free[leave, j] = alpha_free[leave, last]
            bound[leave, :, j] = bound[leave, :, last]
            d_bound[leave, :, j] = d_bound[leave, :, last]
            index[leave, j] = index[leave, last]
            n_free[leave] = last
            skip[leave] = 2 * cap + w
            for b in leave[(d_lower[leave, row] != 0) | (d_upper[leave, row] != 0)]:
                push(b)
        # a bound row reaches its margin: it joins the free set
        join = np.flatnonzero(step & (k >= 2 * cap))
        if join.size:
            w = k[join] - 2 * cap
            full = n_free[join] >= q
            for b in join[full]:
                load(b)  # more free rows than columns: the single path takes it
            join, w = join[~full], w[~full]
            if join.size and n_free[join].max() >= cap:
                grow()
            row = watched[w]
            came = state[join, row]
            at = n_free[join]
            Z_free[join, :, at] = Z_watched[w]
            alpha_free[join, at] = np.where(came == AT_LOWER,
                                            lower[row] + s[join] * d_lower[join, row],
                                            upper[row] + s[join] * d_upper[join, row])
            index[join, at] = row
            bound[join, 0, at], bound[join, 1, at] = lower[row], upper[row]
            d_bound[join, 0, at], d_bound[join, 1, at] = d_lower[join, row], \
                d_upper[join, row]
            n_free[join] = at + 1
            state[join, row], side[join, w] = FREE, 0.0
            skip[join] = np.where(came == AT_LOWER, 0, cap) + at
            for b in join[(d_lower[join, row] != 0) | (d_upper[join, row] != 0)]:
                push(b)
    return ends


def _times(room, closing):
    """``room / closing`` where the rate closes (above round-off), else inf."""
    closes = closing > _TINY * np.abs(closing).max(axis=1, keepdims=True, initial=0.0)
    times = np.where(closes, room, np.inf)
    np.divide(times, closing, out=times, where=closes)
    return times


def _new_bounds(family, solution, y, sample_weight, row):
    """Every output's ``(lower, upper)`` without ``row``."""
    if family.removal_moves_others:  # the class weights are recomputed
        weight = sample_weight.copy()
        weight[row] = 0.0
        bounds = family.dual_bounds(y, weight)
        for lower, upper in bounds:
            if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
                raise ValueError(
                    f"Removing training row {row} leaves its class without rows, so "
                    "a refit without it would be a different problem; leave it out "
                    "of train_indices.")
        return bounds
    bounds = []  # only the row's own boxes shrink to [0, 0]
    for problem in solution.problems:
        own = problem.rows.rows_of(row)
        lower, upper = problem.lower.copy(), problem.upper.copy()
        lower[own] = upper[own] = 0.0
        bounds.append((lower, upper))
    return bounds


def _removals(family, solution, y, sample_weight, rows):
    """Exact optimum without each of ``rows``: flat parameters and infos.

    The paths of each output run together (:func:`removal_paths`; those it
    leaves out one by one, :func:`removal_path`). Each end point is certified;
    one that is not is finished by the active-set solver from there.
    """
    bounds = [_new_bounds(family, solution, y, sample_weight, row) for row in rows]
    thetas = [[start.theta for start in solution.solutions] for _ in rows]
    infos = [Bunch(n_pieces=0, finished=0, certified=True, worst_gap=0.0, worst_kkt=0.0)
             for _ in rows]
    for k, (problem, start) in enumerate(zip(solution.problems, solution.solutions)):
        # a row whose multipliers are 0, moving no other box, leaves it unchanged
        moves = [i for i, bound in enumerate(bounds) if np.any(start.alpha[
            (bound[k][0] != problem.lower) | (bound[k][1] != problem.upper)])]
        ends = removal_paths(problem, start, [bounds[i][k] for i in moves])
        for i, end in zip(moves, ends):
            new_lower, new_upper = bounds[i][k]
            if end is None:
                end = removal_path(problem, start, new_lower, new_upper)
            moved = Bunch(rows=problem.rows, target=problem.target, lower=new_lower,
                          upper=new_upper)
            check = certify_box(moved, end.alpha)
            info = infos[i]
            info.n_pieces += end.n_pieces
            if not (end.complete and check.certified):
                check = solve_box(moved, check.theta, alpha=end.alpha, state=end.state)
                info.finished += 1
            info.certified &= check.certified
            info.worst_gap = max(info.worst_gap, check.relative_gap)
            info.worst_kkt = max(info.worst_kkt, check.kkt_violation)
            thetas[i][k] = check.theta
    return [family.from_liblinear(theta) for theta in thetas], infos


def _path_block(family, solution, y, sample_weight, rows, X_test, Y_test):
    """Test quantities without each of ``rows``: (len(rows), n_test), and infos."""
    with one_blas_thread():
        thetas, infos = _removals(family, solution, y, sample_weight, rows)
        b, K = len(rows), family.n_outputs
        Z = np.stack([family.decision(X_test, theta) for theta in thetas],
                     axis=1)  # (m, b, K)
        m = Z.shape[0]
        if Y_test is None:
            values = Z[:, :, 0].T
        else:
            Y = np.repeat(Y_test, b, axis=0)
            values = family.loss(Y, Z.reshape(m * b, K)).reshape(m, b).T
    return values, infos


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

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import LinearSVC
    >>> from skinfluence.families import family_for
    >>> from skinfluence.exact import hinge_path_loo
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)
    >>> family = family_for(LinearSVC(loss="hinge").fit(X, y))
    >>> loo = hinge_path_loo(family, X, y, None, None, X[:3], y[:3], np.arange(40))
    >>> loo.shape
    (3, 40)
    >>> support = family.exact_solution(X, y).support[:, 0]
    >>> bool(np.all(loo[:, ~support] == 0))        # not support vectors: exactly 0
    True
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
    starts = range(0, len(active), _BLOCK)
    parts = run_tasks(
        [delayed(_path_block)(family, solution, y, sample_weight,
                              active[start:start + _BLOCK], X_test, Y_test)
         for start in starts],
        [len(active[start:start + _BLOCK]) for start in starts], n_jobs=n_jobs,
        progress=Progress(len(active), "hinge decremental paths", verbose))
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
    with one_blas_thread():
        thetas, infos = _removals(family, solution, y, sample_weight, rows)
        Y = family.encode_target(y[rows])
        Z = np.vstack([family.decision(X[[row]], theta) for row, theta in
                       zip(rows, thetas)])
        values = family.loss(Y, Z)
    return values, infos


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
