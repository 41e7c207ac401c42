"""Exact leave-one-out by refitting clones of the estimator.

The refits run through joblib only (any backend: loky, threading, dask, ray),
one task per batch of removals, each worker's BLAS and OpenMP pools limited to
one thread, so the numbers are the same for any ``n_jobs`` or backend.
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    GammaRegressor,
    HuberRegressor,
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LogisticRegression,
    LogisticRegressionCV,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
    TweedieRegressor,
)
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils import Bunch, _safe_indexing, check_array
from sklearn.utils.validation import _num_samples
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from ..families import family_for, has_family
from .newton import polish_optimum
from .polish import POLISHERS
from .._progress import Progress, run_tasks

__all__ = ["loo_refit", "tight_clone", "refit_loo", "refit_pipeline_loo"]


def tight_clone(estimator, tol=1e-10):
    """A clone of ``estimator`` whose solver converges far below an LOO step.

    Leave-one-out effects are O(1/n), below default solver tolerances. The
    clone keeps the objective and changes only how precisely it is solved:

    * LogisticRegression (not liblinear): ``solver="newton-cholesky"``,
      ``tol=tol``, ``max_iter=1000``, ``warm_start=True`` (every solver but
      liblinear minimises the same objective; Newton reaches it reliably).
      LogisticRegressionCV becomes the LogisticRegression of its chosen ``C_``
      (and ``l1_ratio_``). With an L1 part: saga at ``tol=1e-12``,
      ``max_iter=1_000_000``, warm started.
    * Lasso, ElasticNet: coordinate descent at ``tol=1e-14``,
      ``max_iter=1_000_000``, cyclic, warm started; LassoCV and ElasticNetCV
      become the ElasticNet of their chosen ``alpha_`` (and ``l1_ratio_``).
    * LogisticRegression with liblinear, LinearSVC and LinearSVR: ``tol=tol``,
      ``max_iter=100_000``. LinearSVC with ``loss="squared_hinge"`` (LinearSVR
      with ``loss="squared_epsilon_insensitive"``) uses the primal Newton
      solver (``dual=False``); ``loss="hinge"`` (``"epsilon_insensitive"``)
      keeps the true loss (dual coordinate descent, which shuffles the rows).
      Their refits are polished to the exact optimum and certified by its KKT
      conditions and duality gap (see :func:`refit_loo`).
    * Ridge: the SVD solver (exact, and accurate on ill-conditioned data; the
      refit engine uses conjugate gradients at ``tol=1e-12`` for sparse
      data); a fitted RidgeCV becomes a Ridge with its chosen ``alpha_`` (one
      per target with ``alpha_per_target=True``), a RidgeClassifierCV a
      RidgeClassifier. LinearRegression and RidgeClassifier are unchanged
      (direct solvers).
    * PoissonRegressor, GammaRegressor, TweedieRegressor:
      ``solver="newton-cholesky"``, ``tol=1e-12``, ``max_iter=100``,
      ``warm_start=True``.
    * HuberRegressor: ``tol=1e-12``, ``max_iter=100_000`` (L-BFGS-B, whose
      relative function tolerance of about 2e-9 is fixed by scikit-learn).
    * SGDClassifier, SGDRegressor: unchanged; a refit is another run of
      stochastic gradient descent, not the optimum of its objective (see
      ``loo(method="exact")``).
    * Every estimator with a ``random_state`` left at None gets
      ``random_state=0``, so refits are reproducible (liblinear shuffles).

    The refit engine then polishes each refit of a smooth model to the floor
    of its Newton decrement (see :func:`refit_loo`), so ``tol`` only needs to
    bring the solver close.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import tight_clone
    >>> clone = tight_clone(LogisticRegression(C=0.5))
    >>> clone.C, clone.solver, clone.tol
    (0.5, 'newton-cholesky', 1e-10)
    """
    if isinstance(estimator, RidgeCV):
        alpha = np.ravel(np.asarray(estimator.alpha_, dtype=float))  # one per target
        return Ridge(alpha=float(alpha[0]) if alpha.size == 1 else alpha,
                     fit_intercept=estimator.fit_intercept, solver="svd")
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
            est.set_params(tol=tol, max_iter=100_000)
        elif _has_l1(est):  # only saga minimises it
            est.set_params(tol=1e-12, max_iter=1_000_000, warm_start=True)
        else:
            est.set_params(solver="newton-cholesky", tol=tol, max_iter=1000,
                           warm_start=True)
    elif isinstance(est, (PoissonRegressor, GammaRegressor, TweedieRegressor)):
        est.set_params(solver="newton-cholesky", tol=1e-12, max_iter=100,
                       warm_start=True)
    elif isinstance(est, HuberRegressor):
        est.set_params(tol=1e-12, max_iter=100_000, warm_start=False)
    elif isinstance(est, (LinearSVC, LinearSVR)):
        est.set_params(tol=tol, max_iter=100_000)
        if est.loss in ("squared_hinge", "squared_epsilon_insensitive"):
            est.set_params(dual=False)
    elif isinstance(est, Ridge):
        est.set_params(solver="svd")
    if "random_state" in est.get_params() and est.get_params()["random_state"] is None:
        est.set_params(random_state=0)
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
def _for_data(estimator, X):
    """The refit settings for this data (Ridge's SVD solver is dense only)."""
    if isinstance(estimator, Ridge) and sp.issparse(X) and estimator.solver == "svd":
        estimator = clone(estimator).set_params(solver="sparse_cg", tol=1e-12,
                                                max_iter=None)
    return estimator


def _fit_polished(estimator, X, y, sample_weight, warm=None):
    """Fit a clone and polish it: ``(fitted, family, theta, n_iter, decrement,
    certified)``.

    Smooth, non-quadratic families are polished on their own objective to the
    floor of the Newton decrement (the solver's ``tol`` leaves errors of the
    order of a leave-one-out step); direct least-squares solvers are exact
    already, and a refit of stochastic gradient descent is another run of it,
    not an optimum. liblinear's support-vector solvers can stall short of the
    optimum (on collinear data even at ``tol=1e-10``): a LinearSVC or
    LinearSVR refit is moved to the exact optimum of its objective
    (``family.exact_solution``) and ``certified`` says whether its KKT
    conditions and duality gap certify it.
    """
    est = clone(estimator)
    if warm is not None:
        est.coef_ = warm[0].copy()
        est.intercept_ = warm[1].copy()
    fit_params = {} if sample_weight is None else {"sample_weight": sample_weight}
    svm = isinstance(est, (LinearSVC, LinearSVR))
    with warnings.catch_warnings():
        if svm:  # a stall is caught by the certificate below
            warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, **fit_params)
    family = family_for(est)  # the test loss is the true (unsmoothed) loss
    n_iter = getattr(est, "n_iter_", None)
    n_iter = 1 if n_iter is None else int(np.max(n_iter))
    if svm:
        solution = family.exact_solution(X, y, sample_weight)
        family = family.with_theta(solution.theta)
        return est, family, family.theta, n_iter, 0.0, bool(solution.certified)
    if (family.quadratic or family.smoothed or getattr(family, "stochastic", False)
            or family.exact_engine == "active_set"):  # L1: exact coordinate descent
        return est, family, family.theta, n_iter, 0.0, True
    if family.exact_engine in POLISHERS:
        family = POLISHERS[family.exact_engine](family, X, y, sample_weight)
        return est, family, family.theta, n_iter, 0.0, True
    theta, info = polish_optimum(family, X, y, sample_weight)
    return est, family, theta, n_iter + info.n_iter, info.decrement, True


def _warm_start(fitted, family, theta):
    """``(coef_, intercept_)`` of the polished full fit, shaped like the fit's."""
    coef, intercept = family.split_theta(theta)
    return (np.reshape(coef, np.shape(fitted.coef_)),
            np.reshape(intercept, np.shape(fitted.intercept_)))


def _refit_batch(estimator, X, y, sample_weight, removals, X_test, y_test, warm,
                 theta_full, family=None):
    """Refit without each entry of ``removals`` (a row or an array of rows)."""
    out = []
    n_iter = np.zeros(len(removals), dtype=int)
    relative = np.zeros(len(removals))
    certified = np.ones(len(removals), dtype=bool)
    with threadpool_limits(1):
        for position, removed in enumerate(removals):
            keep = np.ones(X.shape[0], dtype=bool)
            keep[removed] = False
            (fitted, refit_family, theta, n_iter[position], decrement,
             certified[position]) = _fit_polished(
                estimator, X[keep], y[keep],
                None if sample_weight is None else sample_weight[keep], warm)
            if family is None:  # the refit's own basis (a kernel map's design)
                out.append(refit_family.test_quantity(refit_family.design(X_test),
                                                      y_test, theta))
            else:
                out.append(family.test_quantity(X_test, y_test, theta))
            if decrement > 0:
                # the decrement against the size of the leave-one-out step,
                # both in the norm of the refit's Hessian
                step = theta - theta_full
                problem = refit_family.bind(X[keep], y[keep], None if sample_weight
                                            is None else sample_weight[keep], theta)
                size = np.sqrt(max(float(step @ problem.hvp(step)), 0.0))
                relative[position] = decrement / size if size > 0 else 0.0
    return np.stack(out), n_iter, relative, certified


#: refits (or estimated seconds) above which a call not asked for row by row
#: says what it is about to cost
LONG_REFITS, LONG_SECONDS = 2000, 60.0


def _warn_if_long(n_refits, seconds_per_fit, n_jobs, name):
    from joblib import effective_n_jobs

    estimate = n_refits * seconds_per_fit / max(effective_n_jobs(n_jobs), 1)
    if n_refits > LONG_REFITS or estimate > LONG_SECONDS:
        warnings.warn(
            f"Refitting {name} {n_refits:,} times (one per training row) will take "
            f"about {estimate:,.0f} s from the time of the full fit. Pass "
            "train_indices (a sample of rows), use method='exact' (the family's "
            "exact engine, no refits), or n_jobs; verbose=1 shows progress.",
            UserWarning, stacklevel=4)


def refit_loo(estimator, X, y, sample_weight, X_test, y_test, rows, *, n_jobs=None,
              verbose=0, tol=1e-10, return_info=False, family=None, warn_long=False):
    """Change of the explained quantity when each row is removed, by refits.

    ``estimator`` is cloned with :func:`tight_clone` (solver tolerance
    ``tol``); the baseline comes from a full-data refit with the same
    settings, and leave-one-out refits that support it are warm-started from
    that full solution. Each refit of a smooth model is polished by Newton on
    its own objective to the floor of its Newton decrement. ``y_test`` None
    explains a regressor's prediction. An entry of ``rows`` may also be an
    array of rows removed together (a group). ``family``, when given,
    measures the test quantity at each refit's parameters (the explained
    model's test loss: a HuberRegressor's fixed scale, a target transform).
    Returns (n_test, len(rows)), and with ``return_info=True`` a Bunch with
    ``n_iter`` (solver iterations plus polishing steps) and ``decrement`` (the
    final Newton decrement relative to the leave-one-out step) per removal.
    """
    est = _for_data(tight_clone(estimator, tol=tol), X)
    start = time.perf_counter()
    with threadpool_limits(1):
        full, full_family, theta_full, _, _, full_certified = _fit_polished(
            est, X, y, sample_weight)
    if warn_long:
        _warn_if_long(len(rows), time.perf_counter() - start, n_jobs,
                      type(estimator).__name__)
    base = (full_family.test_quantity(full_family.design(X_test), y_test, theta_full)
            if family is None else family.test_quantity(X_test, y_test, theta_full))
    warm = (_warm_start(full, full_family, theta_full)
            if getattr(est, "warm_start", False) else None)
    removals = [np.atleast_1d(np.asarray(r, dtype=np.intp)) for r in rows]
    batches = _batches(np.arange(len(removals)), n_jobs)
    parts = run_tasks(
        [delayed(_refit_batch)(est, X, y, sample_weight, [removals[i] for i in batch],
                               X_test, y_test, warm, theta_full, family)
         for batch in batches],
        [len(batch) for batch in batches], n_jobs=n_jobs,
        progress=Progress(len(removals), "leave-one-out refits", verbose))
    values = np.moveaxis(np.concatenate([p[0] for p in parts]), 0, 1) - base[:, None]
    certified = np.concatenate([p[3] for p in parts])
    info = Bunch(n_iter=np.concatenate([p[1] for p in parts]),
                 decrement=np.concatenate([p[2] for p in parts]))
    info.converged = (info.decrement <= 1e-6) & certified
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
    return (values, info) if return_info else values


# ------------------------------------------------------------ whole pipelines
def _pipeline_quantity(fitted, X, y, sample_weight, X_test, y_test):
    """The final step polished on the transformed rows, measured on the test
    rows transformed by the refitted preprocessing."""
    preprocessing, final = fitted[:-1], fitted.steps[-1][1]
    _, family, theta, _, _, certified = _fit_polished_on(
        final, preprocessing.transform(X), y, sample_weight)
    return family.test_quantity(preprocessing.transform(X_test), y_test, theta), certified


def _fit_polished_on(final, Xt, y, sample_weight):
    """:func:`_fit_polished` for a final step that is already fitted."""
    family = family_for(final)
    if (family.quadratic or family.smoothed or getattr(family, "stochastic", False)
            or family.exact_engine == "active_set"):
        return final, family, family.theta, 0, 0.0, True
    if isinstance(final, (LinearSVC, LinearSVR)):
        solution = family.exact_solution(Xt, y, sample_weight)
        return final, family, solution.theta, 0, 0.0, bool(solution.certified)
    if family.exact_engine in POLISHERS:
        family = POLISHERS[family.exact_engine](family, Xt, y, sample_weight)
        return final, family, family.theta, 0, 0.0, True
    theta, info = polish_optimum(family, Xt, y, sample_weight)
    return final, family, theta, info.n_iter, info.decrement, True


def _pipeline_batch(pipeline, X, y, sample_weight, removals, X_test, y_test):
    key = f"{pipeline.steps[-1][0]}__sample_weight"
    out, certified = [], []
    with threadpool_limits(1):
        for removed in removals:
            keep = np.ones(_num_samples(X), dtype=bool)
            keep[removed] = False
            fitted = clone(pipeline)
            X_keep, y_keep = _safe_indexing(X, keep), _safe_indexing(y, keep)
            weights = None if sample_weight is None else sample_weight[keep]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fitted.fit(X_keep, y_keep, **({} if weights is None else {key: weights}))
            value, ok = _pipeline_quantity(fitted, X_keep, y_keep, weights, X_test,
                                           y_test)
            out.append(value)
            certified.append(ok)
    return np.stack(out), np.array(certified)


def refit_pipeline_loo(pipeline, X, y, sample_weight, X_test, y_test, rows, *,
                       n_jobs=None, verbose=0, tol=1e-10):
    """Change of the explained quantity when each row is removed, refitting the
    whole Pipeline: its preprocessing (a scaler's mean, a selector's choice)
    is refitted too, as a user refitting the pipeline would get.

    The final step is a :func:`tight_clone` (solver tolerance ``tol``),
    polished on its transformed rows like :func:`refit_loo`'s refits. ``X``
    and ``X_test`` are the raw inputs the pipeline takes. Returns
    (n_test, len(rows)).
    """
    template = clone(pipeline)
    name, final = template.steps[-1]
    template.set_params(**{name: tight_clone(final, tol=tol)})
    key = f"{name}__sample_weight"
    full = clone(template)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X, y, **({} if sample_weight is None else {key: sample_weight}))
        base, _ = _pipeline_quantity(full, X, y, sample_weight, X_test, y_test)
    removals = [np.atleast_1d(np.asarray(r, dtype=np.intp)) for r in rows]
    batches = _batches(np.arange(len(removals)), n_jobs)
    parts = run_tasks(
        [delayed(_pipeline_batch)(template, X, y, sample_weight,
                                  [removals[i] for i in batch], X_test, y_test)
         for batch in batches],
        [len(batch) for batch in batches], n_jobs=n_jobs,
        progress=Progress(len(removals), "pipeline refits", verbose))
    certified = np.concatenate([p[1] for p in parts])
    if not certified.all():
        failed = [int(removals[i][0]) for i in np.flatnonzero(~certified)]
        warnings.warn(
            f"Pipeline refits without rows {failed[:20]} did not reach a certified "
            "optimum of their final step; their values may be wrong.",
            ConvergenceWarning, stacklevel=3)
    return np.moveaxis(np.concatenate([p[0] for p in parts]), 0, 1) - base[:, None]


def loo_refit(estimator, X, y, X_test, y_test, *, sample_weight=None,
              train_indices=None, scoring=None, random_state=None,
              refit_seeds="fixed", n_jobs=None, verbose=0):
    """Actual change of each test loss when each training row is removed.

    Refits a clone of ``estimator`` once on all rows, for the baseline, and
    once without each row of ``train_indices``, in parallel with joblib. The
    user's estimator is never touched. Same sign and units as
    :meth:`InfluenceExplainer.explain`.

    A supported linear model is refitted as a tightly converged clone (see
    :func:`tight_clone`), polished to the exact optimum (LinearSVC and
    LinearSVR refits certified by their KKT conditions and duality gap; a
    ``ConvergenceWarning`` names the rows whose refit is not) and measured by
    its own test loss. Any other
    estimator or Pipeline (refitted whole) is measured by the per-row log-loss
    when it has ``predict_proba`` (probabilities clipped to machine epsilon,
    as :func:`sklearn.metrics.log_loss`), the per-row squared error for a
    regressor, or minus ``scoring`` on the whole test set (see
    :mod:`skinfluence.exact.refit_any`).

    Parameters
    ----------
    estimator : estimator or Pipeline
        Fitted or not; only its parameters are used.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_test : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
    y_test : array-like of shape (n_test,) or None
        None explains a regressor's prediction (a classifier: the loss at the
        full model's predicted class).
    sample_weight : ndarray of shape (n_samples,), default=None
    train_indices : array-like of int, default=None
        Rows to remove one at a time; all rows when None.
    scoring : str or callable, default=None
        A scikit-learn scorer (``"accuracy"``, ``"roc_auc"``, ...,
        or ``scorer(estimator, X, y)``): the result is then the change of
        minus its value on the whole test set, shape (1, n_rows). Needed for a
        classifier without ``predict_proba``.
    random_state : int, RandomState instance or None, default=None
        Seeds of the refits of an estimator with a ``random_state``, drawn
        once in the calling process (results do not depend on ``n_jobs``).
    refit_seeds : {"fixed", "vary"}, default="fixed"
        "fixed": every refit uses the same seed (an integer the estimator
        already has is kept), so only the removed row differs and the
        randomness of training is excluded from the effect. "vary": an own
        seed per refit (the effect then includes training noise).
    n_jobs : int, default=None
        Number of joblib workers (each limited to one BLAS thread).
    verbose : int, default=0
        1 reports progress on stderr (refits done, rate, time left).

    Returns
    -------
    loo : ndarray of shape (n_test, len(train_indices))
        ``L(z_j; theta_{-i}) - L(z_j; theta)`` with both sides refitted. For
        a model without a family, refits that fail (a class has no row left,
        or ``fit`` raises) are NaN with a warning naming the rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import loo_refit
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    >>> loo_refit(Ridge(), X, y, X[:2], y[:2], train_indices=[0, 1]).shape
    (2, 2)
    >>> from sklearn.neighbors import KNeighborsRegressor   # any estimator
    >>> loo_refit(KNeighborsRegressor(n_neighbors=3), X, y, X[:2], y[:2]).shape
    (2, 20)
    """
    if scoring is not None or not has_family(estimator):
        from .refit_any import refit_any_loo  # any model: refits of whole clones

        rows = np.arange(len(y)) if train_indices is None else np.asarray(train_indices)
        return refit_any_loo(estimator, X, y, sample_weight, X_test, y_test, rows,
                             scoring=scoring, random_state=random_state,
                             refit_seeds=refit_seeds, n_jobs=n_jobs, verbose=verbose)
    X = check_array(X, accept_sparse="csr", dtype=np.float64)
    X_test = check_array(X_test, accept_sparse="csr", dtype=np.float64)
    y, y_test = np.asarray(y), np.asarray(y_test)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float)
    rows = np.arange(X.shape[0]) if train_indices is None else np.asarray(train_indices)
    return refit_loo(estimator, X, y, sample_weight, X_test, y_test, rows,
                     n_jobs=n_jobs, verbose=verbose)
