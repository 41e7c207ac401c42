"""How far to trust the influence estimates: a comparison with exact LOO."""

from numbers import Integral

import numpy as np
from scipy.stats import spearmanr
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.validation import _num_samples

from .._result import Result, TrustReport
from ..exact import has_certificate

__all__ = ["trust_report", "plot_estimated_vs_actual"]


def _top_k_overlap(estimated, actual, k, largest):
    """Mean share of the k largest (or smallest) entries per row found by both."""
    k = min(k, estimated.shape[1])
    sign = -1 if largest else 1
    shares = []
    for est_row, act_row in zip(estimated, actual):
        top_est = np.argsort(sign * est_row, kind="stable")[:k]
        top_act = np.argsort(sign * act_row, kind="stable")[:k]
        shares.append(len(np.intersect1d(top_est, top_act)) / k)
    return float(np.mean(shares))


def _correlations(estimated, actual):
    """Pearson and Spearman correlations, NaN with a note where undefined."""
    finite = np.isfinite(estimated) & np.isfinite(actual)
    estimated, actual = estimated[finite], actual[finite]
    if finite.sum() < 2 or np.ptp(estimated) == 0 or np.ptp(actual) == 0:
        constant = [name for name, values in (("estimated", estimated),
                                              ("actual", actual))
                    if values.size and np.ptp(values) == 0]
        return np.nan, np.nan, (
            f"The {' and '.join(constant) or 'finite'} effects are "
            f"{'constant' if constant else 'fewer than two'}, so the correlations "
            "are undefined (NaN). This happens when every sampled test loss is "
            "flat in the coefficients (for example test rows outside a hinge "
            "margin); pass other test rows or a larger n_test.")
    note = None if finite.all() else (
        f"{(~finite).sum()} undefined (NaN) pair(s) left out of the correlations.")
    return (float(np.corrcoef(estimated, actual)[0, 1]),
            float(spearmanr(estimated, actual)[0]), note)


def trust_report(explainer, X, y=None, *, method="first_order", loo_method="exact",
                 n_test=5, n_train=200, k=10, n_disagreements=10, random_state=None,
                 n_jobs=None, verbose=0, plot=False, ax=None):
    """Compare :meth:`InfluenceExplainer.explain` with exact leave-one-out.

    See :meth:`InfluenceExplainer.trust_report` for the parameters.
    """
    rng = check_random_state(random_state)
    n_rows = _num_samples(X)
    if y is not None and _num_samples(y) != n_rows:
        raise ValueError(
            f"X has {n_rows} rows but y has {_num_samples(y)}; pass the targets of "
            "the same test rows.")
    for name, value in (("n_test", n_test), ("n_train", n_train), ("k", k)):
        if value is not None and (not isinstance(value, Integral) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None; got "
                             f"{value!r}.")
    if y is not None:
        explainer.validate_targets(y)  # every target, not only the sampled ones
    test_rows = np.arange(n_rows)
    if n_test is not None and n_test < n_rows:
        test_rows = np.sort(rng.choice(n_rows, size=n_test, replace=False))
    n_all = explainer.problem_.n_samples
    train_rows = np.arange(n_all)
    if n_train is not None and n_train < n_all:
        train_rows = np.sort(rng.choice(n_all, size=n_train, replace=False))
    X_s = _safe_indexing(X, test_rows)
    y_s = None if y is None else _safe_indexing(y, test_rows)

    estimated = np.asarray(explainer.explain(X_s, y_s, method=method))[:, train_rows]
    actual = np.asarray(explainer.loo(X_s, y_s, method=loo_method,
                                      train_indices=train_rows, n_jobs=n_jobs,
                                      verbose=verbose))
    # certified intervals of the exact effects, where the family has a bound
    intervals = certified_sign = None
    if has_certificate(explainer.family_):
        intervals = explainer.loo_interval(X_s, y_s, train_indices=train_rows,
                                           n_jobs=n_jobs)
        certified_sign = float(np.mean(np.asarray(intervals.certified_sign)))
    gap = np.abs(estimated - actual).ravel()
    worst = np.argsort(-gap, kind="stable")[:n_disagreements]
    rows, cols = np.unravel_index(worst, estimated.shape)
    pearson, spearman, note = _correlations(estimated.ravel(), actual.ravel())
    report = TrustReport(
        pearson=pearson,
        spearman=spearman,
        note=note,
        helpful_overlap=_top_k_overlap(estimated, actual, k, largest=True),
        harmful_overlap=_top_k_overlap(estimated, actual, k, largest=False),
        certified_sign=certified_sign,
        k=k,
        disagreements=Result(
            test_index=test_rows[rows], train_index=train_rows[cols],
            test_label=_labels_of(getattr(X, "index", None), test_rows[rows]),
            train_label=_labels_of(getattr(explainer, "_training_index", None),
                                   train_rows[cols]),
            estimated=estimated[rows, cols], actual=actual[rows, cols],
        ),
        estimated=estimated,
        actual=actual,
        intervals=intervals,
        test_indices=test_rows,
        train_indices=train_rows,
        method=method,
        loo_method=loo_method,
        n_refits=(len(train_rows) + 1) if loo_method == "refit" else 0,
    )
    if plot:
        report.ax = plot_estimated_vs_actual(estimated, actual, ax=ax,
                                             title=f"{method} vs {loo_method} LOO")
        report.figure = report.ax.figure
    return report


def _labels_of(index, positions):
    """Row labels at ``positions`` (the positions themselves without an index)."""
    if index is None:
        return np.asarray(positions)
    return np.asarray(index, dtype=object)[positions]


def plot_estimated_vs_actual(estimated, actual, *, ax=None, title=None):
    """Scatter estimated against actual leave-one-out changes, with the diagonal.

    Returns the matplotlib ``Axes``. Needs matplotlib (``pip install
    skinfluence[plots]``). A shortcut for
    :meth:`skinfluence.plotting.EstimatedVsActualDisplay.from_estimates`.
    """
    from ..plotting import EstimatedVsActualDisplay

    return EstimatedVsActualDisplay.from_estimates(
        np.ravel(estimated), np.ravel(actual), ax=ax, title=title).ax_
