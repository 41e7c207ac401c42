"""Models fitted on subsets of the training rows: the engine behind
downsampling, Data Shapley, Banzhaf values and the evaluation harness.

Two engines fit the same objective on a subset of rows (a boolean mask):

* ``"refit"``: a scikit-learn refit of a :func:`~skinfluence.exact.tight_clone`
  of the estimator (the reference: exactly what a user would get);
* ``"newton"``: Newton's method on the family's closed-form objective, warm
  started (for example from the previous prefix of a permutation). Several
  times faster on small problems and defined for every subset that has a
  finite optimum.

Subsets a model cannot be fitted on (empty, or missing a class of a
classifier) get the **null model**: the intercept-only model of the same
family fitted on the whole training set (``coef = 0``; all zeros without an
intercept). Both engines return decision values ``Z`` of the evaluation rows,
shape ``(n_eval, n_outputs)``.

Work is split into fixed chunks of subsets whose random numbers are drawn in
the calling process, each worker limits its BLAS/OpenMP pools to one thread,
so results do not depend on ``n_jobs`` or the joblib backend.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils import Bunch, check_array, check_random_state
from sklearn.utils.parallel import delayed
from threadpoolctl import threadpool_limits

from ..exact import newton_minimize, tight_clone
from ..families import family_for
from .._progress import Progress, run_tasks

__all__ = [
    "SubsetEngine",
    "check_data",
    "combine_repeats",
    "draw_subsets",
    "evaluate_subsets",
    "fitted_estimator",
    "in_out_means",
    "linear_engine",
    "repeat_seeds",
    "top_k",
    "top_k_overlap",
    "utility_values",
]

#: subsets per joblib task (fixed: the arithmetic does not depend on n_jobs)
CHUNK = 16


class SubsetEngine:
    """Fit the estimator's objective on subsets of ``(X, y, sample_weight)``.

    Parameters
    ----------
    estimator : fitted estimator
        A supported linear model (its parameters define the objective).
    X : {ndarray, sparse matrix} of shape (n, p)
    y : ndarray of shape (n,)
    sample_weight : ndarray of shape (n,) or None
    engine : {"newton", "refit"}
    tol : float
        Relative gradient norm at which the Newton engine stops.
    """

    def __init__(self, estimator, X, y, sample_weight=None, *, engine="newton",
                 tol=1e-9, family=None):
        if engine not in ("newton", "refit"):
            raise ValueError(f"engine must be 'newton' or 'refit'; got {engine!r}.")
        self.family = family_for(estimator) if family is None else family
        if engine not in self.family.subset_engines:
            allowed = self.family.subset_engines
            raise ValueError(
                f"engine={engine!r} does not reproduce refits of "
                f"{type(estimator).__name__} on subsets of rows ("
                + (f"use engine={allowed[0]!r}" if allowed else
                   "its parameters live in the kernel map of its own training rows; "
                   "approximate the kernel with a feature map, e.g. Nystroem, and a "
                   "linear model")
                + ").")
        self.estimator = tight_clone(estimator) if engine == "refit" else None
        self.engine = engine
        self.X = X
        self.y = np.asarray(y)
        n = X.shape[0]
        self.sample_weight = (np.ones(n) if sample_weight is None
                              else np.asarray(sample_weight, dtype=float))
        self._weights_given = sample_weight is not None
        self.tol = tol
        fam = self.family
        self.Y = fam.encode_target(self.y)
        self.penalty = fam.penalty_diagonal()
        self.null = fam.null_space()
        self._labels = fam.class_index(self.y) if fam.is_classifier else None
        # the tilde-X of the dense Newton path: [X, 1]
        if not sp.issparse(X):
            self.Xt = (np.hstack([X, np.ones((n, 1))]) if fam.fit_intercept
                       else np.asarray(X))
        else:
            self.Xt = None
        zeros = sp.csr_matrix(X.shape) if sp.issparse(X) else np.zeros(X.shape)
        start = np.zeros(fam.n_parameters)
        self.null_theta = (
            newton_minimize(fam, zeros, self.y, self.sample_weight, start,
                            tol=1e-12, max_iter=50)[0]
            if fam.fit_intercept else start)

    @property
    def n_samples(self):
        return self.X.shape[0]

    def fittable(self, mask):
        """Whether a model can be fitted on the rows of ``mask``."""
        if not mask.any():
            return False
        if self._labels is None:
            return True
        return np.unique(self._labels[mask]).size == len(self.family.classes)

    def fit(self, mask, theta=None):
        """Parameters fitted on the rows of ``mask`` (the null model if none)."""
        if not self.fittable(mask):
            return self.null_theta.copy()
        if self.engine == "refit":
            est = clone(self.estimator)
            params = ({"sample_weight": self.sample_weight[mask]}
                      if self._weights_given else {})
            est.fit(self.X[mask], self.y[mask], **params)
            return family_for(est).theta
        if self.Xt is None:
            return newton_minimize(self.family, self.X[mask], self.y[mask],
                                   self.sample_weight[mask],
                                   self.null_theta if theta is None else theta,
                                   tol=self.tol)[0]
        return self._newton_dense(mask, self.null_theta if theta is None else theta)

    def decision(self, X_eval, theta):
        return self.family.decision(X_eval, theta)

    def _newton_dense(self, mask, theta):
        """Damped Newton on dense data, the lean version of ``newton_minimize``."""
        fam = self.family
        X, Y = self.Xt[mask], self.Y[mask]
        C = fam.row_weights(self.y[mask], self.sample_weight[mask])
        K, P = fam.n_outputs, fam.n_columns
        p = self.penalty
        theta = np.array(theta, dtype=float)
        absX = None

        def state(theta):
            Z = X @ theta.reshape(K, P).T
            value = (np.sum(C * fam.training_output_losses(Y, Z))
                     + 0.5 * np.sum(p * theta**2))
            return Z, value

        Z, value = state(theta)
        for _ in range(100):
            R = C * fam.training_loss_gradient(Y, Z)
            grad = (R.T @ X).ravel() + p * theta
            if fam.quadratic:
                if _ > 0:
                    break  # one Newton step is exact
            else:
                if absX is None:
                    absX = np.abs(X)
                scale = (np.linalg.norm((np.abs(R).T @ absX).ravel())
                         + np.linalg.norm(p * theta))
                if np.linalg.norm(grad) <= self.tol * max(scale, 1e-300):
                    break
            curv = fam.loss_hessian(Y, Z)
            if fam.full_output_hessian:
                D = C[:, :, None] * curv
                H = np.einsum("ikl,ip,iq->kplq", D, X, X, optimize=True)
                H = H.reshape(K * P, K * P)
            else:
                D = C * curv
                H = np.zeros((K, P, K, P))
                for k in range(K):
                    H[k, :, k, :] = (X * D[:, k, None]).T @ X
                H = H.reshape(K * P, K * P)
            diagonal = H.reshape(-1)[:: K * P + 1]  # a view
            diagonal += p
            if self.null is not None:
                H += self.null @ self.null.T
            diagonal += 1e-12 * max(1.0, diagonal.max())
            step = np.linalg.solve(H, grad)
            if fam.quadratic:
                theta = theta - step
                break
            slope = grad @ step
            rate = 1.0
            while True:
                trial = theta - rate * step
                Z_trial, trial_value = state(trial)
                if trial_value <= value - 1e-4 * rate * slope or rate < 1e-10:
                    break
                rate *= 0.5
            theta, Z, value = trial, Z_trial, trial_value
        return theta


def draw_subsets(rng, n, n_subsets, *, fraction=0.5, labels=None, bernoulli=False):
    """Boolean masks ``(n_subsets, n)`` of random subsets.

    ``bernoulli=True`` includes every row independently with probability
    ``fraction``; otherwise each subset has ``round(fraction * n)`` rows,
    drawn within each class (stratified) when ``labels`` are given, with at
    least one row of every class present and one left out where the class has
    two or more rows.
    """
    masks = np.zeros((n_subsets, n), dtype=bool)
    if bernoulli:
        return rng.random((n_subsets, n)) < fraction
    groups = ([np.arange(n)] if labels is None
              else [np.flatnonzero(labels == c) for c in np.unique(labels)])
    for rows in groups:
        size = int(round(fraction * len(rows)))
        if labels is not None:
            size = min(max(size, 1), max(len(rows) - 1, 1))
        for s in range(n_subsets):
            masks[s, rng.choice(rows, size, replace=False)] = True
    return masks


def _subset_chunk(engine, masks, X_eval):
    with threadpool_limits(1):
        return np.stack([engine.decision(X_eval, engine.fit(mask)) for mask in masks])


def evaluate_subsets(engine, masks, X_eval, *, n_jobs=None, verbose=0):
    """Decision values of models fitted on each subset: (n_subsets, n_eval, K)."""
    starts = range(0, len(masks), CHUNK)
    parts = run_tasks(
        [delayed(_subset_chunk)(engine, masks[start : start + CHUNK], X_eval)
         for start in starts],
        [len(masks[start : start + CHUNK]) for start in starts], n_jobs=n_jobs,
        progress=Progress(len(masks), "subset models", verbose, unit="models"))
    return np.concatenate(parts, axis=0)


def utility_values(family, utility, Z, Y, y):
    """Per-row utility of decision values ``Z`` (..., n_eval, K): (..., n_eval).

    ``"loss"``: minus the model's own test loss; ``"accuracy"``: 1 for a correct
    prediction (classifiers only); a callable ``utility(Z, y)`` returning one
    value per row or a scalar.
    """
    shape = Z.shape[:-1]
    Z2 = Z.reshape(-1, Z.shape[-1])
    m = Z.shape[-2]
    if callable(utility):
        out = np.stack([np.broadcast_to(np.asarray(utility(z, y), dtype=float), (m,))
                        for z in Z2.reshape(-1, m, Z.shape[-1])])
        return out.reshape(shape)
    if utility == "loss":
        Yr = np.tile(Y, (Z2.shape[0] // m, 1))
        return -family.loss(Yr, Z2).reshape(shape)
    if utility == "accuracy":
        if not family.is_classifier:
            raise ValueError("utility='accuracy' needs a classifier; use 'loss' "
                             "(minus the squared error) for a regressor.")
        idx = family.class_index(y)
        pred = (np.argmax(Z, axis=-1) if Z.shape[-1] > 1
                else (Z[..., 0] > 0).astype(int))
        return (pred == idx).astype(float)
    raise ValueError(
        f"utility must be 'loss', 'accuracy' or a callable utility(Z, y); got "
        f"{utility!r}.")


# ------------------------------------------------------ shared by the estimators
def fitted_estimator(estimator, X, y, sample_weight):
    """The estimator itself if fitted, else a fitted clone (never mutated)."""
    if hasattr(estimator, "coef_"):
        return estimator
    params = {} if sample_weight is None else {"sample_weight": sample_weight}
    return clone(estimator).fit(X, y, **params)


def check_data(X, y, X_test, y_test, sample_weight):
    X = check_array(X, accept_sparse="csr", dtype=np.float64)
    X_test = check_array(X_test, accept_sparse="csr", dtype=np.float64)
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    if y_test is not None:
        y_test = np.asarray(y_test)
        if y_test.shape[0] != X_test.shape[0]:
            raise ValueError(
                f"X_test has {X_test.shape[0]} rows but y_test has {y_test.shape[0]}.")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float)
    return X, y, X_test, y_test, sample_weight


def linear_engine(estimator, X, y, X_test, y_test, sample_weight, engine, default):
    """Validated data and the :class:`SubsetEngine` of a linear estimator
    (fitted as it is, or a fitted clone): ``(engine, X, y, X_test, y_test,
    sample_weight)``; ``engine="auto"`` becomes ``default``."""
    X, y, X_test, y_test, sample_weight = check_data(X, y, X_test, y_test,
                                                      sample_weight)
    fitted = fitted_estimator(estimator, X, y, sample_weight)
    subsets = SubsetEngine(fitted, X, y, sample_weight,
                           engine=default if engine == "auto" else engine)
    return subsets, X, y, X_test, y_test, sample_weight


def in_out_means(values, masks):
    """Means and standard errors of ``values`` (S, m) over subsets with / without
    each row: arrays (m, n)."""
    M = masks.astype(float)
    n_in, n_out = M.sum(0), (1.0 - M).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_in = values.T @ M / n_in
        mean_out = values.T @ (1.0 - M) / n_out
        var_in = (values.T**2 @ M / n_in - mean_in**2) * n_in / (n_in - 1)
        var_out = (values.T**2 @ (1.0 - M) / n_out - mean_out**2) * n_out / (n_out - 1)
        se = np.sqrt(np.clip(var_in, 0, None) / n_in + np.clip(var_out, 0, None) / n_out)
    return mean_in, mean_out, se, n_in, n_out


# ------------------------------------------------------------------- stability
def top_k(values, k, largest=True):
    """Indices of the ``k`` largest (or smallest) finite entries of a 1-d
    array, most extreme first; ties go to the lowest index."""
    values = np.asarray(values, dtype=float)
    key = -values if largest else values
    key = np.where(np.isnan(key), np.inf, key)
    return np.argsort(key, kind="stable")[: min(int(k), values.size)]


def top_k_overlap(a, b, k, largest=True):
    """Share of the ``k`` largest (or smallest) entries of ``a`` that are also
    among the ``k`` largest (smallest) of ``b``: 1 is the same set."""
    k = min(int(k), np.size(a))
    return np.intersect1d(top_k(a, k, largest), top_k(b, k, largest)).size / k


def combine_repeats(results, value, summaries, k, mean_keys=()):
    """Average independent repeats of a randomised estimator.

    ``results`` are the repeats' Bunches, ``value`` the name of the main
    estimate and ``summaries`` (R, n_train) one value per training row of each
    repeat (its ranking is compared). Returns a Bunch like the first, with
    ``value`` and ``mean_keys`` averaged, ``stderr`` combined as the standard
    error of the mean of independent estimates, and ``repeat_stderr`` (the
    standard error of ``value`` from the spread of the repeats, per entry),
    ``helpful_overlap`` and ``harmful_overlap`` (mean top-``k`` overlap of the
    largest and smallest summaries over every pair of repeats), ``repeat_values``
    (the summaries) and ``n_repeats``.
    """
    R = len(results)
    out = Bunch(**results[0])
    values = np.stack([r[value] for r in results])
    out[value] = values.mean(axis=0)
    for key in mean_keys:
        if out.get(key) is not None:
            out[key] = np.mean([r[key] for r in results], axis=0)
    if "stderr" in out:
        out.stderr = np.sqrt(np.sum([r.stderr**2 for r in results], axis=0)) / R
    out.repeat_stderr = values.std(axis=0, ddof=1) / np.sqrt(R)
    pairs = [(a, b) for a in range(R) for b in range(a + 1, R)]
    for name, largest in (("helpful_overlap", True), ("harmful_overlap", False)):
        out[name] = float(np.mean([top_k_overlap(summaries[a], summaries[b], k,
                                                 largest) for a, b in pairs]))
    out.repeat_values = np.asarray(summaries)
    out.n_repeats = R
    return out


def repeat_seeds(random_state, n_repeats):
    """``random_state`` itself for one repeat, else ``n_repeats`` seeds drawn
    from it (in the calling process)."""
    n_repeats = int(n_repeats)
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1; got {n_repeats}.")
    if n_repeats == 1:
        return [random_state]
    return list(check_random_state(random_state).randint(2**31 - 1, size=n_repeats))
