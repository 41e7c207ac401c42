"""Downsampling (subsampled leave-one-out) estimates of influence and memorisation.

Feldman & Zhang (NeurIPS 2020): fit ``n_models`` models on random subsets of
the training rows; the effect of row ``i`` on test row ``j`` is the mean test
loss of the models that did not see ``i`` minus that of the models that did,

.. math::

    \\hat\\tau_{ji} = \\overline{L_j}\\big|_{i \\notin S} - \\overline{L_j}\\big|_{i \\in S},

the same sign and units as :meth:`InfluenceExplainer.explain` (positive: row
``i`` helps), but for removal from a dataset of the subset size, averaged
over the other rows' presence, rather than from the full set.
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state

from .subsets import (
    SubsetEngine,
    check_data,
    draw_subsets,
    evaluate_subsets,
    fitted_estimator,
    in_out_means,
)

__all__ = ["subsample_influence"]


def subsample_influence(estimator, X, y, X_test, y_test=None, *, n_models=100,
                        fraction=0.5, sample_weight=None, engine="refit",
                        random_state=None, n_jobs=None, verbose=0):
    """Downsampling estimate of every training row's effect on every test loss.

    Fits ``n_models`` models on random subsets of ``fraction`` of the rows
    (stratified by class for classifiers, so every subset has every class)
    and compares, for every (test, train) pair, the models without the row to
    the models with it (Feldman & Zhang, 2020).

    Parameters
    ----------
    estimator : estimator
        A supported linear model (fitted or not; only its parameters and, if
        fitted, its classes are used; it is never refitted). Pass the final
        step of a Pipeline and transformed ``X``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    X_test : {array-like, sparse matrix} of shape (n_test, n_features)
    y_test : array-like of shape (n_test,), default=None
        None explains the first decision value (a regressor's prediction).
    n_models : int, default=100
        Number of subset models. Standard errors shrink as ``1/sqrt(n_models)``.
    fraction : float, default=0.5
        Share of the rows in each subset (0.5 maximises the number of models
        on each side of every row).
    sample_weight : array-like of shape (n_samples,), default=None
    engine : {"refit", "newton"}, default="refit"
        "refit" fits scikit-learn clones at tight tolerance
        (:func:`~skinfluence.exact.tight_clone`); "newton" minimises the
        family's closed-form objective (faster on small problems).
    random_state : int, RandomState instance or None, default=None
        The subsets are drawn once in the calling process: the same seed gives
        the same numbers for any ``n_jobs`` or joblib backend.
    n_jobs : int, default=None
        joblib workers, each limited to one BLAS thread.
    verbose : int, default=0

    Returns
    -------
    result : Bunch
        influence : ndarray (n_test, n_train)
            Mean test loss without row ``i`` minus with it (positive: helps).
        stderr : ndarray (n_test, n_train)
            Its standard error (Welch).
        self_influence : ndarray (n_train,)
            The same for a row's own training loss: how much the row lowers
            its own loss by being in the training set (memorisation, in loss
            units).
        memorization : ndarray (n_train,) or None
            Feldman & Zhang's memorisation score for classifiers:
            ``P(correct | i in S) - P(correct | i not in S)`` on row ``i``.
        masks : ndarray (n_models, n_train) of bool
        n_in, n_out : ndarray (n_train,)
            Number of models with / without each row.
        seconds : float

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
    """
    start = time.perf_counter()
    X, y, X_test, y_test, sample_weight = check_data(X, y, X_test, y_test,
                                                      sample_weight)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}.")
    if int(n_models) < 2:
        raise ValueError(f"n_models must be at least 2; got {n_models!r}.")
    fitted = fitted_estimator(estimator, X, y, sample_weight)
    engine = SubsetEngine(fitted, X, y, sample_weight, engine=engine)
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
    mean_in, mean_out, se, n_in, n_out = in_out_means(test_loss, masks)
    if np.any(n_in < 2) or np.any(n_out < 2):
        warnings.warn(
            f"{int(np.sum((n_in < 2) | (n_out < 2)))} training rows were in or out "
            "of fewer than 2 subset models; their estimates are NaN or have no "
            "standard error. Raise n_models.", UserWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        self_in = np.einsum("sn,sn->n", train_loss, masks) / n_in
        self_out = np.einsum("sn,sn->n", train_loss, ~masks) / n_out
    memorization = None
    if family.is_classifier:
        pred = (np.argmax(Z[:, m:], axis=-1) if K > 1
                else (Z[:, m:, 0] > 0).astype(int))
        correct = (pred == labels).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            memorization = (np.einsum("sn,sn->n", correct, masks) / n_in
                            - np.einsum("sn,sn->n", correct, ~masks) / n_out)
    return Bunch(influence=mean_out - mean_in, stderr=se,
                 self_influence=self_out - self_in, memorization=memorization,
                 masks=masks, n_in=n_in, n_out=n_out,
                 seconds=time.perf_counter() - start)
