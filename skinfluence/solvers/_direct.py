"""Direct solver: a Cholesky factorisation of the Hessian, primal or dual, or a
QR factorisation of its square-root factor when the Hessian is ill-conditioned.

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

Accuracy: Cholesky of ``H = J^T J + P`` loses about ``cond(H) * eps`` relative
accuracy, and ``cond(H) = cond(J)^2`` (the normal equations square the
condition number). The primal form therefore estimates the condition number of
the equilibrated Hessian from its Cholesky factor (LAPACK ``dpocon``) and, above
:data:`CHOLESKY_COND_LIMIT`, factorises the column-scaled stacked factor
``[J; sqrt(P)]`` by Householder QR instead (as R's ``lm`` does), whose
accuracy is governed by ``cond(J)``. The rows of its ``Q`` give the leverages
of the factor rows exactly (``factor_leverage``).
"""

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from scipy.linalg import lapack

from .._rows import is_dask
from .._threads import small_product

__all__ = ["DirectSolver", "SingularHessianError", "CHOLESKY_COND_LIMIT"]

#: condition number of the equilibrated Hessian above which the primal form
#: switches from Cholesky to QR: Cholesky then keeps about 12 digits
CHOLESKY_COND_LIMIT = 1e4
#: largest stacked factor (bytes) the QR form will build; beyond it the primal
#: form keeps Cholesky and reports the condition number
QR_MAX_BYTES = 2**30


class SingularHessianError(ValueError):
    """The Hessian cannot be factorised: singular or not positive definite."""


_FIX = (
    "This happens without a penalty on collinear features or separable classes, "
    "or when the estimator is far from its optimum. Remove duplicated or "
    "constant features, use a penalised model (Ridge, C < inf), or set damping "
    "to a small positive value (for example damping=1e-3): damping adds to the "
    "Hessian's diagonal, so the influence then describes a slightly more "
    "penalised model and shrinks along the poorly determined directions."
)


def _qr_fits(system):
    """Whether the stacked dense factor of ``system`` is small enough for QR
    (always, for rows held by dask: that factor is never collected)."""
    if getattr(system, "distributed_rows", False):
        return True
    return 8 * (system.n_factor_rows + system.n_parameters) * system.n_parameters \
        <= QR_MAX_BYTES


def _equilibrated_cholesky(H):
    """Cholesky of ``S H S`` (``S`` the inverse root of the diagonal) and the
    estimated condition number of ``S H S``; ``(None, None)`` if it fails."""
    diagonal = np.diag(H).copy()
    if not np.all(np.isfinite(H)) or np.any(diagonal <= 0):
        return (None, None) if not np.all(np.isfinite(H)) else _plain_cholesky(H)
    scale = 1.0 / np.sqrt(diagonal)
    Hs = H * scale[:, None]
    Hs *= scale[None, :]
    anorm = np.abs(Hs).sum(axis=0).max()
    try:  # Hs is a new array: factorised in place
        factor = la.cho_factor(Hs, lower=True, overwrite_a=True, check_finite=False)
    except la.LinAlgError:
        return None, None
    rcond, info = lapack.dpocon(factor[0], anorm, uplo="L")
    condition = 1.0 / rcond if info == 0 and rcond > 0 else np.inf
    return (factor, scale), condition


def _plain_cholesky(H):
    try:
        factor = la.cho_factor(H, lower=True, check_finite=False)
    except la.LinAlgError:
        return None, None
    return (factor, np.ones(H.shape[0])), np.inf


def _cholesky(matrix, what):
    try:
        return la.cho_factor(matrix, lower=True, check_finite=True)
    except (la.LinAlgError, ValueError) as exc:
        raise SingularHessianError(
            f"The {what} is singular or not positive definite ({exc}). {_FIX}"
        ) from None


# Dense or dask: the orthogonal factorisation reads the stacked factor through
# these, so that dask rows get dask's tall-skinny QR (one tree of block QRs)
# and only d x d results and per-row leverages are computed.

def _stack(J, rows):
    if not rows:
        return J
    extra = np.vstack(rows)
    if not is_dask(J):
        return np.vstack([J, extra])
    import dask.array as da

    chunks = J.chunks[0][:-1] + (J.chunks[0][-1] + extra.shape[0],)
    return da.concatenate([J, da.from_array(extra)]).rechunk({0: chunks, 1: -1})


def _compute(x):
    return x.compute() if is_dask(x) else np.asarray(x)


def _column_norms(A):
    return np.sqrt((A**2).sum(axis=0))


def _row_squares(Q):
    return (Q**2).sum(axis=1)


def _qr(A):
    """``(Q, R)``: Q lazy for dask input, R always computed."""
    if not is_dask(A):
        return la.qr(A, mode="economic", check_finite=False)
    import dask.array as da

    Q, R = da.linalg.tsqr(A.rechunk({1: -1}))
    return Q, R.compute()


def _svd(A):
    if not is_dask(A):
        return la.svd(A, full_matrices=False, check_finite=False)
    import dask
    import dask.array as da

    U, sv, Vt = da.linalg.svd(A.rechunk({1: -1}))
    sv, Vt = dask.compute(sv, Vt)
    return U, sv, Vt


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
    form : {"auto", "primal", "dual", "qr"}, default="auto"
        "auto" picks the smaller of the primal and dual factorisations, and the
        primal one switches to "qr" when the Hessian is ill-conditioned.
        "qr" always factorises the stacked factor ``[J; sqrt(P)]`` (dense).
    pinv_rtol : float or None, default=None
        Use a pseudo-inverse (eigendecomposition) that drops eigenvalues below
        ``pinv_rtol`` times the largest, instead of requiring an invertible
        Hessian. Primal form only.

    Attributes
    ----------
    diagnostics_ : dict
        ``form`` ("primal", "dual", "qr" or "pseudo-inverse"), ``size`` of the
        factorised matrix, ``condition`` (estimated condition number of the
        equilibrated Hessian, primal and qr forms) and, for the
        pseudo-inverse, ``rank``.
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
        condition = None
        for name in ("_orthogonal", "_factor_leverage", "_pinv", "_primal"):
            self.__dict__.pop(name, None)
        if form == "dual":
            self._fit_dual(system.hessian_factor(), diag, null)
            size = self._kernel[0].shape[0]
        elif form == "qr":
            condition = self._fit_orthogonal(system, diag, null)
            size = d
        elif form == "pseudo-inverse" and _qr_fits(system):
            # singular values of the factor: the square roots of the eigenvalues
            condition = self._fit_orthogonal(system, diag, null,
                                             sv_rtol=np.sqrt(self.pinv_rtol))
            size = d
        else:
            H = system.hessian()
            H[np.diag_indices_from(H)] += self.damping
            if null is not None:
                H += null @ null.T
            if form == "pseudo-inverse":
                self._fit_pinv(H)
            else:
                self._primal, condition = _equilibrated_cholesky(H)
                if (condition is None or condition > CHOLESKY_COND_LIMIT) and \
                        self.form == "auto" and _qr_fits(system):
                    form = "qr"
                    condition = self._fit_orthogonal(system, diag, null)
                elif condition is None:
                    raise SingularHessianError(
                        f"The Hessian is singular or not positive definite. {_FIX}")
            size = d
        self.form_ = form
        self.diagnostics_ = {"form": form, "size": size}
        if condition is not None:
            self.diagnostics_["condition"] = condition
        if form == "pseudo-inverse":
            self.diagnostics_["rank"] = self._rank
        return self

    # ------------------------------------------------------------ qr / svd
    def _fit_orthogonal(self, system, diag, null, sv_rtol=None):
        """Factorise the stacked factor ``A = [J; sqrt(P); N^T]`` without
        forming ``A^T A``; returns the condition number of the Hessian.

        The intercept columns (``system.intercept_columns()``) come first:
        ``A_U = Q_U R_U`` and every other column is orthogonalised against
        ``Q_U`` on its raw values, twice (centring, with reorthogonalisation),
        ``A = [Q_U, F] T`` with ``T = [[R_U, C], [0, I]]``. The centred rest
        ``F`` is factorised by Householder QR of its unit-norm columns or, with
        ``sv_rtol`` (a pseudo-inverse), by an SVD that drops singular values
        below ``sv_rtol`` times the largest: the minimum-norm solution over the
        non-intercept parameters with the intercepts free, as scikit-learn's
        ``LinearRegression`` computes it on centred data.
        """
        J = system.hessian_factor()
        lazy = is_dask(J)  # dask rows: tall-skinny QR, the factor never collected
        if not lazy:
            J = J.toarray() if sp.issparse(J) else np.asarray(J, dtype=float)
        n_rows, d = J.shape
        rows = []
        penalised = np.flatnonzero(diag > 0)
        if penalised.size:
            P = np.zeros((penalised.size, d))
            P[np.arange(penalised.size), penalised] = np.sqrt(diag[penalised])
            rows.append(P)
        if null is not None:
            rows.append(null.T)
        first = np.asarray(getattr(system, "intercept_columns", lambda: [])(),
                           dtype=np.intp)
        order = np.concatenate([first, np.setdiff1d(np.arange(d), first)])
        A = _stack(J, rows)[:, order]
        absent = _compute(_column_norms(A)) == 0
        if np.any(absent) and sv_rtol is None:
            raise SingularHessianError(
                f"The Hessian is singular: parameters {np.sort(order[absent])} do not "
                f"enter the objective. {_FIX}")
        k = first.size
        T = np.eye(d)
        rest = A[:, k:]
        leverage = 0.0
        if k:
            # exact data stay exact when centred on their raw values
            Q_first, T[:k, :k] = _qr(A[:, :k])
            for _ in range(2):
                coupling = _compute(Q_first.T @ rest)
                rest = rest - Q_first @ coupling
                T[:k, k:] += coupling
            leverage = _row_squares(Q_first[:n_rows])
        if sv_rtol is None:
            norms = _compute(_column_norms(rest))
            norms[norms == 0] = 1.0
            Q_rest, R_rest = _qr(rest / norms)
            T[k:, k:] = R_rest * norms  # T is now the R of A's QR
            leverage = _compute(leverage + _row_squares(Q_rest[:n_rows]))
            diagonal = np.abs(np.diag(T))
            if diagonal.min() <= np.finfo(float).eps * d * diagonal.max():
                raise SingularHessianError(
                    "The Hessian is singular: its square-root factor is rank "
                    f"deficient (collinear or constant features). {_FIX}")
            self._orthogonal = ("qr", T, order, None)
            rcond = lapack.dtrcon(T / np.linalg.norm(T, axis=0), norm="1", uplo="U")[0]
            condition = 1.0 / max(rcond, np.finfo(float).tiny) ** 2
        else:
            U, sv, Vt = _svd(rest)
            keep = sv > sv_rtol * sv[0] if sv.size and sv[0] > 0 else np.zeros(0, bool)
            self._rank = int(k + keep.sum())
            U, sv, Vt = U[:, keep], sv[keep], Vt[keep]
            leverage = _compute(leverage + _row_squares(U[:n_rows]))
            self._orthogonal = ("svd", T, order, (Vt.T, 1.0 / sv**2))
            condition = (sv[0] / sv[-1]) ** 2 if sv.size else np.inf
        self._factor_leverage = leverage
        return condition

    def _solve_orthogonal(self, B):
        kind, T, order, svd = self._orthogonal
        Y = la.solve_triangular(T, B[order], trans="T", check_finite=False)
        if kind == "qr":
            Z = la.solve_triangular(T, Y, check_finite=False)
        else:
            k = T.shape[0] - svd[0].shape[0]
            V, inv_sq = svd
            Y[k:] = V @ (inv_sq[:, None] * (V.T @ Y[k:]))
            Z = la.solve_triangular(T, Y, check_finite=False)
        X = np.empty_like(B)
        X[order] = Z
        return X

    def factor_leverage(self):
        """Leverages ``J_k H^{-1} J_k^T`` of the rows of ``J``, or None.

        Exact squared row norms of the orthogonal factor (qr and
        pseudo-inverse forms on dense factors); other forms return None.
        """
        return getattr(self, "_factor_leverage", None) \
            if self.form_ in ("qr", "pseudo-inverse") and hasattr(self, "_orthogonal") \
            else None

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
        with small_product(B.shape[0] ** 2 * B.shape[1]):
            X = self._solve(B)
        return X[:, 0] if one else X

    def _solve(self, B):
        if self.form_ == "primal":
            factor, scale = self._primal
            X = scale[:, None] * la.cho_solve(factor, scale[:, None] * B,
                                              check_finite=False)
        elif hasattr(self, "_orthogonal"):
            X = self._solve_orthogonal(B)
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
        return X
