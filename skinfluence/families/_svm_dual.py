"""Exact optima of liblinear's support-vector problems, with their duals.

liblinear appends the feature ``intercept_scaling`` (``is``) to every row and
penalises its coefficient like any other, so every problem it solves is, in its
own parameters ``theta = [w, b / is]`` and rows ``z_j``,

.. math::

    P(\\theta) = \\tfrac12 \\lVert\\theta\\rVert^2
                 + \\sum_j \\max_{l_j \\le \\alpha_j \\le u_j} \\alpha_j (a_j - z_j^\\top\\theta),
    \\qquad
    D(\\alpha) = a^\\top\\alpha - \\tfrac12 \\lVert Z^\\top \\alpha \\rVert^2,
    \\quad l \\le \\alpha \\le u,

with ``theta = Z^T alpha`` at the optimum and no ``sum y alpha = 0`` constraint
(the intercept is penalised). The hinge of ``LinearSVC`` is ``z_j = y_j x~_j``,
``a_j = 1``, ``[l_j, u_j] = [0, c_j]`` (``c_j`` the row's ``C`` times its sample
and class weight); the epsilon-insensitive loss of ``LinearSVR`` is two such rows
per sample (``+x~_i`` with ``a = y_i - eps`` and ``-x~_i`` with
``a = -y_i - eps``), or, for ``eps = 0``, one row ``x~_i`` with ``a = y_i`` and
the box ``[-c_i, c_i]``. The squared losses replace the max by
``c_j (a_j - z_j^T theta)_+^2``.

:func:`solve_box` finds the exact optimum of a piecewise-linear problem from an
approximate ``theta`` (a fitted estimator's coefficients): the margins suggest
which rows sit at a bound and which on their margin, one linear solve gives
their multipliers, and a feasible active-set method on the dual box QP
(:func:`solve_box_qp`) pivots until the KKT conditions hold.
:func:`solve_squared` is Newton's method on the piecewise-quadratic primal; it
stops after finitely many steps (once the set of rows with positive slack is
right, one step lands on the optimum). Each result carries a certificate
(:func:`certify_box`, :func:`certify_squared`): duality gap, KKT violation and a
bound on the distance to the optimum.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch

__all__ = [
    "AT_LOWER",
    "AT_UPPER",
    "FIXED",
    "FREE",
    "LinearRows",
    "SupportVectorDual",
    "certify_box",
    "certify_squared",
    "free_directions",
    "solve_box",
    "solve_box_qp",
    "solve_squared",
]

#: state of a row of a box QP: its multiplier at the lower bound, strictly
#: inside the box (the row sits on its margin), at the upper bound, or fixed
#: (a box of zero width, such as a row of zero weight)
AT_LOWER, FREE, AT_UPPER, FIXED = 0, 1, 2, 3

#: singular values below this fraction of the largest count as zero
RANK_RTOL = 1e-12
#: tolerance of the active-set method's sign tests, relative to the scale of
#: the margins (``1 + max_j ||z_j|| ||theta||``)
KKT_RTOL = 1e-13
#: a solution is certified when its relative duality gap and its KKT
#: violation (relative to the scale of the margins) are below this
CERTIFY_RTOL = 1e-11
#: margin bands tried to guess the free rows from an approximate ``theta``
BANDS = (1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2)


class LinearRows:
    """The rows ``z_j = sign_j [x_{index_j}, is]`` of a liblinear problem.

    Never materialises ``Z``: products go through ``X`` (dense or sparse).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    sign : ndarray of shape (n_rows,)
        ``+1`` or ``-1`` per row (the label for the hinge).
    index : ndarray of int of shape (n_rows,), default=None
        The sample of each row (several rows may share one); identity if None.
    intercept_scaling : float or None
        The appended constant feature, or None without an intercept.
    """

    def __init__(self, X, sign, index=None, intercept_scaling=None):
        self.X = X
        self.sign = np.asarray(sign, dtype=float)
        self.index = None if index is None else np.asarray(index, dtype=np.intp)
        self.intercept_scaling = intercept_scaling
        self.n_samples, self.n_features = X.shape
        self.n_columns = self.n_features + int(intercept_scaling is not None)
        self.n_rows = self.sign.shape[0]
        norms = (np.asarray(X.multiply(X).sum(axis=1)).ravel() if sp.issparse(X)
                 else np.einsum("ij,ij->i", X, X))
        if intercept_scaling is not None:
            norms = norms + intercept_scaling**2
        self.row_norms = np.sqrt(norms if self.index is None else norms[self.index])

    @property
    def samples(self):
        """The sample of each row, shape (n_rows,)."""
        return np.arange(self.n_rows) if self.index is None else self.index

    def rows_of(self, sample):
        """The rows of one sample."""
        if self.index is None:
            return np.array([sample])
        return np.flatnonzero(self.index == sample)

    def margins(self, theta):
        """``Z theta``: shape (n_rows,), or (m, n_rows) for ``theta`` of shape (m, q)."""
        theta = np.asarray(theta, dtype=float)
        if theta.ndim == 2:
            value = np.asarray(self.X @ theta[:, : self.n_features].T).T
            if self.intercept_scaling is not None:
                value = value + self.intercept_scaling * theta[:, -1:]
            if self.index is not None:
                value = value[:, self.index]
            return self.sign * value
        value = self.X @ theta[: self.n_features]
        if self.intercept_scaling is not None:
            value = value + self.intercept_scaling * theta[-1]
        value = np.asarray(value).ravel()
        if self.index is not None:
            value = value[self.index]
        return self.sign * value

    def combine(self, coefficients):
        """``Z^T c``, shape (n_columns,)."""
        c = self.sign * coefficients
        if self.index is not None:
            c = np.bincount(self.index, weights=c, minlength=self.n_samples)
        out = np.empty(self.n_columns)
        out[: self.n_features] = np.asarray(self.X.T @ c).ravel()
        if self.intercept_scaling is not None:
            out[-1] = self.intercept_scaling * c.sum()
        return out

    def dense(self, rows):
        """``Z[rows]`` as a dense array of shape (len(rows), n_columns)."""
        rows = np.asarray(rows, dtype=np.intp)
        samples = rows if self.index is None else self.index[rows]
        block = self.X[samples]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        out = np.empty((rows.size, self.n_columns))
        out[:, : self.n_features] = block
        if self.intercept_scaling is not None:
            out[:, -1] = self.intercept_scaling
        out *= self.sign[rows, None]
        return out

    def margin_scale(self, theta):
        """Size of the round-off in a margin: ``1 + max_j ||z_j|| ||theta||``."""
        return 1.0 + float(self.row_norms.max(initial=0.0)) * float(np.linalg.norm(theta))


def free_directions(Z_free):
    """Thin SVD ``(U, S, Vt)`` of the free rows, truncated to their rank.

    With ``G = Z_F Z_F^T`` the min-norm solution of ``G x = Z_F v`` is
    ``U (Vt v / S)`` and ``Vt^T Vt`` projects onto the span of the rows.
    """
    q = Z_free.shape[1]
    if Z_free.shape[0] == 0:
        return np.zeros((0, 0)), np.zeros(0), np.zeros((0, q))
    U, S, Vt = np.linalg.svd(Z_free, full_matrices=False)
    keep = S > RANK_RTOL * S[0] if S[0] > 0 else np.zeros(S.size, dtype=bool)
    return U[:, keep], S[keep], Vt[keep]


def _states(alpha, lower, upper):
    state = np.full(alpha.shape, FREE, dtype=np.int8)
    state[alpha <= lower] = AT_LOWER
    state[alpha >= upper] = AT_UPPER
    state[lower >= upper] = FIXED
    return state


# ---------------------------------------------------------- piecewise linear
def guess_from_margins(problem, theta, band):
    """A feasible dual start from an approximate ``theta``.

    Rows with slack ``a - z.theta`` above ``band`` start at the upper bound,
    below ``-band`` at the lower one; the others are free, with the min-norm
    multipliers that put them on their margin, clipped into the box.
    """
    rows, target, lower, upper = problem.rows, problem.target, problem.lower, problem.upper
    slack = target - rows.margins(theta)
    alpha = np.where(slack > 0, upper, lower).astype(float)
    free = np.flatnonzero((np.abs(slack) <= band) & (lower < upper))
    if free.size:
        alpha[free] = 0.0
        Z_free = rows.dense(free)
        U, S, _ = free_directions(Z_free)
        rhs = target[free] - Z_free @ rows.combine(alpha)
        alpha[free] = np.clip(U @ ((U.T @ rhs) / S**2), lower[free], upper[free])
    return alpha


def solve_box_qp(problem, alpha, *, state=None, max_iter=None):
    """Exact optimum of the dual box QP by a feasible active-set method.

    Minimises ``f(alpha) = 1/2 ||Z^T alpha||^2 - a^T alpha`` over the box. Each
    iteration takes the min-norm Newton step on the free rows (or, when their
    Gram matrix is singular and the gradient has a part in its null space,
    the zero-curvature descent direction), stops it at the first bound it
    meets (that row joins the bound set), and at a minimiser on the free rows
    frees every bound row whose multiplier has the wrong sign. ``f`` never
    increases, so the method ends after finitely many steps.

    Parameters
    ----------
    problem : Bunch
        ``rows`` (:class:`LinearRows`), ``target``, ``lower``, ``upper``.
    alpha : ndarray of shape (n_rows,)
        A start inside the box.
    state : ndarray of int8, default=None
        States of the start (read from ``alpha`` when None).
    max_iter : int, default=None
        Most iterations (``20 * n_rows + 100`` when None).

    Returns
    -------
    result : Bunch
        ``alpha``, ``theta`` (``Z^T alpha``), ``state``, ``n_iter``, ``converged``.
    """
    rows, target, lower, upper = problem.rows, problem.target, problem.lower, problem.upper
    alpha = np.clip(np.asarray(alpha, dtype=float), lower, upper)
    if state is None:
        state = _states(alpha, lower, upper)
    else:  # a row not at the bound its state names is free
        state = state.copy()
        state[((state == AT_LOWER) & (alpha > lower))
              | ((state == AT_UPPER) & (alpha < upper))] = FREE
    state[lower >= upper] = FIXED
    max_iter = 20 * rows.n_rows + 100 if max_iter is None else max_iter
    converged = False
    theta = rows.combine(alpha)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        tol = KKT_RTOL * max(rows.margin_scale(theta), float(np.abs(target).max()))
        slack = target - rows.margins(theta)
        free = np.flatnonzero(state == FREE)
        if free.size:
            U, S, _ = free_directions(rows.dense(free))
            coef = U.T @ slack[free]
            null = slack[free] - U @ coef
            if np.linalg.norm(null) > tol * np.sqrt(free.size):
                step, limit = null, np.inf  # f falls linearly along it: to a bound
            else:
                step, limit = U @ (coef / S**2), 1.0
            a_f, lo_f, up_f = alpha[free], lower[free], upper[free]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(step > 0, (up_f - a_f) / step,
                                 np.where(step < 0, (lo_f - a_f) / step, np.inf))
            block = int(np.argmin(ratio))
            if ratio[block] < limit:
                t = max(ratio[block], 0.0)
                alpha[free] = np.clip(a_f + t * step, lo_f, up_f)
                row = free[block]
                up = step[block] > 0
                alpha[row] = upper[row] if up else lower[row]
                state[row] = AT_UPPER if up else AT_LOWER
                theta = rows.combine(alpha)
                continue
            alpha[free] = np.clip(a_f + step, lo_f, up_f)
            theta = rows.combine(alpha)
            slack = target - rows.margins(theta)
        wrong = (((state == AT_LOWER) & (slack > tol))
                 | ((state == AT_UPPER) & (slack < -tol)))
        if not wrong.any():
            converged = True
            break
        state[wrong] = FREE
    return Bunch(alpha=alpha, theta=theta, state=state, n_iter=n_iter,
                 converged=converged)


def certify_box(problem, alpha):
    """How exactly ``alpha`` (with ``theta = Z^T alpha``) solves a box problem.

    Returns
    -------
    certificate : Bunch
        ``theta``, ``margins``, ``primal`` and ``dual`` objective values,
        ``gap`` (``P - D``, summed from the rows' complementarity products
        ``phi_j(m_j) - alpha_j (a_j - m_j) >= 0``, so without cancellation),
        ``relative_gap`` (``gap / P``), ``kkt_violation`` (largest margin
        violation of a row given its multiplier, relative to the margins'
        scale), ``box_violation``, ``distance_bound`` (``sqrt(2 gap)``: ``P``
        is 1-strongly convex, so ``||theta - theta*||^2 <= 2 (P - D)``) and
        ``certified`` (gap and violation below ``CERTIFY_RTOL``).
    """
    rows, target, lower, upper = problem.rows, problem.target, problem.lower, problem.upper
    box = max(float(np.max(lower - alpha, initial=0.0)),
              float(np.max(alpha - upper, initial=0.0)))
    alpha = np.clip(alpha, lower, upper)
    theta = rows.combine(alpha)
    margins = rows.margins(theta)
    slack = target - margins
    loss = np.where(slack > 0, upper * slack, lower * slack)
    products = np.where(slack > 0, (upper - alpha) * slack, (alpha - lower) * -slack)
    gap = float(products.sum())
    norm2 = float(theta @ theta)
    primal = 0.5 * norm2 + float(loss.sum())
    dual = float(target @ alpha) - 0.5 * norm2
    inside = (alpha > lower) & (alpha < upper)
    violation = np.where(inside, np.abs(slack),
                         np.where(alpha <= lower, np.maximum(slack, 0.0),
                                  np.maximum(-slack, 0.0)))
    violation = np.where(upper > lower, violation, 0.0)
    scale = max(rows.margin_scale(theta), float(np.abs(target).max(initial=1.0)))
    relative_gap = gap / max(abs(primal), np.finfo(float).tiny)
    kkt = float(violation.max(initial=0.0)) / scale
    return Bunch(
        theta=theta, margins=margins, primal=primal, dual=dual, gap=gap,
        relative_gap=relative_gap, kkt_violation=kkt, box_violation=box,
        distance_bound=float(np.sqrt(2.0 * gap)),
        certified=bool(relative_gap <= CERTIFY_RTOL and kkt <= CERTIFY_RTOL
                       and box == 0.0),
    )


def solve_box(problem, theta, *, alpha=None, state=None):
    """Exact optimum of a box problem started from an approximate ``theta``.

    The start whose dual objective is lowest among the guesses of
    :func:`guess_from_margins` (one per band of :data:`BANDS`) is pivoted to
    the exact KKT point by :func:`solve_box_qp`; a given ``alpha`` (with its
    ``state``) is tried as a start too.

    Returns
    -------
    solution : Bunch
        ``alpha``, ``state``, ``theta``, ``margins``, ``n_iter``, and the
        :func:`certify_box` fields.
    """
    starts = [guess_from_margins(problem, theta, band) for band in BANDS]
    if alpha is not None:
        starts.append(np.clip(alpha, problem.lower, problem.upper))

    def dual_objective(a):
        combined = problem.rows.combine(a)
        return 0.5 * float(combined @ combined) - float(problem.target @ a)

    best = int(np.argmin([dual_objective(a) for a in starts]))
    given = alpha is not None and best == len(starts) - 1
    result = solve_box_qp(problem, starts[best], state=state if given else None)
    certificate = certify_box(problem, result.alpha)
    return Bunch(alpha=result.alpha, state=result.state, n_iter=result.n_iter,
                 converged=result.converged, **certificate)


# ------------------------------------------------------------------ squared
def _squared_parts(problem, theta):
    slack = problem.target - problem.rows.margins(theta)
    active = (slack > 0) & (problem.upper > 0)
    alpha = np.where(active, 2.0 * problem.upper * slack, 0.0)
    return slack, active, alpha


def _squared_objective(problem, theta):
    slack = np.maximum(problem.target - problem.rows.margins(theta), 0.0)
    return 0.5 * float(theta @ theta) + float(np.sum(problem.upper * slack**2))


def solve_squared(problem, theta, *, max_iter=100):
    """Exact minimiser of ``1/2 ||theta||^2 + sum_j c_j (a_j - z_j.theta)_+^2``.

    Newton's method with a backtracking line search on the piecewise-quadratic
    objective (``problem.upper`` holds the weights ``c_j``); once the set of
    rows with positive slack is stable, a full step is exact.

    Returns
    -------
    solution : Bunch
        ``theta``, ``n_iter``, ``converged`` and the :func:`certify_squared`
        fields (with the dual ``alpha = 2 c_j (a_j - z_j.theta)_+``).
    """
    rows = problem.rows
    theta = np.asarray(theta, dtype=float).copy()
    q = rows.n_columns
    converged, previous, n_iter = False, None, 0
    best, best_size = theta, np.inf
    for n_iter in range(1, max_iter + 1):
        _, active, alpha = _squared_parts(problem, theta)
        gradient = theta - rows.combine(alpha)
        idx = np.flatnonzero(active)
        key = idx.tobytes()
        if key == previous and np.linalg.norm(gradient) <= 1e-14 * max(
                1.0, np.linalg.norm(theta)):
            converged = True
            break
        root = np.sqrt(2.0 * problem.upper[idx])
        S = rows.dense(idx) * root[:, None]
        if idx.size >= q:
            step = np.linalg.solve(np.eye(q) + S.T @ S, gradient)
        else:  # Woodbury: (I + S^T S)^-1 g = g - S^T (I + S S^T)^-1 S g
            step = gradient - S.T @ np.linalg.solve(np.eye(idx.size) + S @ S.T,
                                                    S @ gradient)
        size = float(np.linalg.norm(gradient))
        if size < best_size:
            best, best_size = theta, size
        value = _squared_objective(problem, theta)
        rate, decrease = 1.0, float(gradient @ step)
        trial = theta - step
        # within rounding of the optimum the predicted decrease is below the
        # rounding of the objective, where a line search cannot judge: the full
        # Newton step is safe there (exact once the active rows are right)
        near = decrease <= 1e3 * np.finfo(float).eps * max(abs(value), 1.0)
        while (not near and rate > 1e-12
               and _squared_objective(problem, trial) > value - 1e-4 * rate * decrease):
            rate *= 0.5
            trial = theta - rate * step
        previous = key if rate == 1.0 else None
        if rate <= 1e-12:  # no progress left: at the optimum to round-off
            converged = True
            break
        theta = trial
    else:
        size = float(np.linalg.norm(
            theta - rows.combine(_squared_parts(problem, theta)[2])))
        if size < best_size:
            best, best_size = theta, size
        theta = best
    certificate = certify_squared(problem, theta)
    return Bunch(n_iter=n_iter, converged=converged, state=None, **certificate)


def certify_squared(problem, theta):
    """How exactly ``theta`` minimises a squared-slack problem.

    The objective is differentiable and 1-strongly convex, so
    ``||theta - theta*|| <= ||grad P(theta)|| = ||theta - Z^T alpha(theta)||``
    (``distance_bound``). The dual is
    ``D(alpha) = a^T alpha - 1/2 ||Z^T alpha||^2 - sum_j alpha_j^2 / (4 c_j)``.
    """
    rows = problem.rows
    _, active, alpha = _squared_parts(problem, theta)
    combined = rows.combine(alpha)
    primal = _squared_objective(problem, theta)
    ridge = np.zeros_like(alpha)
    ridge[active] = alpha[active] ** 2 / (4.0 * problem.upper[active])
    dual = float(problem.target @ alpha) - 0.5 * float(combined @ combined) - float(ridge.sum())
    gap = max(primal - dual, 0.0)
    distance = float(np.linalg.norm(theta - combined))
    relative_gap = gap / max(abs(primal), np.finfo(float).tiny)
    kkt = distance / max(1.0, float(np.linalg.norm(theta)))
    return Bunch(
        theta=np.asarray(theta, dtype=float), alpha=alpha, margins=rows.margins(theta),
        primal=primal, dual=dual, gap=gap, relative_gap=relative_gap,
        kkt_violation=kkt, box_violation=0.0, distance_bound=distance,
        certified=bool(relative_gap <= CERTIFY_RTOL and kkt <= CERTIFY_RTOL),
    )


# ------------------------------------------------------------------ families
class SupportVectorDual:
    """The exact optimum and dual of a liblinear support-vector family.

    A family using it defines ``dual_problems(X, y, sample_weight)`` (one
    problem per output: ``rows``, ``target``, ``lower``, ``upper``),
    ``liblinear_theta(theta)`` (the flat parameters as one liblinear vector
    per output) and ``from_liblinear(thetas)``; ``squared_slack`` tells the
    piecewise-quadratic losses from the piecewise-linear ones.
    """

    squared_slack = False
    #: relative distance between the fitted and the exact coefficients above
    #: which :meth:`exact_solution` explains the difference in ``warning``
    exact_distance_warn = 1e-3

    def exact_solution(self, X, y, sample_weight=None):
        """Exact optimum of the estimator's true objective, its dual and certificate.

        Started from the estimator's own coefficients (see the module
        :mod:`skinfluence.families._svm_dual`); the result for the last data
        passed is cached.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        sample_weight : ndarray of shape (n_samples,), default=None

        Returns
        -------
        solution : Bunch
            ``theta`` (flat, in the family's layout), ``dual_coef`` of shape
            (n_samples, n_outputs) with ``Theta_k = sum_i dual_coef[i, k] x~_i``
            in liblinear's scaling (``x~ = [x, intercept_scaling]``),
            ``support`` (n_samples, n_outputs): the samples whose multipliers
            are not 0, ``relative_gap`` and ``kkt_violation`` (the worst
            output), ``distance_bound`` (of each output's optimum),
            ``certified``, ``n_iter``; ``fitted_distance``: the relative
            distance ``||theta_fit - theta*|| / ||theta*||`` of the estimator's
            coefficients, ``fitted_decision_gap``: the largest change of a
            training decision value between the two, ``fitted_objective_gap``:
            ``(P(theta_fit) - P*) / P*``; ``warning``: a message when the
            fitted model is far from the optimum or the optimum could not be
            certified, else None; ``problems`` and ``solutions`` per output.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.svm import LinearSVC
        >>> from skinfluence.families import family_for
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(60, 3))
        >>> y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
        >>> model = LinearSVC(loss="hinge").fit(X, y)   # default tol
        >>> solution = family_for(model).exact_solution(X, y)
        >>> bool(solution.certified), bool(solution.relative_gap < 1e-12)
        (True, True)
        >>> int(solution.support.sum()) < 60              # the support vectors
        True
        """
        n = X.shape[0]
        sample_weight = np.ones(n) if sample_weight is None else np.asarray(
            sample_weight, dtype=float)
        cached = getattr(self, "_exact_cache", None)
        if cached is not None and cached[0] is X and cached[1] is y and np.array_equal(
                cached[2], sample_weight):
            return cached[3]
        problems = self.dual_problems(X, y, sample_weight)
        fitted = self.liblinear_theta(self.fitted_theta)
        solutions = []
        for problem, start in zip(problems, fitted):
            if self.squared_slack:
                solutions.append(solve_squared(problem, start))
            else:
                solutions.append(solve_box(problem, start))
        solution = self._summarise(problems, solutions, fitted, n)
        self._exact_cache = (X, y, sample_weight, solution)
        return solution

    def _summarise(self, problems, solutions, fitted, n):
        dual_coef = np.zeros((n, len(problems)))
        for k, (problem, sol) in enumerate(zip(problems, solutions)):
            rows = problem.rows
            dual_coef[:, k] = np.bincount(rows.samples, weights=rows.sign * sol.alpha,
                                          minlength=n)
        support = np.zeros((n, len(problems)), dtype=bool)
        for k, (problem, sol) in enumerate(zip(problems, solutions)):
            support[problem.rows.samples[sol.alpha != 0], k] = True
        theta = self.from_liblinear([s.theta for s in solutions])
        exact_objective = sum(_objective(p, s.theta, self.squared_slack)
                              for p, s in zip(problems, solutions))
        fitted_objective = sum(_objective(p, t, self.squared_slack)
                               for p, t in zip(problems, fitted))
        decision_gap = max(float(np.abs(p.rows.margins(s.theta) - p.rows.margins(t)).max(
            initial=0.0)) for p, s, t in zip(problems, solutions, fitted))
        norm = np.sqrt(sum(float(s.theta @ s.theta) for s in solutions))
        distance = np.sqrt(sum(float((s.theta - t) @ (s.theta - t))
                               for s, t in zip(solutions, fitted)))
        result = Bunch(
            theta=theta, dual_coef=dual_coef, support=support,
            relative_gap=max(s.relative_gap for s in solutions),
            kkt_violation=max(s.kkt_violation for s in solutions),
            distance_bound=np.array([s.distance_bound for s in solutions]),
            certified=all(s.certified for s in solutions),
            n_iter=sum(s.n_iter for s in solutions),
            fitted_distance=float(distance / max(norm, np.finfo(float).tiny)),
            fitted_decision_gap=decision_gap,
            fitted_objective_gap=float((fitted_objective - exact_objective)
                                       / max(abs(exact_objective), np.finfo(float).tiny)),
            problems=problems, solutions=solutions, warning=None,
        )
        result.warning = self._exact_warning(result)
        return result

    def _exact_warning(self, result):
        name = self.estimator_name
        if not result.certified:
            return (
                f"The exact optimum of this {name}'s objective could not be certified "
                f"(relative duality gap {result.relative_gap:.2g}, KKT violation "
                f"{result.kkt_violation:.2g}; both should be below {CERTIFY_RTOL:g}). "
                "Exact leave-one-out and the support-vector mask may be inexact; "
                "check for NaN, huge or duplicated features."
            )
        if result.fitted_distance <= self.exact_distance_warn:
            return None
        return (
            f"This {name} is not at the optimum of its objective: its coefficients "
            f"are {result.fitted_distance:.2g} (relative) from the exact solution, its "
            f"decision values on the training rows differ from the exact ones by up to "
            f"{result.fitted_decision_gap:.2g}, and its objective is "
            f"{result.fitted_objective_gap:.2g} (relative) above the minimum. Influence "
            "and loo(method='exact') describe the exact optimum, not these "
            "coefficients: the model's own predictions differ from the model explained "
            "by that much, which can exceed the effect of removing a training row. "
            "Refit with a smaller tol (for example tol=1e-8) or a larger max_iter."
        )


def _objective(problem, theta, squared):
    if squared:
        return _squared_objective(problem, theta)
    slack = problem.target - problem.rows.margins(theta)
    loss = np.where(slack > 0, problem.upper * slack, problem.lower * slack)
    return 0.5 * float(theta @ theta) + float(loss.sum())
