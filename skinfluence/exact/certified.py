"""Certified leave-one-out: intervals that provably contain the exact effect.

For a removal set ``g`` (one training row or a group) and a test row ``j`` the
target is the exact effect

.. math::

    e_{jg} = L_j(\\theta^*_{-g}) - L_j(\\theta^*),

with ``theta*`` the exact minimiser of the training objective ``F`` and
``theta*_{-g}`` that of ``G_g``, the objective without the rows of ``g`` (their
sample weights set to 0, class weights recomputed as a refit would). Neither
optimum is ever computed exactly. Everything is derived from one reference
point ``theta_r`` (the fitted coefficients, or their Newton polish) and the
factorised Hessian ``H`` there. Notation: ``x~_k = [x_k, 1]``, the row weights
``c_k`` of ``F`` and ``c^g_k`` of ``G_g``, ``P`` the penalty's diagonal, ``D_k``
the curvature of row ``k``, and ``A_g = H - sum_{k in g} D_k (x) x~_k x~_k^T``
(the leave-``g``-out Hessian at ``theta_r`` with the weights of ``F``), applied
through Woodbury.

**1. A candidate and its exact residual.** The Newton point
``theta' = theta_r + Delta``, ``Delta = -A_g^{-1} grad G_g(theta_r)``; the fit's
own residual gradient ``g0 = grad F(theta_r)`` is part of
``grad G_g(theta_r)``, so nothing assumes the fit is exact. Its gradient

.. math::

    g' = \\nabla G_g(\\theta') = g_0 + \\sum_k (c^g_k - c_k)\\,\\ell'_k(\\hat z_k)\\,
         \\tilde x_k + \\sum_k c^g_k\\,[\\ell'_k(\\hat z_k + u_k) - \\ell'_k(\\hat z_k)]
         \\,\\tilde x_k + P\\Delta, \\qquad u_k = \\tilde x_k\\cdot\\Delta,

is evaluated exactly, in the cancellation-free change form (one pass over the
training rows per removal: the cost of one iteration of exact Newton
leave-one-out). Write ``lambda = ||g'||_{A_g^{-1}}`` and ``v = theta*_{-g} -
theta'``, ``t = ||v||_{A_g}``. Since ``grad G_g(theta*_{-g}) = 0``,
``-g' = A_bar v`` with the secant matrix ``A_bar = int_0^1 Hess G_g(theta' + tau
v) dtau``, hence ``v^T A_bar v <= lambda t``.

**2. From residual to radius: a lower bound on the secant.** Let
``alpha_- A_g <= A_bar <= alpha_+ A_g``. Then ``t <= lambda / alpha_-``.

* *Log-loss* (generalised self-concordance, Bach 2010, row by row). For the
  softmax cross-entropy ``|D^3 l(z)[u, u, w]| <= (max_a w_a - min_a w_a)
  D^2 l(z)[u, u]``: the self-concordance constant of a direction ``w`` of the
  logits is its largest difference over class pairs (for two classes, ``|w|``,
  because ``|l'''| <= l''``). Integrating, ``Hess G(theta + d)`` lies between
  ``exp(-m(d))`` and ``exp(m(d))`` times ``Hess G(theta)``, ``m(d) = max_{k not in
  g} max_{a,b} |x~_k . (d_a - d_b)|``. With ``s = m(Delta)`` (exact, from the
  ``u_k``), ``nu = max_{k, a, b} ||x~_k (x) (e_a - e_b)||_{A_g^{-1}}`` (so
  ``m(v) <= nu t``) and ``kappa_-`` the smallest ratio ``c^g_k / c_k`` (1 unless
  class weights are re-balanced):
  ``alpha_- = kappa_- e^{-s} (1 - e^{-nu t}) / (nu t)``,
  ``alpha_+ = kappa_+ e^{s} (e^{nu t} - 1) / (nu t)``. Solving
  ``alpha_-(t) t <= lambda`` gives

  .. math::

      t \\le -\\ln(1 - \\omega) / \\nu, \\qquad \\omega = e^{s}\\nu\\lambda/\\kappa_-,

  finite when ``omega < 1``. No global strong convexity is used: a free
  intercept is fine.
* *Squared hinge* (piecewise quadratic, no third derivative). ``A_bar`` and
  ``A_g`` differ only on rows whose margin may cross the kink between the
  reference point and ``theta*_{-g}``: ``|u_k| + |x~_k . v| >= |1 - y_k z_k|``.
  With the trace bound ``gamma = sum 2 c_k ||x~_k||^2_{A_g^{-1}}`` over the rows
  that may leave the active side, ``alpha_- = kappa_- (1 - gamma)``; over the
  rows that may enter it, ``alpha_+ = kappa_+ (1 + gamma')``. The bounds on
  ``|x~_k . v|`` start from the global bound below and are tightened twice.
* *Squared loss*: ``A_bar = A_g``, ``alpha = 1``: the certificate is the
  residual of the closed form, width 0 up to rounding.

**3. From radius to the test margin.** For a direction ``w`` of the test
row's logits (``x~_j`` for one logit, ``x~_j (x) (e_a - e_y)`` for a class pair),
three intervals contain ``w . theta*_{-g}``, and their intersection is used:

* ``w . theta' +- ||w||_{A_g^{-1}} t`` (Cauchy-Schwarz);
* a certified second step: ``v = -A_g^{-1} g' - (A_bar^{-1} - A_g^{-1}) g'``, so
  ``w . (theta' - A_g^{-1} g') +- ||w||_{A_g^{-1}} eta lambda`` with
  ``eta = max(1/alpha_- - 1, 1 - 1/alpha_+)`` (third order in the step);
  (with ``refine=False`` this interval, and its centre as the estimate, are
  left out: the interval is then certified around ``theta'``, the point of
  ``explain(method="newton")``, which it contains);
* when every parameter is penalised (liblinear, LinearSVC, no intercept):
  ``G_g - theta^T P theta / 2`` is convex, so ``||v||_P <= ||g'||_{P^{-1}}`` and
  ``w . theta' +- ||w||_{P^{-1}} ||g'||_{P^{-1}}`` (valid at any distance).

**4. From margins to losses.** The log-loss and the squared hinge are
monotone in each margin; the softmax cross-entropy ``log(1 + sum_{a != y}
exp(z_a - z_y))`` is increasing in each pair difference; squared error is
convex. The exact image of the box of margins is taken; for the binary
log-loss, bounds on it from one evaluation at the estimate (Taylor with
``0 < l'' <= 1/4``: tangent below, tangent plus ``u^2 / 8`` above), with the
exact ends wherever these would widen a pair by more than 1%.

**5. The baseline.** ``theta*`` gets the same certificate from
``theta_r - H^{-1} g0`` (the empty removal), and ``e_jg`` lies in
``[lo_g - hi_0, hi_g - lo_0]``. A fit far from its optimum (large ``g0``) widens
every interval through this baseline and through ``lambda``.

**6. Refinement.** Steps 1-3 hold at any candidate. Removals whose interval
is wide, infinite or contains 0 while the estimate is not negligible are
refined: Newton steps with ``A_g`` (the exact engine's iteration, each
certified as above; the next iterate is the second step's centre), and, for
removals where these do not contract, damped Newton with the exact
(generalised, for the squared hinge: semismooth Newton) Hessian of ``G_g`` at
each iterate, certified from that point. Every interval remains certified;
the intervals of all iterates are intersected.

What is and is not rigorous: the inequalities hold in exact arithmetic; the
code works in float64, evaluates the residual directly (so errors of the
solves are covered) and widens every margin interval by
``1e-11 (1 + |margin|)`` for the rounding of the residual and the norms. It is
not interval arithmetic.
"""

import copy
import warnings

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from joblib import effective_n_jobs
from scipy.special import logsumexp
from sklearn.utils.parallel import delayed

from .._influence import leverage_blocks
from .._progress import Progress, run_tasks
from .._result import Result
from .._threads import limit_small, one_blas_thread
from ..families import (
    BinaryLogisticFamily,
    LinearSVCFamily,
    MultinomialLogisticFamily,
    SquaredLossFamily,
)
from ..solvers import DirectSolver, SingularHessianError
from .newton import _curvature_root

__all__ = ["CERTIFIED_FAMILIES", "certified_loo", "has_certificate"]

#: families with a certified bound, as the names used in error messages
CERTIFIED_FAMILIES = (
    "LogisticRegression (binary and multinomial)",
    "LinearSVC(loss='squared_hinge')",
    "LinearRegression, Ridge, RidgeCV",
)
#: ``|D^3 l[u, u, w]| <= SELF_CONCORDANCE * range(w) * D^2 l[u, u]`` for the
#: log-loss (two classes: ``|l'''| <= l''``; softmax: the largest difference of
#: ``w`` over the class pairs)
SELF_CONCORDANCE = 1.0
#: the binary log-loss's largest second derivative, ``sup sigma (1 - sigma)``
LOG_LOSS_CURVATURE = 0.25
#: jump of the squared hinge's second derivative at the kink (``l'' = 2``)
KINK_CURVATURE = 2.0
#: relative widening of every margin interval for floating-point rounding
ROUNDING_SLACK = 1e-11
#: removals certified together (fixed blocks: results independent of n_jobs)
_BLOCK = 128
#: training rows of largest leverage whose norms are computed exactly
_TOP_ROWS = 32
#: a pair is negligible when its estimate is below this share of the largest
NEGLIGIBLE = 0.01
#: refinement stops for a removal at this median relative width
_TARGET_WIDTH = 1e-3
#: refinement selects removals above this median relative width
_SELECT_WIDTH = 0.01
_MAX_STEPS = 30
#: refinement iterates until the residual falls below this share of its first
_ITERATE_TOL = 1e-4
#: contraction per step above which the iteration is left to full Newton
_SLOW_RATE = 0.5


def _bound_kind(family):
    if isinstance(family, BinaryLogisticFamily):
        return "binary"
    if isinstance(family, MultinomialLogisticFamily):
        return "multinomial"
    if isinstance(family, LinearSVCFamily) and family.loss_name == "squared_hinge":
        return "squared_hinge"
    if isinstance(family, SquaredLossFamily):
        return "squared"
    return None


def has_certificate(family):
    """Whether :func:`certified_loo` has a bound for this family."""
    return _bound_kind(family) is not None


def _check_family(family):
    kind = _bound_kind(family)
    if kind is None:
        what = type(family).__name__
        if isinstance(family, LinearSVCFamily):
            what = f"LinearSVC(loss={family.loss_name!r})"
        raise ValueError(
            f"No certified bound is available for {what}: the interval needs a "
            "bound on how the objective's curvature changes, derived so far for "
            f"{'; '.join(CERTIFIED_FAMILIES)}. Use loo(method='refit') for the "
            "exact effects of this model.")
    if family.pinv_rtol is not None:
        raise ValueError(
            "No certified interval for a rank-deficient LinearRegression: its "
            "Hessian is singular, so the leave-one-out optimum is not unique. Use "
            "Ridge, or drop the collinear features.")
    return kind


def _rebalances(family):
    return isinstance(getattr(family, "class_weight", None), str)


# --------------------------------------------------------------------- pairs
def _train_pairs(kind, K):
    """Directions of a row's logits whose range drives the curvature change:
    ``(K, n_pairs)``. One logit: itself; softmax: every class difference."""
    if kind != "multinomial":
        return np.eye(K)
    a, b = np.triu_indices(K, 1)
    E = np.zeros((K, a.size))
    E[a, np.arange(a.size)] = 1.0
    E[b, np.arange(a.size)] = -1.0
    return E


def _test_pairs(kind, family, Y):
    """Margins the test loss depends on, ``(m, n_pairs, K)``, and the parameter
    block of each pair. Softmax: ``z_a - z_y`` for ``a != y``; otherwise each
    output's own logit."""
    K = family.n_outputs
    m = Y.shape[0] if Y is not None else 0
    if kind != "multinomial":
        E = np.broadcast_to(np.eye(K), (m, K, K)).copy()
        block = np.arange(K) if kind == "squared_hinge" else np.zeros(K, dtype=int)
        return E, block
    label = np.argmax(Y, axis=1)
    E = np.zeros((m, K - 1, K))
    for j in range(m):
        others = np.delete(np.arange(K), label[j])
        E[j, np.arange(K - 1), others] = 1.0
        E[j, :, label[j]] = -1.0
    return E, np.zeros(K - 1, dtype=int)


def _row_blocks(problem, X_rows, V):
    """``(r, K, K)`` blocks ``(x~_r (x) e_a)^T V[:, (r, l)]`` for the columns
    ``V`` of shape (d, r K) belonging to the rows ``X_rows``."""
    family = problem.family
    K, p = family.n_outputs, family.n_features
    r = X_rows.shape[0]
    V3 = V.reshape(K, family.n_columns, r, K)
    X = X_rows.toarray() if hasattr(X_rows, "toarray") else np.asarray(X_rows)
    out = np.einsum("rf,afrl->ral", X, V3[:, :p])
    if family.fit_intercept:
        out += np.transpose(V3[:, p], (1, 0, 2))
    return out


def _unit_columns(problem, X_rows):
    """``x~_r (x) e_c`` for every row and output, as columns (d, r K)."""
    K = problem.family.n_outputs
    r = X_rows.shape[0]
    return problem.row_gradients(X_rows[np.repeat(np.arange(r), K)],
                                 np.tile(np.eye(K), (r, 1)))


def _penalty_norms(problem, X_rows):
    """``||x~_r (x) e_c||^2_{P^{-1}}``, shape (r, K); inf where P is singular."""
    family = problem.family
    K, p = family.n_outputs, family.n_features
    with np.errstate(divide="ignore"):
        inv = 1.0 / problem.penalty.reshape(K, family.n_columns)
    sq = X_rows.multiply(X_rows) if hasattr(X_rows, "multiply") else X_rows**2
    out = np.asarray(sq @ inv[:, :p].T)
    if family.fit_intercept:
        out = out + inv[:, p]
    return out


# ------------------------------------------------------------ reference point
class _Reference:
    """The objective at a reference point and what every certificate reuses:
    residual gradient, factorised Hessian, leverages and test-row norms."""

    def __init__(self, family, X, y, sample_weight, theta, X_test, Y_test, *,
                 solver=None, leverage=None):
        kind = _check_family(family)
        problem = family.bind(X, y, sample_weight, theta)
        if solver is None:
            solver = DirectSolver().fit(problem)
        K = family.n_outputs
        self.kind, self.family, self.problem = kind, family, problem
        self.solve = solver.solve
        self.gradient = problem.gradient()
        self.G0 = family.training_loss_gradient(problem.Y, problem.Z)
        self.rebalances = _rebalances(family)
        self.blocks = K if not family.full_output_hessian else 1
        M = leverage_blocks(problem, solver) if leverage is None else leverage
        self.row_norm2 = np.einsum("nkk->nk", M).copy()  # ||x~_k (x) e_c||^2_{H^-1}
        pairs = _train_pairs(kind, K)
        q = np.einsum("kp,nkp->np", pairs, np.einsum("nkl,lp->nkp", M, pairs))
        self.train_pairs = pairs
        q_max = np.where(problem.weights.max(axis=1) > 0, q.max(axis=1), 0.0)
        n_top = min(problem.n_samples, _TOP_ROWS + 2 * family.n_columns)
        order = np.argsort(-q_max, kind="stable")
        self.top = order[:n_top]
        self.rest_max = float(q_max[order[n_top:]].max()) if n_top < len(order) else 0.0
        X_top = problem.X[self.top]
        self.top_V = self.solve(_unit_columns(problem, X_top))
        self.top_base = M[self.top]
        self.global_ok = bool(np.all(problem.penalty > 0))
        if kind == "squared_hinge":
            self.row_pnorm = np.sqrt(_penalty_norms(problem, problem.X)) \
                if self.global_ok else None
        # test rows
        self.X_test, self.Y_test = X_test, Y_test
        self.Z_test = family.decision(X_test, theta)
        self.test_V = self.solve(_unit_columns(problem, X_test))
        self.test_base = _row_blocks(problem, X_test, self.test_V)
        self.test_E, self.test_block = _test_pairs(kind, family, Y_test if Y_test
                                                   is not None else self.Z_test)
        if self.global_ok:
            self.test_pnorm = np.sqrt(np.einsum(
                "mpk,mk->mp", self.test_E**2, _penalty_norms(problem, X_test)))

    def block_sum(self, V):
        """Sum of ``V`` (d, b) over each parameter block: (b, blocks)."""
        return V.reshape(self.blocks, -1, V.shape[1]).sum(axis=1).T


class _Removals:
    """Leave-``g``-out objectives of a batch of removal sets: their weights,
    gradient at the reference point and Hessian ``A_g`` by Woodbury."""

    def __init__(self, ref, members):
        problem, family = ref.problem, ref.family
        K = family.n_outputs
        b = len(members)
        sizes = np.array([len(g) for g in members], dtype=np.intp)
        m = max(1, int(sizes.max(initial=0)))
        # rows[position, :size] are the members, padded (mask False) to m
        mask = np.arange(m)[None, :] < sizes[:, None]
        rows = np.zeros((b, m), dtype=np.intp)
        if sizes.sum():
            rows[mask] = np.concatenate(members)
        flat = rows.ravel()
        self.b, self.members, self.rows, self.mask = b, members, flat, mask.ravel()
        self._ref_solve = ref.solve
        # W: columns L_i[:, c] (x) x~_i of the removed rows (zero for padding)
        L = _curvature_root(problem.curvature[flat], K) * self.mask[:, None, None]
        self.L = L
        W = problem.row_gradients(problem.X[np.repeat(flat, K)],
                                  np.transpose(L, (0, 2, 1)).reshape(-1, K))
        HW = ref.solve(W)
        c = m * K
        self.W = W.reshape(-1, b, c).transpose(1, 0, 2)
        self.HW = HW.reshape(-1, b, c).transpose(1, 0, 2)
        S = np.eye(c) - np.einsum("bdc,bde->bce", self.W, self.HW)
        S = 0.5 * (S + np.transpose(S, (0, 2, 1)))
        smallest = np.linalg.eigvalsh(S)[:, 0]
        self.usable = smallest > 1e-10
        self.leverage = np.clip(1.0 - smallest, 0.0, None)
        self.S_inv = np.zeros_like(S)
        self.S_inv[self.usable] = np.linalg.inv(S[self.usable])
        # weights of each leave-g-out objective, and its gradient at theta_r
        weights = problem.weights
        if ref.rebalances:
            self.weights = np.empty(weights.shape + (b,))
            for position, g in enumerate(members):
                sw = problem.sample_weight.copy()
                sw[g] = 0.0
                self.weights[:, :, position] = family.row_weights(problem.y, sw)
            self.fixed = problem.rows_to_parameters(
                (self.weights - weights[:, :, None]) * ref.G0[:, :, None])
        else:
            self.weights = np.repeat(weights[:, :, None], b, axis=2)
            R = (weights * ref.G0)[flat] * self.mask[:, None]
            self.fixed = -problem.row_gradients(problem.X[flat], R).reshape(
                -1, b, m).sum(axis=2)
            removed = self.mask
            self.weights[flat[removed], :, np.repeat(np.arange(b), m)[removed]] = 0.0
        self.keep = self.weights.max(axis=1) > 0  # (n, b)
        self.kappa_lo = self.kappa_hi = np.ones(b)
        if ref.rebalances:  # the extreme ratios c^g_k / c_k of the kept rows
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(weights[:, :, None] > 0,
                                 self.weights / weights[:, :, None], 1.0)
            ratio = np.where(self.keep[:, None, :], ratio, 1.0)
            self.kappa_lo = np.minimum(1.0, ratio.min(axis=(0, 1)))
            self.kappa_hi = np.maximum(1.0, ratio.max(axis=(0, 1)))

    def solve(self, V):
        """``A_g^{-1} V[:, g]`` for each removal (column)."""
        u = self._ref_solve(V)
        Wu = np.einsum("bdc,db->bc", self.W, u)
        return u + np.einsum("bdc,bc->db", self.HW, np.einsum("bce,be->bc", self.S_inv, Wu))

    def blocks(self, ref, X_rows, V, base):
        """``(x~_r (x) I)^T A_g^{-1} (x~_r (x) I)`` per removal: (b, r, K, K)."""
        problem = ref.problem
        K = ref.family.n_outputs
        r = X_rows.shape[0]
        cross = problem.parameters_to_rows(V, problem.X[self.rows])  # (b m, K, rK)
        C = np.einsum("iac,iaq->icq", self.L, cross).reshape(self.b, -1, r, K)
        # two products of two operands each: einsum does three operands in one
        # unblocked loop over every index (13 against 1.9 ms for 124 removals
        # of a three-class model on 54 rows)
        SC = np.einsum("bce,berl->bcrl", self.S_inv, C)
        return base[None] + np.einsum("bcra,bcrl->bral", C, SC)

    def newton_point(self, ref):
        return -self.solve(ref.gradient[:, None] + self.fixed)

    def subset(self, cols):
        """The same objectives for the removals at positions ``cols``."""
        other = copy.copy(self)
        cols = np.asarray(cols, dtype=np.intp)
        m = self.rows.size // self.b
        flat = (cols[:, None] * m + np.arange(m)).ravel()
        other.b, other.members = cols.size, [self.members[c] for c in cols]
        other.rows, other.mask, other.L = self.rows[flat], self.mask[flat], self.L[flat]
        for name in ("W", "HW", "S_inv", "usable", "leverage", "kappa_lo", "kappa_hi"):
            setattr(other, name, getattr(self, name)[cols])
        other.weights = self.weights[:, :, cols]
        other.fixed, other.keep = self.fixed[:, cols], self.keep[:, cols]
        return other


def _removals(ref, members):
    return _Removals(ref, members)


# ---------------------------------------------------------------- the bounds
def _logistic_radius(ref, batch, U, lam):
    """``t``, ``alpha_-``, ``alpha_+`` from generalised self-concordance."""
    keep = batch.keep
    if ref.kind == "binary":
        spread = np.abs(U[:, 0, :])
    else:
        spread = U.max(axis=1) - U.min(axis=1)
    s = SELF_CONCORDANCE * np.where(keep, spread, 0.0).max(axis=0)
    # nu: exact on the rows of largest leverage, a bound for the others
    blocks = batch.blocks(ref, ref.problem.X[ref.top], ref.top_V, ref.top_base)
    E = ref.train_pairs
    pair = np.einsum("kp,brkp->brp", E, np.einsum("brkl,lp->brkp", blocks, E)).max(axis=2)
    pair = np.where(keep[ref.top].T, pair, 0.0).max(axis=1)
    with np.errstate(divide="ignore"):
        rest = ref.rest_max / np.maximum(1.0 - batch.leverage, 0.0)
    nu = SELF_CONCORDANCE * np.sqrt(np.maximum(pair, rest))
    lam = lam[:, 0]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        omega = np.exp(s) * nu * lam / batch.kappa_lo
        t = np.where(nu > 0, -np.log1p(-np.minimum(omega, 1.0)) / nu, omega)
        t = np.where(omega < 1, t, np.inf)
        t = np.where(lam == 0, 0.0, t)
        x = nu * t
        shrink = np.where(x > 0, -np.expm1(-x) / x, 1.0)
        grow = np.where(x > 0, np.expm1(x) / x, 1.0)
        alpha_lo = batch.kappa_lo * np.exp(-s) * shrink
        alpha_hi = batch.kappa_hi * np.exp(s) * grow
    return t[:, None], alpha_lo[:, None], alpha_hi[:, None], s


def _hinge_radius(ref, batch, U, lam, global_norm):
    """``t``, ``alpha_-``, ``alpha_+`` from the rows that may cross the kink."""
    problem = ref.problem
    margin = problem.Y * problem.Z
    kink = np.abs(1.0 - margin)[:, :, None]
    active = (margin < 1.0)[:, :, None]
    keep = batch.keep[:, None, :]
    c2 = KINK_CURVATURE * problem.weights[:, :, None]
    with np.errstate(divide="ignore"):
        norm2 = ref.row_norm2[:, :, None] / np.maximum(1.0 - batch.leverage, 0.0)
    moved = np.abs(U)
    bound = ref.row_pnorm[:, :, None] * global_norm.T[None]  # (n, K, b)
    lam = lam.T  # (K, b)
    # a kept row may cross when |u| + (bound on |x~ . v|) reaches its kink
    room = kink - moved
    cost = c2 * norm2
    leaving, entering = keep & active, keep & ~active
    with np.errstate(invalid="ignore"):
        root = np.sqrt(norm2)
    for _ in range(2):
        with np.errstate(invalid="ignore"):
            gamma = np.where(leaving & (bound >= room), cost, 0.0).sum(axis=0)
            alpha_lo = batch.kappa_lo * (1.0 - gamma)
            t = np.where(alpha_lo > 0, lam / np.where(alpha_lo > 0, alpha_lo, 1.0),
                         np.inf)
            t = np.where(lam == 0, 0.0, t)
            bound = np.minimum(bound, root * t[None])
    with np.errstate(invalid="ignore"):
        gamma_in = np.where(entering & (bound >= room), cost, 0.0).sum(axis=0)
    alpha_hi = batch.kappa_hi * (1.0 + gamma_in)
    s = np.where(batch.keep, moved.max(axis=1), 0.0).max(axis=0)
    return t.T, alpha_lo.T, alpha_hi.T, s


def _semismooth_step(ref, batch, U, grad, step):
    """Semismooth Newton step ``-H_now^{-1} g'`` of each squared-hinge
    objective: its generalised Hessian at the candidate is ``A_g`` plus (minus)
    the rows whose margins entered (left) the active side, applied through
    Woodbury on ``A_g`` (with the weights of ``F``: an inexact Newton step when
    class weights are re-balanced)."""
    problem, family = ref.problem, ref.family
    K = family.n_outputs
    before = problem.Y * problem.Z < 1.0
    after = problem.Y[:, :, None] * (problem.Z[:, :, None] + U) < 1.0
    changed = (after != before[:, :, None]) & batch.keep[:, None, :]
    out = step.copy()
    positions = np.flatnonzero(changed.any(axis=(0, 1)))
    if positions.size == 0:
        return out
    # (position, row, output) of every change, grouped by position; the solves
    # with the factorised Hessian for many positions at once (a few MiB each)
    owner, rows, outputs = np.nonzero(np.transpose(changed[:, :, positions], (2, 0, 1)))
    starts = np.searchsorted(owner, np.arange(positions.size + 1))
    sign = np.where(after[rows, outputs, positions[owner]], 1.0, -1.0)
    per_chunk = max(1, 2**19 // family.n_parameters)
    first = 0
    while first < positions.size:
        last = int(np.searchsorted(starts, starts[first] + per_chunk, side="right")) - 1
        last = min(max(last, first + 1), positions.size)
        span = slice(starts[first], starts[last])
        R = np.zeros((span.stop - span.start, K))
        R[np.arange(R.shape[0]), outputs[span]] = np.sqrt(
            KINK_CURVATURE * problem.weights[rows[span], outputs[span]])
        V_all = problem.row_gradients(problem.X[rows[span]], R)
        U_all = ref.solve(V_all)
        # positions with about as many changes solve together, padded to the
        # same count by the zero column appended here (its rows of the system
        # are identity)
        zero = np.zeros((V_all.shape[0], 1))
        V_all, U_all = np.hstack([V_all, zero]), np.hstack([U_all, zero])
        signs = np.append(sign[span], 1.0)
        counts = np.diff(starts[first : last + 1])
        sizes = 1 << np.ceil(np.log2(counts)).astype(int)
        for size in np.unique(sizes):
            group = np.flatnonzero(sizes == size)
            _woodbury_steps(batch, positions[first + group], starts[first + group]
                            - span.start, counts[group], int(size), V_all, U_all,
                            signs, step, out)
        first = last
    return out


def _woodbury_steps(batch, positions, offsets, counts, size, V_all, U_all, sign,
                    step, out):
    """``out[:, p] = step[:, p] - A V (diag(sign) + V^T A V)^{-1} V^T step[:, p]``
    for the removals ``positions``, whose changed rows are the columns
    ``offsets[j] : offsets[j] + counts[j]`` of ``V_all`` (``U_all`` =
    ``H^{-1} V_all``; ``A = A_g^{-1}`` by Woodbury), padded to ``size`` by
    the last column of ``V_all`` and ``U_all`` (zero; its sign 1)."""
    columns = offsets[:, None] + np.arange(size)[None, :]
    columns = np.where(np.arange(size)[None, :] < counts[:, None], columns,
                       V_all.shape[1] - 1)
    V = V_all[:, columns].transpose(1, 0, 2)  # (P, d, c)
    Uh = U_all[:, columns].transpose(1, 0, 2)
    Wu = np.einsum("pdw,pdc->pwc", batch.W[positions], Uh)
    AV = Uh + np.einsum("pdw,pwc->pdc", batch.HW[positions],
                        np.einsum("pwv,pvc->pwc", batch.S_inv[positions], Wu))
    system = np.einsum("pdc,pde->pce", V, AV)
    system[:, np.arange(size), np.arange(size)] += sign[columns]
    rhs = np.einsum("pdc,dp->pc", V, step[:, positions])
    try:
        coef = np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
        solved = np.ones(positions.size, dtype=bool)
    except np.linalg.LinAlgError:  # one by one; a singular one keeps A_g's step
        coef = np.zeros_like(rhs)
        solved = np.zeros(positions.size, dtype=bool)
        for j in range(positions.size):
            try:
                coef[j] = np.linalg.solve(system[j], rhs[j])
                solved[j] = True
            except np.linalg.LinAlgError:
                pass
    kept = positions[solved]
    out[:, kept] = step[:, kept] - np.einsum("pdc,pc->dp", AV[solved], coef[solved])


def _residual(ref, batch, delta):
    """Exact gradient ``g'`` of each leave-g-out objective at the candidates
    ``theta_r + delta`` (change form), ``A_g^{-1} g'`` and ``lambda`` per
    block; also the training margins' changes ``U`` (n, K, b)."""
    problem, family = ref.problem, ref.family
    U = problem.parameters_to_rows(delta)
    change = family.training_gradient_change(problem.Y[:, :, None],
                                             problem.Z[:, :, None], U)
    grad = (ref.gradient[:, None] + batch.fixed
            + problem.rows_to_parameters(batch.weights * change)
            + problem.penalty[:, None] * delta)
    step = batch.solve(grad)
    lam = np.sqrt(np.clip(ref.block_sum(grad * step), 0.0, None))  # (b, blocks)
    return U, grad, step, lam


def _next_iterate(ref, batch, delta):
    """One Newton step of each leave-g-out objective: with ``A_g`` (the exact
    engine's iteration; for the squared hinge, semismooth Newton). Returns the
    new ``delta`` and the residual ``lambda`` at the old one."""
    U, grad, step, lam = _residual(ref, batch, delta)
    if ref.kind == "squared_hinge":
        step = _semismooth_step(ref, batch, U, grad, step)
    return delta - step, lam.max(axis=1)


def _certify(ref, batch, delta, second_step=True):
    """Certified intervals of the test losses at the exact minimisers of the
    batch's objectives, from the candidates ``theta_r + delta`` (d, b).

    Returns a Bunch with ``estimate``, ``lower``, ``upper`` (m, b): the test
    losses at the second step's centre (with ``second_step=False``: at the
    candidates, whose intervals then use neither the second step's interval
    nor its centre) and the intervals containing them at the optimum;
    ``residual`` (lambda), ``margin_change`` (s) and ``finite``.
    """
    problem, family = ref.problem, ref.family
    U, grad, step, lam = _residual(ref, batch, delta)
    global_norm = None
    if ref.global_ok:
        global_norm = np.sqrt(ref.block_sum(grad**2 / problem.penalty[:, None]))
    if ref.kind == "squared":
        t = lam / batch.kappa_lo[:, None]
        alpha_lo = alpha_hi = np.ones_like(lam)
        s = np.zeros(batch.b)
    elif ref.kind == "squared_hinge":
        t, alpha_lo, alpha_hi, s = _hinge_radius(ref, batch, U, lam, global_norm)
    else:
        t, alpha_lo, alpha_hi, s = _logistic_radius(ref, batch, U, lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(alpha_lo > 0, np.maximum(1.0 / alpha_lo - 1.0,
                                                1.0 - 1.0 / alpha_hi), np.inf)
        eta_lam = np.where(lam > 0, eta * lam, 0.0)
    # the test margins of the candidate and of the second step
    Zc = ref.Z_test[:, :, None] + problem.parameters_to_rows(delta, ref.X_test)
    Zs = Zc - problem.parameters_to_rows(step, ref.X_test)
    E, block = ref.test_E, ref.test_block
    blocks = batch.blocks(ref, ref.X_test, ref.test_V, ref.test_base)
    if family.n_outputs == 1:  # the pair is the logit itself
        norm = np.sqrt(np.clip(blocks[:, :, 0, 0].T, 0, None))[:, None, :]
        centre, second = Zc, Zs
    else:
        quadratic = np.einsum("mpk,bmkp->mpb", E, np.einsum("bmkl,mpl->bmkp", blocks, E))
        norm = np.sqrt(np.clip(quadratic, 0, None))
        centre = np.einsum("mpk,mkb->mpb", E, Zc)
        second = np.einsum("mpk,mkb->mpb", E, Zs)
    with np.errstate(invalid="ignore"):
        half = norm * t.T[block][None]
        half2 = norm * eta_lam.T[block][None]
    half[np.isnan(half)] = 0.0  # 0 * inf: a zero direction or a zero radius
    half2[np.isnan(half2)] = 0.0
    if second_step:
        lo = np.maximum(centre - half, second - half2)
        hi = np.minimum(centre + half, second + half2)
    else:
        lo, hi = centre - half, centre + half
    if global_norm is not None:
        half3 = ref.test_pnorm[:, :, None] * global_norm.T[block][None]
        np.maximum(lo, centre - half3, out=lo)
        np.minimum(hi, centre + half3, out=hi)
    slack = ROUNDING_SLACK * (1.0 + np.abs(centre))
    lo -= slack
    hi += slack
    # the second step's centre lies in every interval; the estimate
    point = Zs if second_step else Zc
    if ref.kind == "binary" and ref.Y_test is not None:
        estimate, loss_lo, loss_hi = _log_loss_bounds(ref, lo, hi, point)
    else:
        estimate = _test_loss(ref, point)
        loss_lo, loss_hi = _loss_bounds(ref, lo, hi)
    finite = batch.usable & np.all(np.isfinite(loss_hi - loss_lo), axis=0)
    unusable = ~batch.usable
    estimate[:, unusable] = np.nan
    loss_lo[:, unusable], loss_hi[:, unusable] = -np.inf, np.inf
    return Result(estimate=estimate, lower=loss_lo, upper=loss_hi,
                 residual=lam.max(axis=1), margin_change=s, finite=finite)


def _test_loss(ref, Z):
    """Test quantity at margins ``Z`` (m, K, b): (m, b)."""
    family, Y = ref.family, ref.Y_test
    if Y is None:
        return Z[:, 0, :].copy()
    if ref.kind == "multinomial":
        m, K, b = Z.shape
        Zf = np.transpose(Z, (0, 2, 1)).reshape(m * b, K)
        return family.loss(np.repeat(Y, b, axis=0), Zf).reshape(m, b)
    return family.output_losses(Y[:, :, None], Z).sum(axis=1)


def _log_loss_bounds(ref, lo, hi, point):
    """Binary log-loss: the loss at the margins ``point`` (m, 1, b) and bounds
    on its range over the box [lo, hi], from the loss and its derivative at
    ``point`` alone.

    With ``l`` and ``l'`` at ``z`` and ``0 < l'' <= 1/4``
    (:data:`LOG_LOSS_CURVATURE`), Taylor's theorem
    gives ``l(z) + l'(z) u <= l(z + u) <= l(z) + l'(z) u + u^2 / 8`` for every
    ``u``; the loss is monotone, so its range over the box lies between the
    smaller lower bound and the larger upper bound at the two ends. Where the
    ``u^2 / 8`` term would widen a pair's interval by more than 1% of the
    first-order width, the ends are evaluated exactly instead.
    """
    Y = ref.Y_test[:, :, None]
    loss = ref.family.output_losses(Y, point)
    slope = ref.family.loss_gradient(Y, point)
    with np.errstate(over="ignore", invalid="ignore"):
        u_lo, u_hi = lo - point, hi - point
        low = loss + np.minimum(slope * u_lo, slope * u_hi)
        half = LOG_LOSS_CURVATURE / 2
        high = loss + np.maximum(slope * u_lo + half * u_lo**2,
                                 slope * u_hi + half * u_hi**2)
        np.maximum(low, 0.0, out=low)
        curved = (half * np.maximum(u_lo**2, u_hi**2)
                  > 0.01 * np.abs(slope) * (hi - lo)) | ~np.isfinite(high - low)
    if curved.any():
        targets = ref.Y_test[np.nonzero(curved)[0]]  # (pairs, 1)
        at_lo = ref.family.output_losses(targets, lo[curved][:, None])
        at_hi = ref.family.output_losses(targets, hi[curved][:, None])
        low[curved] = np.minimum(at_lo, at_hi)[:, 0]
        high[curved] = np.maximum(at_lo, at_hi)[:, 0]
    return loss[:, 0, :], low[:, 0, :], high[:, 0, :]


def _loss_bounds(ref, lo, hi):
    """Exact range of the test quantity over the box of margins [lo, hi]."""
    family, Y = ref.family, ref.Y_test
    if Y is None:
        return lo[:, 0, :], hi[:, 0, :]
    if ref.kind == "multinomial":  # increasing in every z_a - z_y
        return (np.logaddexp(0.0, logsumexp(lo, axis=1)),
                np.logaddexp(0.0, logsumexp(hi, axis=1)))
    with np.errstate(invalid="ignore", over="ignore"):
        at_lo = family.output_losses(Y[:, :, None], lo)
        at_hi = family.output_losses(Y[:, :, None], hi)
    low, high = np.minimum(at_lo, at_hi), np.maximum(at_lo, at_hi)
    if ref.kind == "squared":  # convex: 0 inside
        inside = (lo <= Y[:, :, None]) & (Y[:, :, None] <= hi)
        low = np.where(inside, 0.0, low)
    return low.sum(axis=1), high.sum(axis=1)


# ------------------------------------------------------------------- driver
def _first_pass(ref, members, second_step=True):
    batch = _removals(ref, members)
    return _certify(ref, batch, batch.newton_point(ref), second_step)


def _serial(worker, tasks, *args):
    with one_blas_thread():
        return [worker(*task, *args) for task in tasks]


def _run(worker, tasks, n_jobs, *args, progress=None, sizes=None):
    """``[worker(*task, *args) for task in tasks]``, in contiguous chunks over
    joblib workers of one BLAS thread each (the same arithmetic for any
    ``n_jobs``; the caller sets the threads of a serial run). ``sizes`` (one
    per task) are counted on ``progress`` as tasks finish."""
    sizes = [1] * len(tasks) if sizes is None else sizes
    workers = min(effective_n_jobs(n_jobs), len(tasks))
    if workers <= 1:
        results = []
        for task, size in zip(tasks, sizes):
            results.append(worker(*task, *args))
            if progress is not None:
                progress.update(size)
        return results
    # a few chunks per worker, so that progress is reported while they run
    chunks = np.array_split(np.arange(len(tasks)), min(len(tasks), 4 * workers))
    parts = run_tasks(
        [delayed(_serial)(worker, [tasks[i] for i in chunk], *args) for chunk in chunks],
        [sum(sizes[i] for i in chunk) for chunk in chunks], n_jobs=n_jobs,
        progress=progress)
    return [result for part in parts for result in part]


def _effects(loo_est, loo_lo, loo_hi, base):
    return (loo_est - base.estimate[:, None], loo_lo - base.upper[:, None],
            loo_hi - base.lower[:, None])


def _needs_work(estimate, lower, upper, threshold, width):
    """Which removals need refining, and a priority (larger first).

    A pair's scale is ``max(|estimate|, threshold)``. A removal needs work when
    its interval is infinite, when a pair whose estimate is not negligible has
    no certified sign, when more than half of its pairs (the median) are wider
    than ``width`` relative to their scale, or when some pair's interval is
    wider than ``50 * width`` times its scale (a pair estimated negligible
    might not be). The priority is the largest relative width plus the share
    of pairs wider than ``width`` (counting is 20x cheaper than a median over
    the test rows, and decides the same question).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = upper - lower
        size = np.abs(estimate)
        finite = np.isfinite(spread).all(axis=0)
        unsigned = ((size >= threshold) & (lower <= 0) & (upper >= 0)).any(axis=0)
        np.maximum(size, threshold, out=size)
        relative = np.divide(spread, size, out=spread)
    undefined = np.isnan(relative)  # 0 / 0: nothing to resolve; else inf / inf
    relative[undefined] = np.where(size[undefined] == 0, 0.0, np.inf)
    m = relative.shape[0]
    wide = np.count_nonzero(relative > width, axis=0)
    worst = relative.max(axis=0) if m else np.zeros(relative.shape[1])
    need = ~finite | unsigned | (2 * wide > m) | (worst > 50 * width)
    priority = np.where(~finite, np.inf,
                        worst + wide / max(m, 1) + np.where(unsigned, 1e6, 0.0))
    return need, priority


def _effect_scale(estimate, lower, upper):
    """The largest effect among the pairs whose interval is within 10% of the
    estimate (all pairs when there are none): what 'negligible' refers to."""
    with np.errstate(invalid="ignore"):
        size = np.abs(estimate)
        trusted = upper - lower <= 0.1 * size  # false for inf and NaN
        top = np.max(size, where=trusted, initial=0.0)
        if top > 0:
            return float(top)
        return float(np.max(size, where=np.isfinite(size), initial=0.0))


def _refine_block(ref, members, base, threshold, X, y, sample_weight):
    """Certified Newton iterations for a block of removals (see the module
    docstring, step 6). Returns estimate, lower, upper of the test losses at
    the leave-g-out optima, the steps taken and the final residual."""
    batch = _removals(ref, members)
    b, m = batch.b, ref.Z_test.shape[0]
    delta = batch.newton_point(ref)
    estimate = np.full((m, b), np.nan)
    lower, upper = np.full((m, b), -np.inf), np.full((m, b), np.inf)
    first = np.full(b, np.nan)
    residual, previous = np.full(b, np.inf), np.full(b, np.inf)
    best, start = np.full(b, np.inf), np.zeros_like(delta)
    steps = np.zeros(b, dtype=int)
    done = np.zeros(b, dtype=bool)
    diverged = ~batch.usable
    active = np.flatnonzero(batch.usable)
    # Newton iterations on the training side only; certified at the end
    for iteration in range(_MAX_STEPS + 1):
        if active.size == 0:
            break
        moved, lam = _next_iterate(ref, batch.subset(active), delta[:, active])
        if iteration == 0:
            first[active] = lam
        with np.errstate(invalid="ignore", divide="ignore"):
            bad = ~np.isfinite(lam) | (lam > 1e3 * first[active])
            rate = lam / previous[active]
        converged = lam <= _ITERATE_TOL * first[active]
        # the iteration contracts linearly; too slowly: left to full Newton
        slow = (iteration >= 2) & (rate > _SLOW_RATE) & ~bad & ~converged
        diverged[active] |= bad
        previous[active] = lam
        # where the iterations got well below the first residual, a start
        improved = lam < 0.5 * np.minimum(best[active], first[active])
        best[active[improved]] = lam[improved]
        start[:, active[improved]] = delta[:, active[improved]]
        go = ~bad & ~converged
        delta[:, active[go]] = moved[:, go]
        steps[active[go]] += 1
        active = active[go & ~slow]
    usable = np.flatnonzero(batch.usable & ~diverged)
    if usable.size:
        cert = _certify(ref, batch.subset(usable), delta[:, usable])
        lower[:, usable], upper[:, usable] = cert.lower, cert.upper
        estimate[:, usable], residual[usable] = cert.estimate, cert.residual
        need, _ = _needs_work(*_effects(cert.estimate, cert.lower, cert.upper, base),
                              threshold, _TARGET_WIDTH)
        done[usable] = ~need
    # damped Newton with the exact Hessian of each objective at its iterates,
    # certified together with A_g as the reference, or, where that is still
    # wide, from the optimum's own Hessian
    left = np.flatnonzero(~done)
    if left.size:
        weights, optima = [], np.empty((delta.shape[0], left.size))
        for column, position in enumerate(left):
            weight = sample_weight.copy()
            weight[members[position]] = 0.0
            theta, n_iter = _minimise(ref.family, X, y, weight,
                                      ref.problem.theta + start[:, position])
            steps[position] += n_iter
            weights.append(weight)
            optima[:, column] = theta
        found = _certify(ref, batch.subset(left), optima - ref.problem.theta[:, None])
        need, _ = _needs_work(*_effects(found.estimate, found.lower, found.upper, base),
                              threshold, _TARGET_WIDTH)
        for column in np.flatnonzero(need):
            local = _exact_point(ref, weights[column], X, y, optima[:, column])
            if local is not None:
                for name in ("estimate", "lower", "upper"):
                    found[name][:, column] = local[name][:, 0]
                found.residual[column] = local.residual[0]
        lower[:, left] = np.maximum(lower[:, left], found.lower)
        upper[:, left] = np.minimum(upper[:, left], found.upper)
        estimate[:, left], residual[left] = found.estimate, found.residual
    return Result(estimate=estimate, lower=lower, upper=upper, steps=steps,
                 residual=residual)


def _exact_point(ref, weight, X, y, theta):
    """Certificate at a point of one leave-g-out objective (sample weights
    ``weight``), with the Hessian there as the reference (None if singular)."""
    try:
        local = _Reference(ref.family, X, y, weight, theta, ref.X_test, ref.Y_test)
    except (SingularHessianError, np.linalg.LinAlgError):
        return None
    batch = _removals(local, [np.empty(0, dtype=np.intp)])
    return _certify(local, batch, batch.newton_point(local))


def _minimise(family, X, y, sample_weight, theta, max_iter=100):
    """Damped Newton with the exact (for the squared hinge, generalised:
    semismooth Newton) Hessian at every iterate, to the floor of the Newton
    decrement. Returns the point and the number of steps."""
    problem = family.bind(X, y, sample_weight, theta)
    if (getattr(family, "loss_name", None) == "squared_hinge" and not sp.issparse(X)
            and problem.linear is None and problem.null_space() is None):
        return _minimise_squared_hinge(problem, max_iter)
    null = problem.null_space()
    floor = np.inf
    value = problem.objective()
    for n_iter in range(1, max_iter + 1):
        grad = problem.gradient()
        H = problem.hessian()
        if null is not None:
            H += null @ null.T
        try:
            step = la.cho_solve(la.cho_factor(H), grad, check_finite=False)
        except la.LinAlgError:
            step = la.lstsq(H, grad)[0]
        slope = float(grad @ step)
        near = slope <= 1e3 * np.finfo(float).eps * max(abs(value), 1.0)
        rate = 1.0
        while True:
            trial = problem.moved(rate * step)
            if near:
                break
            trial_value = trial.objective()  # the next iterate's objective
            if rate < 1e-10 or trial_value <= value - 1e-4 * rate * slope:
                break
            rate *= 0.5
        theta, problem = theta - rate * step, trial
        value = trial.objective() if near else trial_value
        decrement = np.sqrt(max(slope, 0.0))
        if near and (decrement == 0 or decrement > 0.25 * floor):
            break
        floor = decrement if near else np.inf
    return theta, n_iter


def _minimise_squared_hinge(problem, max_iter=100):
    """:func:`_minimise` for the squared hinge on dense rows, with the same
    steps and stopping rule, on arrays: the one-vs-rest outputs are
    independent objectives, so the generalised Hessian is one ``P x P``
    block per output, and a trial step moves the margins by a precomputed
    ``x~ . step`` instead of a pass over the rows (on the 124 training rows
    of three-class wine, 0.66-0.79 ms a step for the generic loop, mostly
    Python overhead, against 0.15-0.16 ms; the same points and steps)."""
    family, X = problem.family, problem.X
    K, P, p = family.n_outputs, family.n_columns, family.n_features
    Y, c, penalty = problem.Y, problem.weights, problem.penalty.reshape(K, P)
    Xt = np.hstack([X, np.ones((X.shape[0], 1))]) if P > p else X
    theta = problem.theta.reshape(K, P).copy()

    def objective(Z, Theta):
        slack = np.maximum(1.0 - Y * Z, 0.0)
        return float(np.sum(c * slack**2) + 0.5 * np.sum(penalty * Theta**2))

    Z = Xt @ theta.T
    value = objective(Z, theta)
    floor = np.inf
    for n_iter in range(1, max_iter + 1):
        slack = 1.0 - Y * Z
        active = slack > 0
        curvature = np.where(active, 2.0 * c, 0.0)  # (n, K)
        grad = (Xt.T @ (-curvature * Y * slack)).T + penalty * theta
        # the generalised Hessian of each output, (K, P, P)
        H = (Xt.T[None] * curvature.T[:, None, :]) @ Xt
        H[:, np.arange(P), np.arange(P)] += penalty
        try:
            step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack([la.lstsq(H[k], grad[k])[0] for k in range(K)])
        slope = float(np.sum(grad * step))
        near = slope <= 1e3 * np.finfo(float).eps * max(abs(value), 1.0)
        moves = Xt @ step.T
        rate = 1.0
        while True:
            trial_Z, trial_theta = Z - rate * moves, theta - rate * step
            trial = objective(trial_Z, trial_theta)
            if near or rate < 1e-10 or trial <= value - 1e-4 * rate * slope:
                break
            rate *= 0.5
        Z, theta, value = trial_Z, trial_theta, trial
        decrement = np.sqrt(max(slope, 0.0))
        if near and (decrement == 0 or decrement > 0.25 * floor):
            break
        floor = decrement if near else np.inf
    return theta.ravel(), n_iter


def _undefined_removals(family, y, sample_weight, removals):
    """Removals that leave a class without rows (a refit could not predict it)."""
    if not family.is_classifier:
        return np.zeros(len(removals), dtype=bool)
    labels = family.class_index(y)
    present = sample_weight > 0
    n_classes = len(family.classes)
    counts = np.bincount(labels[present], minlength=n_classes)
    sizes = np.array([len(g) for g in removals])
    members = np.concatenate(removals) if removals else np.empty(0, dtype=np.intp)
    owner = np.repeat(np.arange(len(removals)), sizes)
    kept = present[members]
    taken = np.zeros((len(removals), n_classes))
    np.add.at(taken, (owner[kept], labels[members[kept]]), 1.0)
    return np.any((counts - taken == 0) & (counts > 0), axis=1)


def _budget(max_refine, n):
    if max_refine is None:
        return n
    if isinstance(max_refine, (float, np.floating)):
        return int(np.ceil(max_refine * n))
    return int(max_refine)


def certified_loo(family, X, y, sample_weight, X_test, y_test, removals, *,
                  solver=None, leverage=None, refine=True, max_refine=None,
                  n_jobs=None, cache=None, verbose=0):
    """Intervals that contain the exact effect of each removal on each test loss.

    See the module docstring for the bound. ``removals`` is a list of integer
    index arrays (one row each for leave-one-out). ``solver`` (a fitted
    undamped :class:`~skinfluence.solvers.DirectSolver`) and ``leverage`` (its
    leverage blocks, or a callable returning them) at the fitted coefficients
    are reused when given; ``cache`` (a dict kept with the fitted model) holds
    the polished optimum, its factorised Hessian and leverages between calls
    (they do not depend on the test rows). ``max_refine``: most removals refined, a count or
    (float) a fraction of the removals; None refines every one that needs it.
    ``verbose``: progress of each pass on stderr (see
    :class:`~skinfluence._progress.Progress`).

    Returns
    -------
    result : Bunch
        ``estimate``, ``lower``, ``upper`` (n_test, n_removals); ``refined`` and
        ``certified_sign`` as documented in
        :meth:`~skinfluence.InfluenceExplainer.loo_interval`, with the
        diagnostics ``fit_decrement``, ``polished``, ``baseline_width``,
        ``residual``, ``margin_change``, ``n_steps``, ``undefined`` and
        ``reasons``.
    """
    _check_family(family)
    with limit_small(X.shape[0], family.n_parameters):
        return _certified_loo(family, X, y, sample_weight, X_test, y_test, removals,
                              solver, leverage, refine, max_refine, n_jobs, cache,
                              verbose)


def _polished(family, X, y, sample_weight, cache):
    """The optimum of the training objective, its solver and leverages."""
    if cache is not None and "polished" in cache:
        return cache["polished"]
    theta, _ = _minimise(family, X, y, sample_weight, family.theta)
    problem = family.bind(X, y, sample_weight, theta)
    solver = DirectSolver().fit(problem)
    found = theta, solver, leverage_blocks(problem, solver)
    if cache is not None:
        cache["polished"] = found
    return found


def _certified_loo(family, X, y, sample_weight, X_test, y_test, removals, solver,
                   leverage, refine, max_refine, n_jobs, cache, verbose=0):
    n = X.shape[0]
    sample_weight = (np.ones(n) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    Y_test = None if y_test is None else family.encode_target(y_test)
    fitted = family.bind(X, y, sample_weight)
    if not (isinstance(solver, DirectSolver) and solver.damping == 0
            and solver.pinv_rtol is None):
        solver, leverage = DirectSolver().fit(fitted), None
    g0 = fitted.gradient()
    fit_decrement = float(np.sqrt(max(g0 @ solver.solve(g0), 0.0)))
    polished = bool(refine)
    if polished:
        theta, polished_solver, polished_leverage = _polished(
            family, X, y, sample_weight, cache)
        ref = _Reference(family, X, y, sample_weight, theta, X_test, Y_test,
                         solver=polished_solver, leverage=polished_leverage)
    else:
        if callable(leverage):
            leverage = leverage()
        ref = _Reference(family, X, y, sample_weight, family.theta, X_test, Y_test,
                         solver=solver, leverage=leverage)
    removals = [np.asarray(g, dtype=np.intp) for g in removals]
    n_removals, m = len(removals), X_test.shape[0]
    undefined = _undefined_removals(family, y, sample_weight, removals)
    valid = np.flatnonzero(~undefined)

    base_batch = _removals(ref, [np.empty(0, dtype=np.intp)])
    base = _certify(ref, base_batch, base_batch.newton_point(ref), polished)
    base = Result(estimate=base.estimate[:, 0], lower=base.lower[:, 0],
                 upper=base.upper[:, 0])

    estimate = np.full((m, n_removals), np.nan)
    lower, upper = estimate.copy(), estimate.copy()
    residual = np.full(n_removals, np.nan)
    margin_change = np.full(n_removals, np.nan)
    blocks = [valid[start : start + _BLOCK] for start in range(0, valid.size, _BLOCK)]
    parts = _run(_first_pass, [(ref, [removals[i] for i in block]) for block in blocks],
                 n_jobs, polished, progress=Progress(valid.size, "certified intervals", verbose,
                                           unit="removals"),
                 sizes=[len(block) for block in blocks])
    for block, part in zip(blocks, parts):
        estimate[:, block], lower[:, block], upper[:, block] = _effects(
            part.estimate, part.lower, part.upper, base)
        residual[block], margin_change[block] = part.residual, part.margin_change

    refined = np.zeros(n_removals, dtype=bool)
    n_steps = np.zeros(n_removals, dtype=int)
    budget = _budget(max_refine, n_removals)
    every = slice(None) if valid.size == n_removals else valid  # a view: no copy
    # rounds: refined removals make the scale of the effects trustworthy,
    # which decides what is negligible; a removal refined under a larger
    # threshold is refined again under a smaller one
    refined_at = np.full(n_removals, np.inf)
    settled = False  # the last round's threshold holds: nothing refined since
    for _ in range(3 if refine and valid.size else 0):
        threshold = NEGLIGIBLE * _effect_scale(estimate[:, every], lower[:, every],
                                               upper[:, every])
        need, priority = _needs_work(estimate[:, every], lower[:, every],
                                     upper[:, every], threshold, _SELECT_WIDTH)
        again = need & refined[valid] & (threshold < 0.5 * refined_at[valid])
        new = need & ~refined[valid]
        order = np.argsort(-priority[new], kind="stable")
        room = max(budget - int(refined.sum()), 0)
        chosen = np.sort(np.concatenate([valid[again], valid[new][order][:room]]))
        if chosen.size == 0:
            settled = True
            break
        blocks = [chosen[start : start + _BLOCK]
                  for start in range(0, chosen.size, _BLOCK)]
        parts = _run(_refine_block, [(ref, [removals[i] for i in block])
                                     for block in blocks],
                     n_jobs, base, threshold, X, y, sample_weight,
                     progress=Progress(chosen.size, "certified refinement", verbose,
                                       unit="removals"),
                     sizes=[len(block) for block in blocks])
        for block, part in zip(blocks, parts):
            est, lo, hi = _effects(part.estimate, part.lower, part.upper, base)
            lower[:, block] = np.maximum(lower[:, block], lo)
            upper[:, block] = np.minimum(upper[:, block], hi)
            estimate[:, block] = est
            residual[block] = part.residual
            n_steps[block] += part.steps
        refined[chosen] = True
        refined_at[chosen] = threshold
    if not settled:
        threshold = NEGLIGIBLE * _effect_scale(estimate[:, every], lower[:, every],
                                               upper[:, every]) if valid.size else 0.0

    # every interval contains the exact effect, so moving the estimate into
    # their intersection never moves it away from the truth
    estimate = np.clip(estimate, lower, upper)
    with np.errstate(invalid="ignore"):
        certified_sign = (lower > 0) | (upper < 0)
    baseline_width = base.upper - base.lower
    reasons = _width_reasons(family, ref, fit_decrement, polished, baseline_width,
                             estimate, lower, upper, threshold, margin_change,
                             refined, undefined)
    _warn(removals, undefined, lower, upper)
    return Result(estimate=estimate, lower=lower, upper=upper, refined=refined,
                 certified_sign=certified_sign, fit_decrement=fit_decrement,
                 polished=polished, baseline_width=baseline_width,
                 residual=residual, margin_change=margin_change, n_steps=n_steps,
                 undefined=undefined, reasons=reasons)


def _describe(removals, positions):
    shown = ", ".join(str(removals[p].tolist()) if removals[p].size != 1
                      else str(int(removals[p][0])) for p in positions[:10])
    return shown + (f" and {positions.size - 10} more" if positions.size > 10 else "")


def _warn(removals, undefined, lower, upper):
    bad = np.flatnonzero(undefined)
    if bad.size:
        warnings.warn(
            f"Removing training row(s) {_describe(removals, bad)} leaves a class "
            "without rows: a refit could not predict that class, so these effects "
            "are undefined and returned as NaN.", UserWarning, stacklevel=4)
    with np.errstate(invalid="ignore"):
        infinite = np.flatnonzero(~undefined & ~np.all(np.isfinite(upper - lower),
                                                       axis=0))
    if infinite.size:
        warnings.warn(
            f"No finite certified interval for removal(s) "
            f"{_describe(removals, infinite)}: their removal moves the optimum too "
            "far for the bound (see the result's reasons). Use refine=True with a "
            "larger max_refine, or loo(method='exact') for these rows.",
            UserWarning, stacklevel=4)


def _width_reasons(family, ref, fit_decrement, polished, baseline_width, estimate,
                   lower, upper, threshold, margin_change, refined, undefined):
    """Plain sentences on what makes the intervals as wide as they are."""
    reasons = []
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no finite width
        width = upper - lower
        big = np.abs(estimate) >= threshold  # false for NaN
        width_big = width[big]
        share = np.median(np.broadcast_to(baseline_width[:, None], big.shape)[big]
                          / width_big) if width_big.size else np.nan
        relative = np.median(width_big / np.abs(estimate[big])) \
            if width_big.size else np.nan
    if not polished and fit_decrement > 1e-8:
        reasons.append(
            f"The fit is not at its optimum (Newton decrement {fit_decrement:.2g} "
            "of the training objective at the fitted coefficients); the interval for "
            "the full-data optimum accounts for that residual"
            + (f" and makes up a median {share:.0%} of the width of the "
               "non-negligible pairs" if np.isfinite(share) else "")
            + ". refine=True polishes the fit first (Newton steps), or refit the "
            "estimator with a smaller tol.")
    infinite = ~undefined & ~np.all(np.isfinite(width), axis=0)
    if infinite.any():
        reasons.append(
            f"{int(infinite.sum())} removal(s) move a training row's margin by up to "
            f"{np.nanmax(margin_change[infinite]):.3g} in one Newton step, too far "
            "for the curvature bound to give a finite radius (weak penalty, or rows "
            "of high leverage): refine them (refine=True, larger max_refine).")
    if np.isfinite(relative) and relative > _SELECT_WIDTH:
        weak = getattr(family, "C", None)
        reasons.append(
            f"The median relative width of the non-negligible pairs is "
            f"{relative:.2g}: the Newton point is far from the leave-out optima "
            "(largest margin change of a training row "
            f"{np.nanmax(margin_change):.3g}"
            + (f"; C={weak:g} is a weak penalty" if weak is not None and weak > 1
               else "")
            + (")." if refined.all() else "); refining more removals "
               "(max_refine) narrows them."))
    if not reasons:
        reasons.append(
            f"The intervals are narrow: median relative width "
            f"{relative:.2g} over the pairs whose estimate exceeds "
            f"{NEGLIGIBLE:.0%} of the largest." if np.isfinite(relative) else
            "No pair has a non-negligible effect.")
    return reasons
