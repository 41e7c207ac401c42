"""Direct solver: a Cholesky factorisation of the Hessian, primal or dual.

The solver sees a *Hessian system*, any object with

* ``n_parameters`` and ``penalty`` (the diagonal ``p`` of shape (d,)),
* ``hessian()``: the dense ``d x d`` matrix ``J^T J + diag(p)``,
* ``hessian_factor()``: the ``r x d`` matrix ``J`` (dense or sparse),
* ``n_factor_rows``: ``r``, and
* ``null_space()``: None or an orthonormal ``(d, s)`` basis of directions along
  which the system is singular by construction (the right-hand sides are
  orthogonal to it), and optionally
* ``factorable``: False when the factor does not exist (negative row
  curvatures, a low-rank correction); the primal form is used then.

It never sees an estimator.
"""

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

__all__ = ["DirectSolver", "SingularHessianError"]


class SingularHessianError(ValueError):
    """The Hessian cannot be factorised: singular or not positive definite."""


_FIX = (
    "This happens without a penalty on collinear features or separable classes, "
    "or when the estimator is far from its optimum. Set damping to a small "
    "positive value (for example damping=1e-3), use a penalised model (Ridge, "
    "C < inf), or remove duplicated or constant features."
)


def _cholesky(matrix, what):
    try:
        return la.cho_factor(matrix, lower=True, check_finite=True)
    except (la.LinAlgError, ValueError) as exc:
        raise SingularHessianError(
            f"The {what} is singular or not positive definite ({exc}). {_FIX}"
        ) from None


class DirectSolver:
    """Apply ``(H + damping I)^{-1}`` by a Cholesky factorisation.

    With ``H = J^T J + diag(p)`` (``J`` of shape ``(r, d)``), the primal form
    factorises the ``d x d`` matrix; the dual form factorises the ``r x r``
    kernel ``I + J P^{-1} J^T`` (Woodbury) and is chosen when ``r < d``.
    Parameters with a zero penalty (free intercepts) are eliminated by a small
    Schur complement, so the dual form also applies to them.

    Parameters
    ----------
    damping : float, default=0.0
        Added to the diagonal of the Hessian.
    form : {"auto", "primal", "dual"}, default="auto"
        "auto" picks the smaller of the two factorisations.
    pinv_rtol : float or None, default=None
        Use a pseudo-inverse (eigendecomposition) that drops eigenvalues below
        ``pinv_rtol`` times the largest, instead of requiring an invertible
        Hessian. Primal form only.

    Attributes
    ----------
    diagnostics_ : dict
        ``form`` ("primal", "dual" or "pseudo-inverse"), ``size`` of the
        factorised matrix and, for the pseudo-inverse, ``rank``.
    """

    def __init__(self, damping=0.0, form="auto", pinv_rtol=None):
        self.damping = damping
        self.form = form
        self.pinv_rtol = pinv_rtol

    def fit(self, system):
        """Factorise the Hessian of ``system``; returns ``self``."""
        d = system.n_parameters
        null = system.null_space()
        diag = np.asarray(system.penalty, dtype=float) + self.damping
        form = self.form
        if self.pinv_rtol is not None:
            form = "pseudo-inverse"
        elif form == "auto" and not getattr(system, "factorable", True):
            form = "primal"
        elif form == "auto":
            r = system.n_factor_rows + (0 if null is None else null.shape[1])
            free = np.count_nonzero(diag <= 0)
            form = "dual" if r + free < d and free < d else "primal"
        if form == "dual":
            self._fit_dual(system.hessian_factor(), diag, null)
            size = self._kernel[0].shape[0]
        else:
            H = system.hessian()
            H[np.diag_indices_from(H)] += self.damping
            if null is not None:
                H += null @ null.T
            if form == "pseudo-inverse":
                self._fit_pinv(H)
            else:
                self._primal = _cholesky(H, "Hessian")
            size = d
        self.form_ = form
        self.diagnostics_ = {"form": form, "size": size}
        if form == "pseudo-inverse":
            self.diagnostics_["rank"] = self._rank
        return self

    # ------------------------------------------------------------ primal
    def _fit_pinv(self, H):
        vals, vecs = la.eigh(H)
        if vals[-1] <= 0:
            raise SingularHessianError(f"The Hessian is zero or negative. {_FIX}")
        keep = vals > self.pinv_rtol * vals[-1]
        if np.any(vals < -1e-8 * vals[-1]):
            raise SingularHessianError(f"The Hessian is indefinite. {_FIX}")
        self._rank = int(keep.sum())
        self._pinv = (vecs[:, keep], 1.0 / vals[keep])

    # -------------------------------------------------------------- dual
    def _fit_dual(self, J, diag, null):
        if null is not None:
            J = sp.vstack([J, sp.csr_matrix(null.T)], format="csr") if sp.issparse(J) \
                else np.vstack([J, null.T])
        penalised = diag > 0
        self._penalised = penalised
        inv_p = 1.0 / diag[penalised]
        self._inv_p = inv_p
        J_a = J[:, penalised]
        J_u = J[:, ~penalised]
        if sp.issparse(J):
            J_a, J_u = J_a.tocsr(), J_u.tocsr()
        self._J_a = J_a
        kernel = J_a @ (J_a.T.multiply(inv_p[:, None]) if sp.issparse(J_a)
                        else J_a.T * inv_p[:, None])
        kernel = kernel.toarray() if sp.issparse(kernel) else np.asarray(kernel)
        kernel[np.diag_indices_from(kernel)] += 1.0
        self._kernel = _cholesky(kernel, "dual kernel I + J P^-1 J^T")
        if penalised.all():
            self._schur = None
            return
        # eliminate the unpenalised parameters: S = H_uu - H_ua H_aa^{-1} H_au
        J_u = J_u.toarray() if sp.issparse(J_u) else np.asarray(J_u)
        H_au = np.asarray(J_a.T @ J_u)
        H_uu = J_u.T @ J_u
        self._H_au = H_au
        self._Ainv_H_au = self._solve_penalised(H_au)
        schur = H_uu - H_au.T @ self._Ainv_H_au
        self._schur = _cholesky(schur, "Hessian (its unpenalised block)")

    def _solve_penalised(self, B):
        """``H_aa^{-1} B`` by Woodbury: ``P^-1 B - P^-1 J^T K^-1 J P^-1 B``."""
        PB = self._inv_p[:, None] * B
        inner = la.cho_solve(self._kernel, np.asarray(self._J_a @ PB), check_finite=False)
        return PB - self._inv_p[:, None] * np.asarray(self._J_a.T @ inner)

    # ------------------------------------------------------------- solve
    def solve(self, B):
        """Return ``H^{-1} B`` for ``B`` of shape (d,) or (d, m)."""
        B = np.asarray(B, dtype=float)
        one = B.ndim == 1
        B = B[:, None] if one else B
        if self.form_ == "primal":
            X = la.cho_solve(self._primal, B, check_finite=False)
        elif self.form_ == "pseudo-inverse":
            vecs, inv_vals = self._pinv
            X = vecs @ (inv_vals[:, None] * (vecs.T @ B))
        elif self._schur is None:
            X = self._solve_penalised(B)
        else:
            a = self._penalised
            B_a, B_u = B[a], B[~a]
            y = la.cho_solve(self._schur, B_u - self._Ainv_H_au.T @ B_a, check_finite=False)
            X = np.empty_like(B)
            X[~a] = y
            X[a] = self._solve_penalised(B_a - self._H_au @ y)
        return X[:, 0] if one else X
