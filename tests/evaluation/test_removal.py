"""Removal curves against scikit-learn refits without the same rows, written out
by hand; the display; and compare_scores against scipy."""

import numpy as np
import pytest
from scipy.stats import kendalltau, pearsonr, spearmanr
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer, log_loss
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer, compare_scores, removal_curve

TIGHT = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12, max_iter=1000)


@pytest.fixture(scope="module")
def flipped():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=200) > 0).astype(int)
    y[:20] = 1 - y[:20]  # 10% flipped labels
    X_val = rng.normal(size=(150, 4))
    y_val = (X_val[:, 0] - X_val[:, 1] > 0).astype(int)
    model = LogisticRegression(C=0.5).fit(X, y)
    scores = InfluenceExplainer(model).fit(X, y).validation_influence(X_val, y_val)
    return model, X, y, X_val, y_val, scores


def _refit_metric(estimator, X, y, removed, measure):
    keep = np.ones(len(y), dtype=bool)
    keep[removed] = False
    with threadpool_limits(1):
        return measure(clone(estimator).fit(X[keep], y[keep]))


def test_newton_engine_equals_sklearn_refits(flipped):
    model, X, y, X_val, y_val, scores = flipped
    curve = removal_curve(model, X, y, X_val, y_val, scores,
                          fractions=[0, 0.05, 0.1, 0.2], n_random=3, random_state=0)
    assert curve.engine == "newton"
    np.testing.assert_array_equal(curve.order[:20], np.argsort(scores)[:20])
    for k, value in zip(curve.n_removed, curve.targeted):
        truth = _refit_metric(TIGHT, X, y, curve.order[:k],
                              lambda m: log_loss(y_val, m.predict_proba(X_val)))
        assert value == pytest.approx(truth, rel=1e-8)
    refit = removal_curve(model, X, y, X_val, y_val, scores,
                          fractions=[0, 0.05, 0.1, 0.2], n_random=3, random_state=0,
                          engine="refit")
    np.testing.assert_allclose(refit.targeted, curve.targeted, rtol=1e-8)
    np.testing.assert_allclose(refit.random, curve.random, rtol=1e-8)
    # removing the harmful rows lowers the loss far beyond the random spread
    assert curve.targeted[2] < curve.random_mean[2] - 3 * curve.random_std[2]


def test_gap_metric_and_helpful_direction(flipped):
    model, X, y, X_val, y_val, scores = flipped
    groups = (X_val[:, 2] > 0).astype(int)
    curve = removal_curve(model, X, y, X_val, y_val, scores, fractions=[0.1],
                          direction="helpful", metric="demographic_parity",
                          groups=groups, n_random=0)
    np.testing.assert_array_equal(curve.order[:20], np.argsort(-scores)[:20])

    def gap(m):
        p = m.predict_proba(X_val)[:, 1]
        return p[groups == 1].mean() - p[groups == 0].mean()

    assert curve.targeted[0] == pytest.approx(
        _refit_metric(TIGHT, X, y, curve.order[:20], gap), rel=1e-7)
    assert curve.random.shape == (0, 1)


def test_any_model_refits_with_the_same_seed(flipped):
    _, X, y, X_val, y_val, scores = flipped
    est = HistGradientBoostingClassifier(max_iter=10, random_state=0)
    curve = removal_curve(est, X, y, X_val, y_val, scores, fractions=[0, 0.1],
                          metric="accuracy", n_random=2, random_state=0)
    assert curve.engine == "refit"
    for k, value in zip(curve.n_removed, curve.targeted):
        truth = _refit_metric(est, X, y, curve.order[:k],
                              lambda m: np.mean(m.predict(X_val) == y_val))
        assert value == truth
    scored = removal_curve(est, X, y, X_val, y_val, scores, fractions=[0.1],
                           metric="neg_brier_score", n_random=0)
    scorer = get_scorer("neg_brier_score")
    truth = _refit_metric(est, X, y, scored.order[:20],
                          lambda m: scorer(m, X_val, y_val))
    assert scored.targeted[0] == pytest.approx(truth, rel=1e-12)


def test_ridge_squared_error(flipped):
    _, X, _, X_val, _, _ = flipped
    rng = np.random.default_rng(1)
    y = X @ [1.0, 2.0, 0.0, -1.0] + rng.normal(size=200)
    y_val = X_val @ [1.0, 2.0, 0.0, -1.0]
    scores = rng.normal(size=200)
    curve = removal_curve(Ridge(), X, y, X_val, y_val, scores, fractions=[0.3],
                          n_random=0)
    truth = _refit_metric(Ridge(), X, y, curve.order[:60],
                          lambda m: np.mean((m.predict(X_val) - y_val) ** 2))
    assert curve.targeted[0] == pytest.approx(truth, rel=1e-10)


def test_a_vanishing_class_is_nan_with_a_warning(flipped):
    model, X, y, X_val, y_val, _ = flipped
    y = y.copy()
    y[:5] = 2  # a small third class, removed first
    scores = np.where(y == 2, -1.0, 1.0)
    model = LogisticRegression().fit(X, y)
    with pytest.warns(UserWarning, match=r"1 of 2 refits failed \(10 rows\).*no row"):
        curve = removal_curve(model, X, y, X_val, y_val, scores, fractions=[0, 0.05],
                              n_random=0)
    assert np.isfinite(curve.targeted[0]) and np.isnan(curve.targeted[1])


def test_bad_input_names_the_fix(flipped):
    model, X, y, X_val, y_val, scores = flipped
    with pytest.raises(ValueError, match="direction must be"):
        removal_curve(model, X, y, X_val, y_val, scores, direction="up")
    with pytest.raises(ValueError, match="one value per training row"):
        removal_curve(model, X, y, X_val, y_val, scores[:-1])
    with pytest.raises(ValueError, match="NaN"):
        removal_curve(model, X, y, X_val, y_val, np.full(200, np.nan))
    with pytest.raises(ValueError, match="fractions must be shares"):
        removal_curve(model, X, y, X_val, y_val, scores, fractions=[0.5, 1.0])
    with pytest.raises(ValueError, match="needs groups"):
        removal_curve(model, X, y, X_val, y_val, scores, metric="fpr_gap")
    with pytest.raises(ValueError, match="engine='newton' needs"):
        removal_curve(HistGradientBoostingClassifier(), X, y, X_val, y_val, scores,
                      engine="newton")


def test_display(flipped):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skinfluence.plotting import RemovalCurveDisplay

    model, X, y, X_val, y_val, scores = flipped
    try:
        display = RemovalCurveDisplay.from_estimator(
            model, X, y, X_val, y_val, scores, fractions=[0, 0.1], n_random=3,
            random_state=0, label="validation influence")
        np.testing.assert_allclose(display.line_.get_ydata(), display.curve_.targeted)
        np.testing.assert_allclose(display.random_line_.get_ydata(),
                                   display.curve_.random_mean)
        assert display.ax_.get_xlabel() == "training rows removed (%)"
        second = RemovalCurveDisplay.from_curve(display.curve_, ax=display.ax_,
                                                show_random=False, label="again")
        assert second.band_ is None and len(display.ax_.lines) == 3
    finally:
        plt.close("all")
    with pytest.raises(ValueError, match="one value per fraction"):
        RemovalCurveDisplay([0, 0.1], [1.0])


def test_compare_scores_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = 0.5 * a + 0.3 * rng.normal(size=50)
    b[3] = np.nan
    res = compare_scores(a, b, k=5)
    ok = np.isfinite(b)
    assert res.n == 49
    assert res.pearson == pytest.approx(pearsonr(a[ok], b[ok])[0])
    assert res.spearman == pytest.approx(spearmanr(a[ok], b[ok])[0])
    assert res.kendall == pytest.approx(kendalltau(a[ok], b[ok])[0])
    assert res.slope == pytest.approx(np.cov(a[ok], b[ok])[0, 1] / np.var(a[ok], ddof=1))
    top_a = set(np.flatnonzero(ok)[np.argsort(-a[ok])[:5]])
    top_b = set(np.flatnonzero(ok)[np.argsort(-b[ok])[:5]])
    assert res.helpful_overlap == len(top_a & top_b) / 5
    with pytest.raises(ValueError, match="same shape"):
        compare_scores(a, b[:-1])
    with pytest.raises(ValueError, match="constant"):
        compare_scores(a, np.ones(50))
