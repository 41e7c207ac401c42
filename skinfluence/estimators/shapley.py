"""Data Shapley (truncated Monte Carlo) and Data Banzhaf (maximum sample reuse).

Both value a training row by its marginal contribution to a utility ``U(S)``
of the model fitted on a subset ``S`` of the rows; the default utility is
minus the model's own loss on each validation row (so a positive value means
the row helps, as in :meth:`InfluenceExplainer.explain`). Per-validation-row
values are returned too; ``data_values`` is their mean, the value for the mean
validation utility.

The supported linear models are fitted by
:class:`~skinfluence.estimators.SubsetEngine`; any other estimator (or a
Pipeline, refitted whole) by clones of it (:mod:`.any_model`). Subsets a
model cannot be fitted on (empty, or missing a class) get the utility of the
null model: the intercept-only model fitted on all rows, or for any other
estimator the class frequencies or mean target of all rows.
"""

import time

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from .._result import Result
from .._progress import Progress, run_tasks
from .any_model import banzhaf_refits, shapley_refits, uses_any_model
from .subsets import (
    combine_repeats,
    draw_subsets,
    evaluate_subsets,
    in_out_means,
    linear_engine,
    repeat_seeds,
    utility_values,
)

__all__ = ["tmc_shapley", "banzhaf"]

#: permutations per joblib task (fixed: results do not depend on n_jobs)
_PERMUTATION_CHUNK = 8


class _PerRowUtility:
    """Utility of each validation row for parameters ``theta`` (picklable)."""

    def __init__(self, engine, utility, X_test, y_test):
        family = engine.family
        if y_test is None and utility in ("loss", "accuracy"):
            raise ValueError(f"utility={utility!r} needs y_test.")
        self.engine, self.utility = engine, utility
        self.X_test, self.y_test = X_test, y_test
        self.Y = None if y_test is None else family.encode_target(y_test)

    def __call__(self, theta):
        Z = self.engine.decision(self.X_test, theta)
        return utility_values(self.engine.family, self.utility, Z, self.Y, self.y_test)


def _permutation_chunk(engine, per_row, permutations, full, null, tol):
    n = engine.n_samples
    n_test = full.shape[0]
    test_sum = np.zeros((n_test, n))
    marginals = np.zeros((len(permutations), n))
    n_fits = 0
    span = abs(full.mean() - null.mean())
    with threadpool_limits(1):
        for t, perm in enumerate(permutations):
            mask = np.zeros(n, dtype=bool)
            theta, previous = None, null
            for i in perm:
                mask[i] = True
                if engine.fittable(mask):
                    theta = engine.fit(mask, theta)
                    n_fits += 1
                    current = per_row(theta)
                else:
                    current = null
                step = current - previous
                test_sum[:, i] += step
                marginals[t, i] = step.mean()
                previous = current
                if tol > 0 and abs(full.mean() - current.mean()) < tol * span:
                    break  # truncation: the remaining marginals are taken as 0
    return test_sum, marginals, n_fits


def _budget_error(name, needed, max_fits, n, what, fix):
    raise ValueError(
        f"{name} on {n} training rows needs up to {needed:,} model fits ({what}), "
        f"above max_fits={max_fits:,}. {fix}")


def tmc_shapley(estimator, X, y, X_test, y_test=None, *, utility="loss",
                n_permutations=500, truncation_tol=0.01, sample_weight=None,
                engine="auto", scoring=None, refit_seeds="fixed", n_repeats=1, k=10,
                max_fits=200_000, random_state=None, n_jobs=None, verbose=0):
    """Truncated Monte Carlo Data Shapley values of the training rows.

    For random permutations of the rows, the model is refitted on every prefix
    (warm-started from the previous prefix) and each row is credited with the
    change of the utility when it joins:

    .. math::

        \\phi_i = \\mathbb{E}_\\pi\\left[U(P^\\pi_i \\cup \\{i\\}) - U(P^\\pi_i)\\right].

    A permutation is truncated once ``|U(N) - U(prefix)|`` falls below
    ``truncation_tol * |U(N) - U(null)|`` (Ghorbani & Zou, 2019); the remaining
    rows get 0 for it, which saves fits at the price of a small bias.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Any scikit-learn estimator, fitted or not (never refitted itself); a
        Pipeline is refitted whole.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_test : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        The validation rows of the utility.
    y_test : array-like of shape (n_test,), default=None
        Needed by the built-in utilities.
    utility : {"loss", "accuracy"} or callable, default="loss"
        "loss": minus the model's own loss of each validation row (same sign
        as ``explain``; for a model without a family the log-loss of
        ``predict_proba``, clipped to machine epsilon, or the squared error of
        a regressor); "accuracy": 1 for a correct prediction; a callable
        ``utility(Z, y_test)`` returning a scalar or one value per validation
        row, of the decision values ``Z`` (n_test, n_outputs) of a linear
        model, or of ``predict_proba`` (``predict`` as one column) of any
        other.
    n_permutations : int, default=500
        Standard errors shrink as ``1/sqrt(n_permutations)``.
    truncation_tol : float, default=0.01
        0 disables truncation (unbiased, every prefix is fitted).
    sample_weight : array-like of shape (n_samples,), default=None
    engine : {"auto", "newton", "refit"}, default="auto"
        For the linear models, "newton" (and "auto") warm-starts Newton's
        method on the family's objective along each permutation; "refit" fits
        scikit-learn clones (slow). Any other estimator is refitted.
    scoring : str or callable, default=None
        A scikit-learn scorer: the utility becomes its value on the whole
        validation set (``test_values`` has one row); replaces ``utility``.
    refit_seeds : {"fixed", "vary"}, default="fixed"
        Seeds of the refits of an estimator with a ``random_state``, as in
        :func:`~skinfluence.subsample_influence`: "fixed" excludes the
        randomness of training, "vary" averages over it.
    n_repeats : int, default=1
        Independent repeats, averaged; from 2 on the spread is reported.
    k : int, default=10
        Size of the top sets compared across repeats.
    max_fits : int, default=200_000
        Budget: a ``ValueError`` is raised when ``n_permutations * n_samples``
        exceeds it.
    random_state : int, RandomState instance or None, default=None
        Permutations are drawn once in the calling process: the same seed gives
        the same numbers for any ``n_jobs``.
    n_jobs : int, default=None
    verbose : int, default=0

    Returns
    -------
    result : Bunch
        data_values : ndarray (n_train,)
            Shapley value of each row for the mean validation utility.
        stderr : ndarray (n_train,)
            Monte Carlo standard error of ``data_values``.
        test_values : ndarray (n_test, n_train)
            Shapley value for each validation row's utility (their mean is
            ``data_values``).
        n_permutations, n_fits : int
            Permutations run and models fitted.
        mean_prefix_fraction : float
            Share of the prefixes fitted (1 without truncation).
        relative_stderr : float
            ``median(stderr) / mean(|values|)``: a convergence diagnostic.
        utility_full, utility_null : float
            Mean utility of the model on all rows and of the null model
            (without truncation the values sum to their difference).
        seconds, seconds_per_1000_permutations : float
            Wall-clock time, in total and per 1000 permutations.
        repeat_stderr, helpful_overlap, harmful_overlap, repeat_values : ndarray, float
            With ``n_repeats >= 2``: the standard error of ``data_values``
            from the spread of the repeats, the mean share of the ``k`` most
            valuable (least valuable) rows two repeats agree on, and each
            repeat's values (n_repeats, n_train).

    References
    ----------
    A. Ghorbani and J. Zou, "Data Shapley: Equitable Valuation of Data for
    Machine Learning", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import tmc_shapley
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(12, 2)), rng.normal(size=12)
    >>> res = tmc_shapley(Ridge(), X, y, X[:4], y[:4], n_permutations=50,
    ...                   truncation_tol=0, random_state=0)
    >>> bool(np.isclose(res.data_values.sum(), res.utility_full - res.utility_null))
    True
    """
    start = time.perf_counter()
    n = len(y)
    n_permutations = int(n_permutations)
    if n_permutations < 2:
        raise ValueError(f"n_permutations must be at least 2; got {n_permutations}.")
    needed = n_permutations * n
    if needed * int(n_repeats) > max_fits:
        _budget_error(
            "tmc_shapley", needed * int(n_repeats), max_fits, n,
            f"{n_permutations} permutations x {n} prefixes x {n_repeats} repeats",
            "Shapley values need n fits per permutation, so large n is costly. "
            "Raise max_fits, lower n_permutations, or use banzhaf() or "
            "subsample_influence() (cost per sample independent of n) or "
            "InfluenceExplainer.explain() (no refits).")
    any_model = uses_any_model(estimator, engine, scoring)
    if not any_model:
        eng, X, y, X_test, y_test, sample_weight = linear_engine(
            estimator, X, y, X_test, y_test, sample_weight, engine, "newton")
        per_row = _PerRowUtility(eng, utility, X_test, y_test)
        full = per_row(eng.fit(np.ones(n, dtype=bool)))
        null = per_row(eng.null_theta)

    def once(seed):
        if any_model:
            test_values, marginals, n_fits, full_u, null_u = shapley_refits(
                estimator, X, y, X_test, y_test, utility=utility,
                n_permutations=n_permutations, truncation_tol=truncation_tol,
                sample_weight=sample_weight, scoring=scoring,
                refit_seeds=refit_seeds, random_state=seed, n_jobs=n_jobs,
                verbose=verbose)
        else:
            rng = check_random_state(seed)
            permutations = np.array([rng.permutation(n) for _ in range(n_permutations)])
            starts = range(0, n_permutations, _PERMUTATION_CHUNK)
            parts = run_tasks(
                [delayed(_permutation_chunk)(eng, per_row,
                                             permutations[s : s + _PERMUTATION_CHUNK],
                                             full, null, truncation_tol)
                 for s in starts],
                [len(permutations[s : s + _PERMUTATION_CHUNK]) for s in starts],
                n_jobs=n_jobs, progress=Progress(n_permutations, "TMC-Shapley",
                                                 verbose, unit="permutations"))
            test_values = sum(p[0] for p in parts) / n_permutations
            marginals = np.concatenate([p[1] for p in parts])
            n_fits = int(sum(p[2] for p in parts))
            full_u, null_u = full, null
        values = marginals.mean(0)
        stderr = marginals.std(0, ddof=1) / np.sqrt(n_permutations)
        return Result(
            data_values=values, stderr=stderr, test_values=test_values,
            n_permutations=n_permutations, n_fits=n_fits,
            mean_prefix_fraction=n_fits / needed,
            utility_full=float(full_u.mean()), utility_null=float(null_u.mean()))

    results = [once(seed) for seed in repeat_seeds(random_state, n_repeats)]
    result = results[0] if len(results) == 1 else combine_repeats(
        results, "data_values", [r.data_values for r in results], k,
        mean_keys=("test_values",))
    if len(results) > 1:
        result.n_fits = sum(r.n_fits for r in results)
        result.mean_prefix_fraction = float(np.mean([r.mean_prefix_fraction
                                                     for r in results]))
    seconds = time.perf_counter() - start
    result.relative_stderr = float(np.median(result.stderr)
                                   / max(np.abs(result.data_values).mean(), 1e-300))
    result.seconds = seconds
    result.seconds_per_1000_permutations = seconds * 1000 / (
        n_permutations * len(results))
    return result


def banzhaf(estimator, X, y, X_test, y_test=None, *, utility="loss", n_samples=1000,
            sample_weight=None, engine="auto", scoring=None, refit_seeds="fixed",
            n_repeats=1, k=10, max_fits=200_000, random_state=None, n_jobs=None,
            verbose=0):
    """Data Banzhaf values by maximum sample reuse (MSR).

    Draws ``n_samples`` subsets that contain every row independently with
    probability 1/2, fits one model on each, and values row ``i`` by the mean
    utility of the subsets containing it minus that of the others (Wang & Jia,
    2023): every model informs every row's estimate.

    .. math::

        \\hat\\phi_i = \\overline{U(S)}\\big|_{i \\in S} - \\overline{U(S)}\\big|_{i \\notin S}.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Any scikit-learn estimator, fitted or not (never refitted itself); a
        Pipeline is refitted whole.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_test : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
    y_test : array-like of shape (n_test,), default=None
    utility : {"loss", "accuracy"} or callable, default="loss"
        As in :func:`tmc_shapley`.
    n_samples : int, default=1000
        Number of subsets (model fits); standard errors shrink as
        ``1/sqrt(n_samples)``, independently of the number of rows.
    sample_weight : array-like, default=None
    engine : {"auto", "newton", "refit"}, default="auto"
        As in :func:`tmc_shapley`.
    scoring : str or callable, default=None
        A scikit-learn scorer, as in :func:`tmc_shapley`.
    refit_seeds : {"fixed", "vary"}, default="fixed"
        As in :func:`tmc_shapley`.
    n_repeats : int, default=1
        Independent repeats, averaged; from 2 on the spread is reported.
    k : int, default=10
        Size of the top sets compared across repeats.
    max_fits : int, default=200_000
        A ``ValueError`` is raised when ``n_samples`` exceeds it.
    random_state : int, RandomState instance or None, default=None
        Subsets are drawn once in the calling process (same numbers for any
        ``n_jobs``).
    n_jobs : int, default=None
    verbose : int, default=0

    Returns
    -------
    result : Bunch
        data_values, stderr : ndarray (n_train,)
            Banzhaf value for the mean validation utility and its standard
            error (Welch).
        test_values : ndarray (n_test, n_train)
            Per validation row.
        n_samples : int
            Subsets sampled (models fitted).
        masks : ndarray (n_samples, n_train) of bool
            The sampled subsets.
        utilities : ndarray (n_samples, n_test)
            The utility of each subset's model for each validation row (one
            column with ``scoring``).
        relative_stderr : float
            ``median(stderr) / mean(|values|)``: a convergence diagnostic.
        seconds, seconds_per_1000_samples : float
            Wall-clock time, in total and per 1000 subsets.
        repeat_stderr, helpful_overlap, harmful_overlap, repeat_values : ndarray, float
            With ``n_repeats >= 2``, as in :func:`tmc_shapley`.

    References
    ----------
    J. T. Wang and R. Jia, "Data Banzhaf: A Robust Data Valuation Framework
    for Machine Learning", AISTATS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import banzhaf
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(12, 2)), rng.normal(size=12)
    >>> res = banzhaf(Ridge(), X, y, X[:4], y[:4], n_samples=64, random_state=0)
    >>> res.data_values.shape, res.test_values.shape
    ((12,), (4, 12))
    """
    start = time.perf_counter()
    n = len(y)
    n_samples = int(n_samples)
    if n_samples * int(n_repeats) > max_fits:
        _budget_error("banzhaf", n_samples * int(n_repeats), max_fits, n,
                      f"n_samples={n_samples} x n_repeats={n_repeats}",
                      "Raise max_fits or lower n_samples.")
    if n_samples < 8:
        raise ValueError(f"n_samples must be at least 8; got {n_samples}.")
    any_model = uses_any_model(estimator, engine, scoring)
    if not any_model:
        eng, X, y, X_test, y_test, sample_weight = linear_engine(
            estimator, X, y, X_test, y_test, sample_weight, engine, "newton")
        family = eng.family
        _PerRowUtility(eng, utility, X_test, y_test)  # validates the utility

    def once(seed):
        if any_model:
            masks, U = banzhaf_refits(
                estimator, X, y, X_test, y_test, utility=utility,
                n_samples=n_samples, sample_weight=sample_weight, scoring=scoring,
                refit_seeds=refit_seeds, random_state=seed, n_jobs=n_jobs,
                verbose=verbose)
        else:
            rng = check_random_state(seed)
            masks = draw_subsets(rng, n, n_samples, fraction=0.5, bernoulli=True)
            Z = evaluate_subsets(eng, masks, X_test, n_jobs=n_jobs, verbose=verbose)
            Y = None if y_test is None else family.encode_target(y_test)
            U = utility_values(family, utility, Z, Y, y_test)  # (S, n_test)
        mean_in, mean_out, _, n_in, n_out = in_out_means(U, masks)
        if np.any(n_in < 2) or np.any(n_out < 2):
            raise ValueError(
                "Some training rows were in (or out of) fewer than 2 sampled "
                f"subsets; raise n_samples (got {n_samples}).")
        _, _, se, _, _ = in_out_means(U.mean(1, keepdims=True), masks)
        test_values = mean_in - mean_out
        return Result(data_values=test_values.mean(0), stderr=se[0],
                     test_values=test_values, n_samples=n_samples, masks=masks,
                     utilities=U)

    results = [once(seed) for seed in repeat_seeds(random_state, n_repeats)]
    result = results[0] if len(results) == 1 else combine_repeats(
        results, "data_values", [r.data_values for r in results], k,
        mean_keys=("test_values",))
    if len(results) > 1:
        result.masks = np.concatenate([r.masks for r in results])
        result.utilities = np.concatenate([r.utilities for r in results])
    seconds = time.perf_counter() - start
    result.relative_stderr = float(np.median(result.stderr)
                                   / max(np.abs(result.data_values).mean(), 1e-300))
    result.seconds = seconds
    result.seconds_per_1000_samples = seconds * 1000 / (n_samples * len(results))
    return result
