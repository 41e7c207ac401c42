"""Removal curves: does removing the rows a score points at help, measured by
retraining?

For growing fractions of the training rows, remove the rows with the most
extreme scores (any score vector: influence, self-influence, a functional's
influence, the training loss), refit, and measure a metric on evaluation
rows; do the same for random rows of the same number, several times, for the
spread. The honest answer to "does cleaning by influence help?".

Two engines refit:

* ``"newton"`` (the supported linear models): the exact optimum of the
  family's objective without the removed rows, by damped Newton steps from
  the full optimum (:class:`~skinfluence.estimators.SubsetEngine`, relative
  gradient norm 1e-10): what a tight refit gives;
* ``"refit"`` (any estimator or Pipeline): clones refitted without the rows,
  every refit with the same seed (see :mod:`skinfluence.exact.refit_any`).
"""

import warnings

import numpy as np
from scipy.special import expit
from sklearn.metrics import roc_auc_score
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _num_samples
from threadpoolctl import threadpool_limits

from .._result import Result
from ..applications.functionals import GAPS, gap_weights
from ..estimators.subsets import SubsetEngine, check_data, fitted_estimator
from ..exact.refit_any import ModelRefits, describe_failures
from ..families import has_family

__all__ = ["METRICS", "removal_curve"]

#: metrics computed from the model's outputs (any other name is a scorer)
METRICS = ("loss", "accuracy", "roc_auc", *GAPS)


class _Metric:
    """A metric of the evaluation rows from decision values (linear family) or
    from a refitted model's outputs (any model)."""

    def __init__(self, name, y, groups, temperature):
        self.name, self.y, self.groups, self.T = name, y, groups, temperature
        if name in GAPS:
            if groups is None:
                raise ValueError(f"metric={name!r} needs groups: one group label per "
                                 "evaluation row, with exactly two values.")
        elif y is None:
            raise ValueError(f"metric={name!r} needs y_eval.")

    def _positive(self, classes):
        if self.y is None or self.name == "demographic_parity":
            return None
        if len(classes) != 2:
            raise ValueError(f"metric={self.name!r} needs a binary classifier.")
        return np.asarray(self.y) == classes[1]

    def of_decision(self, family, Z):
        name = self.name
        if name == "loss":
            return float(family.loss(family.encode_target(self.y), Z).mean())
        if not family.is_classifier and name != "demographic_parity":
            raise ValueError(f"metric={name!r} needs a classifier.")
        if name == "accuracy":
            index = (np.argmax(Z, axis=1) if Z.shape[1] > 1
                     else (Z[:, 0] > 0).astype(int))
            return float(np.mean(family.classes[index] == np.asarray(self.y)))
        if name == "roc_auc":
            return float(roc_auc_score(self._positive(family.classes), Z[:, 0]))
        if family.is_classifier and Z.shape[1] != 1:
            raise ValueError(f"metric={name!r} needs a binary classifier or a "
                             "regressor.")
        s = expit(Z[:, 0] / self.T) if family.is_classifier else Z[:, 0]
        positive = self._positive(family.classes) if family.is_classifier else None
        return float(gap_weights(name, self.groups, positive) @ s)

    def of_outputs(self, refits, outputs):
        name = self.name
        if name == "loss":
            return float(refits.losses(outputs, self.y).mean())
        if not refits.is_classifier and name != "demographic_parity":
            raise ValueError(f"metric={name!r} needs a classifier.")
        if name == "accuracy":
            return float(refits.correct(outputs, self.y).mean())
        if refits.is_classifier and (refits.kind != "proba"
                                     or len(refits.classes) != 2):
            raise ValueError(f"metric={name!r} needs a binary classifier with "
                             "predict_proba (or a regressor); pass a scorer.")
        s = outputs[:, -1]  # P(classes[1]), or a regressor's prediction
        positive = self._positive(refits.classes) if refits.is_classifier else None
        if name == "roc_auc":
            return float(roc_auc_score(positive, s))
        return float(gap_weights(name, self.groups, positive) @ s)


def _removal_sets(order, counts):
    return [order[:k] for k in counts]


def _newton_block(engine, removals, X_eval, metric, theta):
    family = engine.family
    out = np.empty(len(removals))
    failed = []
    with threadpool_limits(1):
        for position, rows in enumerate(removals):
            keep = np.ones(engine.n_samples, dtype=bool)
            keep[rows] = False
            if not engine.fittable(keep):
                out[position] = np.nan
                failed.append((position, "a class has no row left"))
                continue
            theta_keep = engine.fit(keep, theta)  # warm-started damped Newton
            out[position] = metric.of_decision(family,
                                               family.decision(X_eval, theta_keep))
    return out, failed


def removal_curve(estimator, X, y, X_eval, y_eval, scores, *,
                  fractions=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2), direction="harmful",
                  metric="loss", groups=None, n_random=10, sample_weight=None,
                  engine="auto", temperature=1.0, refit_seeds="fixed",
                  random_state=None, n_jobs=None, verbose=0):
    """Metric after removing the top rows by a score, against random removal.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Only its parameters are used (fitted or not, never refitted itself).
    X : {array-like, sparse matrix, DataFrame} of shape (n_train, n_features)
    y : array-like of shape (n_train,)
    X_eval : {array-like, sparse matrix, DataFrame} of shape (n_eval, n_features)
        Rows the metric is measured on (a held-out set, not the rows the
        scores were computed on, for an honest curve).
    y_eval : array-like of shape (n_eval,) or None
    scores : array-like of shape (n_train,)
        One score per training row in the sign of influence: positive means
        the row helps (removing it would raise the loss or the functional).
        For a suspicion score (higher = more suspicious, e.g. self-influence
        or the training loss), pass its negative.
    fractions : sequence of float, default=(0, 0.01, 0.02, 0.05, 0.1, 0.2)
        Shares of the training rows removed (``round(f * n_train)`` rows).
    direction : {"harmful", "helpful"}, default="harmful"
        "harmful" removes the lowest scores first, "helpful" the highest.
    metric : str or callable, default="loss"
        "loss" (mean per-row test loss: the family's loss for a linear model,
        log-loss of ``predict_proba`` or squared error otherwise),
        "accuracy", "roc_auc", a fairness gap of the predicted probability
        ("demographic_parity", "equal_opportunity", "fpr_gap", as in
        :meth:`~skinfluence.InfluenceExplainer.functional_influence`, with
        ``groups``; ``sigmoid(z / temperature)`` for a linear model, which is
        ``predict_proba`` for logistic regression), or any scikit-learn scorer
        name or ``scorer(estimator, X, y)`` (refits only; higher is better).
    groups : array-like of shape (n_eval,), default=None
        Group of each evaluation row, for the gaps.
    n_random : int, default=10
        Random removals of the same sizes (each a random order of the rows,
        its prefixes removed), for the spread. 0 skips them.
    sample_weight : array-like of shape (n_train,), default=None
    engine : {"auto", "newton", "refit"}, default="auto"
        "newton" for the supported linear models with a built-in metric
        ("auto" picks it), "refit" for anything else.
    temperature : float, default=1.0
        Of the gaps of a linear classifier.
    refit_seeds : {"fixed", "vary"}, default="fixed"
        Seeds of the refits of an estimator with a ``random_state``:
        "fixed" gives every refit the same one.
    random_state : int, RandomState instance or None, default=None
        The random removals and refit seeds.
    n_jobs : int, default=None
    verbose : int, default=0

    Returns
    -------
    curve : Bunch
        fractions, n_removed : ndarray (n_fractions,)
            The fractions asked for and the number of rows each removes.
        targeted : ndarray (n_fractions,)
            The metric after removing the top rows by ``scores``.
        random : ndarray (n_random, n_fractions)
            The metric after each random removal of the same size.
        random_mean, random_std : ndarray (n_fractions,)
            Mean and standard deviation over the random removals.
        order : ndarray of int
            Training rows in removal order.
        metric, direction, engine : str
            The settings used (``engine`` as resolved from ``"auto"``).
        full : float
            The metric of the model on all rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skinfluence import InfluenceExplainer, removal_curve
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    >>> y[:20] = 1 - y[:20]                              # 10% flipped labels
    >>> X_val = rng.normal(size=(100, 3))
    >>> y_val = (X_val[:, 0] > 0).astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> scores = InfluenceExplainer(model).fit(X, y).validation_influence(X_val, y_val)
    >>> curve = removal_curve(model, X, y, X_val, y_val, scores,
    ...                       fractions=[0, 0.1], n_random=5, random_state=0)
    >>> bool(curve.targeted[1] < curve.random_mean[1])  # cleaning beats chance
    True
    """
    if direction not in ("harmful", "helpful"):
        raise ValueError(f"direction must be 'harmful' or 'helpful'; got "
                         f"{direction!r}.")
    if engine not in ("auto", "newton", "refit"):
        raise ValueError(f"engine must be 'auto', 'newton' or 'refit'; got {engine!r}.")
    n = _num_samples(X)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (n,):
        raise ValueError(f"scores must have one value per training row, shape "
                         f"({n},); got {scores.shape}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity; rank finite scores only.")
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or np.any((fractions < 0) | (fractions >= 1)):
        raise ValueError(f"fractions must be shares in [0, 1); got {fractions}.")
    n_random = int(n_random)
    if n_random < 0:
        raise ValueError(f"n_random must be non-negative; got {n_random}.")
    if groups is not None and np.shape(groups)[0] != _num_samples(X_eval):
        raise ValueError(f"groups must have one label per evaluation row "
                         f"({_num_samples(X_eval)}); got {np.shape(groups)[0]}.")
    builtin = isinstance(metric, str) and metric in METRICS
    linear = has_family(estimator) and builtin
    if engine == "newton" and not linear:
        raise ValueError("engine='newton' needs one of the supported linear models "
                         f"and a built-in metric {METRICS}; use engine='refit'.")
    engine = "newton" if (engine == "auto" and linear) else (
        "refit" if engine == "auto" else engine)
    rng = check_random_state(random_state)
    counts = np.rint(fractions * n).astype(int)
    order = np.argsort(scores if direction == "harmful" else -scores, kind="stable")
    removals = _removal_sets(order, counts)
    for _ in range(n_random):
        removals += _removal_sets(rng.permutation(n), counts)
    y_eval = None if y_eval is None else np.asarray(y_eval)
    if engine == "newton":
        values, full, errors = _by_newton(estimator, X, y, X_eval, y_eval, removals,
                                          sample_weight, metric, groups, temperature,
                                          n_jobs)
    else:
        values, full, errors = _by_refits(estimator, X, y, X_eval, y_eval, removals,
                                          sample_weight, metric, groups, temperature,
                                          refit_seeds, rng, n_jobs, verbose)
    if errors:
        names = [f"{int(k)} rows" for k in np.tile(counts, n_random + 1)]
        warnings.warn(describe_failures(errors, names, len(removals), "refits")
                      + ". Their points are NaN.", UserWarning, stacklevel=2)
    values = values.reshape(n_random + 1, len(counts))
    random = values[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no random removals
        random_mean = random.mean(axis=0) if n_random else np.full(len(counts), np.nan)
        random_std = (random.std(axis=0, ddof=1) if n_random > 1
                      else np.full(len(counts), np.nan))
    return Result(fractions=fractions, n_removed=counts, targeted=values[0],
                 random=random, random_mean=random_mean, random_std=random_std,
                 order=order, metric=metric if isinstance(metric, str) else
                 getattr(metric, "__name__", "scorer"), direction=direction,
                 engine=engine, full=full)


def _by_newton(estimator, X, y, X_eval, y_eval, removals, sample_weight, metric,
               groups, temperature, n_jobs):
    X, y, X_eval, y_eval, sample_weight = check_data(X, y, X_eval, y_eval,
                                                      sample_weight)
    fitted = fitted_estimator(estimator, X, y, sample_weight)
    engine = SubsetEngine(fitted, X, y, sample_weight, engine="newton", tol=1e-10)
    family = engine.family
    measure = _Metric(metric, y_eval, groups, temperature)
    with threadpool_limits(1):
        theta = engine.fit(np.ones(X.shape[0], dtype=bool), family.theta)
    full = measure.of_decision(family, family.decision(X_eval, theta))
    blocks = range(0, len(removals), 8)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_newton_block)(engine, removals[s : s + 8], X_eval, measure, theta)
        for s in blocks)
    errors = [(s + i, message) for s, part in zip(blocks, parts)
              for i, message in part[1]]
    return np.concatenate([part[0] for part in parts]), full, errors


def _by_refits(estimator, X, y, X_eval, y_eval, removals, sample_weight, metric,
               groups, temperature, refit_seeds, rng, n_jobs, verbose):
    scorer = None if isinstance(metric, str) and metric in METRICS else metric
    refits = ModelRefits(estimator, X, y, sample_weight, scoring=scorer,
                         random_state=rng, refit_seeds=refit_seeds)
    measure = None if scorer is not None else _Metric(metric, y_eval, groups,
                                                      temperature)
    seeds = refits.seeds(len(removals) + 1)
    with threadpool_limits(1):
        model = refits.fit(np.ones(refits.n_samples, dtype=bool), seeds[0])
    if scorer is not None:
        full = -refits.score_loss(model, X_eval, y_eval)
        result = refits.run(removals, seeds[1:], score_data=(X_eval, y_eval),
                            n_jobs=n_jobs, verbose=verbose, what="removal_curve")
        return -result.scores, full, result.errors
    full = measure.of_outputs(refits, refits.outputs(model, X_eval))
    result = refits.run(removals, seeds[1:], (X_eval,), n_jobs=n_jobs,
                        verbose=verbose, what="removal_curve")
    failed = {i for i, _ in result.errors}
    values = np.array([np.nan if i in failed else measure.of_outputs(refits, out)
                       for i, out in enumerate(result.outputs)])
    return values, full, result.errors
