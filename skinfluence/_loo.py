"""Exact leave-one-out: refits of estimator clones, and Newton on the family.

Both engines run through joblib only (any backend: loky, threading, dask,
ray), split the rows into one task per batch, limit each worker's BLAS and
OpenMP pools to one thread, and give the same numbers for any ``n_jobs`` or
backend.
"""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import (
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.svm import LinearSVC
from sklearn.utils import check_array
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from ._influence import leverage_blocks, newton_rho, output_shift_block
from ._newton import newton_minimize
from .families import family_for

__all__ = ["loo_refit", "tight_clone", "refit_loo", "newton_loo"]


def tight_clone(estimator):
    """A clone of ``estimator`` whose solver converges far below an LOO step.

    Leave-one-out effects are O(1/n), below default solver tolerances. The
    clone keeps the objective and changes only how precisely it is solved:

    * LogisticRegression (not liblinear): ``solver="newton-cholesky"``,
      ``tol=1e-10``, ``max_iter=1000``, ``warm_start=True`` (every solver but
      liblinear minimises the same objective; Newton reaches it reliably).
      LogisticRegressionCV becomes the LogisticRegression of its chosen ``C_``.
    * LogisticRegression with liblinear and LinearSVC: ``tol=1e-10``,
      ``max_iter=100_000``. LinearSVC with ``loss="squared_hinge"`` uses the
      primal Newton solver (``dual=False``); ``loss="hinge"`` keeps the true
      hinge (dual coordinate descent).
    * LinearRegression, Ridge: unchanged (direct solvers are exact); a fitted
      RidgeCV becomes a Ridge with its chosen ``alpha_``.
    """
    if isinstance(estimator, RidgeCV):
        return Ridge(alpha=float(np.ravel(estimator.alpha_)[0]),
                     fit_intercept=estimator.fit_intercept)
    est = clone(estimator)
    if isinstance(est, LogisticRegressionCV):
        keep = LogisticRegression().get_params()
        params = {k: v for k, v in est.get_params().items() if k in keep}
        params.pop("penalty", None)
        params.update(C=float(np.ravel(estimator.C_)[0]), l1_ratio=0.0)
        est = LogisticRegression(**params)
    if isinstance(est, LogisticRegression):
        if est.solver == "liblinear":
            est.set_params(tol=1e-10, max_iter=100_000)
        else:
            est.set_params(solver="newton-cholesky", tol=1e-10, max_iter=1000,
                           warm_start=True)
    elif isinstance(est, LinearSVC):
        est.set_params(tol=1e-10, max_iter=100_000)
        if est.loss == "squared_hinge":
            est.set_params(dual=False)
    return est


def _batches(rows, n_jobs):
    """Split rows into about four tasks per worker (order kept)."""
    from joblib import effective_n_jobs

    n_tasks = max(1, min(len(rows), 4 * effective_n_jobs(n_jobs)))
    return [b for b in np.array_split(rows, n_tasks) if len(b)]


def _quantity(family, X_test, y_test, theta=None, shift=0.0):
    """The explained quantity: test loss, or the prediction when y is None.

    ``shift`` is added to the linear predictor.
    """
    Z = family.decision(X_test, theta) + shift
    if y_test is None:
        return Z[:, 0]
    return family.loss(family.encode_target(y_test), Z)


# ------------------------------------------------------------------- refits
def _refit_batch(estimator, X, y, sample_weight, removals, X_test, y_test, warm):
    """Refit without each entry of ``removals`` (a row or an array of rows)."""
    out = np.empty((len(removals), X_test.shape[0]))
    with threadpool_limits(1):
        for position, removed in enumerate(removals):
            keep = np.ones(X.shape[0], dtype=bool)
            keep[removed] = False
            est = clone(estimator)
            if warm is not None:
                est.coef_, est.intercept_ = warm[0].copy(), warm[1].copy()
            fit_params = {} if sample_weight is None else {
                "sample_weight": sample_weight[keep]}
            est.fit(X[keep], y[keep], **fit_params)
            family = family_for(est)  # the test loss is the true (unsmoothed) loss
            out[position] = _quantity(family, X_test, y_test)
    return out


def refit_loo(estimator, X, y, sample_weight, X_test, y_test, rows, *, n_jobs=None,
              verbose=0):
    """Change of the explained quantity when each row is removed, by refits.

    ``estimator`` is cloned with :func:`tight_clone`; the baseline comes from a
    full-data refit with the same settings, and leave-one-out refits that
    support it are warm-started from that full solution. ``y_test`` None
    explains a regressor's prediction. An entry of ``rows`` may also be an
    array of rows removed together (a group). Returns (n_test, len(rows)).
    """
    est = tight_clone(estimator)
    with threadpool_limits(1):
        full = clone(est).fit(X, y, **({} if sample_weight is None else
                                       {"sample_weight": sample_weight}))
    base = _quantity(family_for(full), X_test, y_test)
    warm = (full.coef_, full.intercept_) if getattr(est, "warm_start", False) else None
    removals = [np.atleast_1d(np.asarray(r, dtype=np.intp)) for r in rows]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_refit_batch)(est, X, y, sample_weight, [removals[i] for i in batch],
                              X_test, y_test, warm)
        for batch in _batches(np.arange(len(removals)), n_jobs)
    )
    return np.vstack(parts).T - base[:, None]


# ------------------------------------------------------------------- newton
_NEWTON_BLOCK = 64


def _newton_batch(problem, solver, rows, X_test, y_test, tol, max_iter):
    """Exact leave-one-out optima by Newton steps with the LOO Hessian.

    The Hessian of the leave-one-out objective is taken at the full optimum,
    ``H - D_i (x) x~_i x~_i^T``, and applied by the Woodbury identity through
    the full factorisation; the gradient is recomputed exactly at every step
    (a simplified Newton method: linear convergence at rate O(1/n), one step
    for squared loss). The rows are iterated together as matrix products. Rows that do not converge in ``max_iter`` steps fall back to
    full Newton.
    """
    out = np.empty((len(rows), X_test.shape[0]))
    with threadpool_limits(1):
        thetas = _newton_block(problem, solver, np.asarray(rows), tol, max_iter)
        for position, theta in enumerate(thetas.T):
            out[position] = _quantity(problem.family, X_test, y_test, theta)
    return out


def _newton_block(problem, solver, rows, tol, max_iter):
    """Leave-one-out optima for a block of rows: (n_parameters, len(rows))."""
    family = problem.family
    X, y, sample_weight, Y = problem.X, problem.y, problem.sample_weight, problem.Y
    K, b = family.n_outputs, len(rows)
    # a zero sample weight is the same as deleting the row; class weights are
    # recomputed from the remaining rows as a refit would
    weights = np.empty((X.shape[0], problem.weights.shape[1], b))
    for position, row in enumerate(rows):
        weight = sample_weight.copy()
        weight[row] = 0.0
        weights[:, :, position] = family.row_weights(y, weight)
    # H_{-i} = H - W_i W_i^T with columns W_i[:, c] = L_i[:, c] (x) x~_i
    D = problem.curvature[rows]
    if D.ndim == 2:
        L = np.sqrt(np.clip(D, 0, None))[:, :, None] * np.eye(K)
    else:
        vals, vecs = np.linalg.eigh(D)
        L = vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]
    W = problem.row_gradients(X[np.repeat(rows, K)],
                              np.transpose(L, (0, 2, 1)).reshape(b * K, K))
    HW = solver.solve(W)
    W, HW = (A.reshape(-1, b, K).transpose(1, 0, 2) for A in (W, HW))  # (b, d, K)
    S = np.eye(K) - np.einsum("bdk,bdl->bkl", W, HW)
    usable = np.linalg.det(S) > 1e-12
    S_inv = np.zeros_like(S)
    S_inv[usable] = np.linalg.inv(S[usable])

    theta = np.repeat(problem.theta[:, None], b, axis=1)
    abs_X = abs(X)
    Y3 = Y[:, :, None]
    scale = None
    converged = np.zeros(b, dtype=bool)
    for _ in range(max_iter):
        Z = problem.parameters_to_rows(theta)  # (n, K, b)
        R = weights * family.training_loss_gradient(Y3, Z)
        penalty = problem.penalty[:, None] * theta
        grad = problem.rows_to_parameters(R) + penalty
        if scale is None:  # the relative gradient norm's denominator
            scale = (np.linalg.norm(problem.rows_to_parameters(np.abs(R), abs_X), axis=0)
                     + np.linalg.norm(penalty, axis=0))
        converged = np.linalg.norm(grad, axis=0) < tol * scale
        if converged.all():
            break
        u = solver.solve(grad)
        Wu = np.einsum("bdk,db->bk", W, u)
        step = u + np.einsum("bdk,bkl,bl->db", HW, S_inv, Wu)
        step[:, converged | ~usable] = 0.0
        theta = theta - step
    for position in np.flatnonzero(~(converged & usable)):
        keep = np.arange(X.shape[0]) != rows[position]
        theta[:, position], _ = newton_minimize(
            family, X[keep], y[keep], sample_weight[keep], theta[:, position], tol=tol)
    return theta


def newton_loo(family, X, y, sample_weight, solver, X_test, y_test, rows, *,
               tol=1e-10, max_iter=50, n_jobs=None, verbose=0):
    """Exact leave-one-out by Newton's method on the family's own objective.

    The full optimum is first polished by Newton's method from the fitted
    coefficients; each leave-one-out optimum starts from it. ``solver`` must
    hold the factorised Hessian at the fitted coefficients. Returns
    (n_test, len(rows)).
    """
    sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                     else np.asarray(sample_weight, dtype=float))
    theta, _ = newton_minimize(family, X, y, sample_weight, tol=tol)
    problem = family.bind(X, y, sample_weight, theta)
    base = _quantity(family, X_test, y_test, theta)
    rows = np.asarray(rows)
    if family.quadratic:
        # one Newton step with the leave-one-out Hessian is exact
        # (Sherman-Morrison): all rows at once
        M = leverage_blocks(problem, solver, rows)
        rho = newton_rho(problem.curvature[rows], problem.residuals[rows], M)
        dZ = output_shift_block(problem, solver, rho, None, X_test, rows)
        Z = family.decision(X_test, theta)[:, None, :] + dZ  # (m, n_rows, K)
        m, n_rows, K = Z.shape
        if y_test is None:
            return Z[:, :, 0] - base[:, None]
        Y = np.repeat(family.encode_target(y_test), n_rows, axis=0)
        moved = family.loss(Y, Z.reshape(m * n_rows, K)).reshape(m, n_rows)
        return moved - base[:, None]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_newton_batch)(problem, solver, rows[start : start + _NEWTON_BLOCK],
                               X_test, y_test, tol, max_iter)
        # fixed blocks: the same arithmetic whatever n_jobs or the backend
        for start in range(0, len(rows), _NEWTON_BLOCK)
    )
    return np.vstack(parts).T - base[:, None]


def loo_refit(estimator, X, y, X_test, y_test, *, sample_weight=None,
              train_indices=None, n_jobs=None, verbose=0):
    """Actual change of each test loss when each training row is removed.

    Refits a tightly converged clone of ``estimator`` (see :func:`tight_clone`)
    once on all rows, for the baseline, and once without each row of
    ``train_indices``, in parallel with joblib. The user's estimator is never
    touched. Same sign and units as :meth:`InfluenceExplainer.explain`.

    Parameters
    ----------
    estimator : estimator
        A supported linear model (fitted or not; only its parameters are used).
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    X_test : {ndarray, sparse matrix} of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
    sample_weight : ndarray of shape (n_samples,), default=None
    train_indices : array-like of int, default=None
        Rows to remove one at a time; all rows when None.
    n_jobs : int, default=None
        Number of joblib workers (each limited to one BLAS thread).
    verbose : int, default=0
        joblib verbosity.

    Returns
    -------
    loo : ndarray of shape (n_test, len(train_indices))
        ``L(z_j; theta_{-i}) - L(z_j; theta)`` with both sides refitted.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import loo_refit
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    >>> loo_refit(Ridge(), X, y, X[:2], y[:2], train_indices=[0, 1]).shape
    (2, 2)
    """
    X = check_array(X, accept_sparse="csr", dtype=np.float64)
    X_test = check_array(X_test, accept_sparse="csr", dtype=np.float64)
    y, y_test = np.asarray(y), np.asarray(y_test)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float)
    rows = np.arange(X.shape[0]) if train_indices is None else np.asarray(train_indices)
    return refit_loo(estimator, X, y, sample_weight, X_test, y_test, rows,
                     n_jobs=n_jobs, verbose=verbose)
