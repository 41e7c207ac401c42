"""Exact leave-one-out by refitting clones of the estimator, in parallel."""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.svm import LinearSVC
from sklearn.utils import check_array
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from .families import family_for

__all__ = ["loo_refit", "tight_clone"]


def tight_clone(estimator):
    """A clone of ``estimator`` whose solver converges far below an LOO step.

    Leave-one-out effects are O(1/n), below default solver tolerances. The
    clone keeps the objective and changes only how precisely it is solved:

    * LogisticRegression (not liblinear): ``solver="newton-cholesky"``,
      ``tol=1e-10``, ``max_iter=1000`` (every solver but liblinear minimises
      the same objective; Newton reaches it reliably).
    * LogisticRegression with liblinear and LinearSVC: ``tol=1e-10``,
      ``max_iter=100_000``. LinearSVC with ``loss="squared_hinge"`` uses the
      primal Newton solver (``dual=False``).
    * LinearRegression, Ridge: unchanged (direct solvers are exact); a fitted
      RidgeCV becomes a Ridge with its chosen ``alpha_``.
    """
    if isinstance(estimator, RidgeCV):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=float(np.ravel(estimator.alpha_)[0]),
                     fit_intercept=estimator.fit_intercept)
    est = clone(estimator)
    if isinstance(est, LogisticRegressionCV):
        params = {k: v for k, v in est.get_params().items()
                  if k in LogisticRegression().get_params()}
        params["C"] = float(np.ravel(estimator.C_)[0])
        params.pop("penalty", None)
        est = LogisticRegression(**{**params, "l1_ratio": 0.0})
    if isinstance(est, LogisticRegression):
        if est.solver == "liblinear":
            est.set_params(tol=1e-10, max_iter=100_000)
        else:
            est.set_params(solver="newton-cholesky", tol=1e-10, max_iter=1000)
    elif isinstance(est, LinearSVC):
        est.set_params(tol=1e-10, max_iter=100_000)
        if est.loss == "squared_hinge":
            est.set_params(dual=False)
    return est


def _fit_and_score(estimator, X, y, sample_weight, rows, X_test, y_test):
    keep = np.ones(X.shape[0], dtype=bool)
    keep[rows] = False
    est = clone(estimator)
    with threadpool_limits(1):
        if sample_weight is None:
            est.fit(X[keep], y[keep])
        else:
            est.fit(X[keep], y[keep], sample_weight=sample_weight[keep])
        family = family_for(est)  # the test loss is the true (unsmoothed) loss
        return family.loss(family.encode_target(y_test), family.decision(X_test))


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
    if train_indices is None:
        train_indices = np.arange(X.shape[0])
    train_indices = np.asarray(train_indices, dtype=int)
    est = tight_clone(estimator)
    args = (X, y, sample_weight)
    base = _fit_and_score(est, *args, [], X_test, y_test)
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose)
    losses = parallel(
        delayed(_fit_and_score)(est, *args, [i], X_test, y_test)
        for i in train_indices
    )
    return np.column_stack(losses) - base[:, None]
