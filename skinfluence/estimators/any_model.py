"""Downsampling, Data Shapley and Data Banzhaf for any estimator.

The retraining-based estimators need nothing but refits: for a model without
a family (a gradient-boosted tree, a random forest, k nearest neighbours, a
whole Pipeline) every subset is fitted by a clone of the whole estimator
(:class:`~skinfluence.exact.refit_any.ModelRefits`) and measured by

* the per-row log-loss of a classifier with ``predict_proba`` (probabilities
  clipped to machine epsilon), the per-row squared error of a regressor;
* or, with ``scoring``, minus a scikit-learn scorer on the whole evaluation
  set (one value: results have one row).

Seeds of the refits come from ``random_state`` in the calling process
(``refit_seeds="fixed"``: one seed for every refit; ``"vary"``: one each), so
results do not depend on ``n_jobs`` or the backend.

Subsets a model cannot be fitted on are handled as in the linear engines:
downsampling drops them from the means (with a warning naming the subsets);
Shapley and Banzhaf give them the utility of the **null model**, class
frequencies (``DummyClassifier(strategy="prior")``) or the mean target
fitted on all rows, and warn when a fit raised for another reason than a
missing class.
"""

import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from ..exact.refit_any import ModelRefits, Unfittable, describe_failures
from ..families import has_family
from .subsets import draw_subsets
from .._progress import Progress, run_tasks

__all__ = ["banzhaf_refits", "shapley_refits", "subsample_refits",
           "uses_any_model"]

#: permutations per joblib task (fixed: results do not depend on n_jobs)
_PERMUTATION_CHUNK = 8


def uses_any_model(estimator, engine, scoring):
    """Whether the estimator is refitted whole (no family, or a ``scoring``).

    ``engine`` is "auto", "refit" or "newton"; "newton" needs a linear family.
    """
    if engine not in ("auto", "newton", "refit"):
        raise ValueError(
            f"engine must be 'auto', 'newton' or 'refit'; got {engine!r}.")
    linear = has_family(estimator) and scoring is None
    if not linear and engine == "newton":
        why = ("scoring is measured on refitted estimators" if scoring is not None
               else f"{type(estimator).__name__} is not one of the linear models "
                    "with a closed-form objective")
        raise ValueError(f"engine='newton' is not available: {why}. Use "
                         "engine='refit' (or 'auto').")
    return not linear


def _check_lengths(X, y, X_test, y_test):
    from sklearn.utils.validation import _num_samples

    n, m = _num_samples(X), _num_samples(X_test)
    if np.shape(y)[0] != n:
        raise ValueError(f"X has {n} rows but y has {np.shape(y)[0]}.")
    if y_test is not None and np.shape(y_test)[0] != m:
        raise ValueError(f"X_test has {m} rows but y_test has {np.shape(y_test)[0]}.")
    return None if y_test is None else np.asarray(y_test)


def _warn_failed(errors, total, what, consequence):
    if errors:
        warnings.warn(describe_failures(errors, range(total), total, what)
                      + f". {consequence}", UserWarning, stacklevel=4)


# ------------------------------------------------------------------ downsampling
def subsample_refits(estimator, X, y, X_test, y_test, *, n_models, fraction,
                     sample_weight, scoring, refit_seeds, random_state, n_jobs,
                     verbose):
    """Refits of any estimator on stratified random subsets.

    Returns ``(masks, test_loss, train_loss, correct)``: the masks of the
    subsets that could be fitted (S, n), the measured test quantity (S, m) or
    minus the score (S, 1), each training row's own loss (S, n; None without
    a per-row loss) and whether it is predicted right (S, n; None for a
    regressor).
    """
    y_test = _check_lengths(X, y, X_test, y_test)
    rng = check_random_state(random_state)
    refits = ModelRefits(estimator, X, y, sample_weight, scoring=scoring,
                         random_state=rng, refit_seeds=refit_seeds)
    masks = draw_subsets(rng, refits.n_samples, int(n_models), fraction=fraction,
                         labels=refits.labels)
    seeds = refits.seeds(len(masks))
    per_row = refits.kind != "label"
    if scoring is None:
        refits.require_per_row_loss()  # name the fix before fitting anything
    result = refits.run(
        masks, seeds,
        (X_test, X) if scoring is None else (X,),
        score_data=None if scoring is None else (X_test, y_test),
        n_jobs=n_jobs, verbose=verbose, what="subsample_influence")
    ok = ~np.isin(np.arange(len(masks)), [i for i, _ in result.errors])
    _warn_failed(result.errors, len(masks), "subset models",
                 "They are left out of the means.")
    m = 0 if scoring is not None else np.shape(X_test)[0]
    outputs = result.outputs[ok]
    test_loss = (refits.losses(outputs[:, :m], y_test) if scoring is None
                 else result.scores[ok, None])
    train_loss = refits.losses(outputs[:, m:], refits.y) if per_row else None
    correct = refits.correct(outputs[:, m:], refits.y) if refits.is_classifier else None
    return masks[ok], test_loss, train_loss, correct


# ---------------------------------------------------------------- shapley family
class _Utility:
    """Utility of a refitted model on the validation rows (picklable).

    ``"loss"``: minus the per-row loss; ``"accuracy"``: 1 where the predicted
    class is right; a callable ``utility(Z, y_test)`` of the outputs ``Z``
    (``predict_proba``, or ``predict`` as one column); with ``scoring``, the
    scorer's value on the whole validation set (one value).
    """

    def __init__(self, refits, utility, X_test, y_test):
        self.refits, self.utility = refits, utility
        self.X_test, self.y_test = X_test, y_test
        if refits.scorer is not None:
            if utility != "loss":
                raise ValueError("Pass either utility or scoring, not both: scoring "
                                 f"replaces the utility (got utility={utility!r}).")
        elif not callable(utility):
            if utility not in ("loss", "accuracy"):
                raise ValueError(
                    f"utility must be 'loss', 'accuracy' or a callable utility(Z, "
                    f"y_test); got {utility!r}.")
            if y_test is None:
                raise ValueError(f"utility={utility!r} needs y_test.")
            if utility == "accuracy" and not refits.is_classifier:
                raise ValueError("utility='accuracy' needs a classifier; use 'loss' "
                                 "(minus the squared error) for a regressor.")
            if utility == "loss":
                refits.require_per_row_loss()

    def of_outputs(self, Z):
        if callable(self.utility):
            return np.broadcast_to(
                np.asarray(self.utility(Z, self.y_test), dtype=float),
                (Z.shape[0],)).copy()
        if self.utility == "accuracy":
            return self.refits.correct(Z, self.y_test)
        return -self.refits.losses(Z, self.y_test)

    def __call__(self, est):
        if self.refits.scorer is not None:
            return np.array([-self.refits.score_loss(est, self.X_test, self.y_test)])
        return self.of_outputs(self.refits.outputs(est, self.X_test))


def banzhaf_refits(estimator, X, y, X_test, y_test, *, utility, n_samples,
                   sample_weight, scoring, refit_seeds, random_state, n_jobs,
                   verbose):
    """Bernoulli(1/2) subsets, each refitted: ``(masks, U)`` with ``U`` the
    utility of every subset (S, n_test) or (S, 1) with ``scoring``."""
    y_test = _check_lengths(X, y, X_test, y_test)
    rng = check_random_state(random_state)
    refits = ModelRefits(estimator, X, y, sample_weight, scoring=scoring,
                         random_state=rng, refit_seeds=refit_seeds)
    per_row = _Utility(refits, utility, X_test, y_test)
    masks = draw_subsets(rng, refits.n_samples, n_samples, fraction=0.5,
                         bernoulli=True)
    seeds = refits.seeds(len(masks))
    null_model = refits.null_model()
    if scoring is None:
        null = (refits.outputs(null_model, X_test), None)
        result = refits.run(masks, seeds, (X_test,), null=null, n_jobs=n_jobs,
                            verbose=verbose, what="banzhaf")
        U = np.stack([per_row.of_outputs(Z) for Z in result.outputs])
    else:
        null = (None, refits.score_loss(null_model, X_test, y_test))
        result = refits.run(masks, seeds, score_data=(X_test, y_test), null=null,
                            n_jobs=n_jobs, verbose=verbose, what="banzhaf")
        U = -result.scores[:, None]
    raised = [(i, message) for i, message in result.errors
              if not result.unfittable[i]]
    _warn_failed(raised, len(masks), "subset models",
                 "They get the utility of the null model.")
    return masks, U


def _permutation_chunk(refits, per_row, permutations, seeds, full, null, tol):
    n = refits.n_samples
    n_test = full.shape[0]
    test_sum = np.zeros((n_test, n))
    marginals = np.zeros((len(permutations), n))
    n_fits, errors = 0, []
    span = abs(full.mean() - null.mean())
    with threadpool_limits(1):
        for t, perm in enumerate(permutations):
            mask = np.zeros(n, dtype=bool)
            previous = null
            for position, i in enumerate(perm):
                mask[i] = True
                try:
                    refits.check_classes(mask)
                except Unfittable:
                    current = null
                else:
                    n_fits += 1
                    try:
                        current = per_row(refits.fit(mask, seeds[t, position]))
                    except Exception as exc:  # noqa: BLE001 (never stop the run)
                        errors.append(f"{type(exc).__name__}: {exc}")
                        current = null
                step = current - previous
                test_sum[:, i] += step
                marginals[t, i] = step.mean()
                previous = current
                if tol > 0 and abs(full.mean() - current.mean()) < tol * span:
                    break  # truncation: the remaining marginals are taken as 0
    return test_sum, marginals, n_fits, errors


def shapley_refits(estimator, X, y, X_test, y_test, *, utility, n_permutations,
                   truncation_tol, sample_weight, scoring, refit_seeds,
                   random_state, n_jobs, verbose):
    """Truncated Monte Carlo permutations, every prefix refitted.

    Returns ``(test_values, marginals, n_fits, full, null)`` as the linear
    engine of :func:`~skinfluence.tmc_shapley` does.
    """
    y_test = _check_lengths(X, y, X_test, y_test)
    rng = check_random_state(random_state)
    refits = ModelRefits(estimator, X, y, sample_weight, scoring=scoring,
                         random_state=rng, refit_seeds=refit_seeds)
    per_row = _Utility(refits, utility, X_test, y_test)
    n = refits.n_samples
    permutations = np.array([rng.permutation(n) for _ in range(n_permutations)])
    seeds = refits.seeds((n_permutations, n))
    with threadpool_limits(1):
        full = per_row(refits.fit(np.ones(n, dtype=bool), refits.seeds(1)[0]))
    null = per_row(refits.null_model())
    chunks = range(0, n_permutations, _PERMUTATION_CHUNK)
    parts = run_tasks(
        [delayed(_permutation_chunk)(refits, per_row,
                                     permutations[s : s + _PERMUTATION_CHUNK],
                                     seeds[s : s + _PERMUTATION_CHUNK], full, null,
                                     truncation_tol)
         for s in chunks],
        [len(permutations[s : s + _PERMUTATION_CHUNK]) for s in chunks], n_jobs=n_jobs,
        progress=Progress(n_permutations, "TMC-Shapley", verbose, unit="permutations"))
    errors = [message for p in parts for message in p[3]]
    if errors:
        warnings.warn(
            f"{len(errors)} prefix models raised and got the utility of the null "
            f"model; first reason: {errors[0]}", UserWarning, stacklevel=3)
    test_values = sum(p[0] for p in parts) / n_permutations
    marginals = np.concatenate([p[1] for p in parts])
    n_fits = int(sum(p[2] for p in parts))
    return test_values, marginals, n_fits, full, null
