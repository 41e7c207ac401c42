"""Exact leave-one-out by refitting clones of the estimator.

The refits run through joblib only (any backend: loky, threading, dask, ray),
one task per batch of removals, each worker's BLAS and OpenMP pools limited to
one thread, so the numbers are the same for any ``n_jobs`` or backend.
"""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
)
from sklearn.svm import LinearSVC
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
      With an L1 part: saga at ``tol=1e-12``, ``max_iter=1_000_000``, warm
      started. LogisticRegressionCV becomes the LogisticRegression of its
      chosen ``C_`` and ``l1_ratio_``.
    * Lasso, ElasticNet: coordinate descent at ``tol=1e-14``,
      ``max_iter=1_000_000``, cyclic, warm started; LassoCV and ElasticNetCV
      become the ElasticNet of their chosen ``alpha_`` (and ``l1_ratio_``).
    * LogisticRegression with liblinear and LinearSVC: ``tol=1e-10``,
      ``max_iter=100_000``. LinearSVC with ``loss="squared_hinge"`` uses the
      primal Newton solver (``dual=False``); ``loss="hinge"`` keeps the true
      hinge (dual coordinate descent).
    * LinearRegression, Ridge, RidgeClassifier: unchanged (direct solvers are
      exact); a fitted RidgeCV becomes a Ridge with its chosen ``alpha_`` (one
      per target with ``alpha_per_target=True``), a RidgeClassifierCV a
      RidgeClassifier.
    """
    if isinstance(estimator, RidgeCV):
        alpha = np.ravel(np.asarray(estimator.alpha_, dtype=float))  # one per target
        return Ridge(alpha=float(alpha[0]) if alpha.size == 1 else alpha,
                     fit_intercept=estimator.fit_intercept)
    if isinstance(estimator, RidgeClassifierCV):
        return RidgeClassifier(alpha=float(np.ravel(estimator.alpha_)[0]),
                               fit_intercept=estimator.fit_intercept,
                               class_weight=estimator.class_weight)
    if isinstance(estimator, (LassoCV, ElasticNetCV)):  # the chosen alpha (l1_ratio)
        l1_ratio = getattr(estimator, "l1_ratio_", 1.0)
        estimator = ElasticNet(alpha=float(estimator.alpha_), l1_ratio=float(l1_ratio),
                               fit_intercept=estimator.fit_intercept)
    est = clone(estimator)
    if isinstance(est, (Lasso, ElasticNet)):
        # coordinate descent stops on the duality gap relative to ||y||^2 / n
        est.set_params(tol=1e-14, max_iter=1_000_000, selection="cyclic",
                       warm_start=True)
    if isinstance(est, LogisticRegressionCV):
        keep = LogisticRegression().get_params()
        params = {k: v for k, v in est.get_params().items() if k in keep}
        params.pop("penalty", None)
        params.update(C=float(np.ravel(estimator.C_)[0]),
                      l1_ratio=float(np.ravel(estimator.l1_ratio_)[0]))
        est = LogisticRegression(**params)
    if isinstance(est, LogisticRegression):
        if est.solver == "liblinear":
            est.set_params(tol=1e-10, max_iter=100_000)
        elif _has_l1(est):  # only saga minimises it
            est.set_params(tol=1e-12, max_iter=1_000_000, warm_start=True)
        else:
            est.set_params(solver="newton-cholesky", tol=1e-10, max_iter=1000,
                           warm_start=True)
    elif isinstance(est, LinearSVC):
        est.set_params(tol=1e-10, max_iter=100_000)
        if est.loss == "squared_hinge":
            est.set_params(dual=False)
    return est


def _has_l1(estimator):
    """Whether a LogisticRegression's penalty has an L1 part."""
    penalty = getattr(estimator, "penalty", "deprecated")
    if penalty != "deprecated":
        return penalty in ("l1", "elasticnet")
    return bool(estimator.l1_ratio) and estimator.C != np.inf


def _batches(rows, n_jobs):
    """Split rows into about four tasks per worker (order kept)."""
    from joblib import effective_n_jobs

    n_tasks = max(1, min(len(rows), 4 * effective_n_jobs(n_jobs)))
    return [b for b in np.array_split(rows, n_tasks) if len(b)]


# ------------------------------------------------------------------- refits
def _refit_batch(estimator, X, y, sample_weight, removals, X_test, y_test, warm):
    """Refit without each entry of ``removals`` (a row or an array of rows)."""
    out = []
    with threadpool_limits(1):
        for removed in removals:
            keep = np.ones(X.shape[0], dtype=bool)
            keep[removed] = False
            est = clone(estimator)
            if warm is not None:
                est.coef_, est.intercept_ = np.copy(warm[0]), np.copy(warm[1])
            fit_params = {} if sample_weight is None else {
                "sample_weight": sample_weight[keep]}
            est.fit(X[keep], y[keep], **fit_params)
            family = family_for(est)  # the test loss is the true (unsmoothed) loss
            out.append(family.test_quantity(family.design(X_test), y_test))
    return np.stack(out)


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
    family = family_for(full)
    base = family.test_quantity(family.design(X_test), y_test)
    warm = (full.coef_, full.intercept_) if getattr(est, "warm_start", False) else None
    removals = [np.atleast_1d(np.asarray(r, dtype=np.intp)) for r in rows]
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    parts = parallel(
        delayed(_refit_batch)(est, X, y, sample_weight, [removals[i] for i in batch],
                              X_test, y_test, warm)
        for batch in _batches(np.arange(len(removals)), n_jobs)
    )
    return np.moveaxis(np.concatenate(parts), 0, 1) - base[:, None]


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
