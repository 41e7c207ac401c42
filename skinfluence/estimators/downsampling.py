"""Downsampling (subsampled leave-one-out) estimates of influence and memorisation.

Feldman & Zhang (NeurIPS 2020): fit ``n_models`` models on random subsets of
the training rows; the effect of row ``i`` on test row ``j`` is the mean test
loss of the models that did not see ``i`` minus that of the models that did,

.. math::

    \\hat\\tau_{ji} = \\overline{L_j}\\big|_{i \\notin S} - \\overline{L_j}\\big|_{i \\in S},

the same sign and units as :meth:`InfluenceExplainer.explain` (positive: row
``i`` helps), but for removal from a dataset of the subset size, averaged
over the other rows' presence, rather than from the full set.

Any estimator or Pipeline works: the supported linear models are fitted by
:class:`~skinfluence.estimators.SubsetEngine`, everything else by clones of
the whole estimator (:mod:`.any_model`).
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from .._result import Result
from .any_model import subsample_refits, uses_any_model
from .subsets import (
    combine_repeats,
    draw_subsets,
    evaluate_subsets,
    in_out_means,
    linear_engine,
    repeat_seeds,
)

__all__ = ["subsample_influence"]


def subsample_influence(estimator, X, y, X_test, y_test=None, *, n_models=100,
                        fraction=0.5, sample_weight=None, engine="refit",
                        scoring=None, refit_seeds="fixed", n_repeats=1, k=10,
                        random_state=None, n_jobs=None, verbose=0):
    """Downsampling estimate of every training row's effect on every test loss.

    Fits ``n_models`` models on random subsets of ``fraction`` of the rows
    (stratified by class for classifiers, so every subset has every class)
    and compares, for every (test, train) pair, the models without the row to
    the models with it (Feldman & Zhang, 2020).

    The measured quantity: a supported linear model's own test loss; for any
    other estimator the per-row log-loss when it has ``predict_proba``
    (probabilities clipped to machine epsilon), the per-row squared error for
    a regressor, or minus ``scoring`` on the whole test set.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Any scikit-learn estimator, fitted or not (only its parameters and,
        for a fitted linear model, its classes are used; it is never
        refitted). A Pipeline is refitted whole on every subset.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_test : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
    y_test : array-like of shape (n_test,), default=None
        None explains the first decision value (a regressor's prediction).
    n_models : int, default=100
        Number of subset models. Standard errors shrink as ``1/sqrt(n_models)``.
    fraction : float, default=0.5
        Share of the rows in each subset (0.5 maximises the number of models
        on each side of every row).
    sample_weight : array-like of shape (n_samples,), default=None
    engine : {"refit", "newton", "auto"}, default="refit"
        For the linear models, "refit" fits scikit-learn clones at tight
        tolerance (:func:`~skinfluence.exact.tight_clone`) and "newton"
        minimises the family's closed-form objective (faster on small
        problems). Any other estimator is refitted ("auto" and "refit").
    scoring : str or callable, default=None
        A scikit-learn scorer (``"accuracy"``, ``"roc_auc"``, or
        ``scorer(estimator, X, y)``): the quantity becomes minus its value on
        the whole test set, and ``influence`` has one row. Needed for a
        classifier without ``predict_proba``.
    refit_seeds : {"fixed", "vary"}, default="fixed"
        For an estimator with a ``random_state`` (a forest, boosting): "fixed"
        gives every subset model the same seed (an integer the estimator has
        is kept), so the estimate excludes the randomness of training itself;
        "vary" gives each model its own seed, the setting of Feldman & Zhang,
        where that randomness is averaged over (and adds to the standard
        error).
    n_repeats : int, default=1
        Independent repeats (new subsets and seeds, drawn from
        ``random_state``), averaged; from 2 on the result also reports the
        spread of the repeats.
    k : int, default=10
        Size of the top sets compared across repeats.
    random_state : int, RandomState instance or None, default=None
        The subsets (and refit seeds) are drawn once in the calling process:
        the same seed gives the same numbers for any ``n_jobs`` or joblib
        backend.
    n_jobs : int, default=None
        joblib workers, each limited to one BLAS thread.
    verbose : int, default=0
        1 reports progress on stderr (models done, rate, time left).

    Returns
    -------
    result : Bunch
        influence : ndarray (n_test, n_train)
            Mean test loss without row ``i`` minus with it (positive: helps);
            one row with ``scoring``.
        stderr : ndarray (n_test, n_train)
            Its standard error (Welch).
        self_influence : ndarray (n_train,) or None
            The same for a row's own training loss: how much the row lowers
            its own loss by being in the training set (memorisation, in loss
            units). None for a model without a per-row loss.
        memorization : ndarray (n_train,) or None
            Feldman & Zhang's memorisation score for classifiers:
            ``P(correct | i in S) - P(correct | i not in S)`` on row ``i``.
        masks : ndarray (n_models, n_train) of bool
            The subsets whose models were fitted (a subset whose refit raised
            is left out, with a warning).
        n_in, n_out : ndarray (n_train,)
            Number of models with / without each row.
        repeat_stderr : ndarray (n_test, n_train)
            With ``n_repeats >= 2``: the standard error of ``influence`` from
            the spread of the repeats.
        helpful_overlap, harmful_overlap : float
            With ``n_repeats >= 2``: mean share of the ``k`` most helpful
            (harmful) rows by mean influence that two repeats agree on.
        repeat_values : ndarray (n_repeats, n_train)
            With ``n_repeats >= 2``: each repeat's mean influence per row.
        seconds : float
            Wall-clock time.

    References
    ----------
    V. Feldman and C. Zhang, "What Neural Networks Memorize and Why: Discovering
    the Long Tail via Influence Estimation", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import subsample_influence
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    >>> res = subsample_influence(Ridge(), X, y, X[:2], y[:2], n_models=20,
    ...                           random_state=0)
    >>> res.influence.shape, res.stderr.shape, res.self_influence.shape
    ((2, 30), (2, 30), (30,))

    Any estimator, here a random forest, refitted on every subset:

    >>> from sklearn.ensemble import RandomForestRegressor
    >>> res = subsample_influence(RandomForestRegressor(n_estimators=5), X, y,
    ...                           X[:2], y[:2], n_models=20, random_state=0)
    >>> res.influence.shape
    (2, 30)
    """
    start = time.perf_counter()
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}.")
    if int(n_models) < 2:
        raise ValueError(f"n_models must be at least 2; got {n_models!r}.")
    any_model = uses_any_model(estimator, engine, scoring)
    if not any_model:
        engine, X, y, X_test, y_test, sample_weight = linear_engine(
            estimator, X, y, X_test, y_test, sample_weight, engine, "refit")

    def once(seed):
        if any_model:
            parts = subsample_refits(
                estimator, X, y, X_test, y_test, n_models=n_models,
                fraction=fraction, sample_weight=sample_weight, scoring=scoring,
                refit_seeds=refit_seeds, random_state=seed, n_jobs=n_jobs,
                verbose=verbose)
        else:
            parts = _linear_subsets(engine, X, X_test, y_test, n_models, fraction,
                                    seed, n_jobs, verbose)
        return _summarise(*parts)

    results = [once(seed) for seed in repeat_seeds(random_state, n_repeats)]
    if len(results) == 1:
        result = results[0]
    else:
        result = combine_repeats(
            results, "influence", [r.influence.mean(0) for r in results], k,
            mean_keys=("self_influence", "memorization"))
        result.masks = np.concatenate([r.masks for r in results])
        result.n_in = sum(r.n_in for r in results)
        result.n_out = sum(r.n_out for r in results)
    result.seconds = time.perf_counter() - start
    return result


def _linear_subsets(engine, X, X_test, y_test, n_models, fraction, random_state,
                    n_jobs, verbose):
    """Subset models of a linear family: masks, test and training losses and
    correctness, as :func:`~.any_model.subsample_refits` returns them."""
    family = engine.family
    rng = check_random_state(random_state)
    labels = engine._labels
    masks = draw_subsets(rng, X.shape[0], int(n_models), fraction=fraction,
                         labels=labels)
    X_eval = sp.vstack([X_test, X], format="csr") if sp.issparse(X) else np.vstack(
        [X_test, X])
    Z = evaluate_subsets(engine, masks, X_eval, n_jobs=n_jobs, verbose=verbose)
    m = X_test.shape[0]
    S, _, K = Z.shape

    def quantity(Zs, Y):
        if Y is None:
            return Zs[:, :, 0]
        Yr = np.tile(Y, (S, 1))
        return family.loss(Yr, Zs.reshape(-1, K)).reshape(S, -1)

    test_loss = quantity(Z[:, :m], None if y_test is None else family.encode_target(y_test))
    train_loss = quantity(Z[:, m:], engine.Y)
    correct = None
    if family.is_classifier:
        pred = (np.argmax(Z[:, m:], axis=-1) if K > 1
                else (Z[:, m:, 0] > 0).astype(int))
        correct = (pred == labels).astype(float)
    return masks, test_loss, train_loss, correct


def _summarise(masks, test_loss, train_loss, correct):
    """In/out means of the subset models' losses: the downsampling estimates."""
    mean_in, mean_out, se, n_in, n_out = in_out_means(test_loss, masks)
    if np.any(n_in < 2) or np.any(n_out < 2):
        warnings.warn(
            f"{int(np.sum((n_in < 2) | (n_out < 2)))} training rows were in or out "
            "of fewer than 2 subset models; their estimates are NaN or have no "
            "standard error. Raise n_models.", UserWarning, stacklevel=3)

    def in_minus_out(values):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.einsum("sn,sn->n", values, masks) / n_in
                    - np.einsum("sn,sn->n", values, ~masks) / n_out)

    return Result(influence=mean_out - mean_in, stderr=se,
                 self_influence=None if train_loss is None else -in_minus_out(
                     train_loss),
                 memorization=None if correct is None else in_minus_out(correct),
                 masks=masks, n_in=n_in, n_out=n_out)
