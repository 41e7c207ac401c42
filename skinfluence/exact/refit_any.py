"""Refits of any scikit-learn estimator on subsets of its training rows.

The model-agnostic counterpart of :mod:`.refit`: no family, no closed form,
only clones of the estimator (a Pipeline is refitted whole) fitted on the rows
of a subset and measured on evaluation rows. The measured quantity:

* a classifier with ``predict_proba``: the per-row log-loss
  ``-log p(y_j)``, with the probability clipped to machine epsilon as in
  :func:`sklearn.metrics.log_loss` (trees and neighbours give exact zeros);
* a regressor: the per-row squared error, or the prediction itself when no
  targets are given;
* otherwise, or whenever ``scoring`` is given: minus the value of a
  scikit-learn scorer (a name such as ``"accuracy"`` or a callable
  ``scorer(estimator, X, y)``) on the whole evaluation set, one number per
  refit (higher scores are better, so minus the score is a loss).

Randomness: every ``random_state`` parameter of the estimator (and of the
steps of a Pipeline) is set per refit from seeds drawn in the calling process,
so results do not depend on ``n_jobs`` or the joblib backend.
``refit_seeds="fixed"`` gives every refit the same seed (an integer the user
set is kept; others get one seed drawn from ``random_state``): differences
between refits come from the data only, the variance of training itself is
excluded. ``refit_seeds="vary"`` gives each refit its own seed (the setting of
Feldman & Zhang, 2020, where an estimate averages over training randomness).

A refit that cannot be made (a class of ``y`` has no row left, or ``fit`` or
``predict`` raises) is reported, never raised mid-run: the callers turn it
into NaN (leave-one-out, downsampling) or the null model (Shapley, Banzhaf)
and warn, naming the rows.
"""

import warnings
from itertools import pairwise

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone, is_classifier
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch, _safe_indexing, check_random_state
from sklearn.utils.parallel import delayed
from sklearn.utils.validation import _num_samples, has_fit_parameter
from threadpoolctl import threadpool_limits

from .._progress import Progress, run_tasks
from ..families import has_family
from .refit import tight_clone

__all__ = ["REFIT_SEEDS", "ModelRefits", "Unfittable", "describe_failures",
           "refit_any_loo"]

#: how refits are seeded
REFIT_SEEDS = ("fixed", "vary")

#: smallest probability of the log-loss (as sklearn.metrics.log_loss)
_EPS = np.finfo(np.float64).eps


class Unfittable(ValueError):
    """A subset a model cannot be fitted on (no rows, or a class missing)."""


def _template(estimator):
    """An unfitted clone to refit; supported linear models at tight tolerance.

    Cross-validated linear models keep their search: refitting the whole
    estimator reruns it.
    """
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if isinstance(estimator, Pipeline):
        est = clone(estimator)
        name, final = est.steps[-1]
        if isinstance(final, FrozenEstimator):
            final = final.estimator
        if has_family(final) and not isinstance(final, (RidgeCV, LogisticRegressionCV)):
            est.steps[-1] = (name, tight_clone(final))
        return est
    if has_family(estimator) and not isinstance(estimator,
                                                (RidgeCV, LogisticRegressionCV)):
        return tight_clone(estimator)
    return clone(estimator)


def _final_step(estimator):
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


class ModelRefits:
    """Clones of one estimator refitted on subsets of ``(X, y)``.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Only its parameters are used (fitted or not, it is never refitted).
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, ...)
        Whatever the estimator's ``fit`` accepts; rows are taken with
        ``sklearn.utils._safe_indexing``.
    y : array-like of shape (n_samples,)
    sample_weight : array-like of shape (n_samples,), default=None
    scoring : str or callable, default=None
        A scikit-learn scorer; the quantity is then minus its value.
    random_state : int, RandomState instance or None, default=None
        Source of the refit seeds.
    refit_seeds : {"fixed", "vary"}, default="fixed"

    Attributes
    ----------
    kind : {"proba", "prediction", "label"}
        What :meth:`outputs` returns: class probabilities (columns in
        ``classes``), a regressor's prediction, or the index of the predicted
        class (a classifier without ``predict_proba``).
    classes : ndarray or None
    labels : ndarray of int or None
        Class index of every training row.
    scorer : callable or None
    """

    def __init__(self, estimator, X, y, sample_weight=None, *, scoring=None,
                 random_state=None, refit_seeds="fixed"):
        if refit_seeds not in REFIT_SEEDS:
            raise ValueError(
                f"refit_seeds must be 'fixed' or 'vary'; got {refit_seeds!r}.")
        self.estimator = _template(estimator)
        name = type(_final_step(self.estimator)).__name__
        if not hasattr(self.estimator, "predict") and scoring is None:
            raise ValueError(f"{name} has no predict method; pass a scoring.")
        self.X = X
        self.y = np.asarray(y)
        n = _num_samples(X)
        if self.y.ndim != 1 or self.y.shape[0] != n:
            raise ValueError(f"X has {n} rows but y has shape {self.y.shape}; pass "
                             "one target per training row.")
        self.is_classifier = is_classifier(self.estimator)
        if self.is_classifier:
            self.classes, self.labels = np.unique(self.y, return_inverse=True)
            self.kind = "proba" if hasattr(self.estimator, "predict_proba") else "label"
        else:
            self.classes = self.labels = None
            self.kind = "prediction"
        self.scorer = None if scoring is None else check_scoring(self.estimator, scoring)
        self.sample_weight = None
        if sample_weight is not None:
            final = _final_step(self.estimator)
            if not has_fit_parameter(final, "sample_weight"):
                raise ValueError(f"{name}.fit does not take sample_weight; refit "
                                 "without it or choose an estimator that does.")
            self.sample_weight = np.asarray(sample_weight, dtype=float)
            if self.sample_weight.shape != (n,):
                raise ValueError(f"sample_weight must have shape ({n},); got "
                                 f"{self.sample_weight.shape}.")
            self._weight_key = ("sample_weight" if final is self.estimator
                                else f"{self.estimator.steps[-1][0]}__sample_weight")
        params = self.estimator.get_params(deep=True)
        seeded = [k for k in params
                  if k == "random_state" or k.endswith("__random_state")]
        if refit_seeds == "fixed":
            # integer seeds the user chose stay; the others get one common seed
            seeded = [k for k in seeded
                      if not isinstance(params[k], (int, np.integer))]
        self.seed_params = seeded
        self.refit_seeds = refit_seeds
        self._rng = check_random_state(random_state)
        self._fixed_seed = (self._rng.randint(2**31 - 1)
                            if seeded and refit_seeds == "fixed" else None)

    @property
    def n_samples(self):
        return self.y.shape[0]

    def seeds(self, shape):
        """Seeds of ``shape`` refits: all equal ("fixed") or independent
        ("vary"); None where the estimator has no randomness to set."""
        if not self.seed_params:
            return np.full(shape, None, dtype=object)
        if self.refit_seeds == "fixed":
            return np.full(shape, self._fixed_seed, dtype=object)
        return self._rng.randint(2**31 - 1, size=shape).astype(object)

    def check_classes(self, keep):
        """Raise :class:`Unfittable` when ``keep`` has no rows or lacks a class."""
        if not keep.any():
            raise Unfittable("no rows left")
        if self.is_classifier:
            present = np.bincount(self.labels[keep], minlength=self.classes.size) > 0
            if not present.all():
                raise Unfittable(
                    f"class {', '.join(map(str, self.classes[~present]))} has no "
                    "row left")

    def fit(self, keep, seed=None):
        """A clone fitted on the rows where ``keep`` is True."""
        self.check_classes(keep)
        est = clone(self.estimator)
        if seed is not None and self.seed_params:
            est.set_params(**{k: int(seed) for k in self.seed_params})
        rows = np.flatnonzero(keep)
        params = ({} if self.sample_weight is None
                  else {self._weight_key: self.sample_weight[rows]})
        est.fit(_safe_indexing(self.X, rows), self.y[rows], **params)
        return est

    def null_model(self):
        """The model of no data: class frequencies (prior) or the mean target
        of all training rows."""
        dummy = (DummyClassifier(strategy="prior") if self.is_classifier
                 else DummyRegressor())
        return dummy.fit(self.X, self.y, sample_weight=self.sample_weight)

    def outputs(self, est, X):
        """``(n, K)``: probabilities, the prediction, or the predicted class index."""
        if self.kind == "proba":
            return np.asarray(est.predict_proba(X), dtype=float)
        prediction = np.asarray(est.predict(X))
        if self.kind == "label":
            return np.searchsorted(self.classes, prediction).astype(float)[:, None]
        return prediction.astype(float).reshape(prediction.shape[0], -1)

    def class_index(self, y):
        y = np.asarray(y)
        index = np.searchsorted(self.classes, y)
        index = np.clip(index, 0, self.classes.size - 1)
        unseen = self.classes[index] != y
        if unseen.any():
            raise ValueError(
                f"y_test has labels {np.unique(y[unseen]).tolist()} that are not in "
                "the training targets.")
        return index

    def losses(self, outputs, y):
        """Per-row loss of ``outputs`` (..., n, K) at targets ``y``: (..., n).

        NaN outputs (failed refits) give NaN.
        """
        if self.kind == "proba":
            index = self.class_index(y)
            p = np.take_along_axis(
                outputs, np.broadcast_to(index[:, None], outputs.shape[:-1] + (1,)),
                axis=-1)[..., 0]
            return -np.log(np.clip(p, _EPS, 1.0))
        if self.kind == "prediction":
            if y is None:
                return outputs[..., 0]
            return (outputs[..., 0] - np.asarray(y, dtype=float)) ** 2
        self.require_per_row_loss()

    def require_per_row_loss(self):
        """Raise, naming the fix, when the model has no per-row loss."""
        if self.kind == "label":
            raise ValueError(
                f"{type(_final_step(self.estimator)).__name__} has no predict_proba, "
                "so there is no per-row log-loss: pass scoring (a scikit-learn "
                "scorer such as 'accuracy', measured on the whole test set) or, for "
                "Shapley and Banzhaf values, utility='accuracy'.")

    def correct(self, outputs, y):
        """1.0 where the predicted class is ``y`` (classifiers), NaN for NaN."""
        index = self.class_index(y)
        predicted = (outputs[..., 0] if self.kind == "label"
                     else np.argmax(outputs, axis=-1).astype(float))
        out = (predicted == index).astype(float)
        out[np.isnan(outputs).any(axis=-1)] = np.nan
        return out

    def score_loss(self, est, X, y):
        """Minus the scorer's value of ``est`` on ``(X, y)``."""
        return -float(self.scorer(est, X, y))

    def run(self, subsets, seeds, X_eval=None, *, score_data=None, null=None,
            n_jobs=None, verbose=0, what="refits"):
        """Refit on every subset and measure.

        ``subsets`` are boolean masks of kept rows, or integer arrays of rows
        removed. ``X_eval`` is a tuple of evaluation sets (their rows are
        concatenated in ``outputs``) or None. Returns a Bunch: ``outputs``
        (S, n_eval, K), ``scores`` (S,) minus the scorer on ``score_data`` (or None),
        ``errors`` a list of ``(subset index, message)`` and ``unfittable``
        (S,) bool. Failed subsets hold ``null`` (outputs, score) when given,
        else NaN.
        """
        S = len(subsets)
        if S == 0:
            K = len(self.classes) if self.kind == "proba" else 1
            n_eval = 0 if X_eval is None else sum(_num_samples(part) for part in X_eval)
            return Bunch(outputs=None if X_eval is None else np.empty((0, n_eval, K)),
                         scores=None if score_data is None else np.empty(0),
                         unfittable=np.zeros(0, dtype=bool), errors=[])
        # tasks of about 16 refits, at least 4 per worker (each refit is
        # independent: the split does not change any number)
        n_tasks = max(1, min(S, max(4 * effective_n_jobs(n_jobs), -(-S // 16))))
        bounds = np.linspace(0, S, n_tasks + 1).astype(int)
        pairs = list(pairwise(bounds))
        parts = run_tasks(
            [delayed(_refit_chunk)(self, subsets[a:b], seeds[a:b], X_eval, score_data,
                                   null) for a, b in pairs],
            [b - a for a, b in pairs], n_jobs=n_jobs,
            progress=Progress(S, what, verbose, unit="refits"))
        offsets = np.concatenate([[0], np.cumsum([len(p[2]) for p in parts])])
        errors = [(int(offset + i), message)
                  for offset, p in zip(offsets, parts) for i, message in p[3]]
        return Bunch(
            outputs=None if X_eval is None else np.concatenate([p[0] for p in parts]),
            scores=None if score_data is None else np.concatenate(
                [p[1] for p in parts]),
            unfittable=np.concatenate([p[2] for p in parts]),
            errors=errors,
        )


def _keep(subset, n):
    subset = np.asarray(subset)
    if subset.dtype == bool:
        return subset
    keep = np.ones(n, dtype=bool)
    keep[subset] = False
    return keep


def _refit_chunk(refits, subsets, seeds, X_eval, score_data, null):
    S = len(subsets)
    outputs = None
    scores = None if score_data is None else np.full(S, np.nan)
    unfittable = np.zeros(S, dtype=bool)
    errors = []
    with threadpool_limits(1):
        for position, (subset, seed) in enumerate(zip(subsets, seeds)):
            try:
                est = refits.fit(_keep(subset, refits.n_samples), seed)
                out = None if X_eval is None else np.concatenate(
                    [refits.outputs(est, part) for part in X_eval])
                score = (None if score_data is None
                         else refits.score_loss(est, *score_data))
            except Exception as exc:  # noqa: BLE001 (a failed refit never stops the run)
                unfittable[position] = isinstance(exc, Unfittable)
                errors.append((position, f"{type(exc).__name__}: {exc}"))
                out, score = (None, None) if null is None else null
            if X_eval is not None:
                if outputs is None:
                    K = (len(refits.classes) if refits.kind == "proba" else
                         out.shape[1] if out is not None else 1)
                    n_eval = sum(_num_samples(part) for part in X_eval)
                    outputs = np.full((S, n_eval, K), np.nan)
                if out is not None:
                    outputs[position] = out
            if score is not None:
                scores[position] = score
    return outputs, scores, unfittable, errors


def describe_failures(errors, names, total, what):
    """One sentence naming the failed refits and the first reason."""
    shown = ", ".join(str(names[i]) for i, _ in errors[:20])
    more = f" and {len(errors) - 20} more" if len(errors) > 20 else ""
    reason = errors[0][1].removeprefix("Unfittable: ")
    return (f"{len(errors)} of {total} {what} failed ({shown}{more}); first "
            f"reason: {reason}")


def refit_any_loo(estimator, X, y, sample_weight, X_test, y_test, removals, *,
                  scoring=None, random_state=None, refit_seeds="fixed", n_jobs=None,
                  verbose=0):
    """Change of the measured quantity when each entry of ``removals`` (a row
    or an array of rows) is removed, by refits of clones of any estimator.

    Returns ``(n_test, len(removals))`` of per-row losses, or ``(1,
    len(removals))`` of minus the score when ``scoring`` is given. Failed
    refits are NaN, with a warning naming the rows.
    """
    refits = ModelRefits(estimator, X, y, sample_weight, scoring=scoring,
                         random_state=random_state, refit_seeds=refit_seeds)
    removals = [np.atleast_1d(np.asarray(r)) for r in removals]
    n = refits.n_samples
    for r in removals:
        if r.size and (not np.issubdtype(r.dtype, np.integer) or r.min() < -n
                       or r.max() >= n):
            raise ValueError(f"train_indices must be integer positions in [0, {n}); "
                             f"got {r.tolist()[:10]}.")
    removals = [r.astype(np.intp) % n for r in removals]
    seeds = refits.seeds(len(removals) + 1)
    with threadpool_limits(1):
        full = refits.fit(np.ones(refits.n_samples, dtype=bool), seeds[0])
    if scoring is None and y_test is None and refits.is_classifier:
        y_test = full.predict(X_test)  # explained at the model's own prediction
    if scoring is not None:
        base = np.array([refits.score_loss(full, X_test, y_test)])
    else:
        base = refits.losses(refits.outputs(full, X_test), y_test)
    result = refits.run(removals, seeds[1:],
                        None if scoring is not None else (X_test,),
                        score_data=None if scoring is None else (X_test, y_test),
                        n_jobs=n_jobs, verbose=verbose, what="leave-one-out refits")
    moved = (result.scores[:, None] if scoring is not None
             else refits.losses(result.outputs, y_test))
    if result.errors:
        names = [r.tolist() if r.size > 1 else int(r[0]) for r in removals]
        warnings.warn(describe_failures(result.errors, names, len(removals),
                                        "refits without rows")
                      + ". Their columns are NaN.", UserWarning, stacklevel=3)
    return (moved - base[None, :]).T
