"""Matrix-free preconditioned conjugate gradients on a block of right-hand sides.

The solver needs from the Hessian system only

* ``n_parameters``,
* ``hvp(V)``: the Hessian-vector product for ``V`` of shape (d, m),
* ``hessian_diagonal()``: the diagonal of the Hessian (Jacobi preconditioner),
* ``null_space()``: None or an orthonormal ``(d, s)`` basis along which the
  Hessian is singular by construction (right-hand sides are orthogonal to it).

Each Hessian-vector product is one pass over ``X`` (O(nnz) for sparse ``X``);
neither the ``d x d`` Hessian nor an ``n x d`` dense array is ever formed.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

__all__ = ["ConjugateGradientSolver", "system_operator"]


class _SystemOperator:
    """``V -> (H + damping I + N N^T) V`` for a Hessian system (picklable)."""

    def __init__(self, system, damping):
        self.system = system
        self.damping = damping
        self.null = system.null_space()

    def __call__(self, V, rows=None):
        out = self.system.hvp(V) if rows is None else self.system.hvp(V, rows=rows)
        if self.damping:
            out = out + self.damping * V
        if self.null is not None:
            out = out + self.null @ (self.null.T @ V)
        return out


def system_operator(system, damping=0.0):
    """Return ``(matvec, diagonal)`` of ``H + damping I + N N^T``.

    ``N`` is the system's null-space basis (if any): adding ``N N^T`` makes the
    operator positive definite without changing ``H^{-1} b`` for right-hand
    sides orthogonal to ``N``. ``matvec`` is picklable (an explainer with an
    iterative solver can be saved with joblib).
    """
    matvec = _SystemOperator(system, damping)
    null = matvec.null
    diagonal = None
    if hasattr(system, "hessian_diagonal"):
        diagonal = np.asarray(system.hessian_diagonal(), dtype=float) + damping
        if null is not None:
            diagonal = diagonal + np.sum(null**2, axis=1)
    return matvec, diagonal


class ConjugateGradientSolver:
    """Apply ``(H + damping I)^{-1}`` by preconditioned conjugate gradients.

    All right-hand sides are solved at once: every iteration makes one
    Hessian-vector product on the block of still-active columns, each column
    with its own step sizes; a column stops when its relative residual
    ``||b - H x|| / ||b||`` falls below ``tol``.

    Parameters
    ----------
    damping : float, default=0.0
        Added to the diagonal of the Hessian.
    tol : float, default=1e-8
        Relative residual at which a column is converged.
    max_iter : int or None, default=None
        Maximum number of iterations; None means ``10 * d``.
    preconditioner : {"jacobi", None}, default="jacobi"
        "jacobi" divides by the diagonal of the Hessian (computed without
        forming the Hessian).

    Attributes
    ----------
    diagnostics_ : dict
        After :meth:`solve`: ``n_iter`` (iterations of the slowest column),
        ``residual`` (largest relative residual), ``residuals`` and
        ``converged`` (one per column) and ``n_hvp`` (Hessian-vector products,
        counted per column).
    """

    def __init__(self, damping=0.0, tol=1e-8, max_iter=None, preconditioner="jacobi"):
        self.damping = damping
        self.tol = tol
        self.max_iter = max_iter
        self.preconditioner = preconditioner

    def fit(self, system):
        """Keep the system's Hessian-vector product and the preconditioner."""
        if self.preconditioner not in ("jacobi", None):
            raise ValueError(
                f"preconditioner must be 'jacobi' or None, got {self.preconditioner!r}."
            )
        self.n_parameters_ = d = system.n_parameters
        self._matvec, diagonal = system_operator(system, self.damping)
        if self.preconditioner == "jacobi" and diagonal is not None:
            # zero diagonal entries (a feature that is zero everywhere, without
            # a penalty) have zero right-hand side too: keep them at zero
            positive = diagonal > np.finfo(float).tiny * max(diagonal.max(), 1.0)
            self._inv_diag = np.where(positive, 1.0 / np.where(positive, diagonal, 1.0),
                                      0.0)
        else:
            self._inv_diag = np.ones(d)
        self.diagnostics_ = {"form": "cg", "size": d,
                             "preconditioner": self.preconditioner}
        return self

    def solve(self, B):
        """Return ``H^{-1} B`` for ``B`` of shape (d,) or (d, m)."""
        B = np.asarray(B, dtype=float)
        one = B.ndim == 1
        B = B[:, None] if one else B
        d, m = B.shape
        max_iter = 10 * d if self.max_iter is None else int(self.max_iter)
        inv_diag = self._inv_diag[:, None]

        X = np.zeros_like(B)
        b_norm = np.linalg.norm(B, axis=0)
        residual = np.zeros(m)
        active = b_norm > 0
        converged = ~active
        n_iter = np.zeros(m, dtype=int)
        breakdown = np.zeros(m, dtype=bool)

        idx = np.flatnonzero(active)
        R = B[:, idx].copy()
        Zp = inv_diag * R
        P = Zp.copy()
        rz = np.einsum("ij,ij->j", R, Zp)
        n_hvp = 0
        it = 0
        while idx.size and it < max_iter:
            it += 1
            AP = self._matvec(P)
            n_hvp += idx.size
            pAp = np.einsum("ij,ij->j", P, AP)
            ok = pAp > 0
            alpha = np.where(ok, rz / np.where(ok, pAp, 1.0), 0.0)
            X[:, idx] += alpha * P
            R -= alpha * AP
            res = np.sqrt(np.einsum("ij,ij->j", R, R)) / b_norm[idx]
            residual[idx] = res
            n_iter[idx] = it
            if not np.all(np.isfinite(res)):
                raise ValueError(
                    "Conjugate gradients produced NaN or infinity: the Hessian "
                    "is not finite. Check the input for extreme values, add "
                    "damping, or use solver='direct'."
                )
            done = res < self.tol
            breakdown[idx[~ok]] = True  # H not positive definite along P
            converged[idx[done]] = True
            keep = ~(done | ~ok)
            if not keep.all():
                idx, R, P, rz = idx[keep], R[:, keep], P[:, keep], rz[keep]
            if not idx.size:
                break
            Zp = inv_diag * R
            rz_new = np.einsum("ij,ij->j", R, Zp)
            beta = rz_new / rz
            rz = rz_new
            P = Zp + beta * P

        self.diagnostics_ = {
            "form": "cg",
            "size": d,
            "preconditioner": self.preconditioner,
            "n_iter": int(n_iter.max(initial=0)),
            "n_hvp": int(n_hvp),
            "residual": float(residual.max(initial=0.0)),
            "residuals": residual,
            "converged": converged,
        }
        if not converged.all():
            bad = int(np.count_nonzero(~converged))
            why = (
                "the Hessian is not positive definite along a search direction"
                if breakdown.any() else f"max_iter={max_iter} was reached"
            )
            warnings.warn(
                f"Conjugate gradients did not converge for {bad} of {m} "
                f"right-hand sides ({why}; largest relative residual "
                f"{residual.max():.2g} > tol={self.tol:g}). Increase max_iter, "
                "add damping (for example damping=1e-3) to improve the "
                "conditioning, or use solver='direct'.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return X[:, 0] if one else X
