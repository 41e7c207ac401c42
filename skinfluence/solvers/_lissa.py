"""LiSSA: a truncated Neumann series for the inverse Hessian (Agarwal et al., 2017).

With ``s`` above the largest eigenvalue of ``H`` (the *scale*), the recursion

.. math::

    p_0 = v, \\qquad p_j = v + \\left(I - \\tfrac{1}{s} (H + \\lambda I)\\right) p_{j-1}

converges to ``s (H + lambda I)^{-1} v``; the estimate is ``p_j / s``. With
``batch_size`` rows per step, ``H p`` is replaced by an unbiased estimate on a
random subset of rows (Koh & Liang, 2017), and ``repeats`` independent runs are
averaged. The solver needs from the Hessian system only ``n_parameters``,
``n_samples``, ``hvp(V, rows=None)`` and ``null_space()``.

The error after ``j`` steps shrinks like ``(1 - lambda_min / s)^j``: LiSSA needs
on the order of ``kappa = lambda_max / lambda_min`` steps, so it suits
well-conditioned (penalised, standardised) problems; prefer ``cg`` otherwise.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._cg import system_operator

__all__ = ["LissaSolver", "LissaDivergenceError", "largest_eigenvalue"]


def _column_norms(A):
    # einsum is several times faster than np.linalg.norm(A, axis=0) on a tall
    # C-ordered block
    return np.sqrt(np.einsum("ij,ij->j", A, A))


class LissaDivergenceError(ValueError):
    """The LiSSA recursion diverged (scale below half the largest eigenvalue)."""


_DIVERGE_FIX = (
    "Use a larger scale (it must exceed the largest eigenvalue of the Hessian; "
    "leave scale=None to estimate it), add damping, or use solver='direct' "
    "or solver='cg'."
)


def largest_eigenvalue(matvec, d, random_state, rows=None, max_iter=100, tol=1e-4):
    """Largest eigenvalue of a symmetric PSD operator by power iteration."""
    rng = check_random_state(random_state)
    v = rng.standard_normal((d, 1))
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(max_iter):
        w = matvec(v) if rows is None else matvec(v, rows=rows)
        new = float(v[:, 0] @ w[:, 0])  # Rayleigh quotient
        norm = np.linalg.norm(w)
        if not np.isfinite(norm) or norm == 0:
            return new
        v = w / norm
        if abs(new - value) <= tol * abs(new):
            value = new
            break
        value = new
    # the Rayleigh quotient of the last iterate is a lower bound; the norm of
    # the last product an upper bound for the dominant component: take the max
    return max(value, float(norm))


class LissaSolver:
    """Apply ``(H + damping I)^{-1}`` by the stochastic LiSSA recursion.

    Parameters
    ----------
    damping : float, default=0.0
        Added to the diagonal of the Hessian.
    scale : float or None, default=None
        The scale ``s``; it must exceed half the largest eigenvalue of the
        (damped) Hessian, and the recursion is fastest just above the largest.
        None estimates the largest eigenvalue by power iteration and uses
        ``safety`` times it.
    depth : int or None, default=None
        Number of recursion steps. None stops each column when the estimated
        remaining error (the last change times ``rho / (1 - rho)``, with
        ``rho`` the observed contraction rate) falls below ``tol`` relative to
        the estimate, or at ``max_depth``.
    repeats : int, default=1
        Independent runs averaged (only useful with ``batch_size``; full-batch
        runs are deterministic and computed once).
    batch_size : int or None, default=None
        Rows per stochastic Hessian-vector product. None uses every row
        (deterministic, and the most accurate per step).
    tol : float, default=1e-5
        Relative accuracy of the stopping rule when ``depth`` is None.
    max_depth : int, default=20000
        Largest number of steps when ``depth`` is None.
    safety : float, default=1.1
        Factor applied to the estimated largest eigenvalue when ``scale`` is None.
    random_state : int, RandomState instance or None, default=None
        Seeds the power iteration and the row sampling.

    Attributes
    ----------
    scale_ : float
        The scale used.
    largest_eigenvalue_ : float or None
        The power-iteration estimate (None when ``scale`` was given).
    diagnostics_ : dict
        After :meth:`solve`: ``scale``, ``largest_eigenvalue`` (when estimated),
        ``depth`` (steps of the longest column), ``converged`` (per column),
        ``change`` (last relative change per column), ``estimated_error``
        (relative, per column) and ``repeats``.
    """

    #: its solves are stochastic and costly: the fit check skips them
    stochastic = True

    def __init__(self, damping=0.0, scale=None, depth=None, repeats=1,
                 batch_size=None, tol=1e-5, max_depth=20000, safety=1.1,
                 random_state=None):
        self.damping = damping
        self.scale = scale
        self.depth = depth
        self.repeats = repeats
        self.batch_size = batch_size
        self.tol = tol
        self.max_depth = max_depth
        self.safety = safety
        self.random_state = random_state

    def fit(self, system):
        """Keep the Hessian-vector product and choose the scale."""
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}.")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be at least 1 or None, got {self.depth}.")
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"scale must be positive or None, got {self.scale}.")
        self.n_parameters_ = d = system.n_parameters
        self._n = n = system.n_samples
        self._matvec, _ = system_operator(system, self.damping)
        self._rng = check_random_state(self.random_state)
        # a fixed seed for the stochastic steps, drawn once: solve() is then
        # deterministic for a fixed random_state whatever the order of calls
        self._seed = self._rng.randint(np.iinfo(np.int32).max)
        self._batch = (
            None if self.batch_size is None or self.batch_size >= n
            else int(self.batch_size)
        )
        self.diagnostics_ = {"form": "lissa", "size": d}
        self.largest_eigenvalue_ = None
        if self.scale is None:
            lam = largest_eigenvalue(self._matvec, d, self._rng)
            if self._batch is not None:
                # a mini-batch operator can exceed the full Hessian's spectrum
                for _ in range(3):
                    rows = self._rng.choice(n, self._batch, replace=False)
                    lam = max(lam, largest_eigenvalue(self._matvec, d, self._rng,
                                                      rows=rows, max_iter=30))
            if not np.isfinite(lam) or lam <= 0:
                raise LissaDivergenceError(
                    f"The estimated largest eigenvalue of the Hessian is {lam}; "
                    "LiSSA needs a positive definite Hessian. Add damping or use "
                    "solver='direct'."
                )
            self.largest_eigenvalue_ = lam
            self.diagnostics_["largest_eigenvalue"] = lam
            self.scale_ = self.safety * lam
        else:
            self.scale_ = float(self.scale)
        self.diagnostics_["scale"] = self.scale_
        return self

    def _run(self, V, rng):
        """One LiSSA run on all columns.

        Returns ``(estimate, steps, change, error, converged)``, per column.
        """
        d, m = V.shape
        s = self.scale_
        fixed = self.depth is not None
        max_depth = int(self.depth) if fixed else int(self.max_depth)
        v_norm = np.linalg.norm(V, axis=0)
        P = V.copy()
        steps = np.zeros(m, dtype=int)
        change = np.zeros(m)
        error = np.zeros(m)
        min_change = np.full(m, np.inf)
        window = 10
        noise_window = 50
        keep_history = 2 * noise_window if self._batch is not None else window + 1
        converged = np.zeros(m, dtype=bool)
        converged[v_norm == 0] = True
        history = []  # changes of the active columns, most recent last
        idx = np.flatnonzero(v_norm > 0)
        out = np.zeros_like(V)
        Vi, Pi = V[:, idx], P[:, idx]
        for j in range(1, max_depth + 1):
            if not idx.size:
                break
            rows = None
            if self._batch is not None:
                rows = rng.choice(self._n, self._batch, replace=False)
            HP = self._matvec(Pi) if rows is None else self._matvec(Pi, rows=rows)
            step = Vi - HP / s  # p_j - p_{j-1}
            Pi = Pi + step
            delta = _column_norms(step)
            p_norm = _column_norms(Pi)
            steps[idx] = j
            if not np.all(np.isfinite(p_norm)) or not np.all(np.isfinite(delta)):
                raise LissaDivergenceError(
                    f"LiSSA produced NaN or infinity after {j} steps with "
                    f"scale={s:.4g}. {_DIVERGE_FIX}"
                )
            rel = delta / np.maximum(p_norm, np.finfo(float).tiny)
            # a converging full-batch recursion never increases its change
            # ||(I - H/s)^j v||; a growing one diverges
            limit = 100.0 if self._batch is None else 1e3
            floor = 1e-10 * p_norm
            grown = (delta > limit * min_change[idx]) & (delta > floor)
            if grown.any() or np.any(delta > 1e8 * v_norm[idx]):
                raise LissaDivergenceError(
                    f"LiSSA diverges: its step grew from {min_change[idx].min():.3g} "
                    f"to {delta.max():.3g} after {j} steps with scale={s:.4g} "
                    f"(the scale must exceed half the largest eigenvalue of the "
                    f"Hessian). {_DIVERGE_FIX}"
                )
            min_change[idx] = np.minimum(min_change[idx], delta)
            change[idx] = rel
            history.append(delta)
            if fixed:
                continue
            # contraction rate over the last few steps and the tail it implies
            back = min(window, len(history) - 1)
            if back < 1:
                continue
            past = history[-1 - back]
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = (delta / past) ** (1.0 / back)
            tail = np.where(rho < 1, rel * rho / (1 - rho), np.inf)
            error[idx] = tail
            done = tail < self.tol
            converged[idx[done]] = True
            stop = done
            if self._batch is not None and len(history) >= 2 * noise_window:
                # mini-batch noise puts a floor under the change: stop once the
                # mean change of the last steps no longer decreases
                recent = np.mean(history[-noise_window:], axis=0)
                before = np.mean(history[-2 * noise_window:-noise_window], axis=0)
                plateau = recent >= 0.99 * before
                # the noise floor: no better accuracy is to be had
                error[idx[plateau & ~done]] = rel[plateau & ~done]
                stop = done | plateau
            if stop.any():
                out[:, idx[stop]] = Pi[:, stop]
                keep = ~stop
                idx, Vi, Pi = idx[keep], Vi[:, keep], Pi[:, keep]
                history = [h[keep] for h in history[-keep_history:]]
            elif len(history) > 2 * keep_history:
                history = history[-keep_history:]
        out[:, idx] = Pi
        if fixed:
            converged[:] = True
        return out / s, steps, change, error, converged

    def solve(self, B):
        """Return an estimate of ``H^{-1} B`` for ``B`` of shape (d,) or (d, m)."""
        B = np.asarray(B, dtype=float)
        one = B.ndim == 1
        B = B[:, None] if one else B
        rng = np.random.RandomState(self._seed)
        repeats = 1 if self._batch is None else int(self.repeats)
        total = np.zeros_like(B)
        converged = np.ones(B.shape[1], dtype=bool)
        depth, change, error = 0, np.zeros(B.shape[1]), np.zeros(B.shape[1])
        for _ in range(repeats):
            est, steps, ch, err, conv = self._run(B, rng)
            total += est
            depth = max(depth, int(steps.max(initial=0)))
            change = np.maximum(change, ch)
            error = np.maximum(error, err)
            converged &= conv
        X = total / repeats
        self.diagnostics_ = {
            "form": "lissa",
            "size": B.shape[0],
            "scale": self.scale_,
            "depth": depth,
            "repeats": repeats,
            "batch_size": self._batch,
            "change": change,
            "estimated_error": error,
            "converged": converged,
        }
        if self.largest_eigenvalue_ is not None:
            self.diagnostics_["largest_eigenvalue"] = self.largest_eigenvalue_
        if not converged.all():
            warnings.warn(
                f"LiSSA did not reach tol={self.tol:g} for "
                f"{np.count_nonzero(~converged)} of {B.shape[1]} right-hand "
                f"sides after {depth} steps (max_depth={self.max_depth}; "
                f"estimated relative error up to {error.max():.2g}). The Hessian "
                "is ill-conditioned for LiSSA or mini-batch noise dominates: "
                "increase max_depth, batch_size or repeats, add damping, or use "
                "solver='cg' or solver='direct'.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return X[:, 0] if one else X
