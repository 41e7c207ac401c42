"""Exact leave-one-out by refitting clones of the estimator.

The refits run through joblib only (any backend: loky, threading, dask, ray),
one task per batch of removals, each worker's BLAS and OpenMP pools limited to
one thread, so the numbers are the same for any ``n_jobs`` or backend.
"""

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils import check_array
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from ..families import family_for

__all__ = ["loo_refit", "tight_clone", "refit_loo"]


def tight_clone(estimator):
    """A clone of ``estimator`` whose solver converges far below an LOO step.

    Leave-one-out effects are O(1/n), below default solver tolerances. The
    clone keeps the objective and changes only how precisely it is solved:

    * LogisticRegression (not liblinear): ``solver="newton-cholesky"``,
      ``tol=1e-10``, ``max_iter=1000``, ``warm_start=True`` (every solver but
      liblinear minimises the same objective; Newton reaches it reliably).
      LogisticRegressionCV becomes the LogisticRegression of its chosen ``C_``.
    * LogisticRegression with liblinear, LinearSVC and LinearSVR:
      ``tol=1e-10``, ``max_iter=100_000``. LinearSVC with
      ``loss="squared_hinge"`` (LinearSVR with
      ``loss="squared_epsilon_insensitive"``) uses the primal Newton solver
      (``dual=False``); ``loss="hinge"`` (``"epsilon_insensitive"``) keeps the
      true loss (dual coordinate descent, which shuffles the rows: a
      ``random_state`` of None becomes 0, so refits are reproducible).
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
    elif isinstance(est, (LinearSVC, LinearSVR)):
        est.set_params(tol=1e-10, max_iter=100_000)
        if est.random_state is None:
            est.set_params(random_state=0)
        if est.loss in ("squared_hinge", "squared_epsilon_insensitive"):
            est.set_params(dual=False)
    return est


def _batches(rows, n_jobs):
    """Split rows into about four tasks per worker (order kept)."""
    from joblib import effective_n_jobs

    n_tasks = max(1, min(len(rows), 4 * effective_n_jobs(n_jobs)))
    return [b for b in np.array_split(rows, n_tasks) if len(b)]


# ------------------------------------------------------------------- refits
def _checked_fit(estimator, X, y, sample_weight):
    """Fit ``estimator``; return its family and whether the fit is certified.

    liblinear's support-vector solvers can stall short of the optimum (on
    collinear data even at ``tol=1e-10``), so a LinearSVC or LinearSVR refit
    is polished to the exact optimum of its objective and kept only when its
    KKT conditions and duality gap certify it (``family.exact_solution``).
    Other estimators are returned as fitted.
    """
    fit_params = {} if sample_weight is None else {"sample_weight": sample_weight}
    if not isinstance(estimator, (LinearSVC, LinearSVR)):
        estimator.fit(X, y, **fit_params)
        return family_for(estimator), True  # the test loss is the true loss
    with warnings.catch_warnings():
        # a stall is caught by the certificate below
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y, **fit_params)
    family = family_for(estimator)
    solution = family.exact_solution(X, y, sample_weight)
    return family.with_theta(solution.theta), solution.certified


def _refit_batch(estimator, X, y, sample_weight, removals, X_test, y_test, warm):
    """Refit without each entry of ``removals`` (a row or an array of rows).

    Returns the test quantities (len(removals), n_test) and whether each refit
    is certified (see :func:`_checked_fit`).
    """
    out = np.empty((len(removals), X_test.shape[0]))
    certified = np.ones(len(removals), dtype=bool)
    with threadpool_limits(1):
        for position, removed in enumerate(removals):
            keep = np.ones(X.shape[0], dtype=bool)
            keep[removed] = False
            est = clone(estimator)
            if warm is not None:
                est.coef_, est.intercept_ = warm[0].copy(), warm[1].copy()
            family, certified[position] = _checked_fit(
                est, X[keep], y[keep], None if sample_weight is None else sample_weight[keep])
            out[position] = family.test_quantity(X_test, y_test)
    return out, certified


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
    full = clone(est)
    with threadpool_limits(1):
        family, full_certified = _checked_fit(full, X, y, sample_weight)
    base = family.test_quantity(X_test, y_test)
    warm = (full.coef_, full.intercept_) if getattr(est, "warm_start", False) else None
    removals = [np.atleast_1d(np.asarray(r, dtype=np.intp)) for r in rows]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_refit_batch)(est, X, y, sample_weight, [removals[i] for i in batch],
                              X_test, y_test, warm)
        for batch in _batches(np.arange(len(removals)), n_jobs)
    )
    certified = np.concatenate([ok for _, ok in parts])
    if not (full_certified and certified.all()):
        failed = [removals[i].tolist() if removals[i].size > 1 else int(removals[i][0])
                  for i in np.flatnonzero(~certified)]
        warnings.warn(
            f"{type(estimator).__name__} refits did not converge to a certified "
            f"optimum {'on all rows (the baseline) and ' if not full_certified else ''}"
            f"without {len(failed)} of the removed rows: {failed[:20]}"
            f"{' ...' if len(failed) > 20 else ''}. Their leave-one-out values may be "
            "wrong; for LinearSVC(loss='hinge') use method='exact'.",
            ConvergenceWarning, stacklevel=3)
    return np.vstack([out for out, _ in parts]).T - base[:, None]


def loo_refit(estimator, X, y, X_test, y_test, *, sample_weight=None,
              train_indices=None, n_jobs=None, verbose=0):
    """Actual change of each test loss when each training row is removed.

    Refits a tightly converged clone of ``estimator`` (see :func:`tight_clone`)
    once on all rows, for the baseline, and once without each row of
    ``train_indices``, in parallel with joblib. LinearSVC and LinearSVR refits
    are polished to the exact optimum and certified by its KKT conditions and
    duality gap; a ``ConvergenceWarning`` names the rows whose refit is not. The user's estimator is never
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
