"""One evaluation harness for every training-data attribution estimator.

Every estimator is run on the same task and turned into a score matrix
``(n_test, n_train)`` in the convention of :meth:`InfluenceExplainer.explain`
(predicted change of test loss ``j`` when row ``i`` is removed; positive:
helps). Data Shapley and Banzhaf give one value per validation row for the
utility "minus the loss of that row", which is the same convention.

Metrics:

* ``loo_pearson``: Pearson correlation with exact leave-one-out refits over
  all (test, train) pairs;
* ``loo_spearman``: Spearman correlation of the per-training-row means (the
  effect on the mean validation loss) with those of exact LOO;
* ``lds``: linear datamodeling score (Park et al., 2023): for random 50%
  subsets ``S``, the Spearman correlation over subsets between the predicted
  test loss ``L_j(N) + sum_{i not in S} tau_ji`` and the loss of a model
  actually refitted on ``S``, averaged over test rows;
* ``flip_auc``: ROC AUC of finding the training rows whose labels were
  corrupted, ranking rows from the most harmful (lowest mean score) up;
* ``seconds``: wall time of the estimator.
"""

import time

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.base import is_classifier
from sklearn.metrics import roc_auc_score
from sklearn.utils import check_random_state

from .._result import Result
from .._fitted import FittedInfluence
from ..estimators import (
    SubsetEngine,
    banzhaf,
    draw_subsets,
    evaluate_subsets,
    representer_decomposition,
    subsample_influence,
    tmc_shapley,
)
from ..estimators.subsets import check_data
from ..exact import tight_clone
from ..families import family_for

__all__ = ["evaluate_estimators", "linear_datamodeling_score", "METHODS"]

#: every estimator the harness knows, in table order
METHODS = ("loo", "first_order", "newton", "representer", "downsampling",
           "tmc_shapley", "banzhaf")


def linear_datamodeling_score(scores, masks, subset_losses, full_losses):
    """Linear datamodeling score of attribution ``scores`` (Park et al., 2023).

    Parameters
    ----------
    scores : ndarray of shape (n_test, n_train)
        Attribution in the ``explain`` convention: predicted change of test
        loss ``j`` when row ``i`` is removed.
    masks : ndarray of shape (n_subsets, n_train) of bool
        The training subsets models were refitted on.
    subset_losses : ndarray of shape (n_subsets, n_test)
        Test losses of those models.
    full_losses : ndarray of shape (n_test,)
        Test losses of the model fitted on every row.

    Returns
    -------
    lds : float
        Mean over test rows of the Spearman correlation, across subsets,
        between the additive prediction ``full_losses[j] + sum_{i not in S}
        scores[j, i]`` and ``subset_losses[:, j]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence import linear_datamodeling_score
    >>> rng = np.random.default_rng(0)
    >>> tau = rng.normal(size=(2, 6))
    >>> masks = rng.random((20, 6)) < 0.5
    >>> losses = 1.0 + (~masks) @ tau.T        # an exactly additive truth
    >>> float(linear_datamodeling_score(tau, masks, losses, np.ones(2)))
    1.0
    """
    predicted = full_losses[None, :] + (~masks).astype(float) @ scores.T
    rhos = []
    for j in range(predicted.shape[1]):
        a, b = predicted[:, j], subset_losses[:, j]
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        rhos.append(spearmanr(a, b)[0])
    return float(np.mean(rhos)) if rhos else float("nan")


def _corrupt(y, fraction, is_classifier, rng):
    n = len(y)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    y_new = y.copy()
    if is_classifier:
        classes = np.unique(y)
        for i in np.flatnonzero(flipped):
            y_new[i] = rng.choice(classes[classes != y[i]])
    else:
        y_new = y_new.astype(float)
        y_new[flipped] = 2 * y.mean() - y[flipped]  # reflect about the mean
    return y_new, flipped


def evaluate_estimators(estimator, X, y, X_test, y_test, *, methods=METHODS,
                        flip_fraction=0.1, n_lds_subsets=50, params=None,
                        random_state=0, n_jobs=None):
    """Score every attribution estimator on one task.

    The task: corrupt the labels of ``flip_fraction`` of the training rows
    (another class for a classifier; ``2 mean(y) - y`` for a regressor), fit a
    tightly converged clone of ``estimator`` on the corrupted data and explain
    the clean test losses. See the module docstring for the metrics.

    Parameters
    ----------
    estimator : estimator
        A supported linear model (only its parameters are used).
    X, y : training data
    X_test, y_test : validation/test data (their losses are explained)
    methods : sequence of str, default=METHODS
        Any of "loo", "first_order", "newton", "representer", "downsampling",
        "tmc_shapley", "banzhaf". Exact LOO is always computed (the reference).
    flip_fraction : float, default=0.1
    n_lds_subsets : int, default=50
        Random 50% subsets for the linear datamodeling score.
    params : dict, default=None
        Keyword arguments per method, e.g.
        ``{"tmc_shapley": {"n_permutations": 200}, "downsampling":
        {"n_models": 500}}``.
    random_state : int, default=0
    n_jobs : int, default=None

    Returns
    -------
    result : Bunch
        table : list of dict
            One row per method: ``method``, ``loo_pearson``, ``loo_spearman``,
            ``lds``, ``flip_auc``, ``seconds``.
        scores : dict of ndarray (n_test, n_train)
            Each method's scores, in the sign and units of ``explain``.
        flipped : ndarray (n_train,) of bool
            The training rows whose labels were flipped.
        text : str
            The table, formatted.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import evaluate_estimators
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=40)
    >>> res = evaluate_estimators(Ridge(), X, y, X[:5], y[:5],
    ...                           methods=("loo", "newton"), n_lds_subsets=10)
    >>> [row["method"] for row in res.table]
    ['loo', 'newton']
    >>> round(res.table[1]["loo_pearson"], 6)   # Newton is exact for Ridge
    1.0
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {METHODS}.")
    params = params or {}
    X, y, X_test, y_test, _ = check_data(X, y, X_test, y_test, None)
    rng = check_random_state(random_state)
    seed = int(rng.randint(2**31 - 1))
    model = tight_clone(estimator)
    y_bad, flipped = _corrupt(y, flip_fraction, is_classifier(model), rng)
    model.fit(X, y_bad)
    # what InfluenceExplainer(model).fit(X, y_bad) computes
    fitted = FittedInfluence(family_for(model), X, y_bad, estimator=model)
    family = fitted.family

    def run(method):
        kw = dict(params.get(method, {}))
        if method == "loo":
            return fitted.loo(X_test, y_test, method="refit", n_jobs=n_jobs, **kw)
        if method in ("first_order", "newton"):
            return fitted.explain(X_test, y_test, method=method)
        if method == "representer":
            return representer_decomposition(fitted, X_test, y_test, **kw).influence
        kw.setdefault("random_state", seed)
        kw.setdefault("n_jobs", n_jobs)
        if method == "downsampling":
            return subsample_influence(model, X, y_bad, X_test, y_test, **kw).influence
        if method == "tmc_shapley":
            return tmc_shapley(model, X, y_bad, X_test, y_test, **kw).test_values
        return banzhaf(model, X, y_bad, X_test, y_test, **kw).test_values

    scores, seconds = {}, {}
    for method in ("loo",) + tuple(m for m in methods if m != "loo"):
        start = time.perf_counter()
        scores[method] = run(method)
        seconds[method] = time.perf_counter() - start

    # refits on random halves for the linear datamodeling score
    engine = SubsetEngine(model, X, y_bad, engine="refit")
    masks = draw_subsets(np.random.RandomState(seed), X.shape[0], n_lds_subsets,
                         labels=engine._labels)
    Z = evaluate_subsets(engine, masks, X_test, n_jobs=n_jobs)
    Y = family.encode_target(y_test)
    S, m, K = Z.shape
    subset_losses = family.loss(np.tile(Y, (S, 1)), Z.reshape(-1, K)).reshape(S, m)
    full_losses = family.loss(Y, engine.decision(X_test, engine.fit(np.ones(
        X.shape[0], dtype=bool))))

    loo = scores["loo"]
    table = []
    for method in methods:
        T = scores[method]
        table.append({
            "method": method,
            "loo_pearson": float(pearsonr(T.ravel(), loo.ravel())[0]),
            "loo_spearman": float(spearmanr(T.mean(0), loo.mean(0))[0]),
            "lds": linear_datamodeling_score(T, masks, subset_losses, full_losses),
            "flip_auc": float(roc_auc_score(flipped, -T.mean(0))),
            "seconds": seconds[method],
        })
    lines = [f"{'method':14s} {'LOO pearson':>11s} {'LOO spearman':>12s} "
             f"{'LDS':>6s} {'flip AUC':>8s} {'seconds':>8s}"]
    for row in table:
        lines.append(f"{row['method']:14s} {row['loo_pearson']:11.3f} "
                     f"{row['loo_spearman']:12.3f} {row['lds']:6.3f} "
                     f"{row['flip_auc']:8.3f} {row['seconds']:8.2f}")
    return Result(table=table, scores=scores, flipped=flipped, text="\n".join(lines),
                 model=model)
