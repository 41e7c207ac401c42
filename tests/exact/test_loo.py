"""Exact leave-one-out: Newton LOO against scikit-learn refits, Newton influence
against exact LOO, parallel backends, and the trust report."""

import pickle

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from conftest import digits
from skinfluence import InfluenceExplainer


def pearson(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


@pytest.fixture(scope="module")
def digits_1_7():
    return digits([1, 7])


@pytest.mark.parametrize("class_weight", [None, {1: 3.0, 7: 0.5}, "balanced"])
def test_newton_loo_equals_refits(digits_1_7, class_weight):
    X_train, X_test, y_train, y_test = digits_1_7
    model = LogisticRegression(C=1.0, class_weight=class_weight).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    rows = np.arange(0, len(y_train), 7)
    newton = explainer.loo(X_test[:5], y_test[:5], method="newton", train_indices=rows)
    refit = explainer.loo(X_test[:5], y_test[:5], method="refit", train_indices=rows,
                          n_jobs=2)
    assert newton.shape == (5, len(rows))
    np.testing.assert_allclose(newton, refit, rtol=0, atol=1e-4 * np.abs(refit).max())
    exact = explainer.loo(X_test[:5], y_test[:5], method="exact", train_indices=rows)
    np.testing.assert_allclose(exact, refit, rtol=0, atol=1e-4 * np.abs(refit).max())


def test_exact_name_for_a_family_without_an_engine_points_to_refit():
    X_train, X_test, y_train, y_test = digits([1, 7])
    model = LogisticRegression().fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    explainer.family_.exact_engine = None  # a family without an exact engine
    with pytest.raises(ValueError, match="method='refit'"):
        explainer.loo(X_test[:2], y_test[:2], method="exact")


def test_newton_loo_squared_hinge_and_multinomial():
    X_train, X_test, y_train, y_test = digits([0, 1, 2])
    rows = np.arange(0, len(y_train), 11)
    for model in (LogisticRegression(C=0.5), LinearSVC(C=0.05, dual=False, tol=1e-10)):
        model.fit(X_train, y_train)
        explainer = InfluenceExplainer(model).fit(X_train, y_train)
        newton = explainer.loo(X_test[:4], y_test[:4], method="newton",
                               train_indices=rows)
        refit = explainer.loo(X_test[:4], y_test[:4], train_indices=rows, n_jobs=2)
        np.testing.assert_allclose(newton, refit, rtol=0,
                                   atol=1e-4 * np.abs(refit).max())


@pytest.mark.parametrize("model", [Ridge(alpha=1.0), LinearRegression(),
                                   Ridge(alpha=0.1, fit_intercept=False)])
def test_squared_loss_newton_is_exact(model):
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = X[:300], X[300:306], y[:300], y[300:306]
    sw = np.random.default_rng(0).uniform(0.5, 2, size=300)
    model.fit(X_train, y_train, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X_train, y_train, sample_weight=sw)
    refit = explainer.loo(X_test, y_test, method="refit", n_jobs=2)
    scale = np.abs(refit).max()
    np.testing.assert_allclose(explainer.loo(X_test, y_test, method="newton"), refit,
                               rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(explainer.loo(X_test, y_test, method="exact"), refit,
                               rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(explainer.explain(X_test, y_test, method="newton"),
                               refit, rtol=0, atol=1e-8 * scale)
    # without labels: the change of the prediction, in target units
    refit_prediction = explainer.loo(X_test, method="refit")
    np.testing.assert_allclose(explainer.explain(X_test, method="newton"),
                               refit_prediction, rtol=0,
                               atol=1e-8 * np.abs(refit_prediction).max())


@pytest.mark.parametrize("pair", [[1, 7], [3, 8], [4, 9]])
def test_newton_influence_beats_first_order(pair):
    X_train, X_test, y_train, y_test = digits(pair)
    model = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    actual = explainer.loo(X_test[:5], y_test[:5], method="newton")
    first = pearson(explainer.explain(X_test[:5], y_test[:5]), actual)
    newton = pearson(explainer.explain(X_test[:5], y_test[:5], method="newton"), actual)
    assert newton >= 0.985
    assert newton >= first


def test_newton_influence_multinomial_and_balanced():
    X_train, X_test, y_train, y_test = digits([0, 1, 2])
    for model in (LogisticRegression(C=1.0), LogisticRegression(class_weight="balanced")):
        model.fit(X_train[:200], y_train[:200])
        explainer = InfluenceExplainer(model).fit(X_train[:200], y_train[:200])
        actual = explainer.loo(X_test[:5], y_test[:5], method="newton")
        estimate = explainer.explain(X_test[:5], y_test[:5], method="newton")
        assert pearson(estimate, actual) >= 0.98


def test_results_do_not_depend_on_n_jobs_or_backend(digits_1_7):
    X_train, X_test, y_train, y_test = digits_1_7
    model = LogisticRegression(C=1.0).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    rows = np.arange(0, len(y_train), 9)
    for method in ("refit", "newton"):
        one = explainer.loo(X_test[:3], y_test[:3], method=method, train_indices=rows,
                            n_jobs=1)
        two = explainer.loo(X_test[:3], y_test[:3], method=method, train_indices=rows,
                            n_jobs=2)
        with parallel_config(backend="threading"):
            threads = explainer.loo(X_test[:3], y_test[:3], method=method,
                                    train_indices=rows, n_jobs=2)
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(one, threads)


def test_dask_backend_gives_the_same_numbers(digits_1_7):
    distributed = pytest.importorskip("distributed")
    X_train, X_test, y_train, y_test = digits_1_7
    model = LogisticRegression(C=1.0).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    rows = np.arange(0, len(y_train), 15)
    local = explainer.loo(X_test[:2], y_test[:2], train_indices=rows, n_jobs=1)
    local_newton = explainer.loo(X_test[:2], y_test[:2], method="newton",
                                 train_indices=rows, n_jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with parallel_config(backend="dask"):
            remote = explainer.loo(X_test[:2], y_test[:2], train_indices=rows, n_jobs=-1)
            remote_newton = explainer.loo(X_test[:2], y_test[:2], method="newton",
                                          train_indices=rows, n_jobs=-1)
    np.testing.assert_array_equal(local, remote)
    np.testing.assert_array_equal(local_newton, remote_newton)


def test_loo_leaves_the_estimator_untouched(digits_1_7):
    X_train, X_test, y_train, y_test = digits_1_7
    model = LogisticRegression(C=1.0).fit(X_train, y_train)
    before = pickle.dumps(model)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    for method in ("refit", "newton"):
        explainer.loo(X_test[:2], y_test[:2], method=method, train_indices=[0, 5, 9])
    assert pickle.dumps(model) == before
    assert explainer.estimator_ is model


def test_loo_validates_its_arguments(digits_1_7):
    X_train, X_test, y_train, y_test = digits_1_7
    explainer = InfluenceExplainer(LogisticRegression().fit(X_train, y_train)).fit(
        X_train, y_train)
    with pytest.raises(ValueError, match="method must be 'refit', 'newton' or 'exact'"):
        explainer.loo(X_test[:2], y_test[:2], method="bogus")
    with pytest.raises(ValueError, match="train_indices must lie in"):
        explainer.loo(X_test[:2], y_test[:2], train_indices=[len(y_train)])
    with pytest.raises(ValueError, match="integer positions"):
        explainer.loo(X_test[:2], y_test[:2], train_indices=[0.5])
    with pytest.raises(ValueError, match="method must be 'first_order' or 'newton'"):
        explainer.explain(X_test[:2], y_test[:2], method="exact")
    mask = np.zeros(len(y_train), dtype=bool)
    mask[[1, 4]] = True
    np.testing.assert_array_equal(
        explainer.loo(X_test[:2], y_test[:2], method="newton", train_indices=mask),
        explainer.loo(X_test[:2], y_test[:2], method="newton", train_indices=[1, 4]))


def test_trust_report(digits_1_7):
    X_train, X_test, y_train, y_test = digits_1_7
    explainer = InfluenceExplainer(LogisticRegression().fit(X_train, y_train)).fit(
        X_train, y_train)
    report = explainer.trust_report(X_test, y_test, n_test=3, n_train=60, k=5,
                                    loo_method="newton", random_state=0)
    assert report.estimated.shape == report.actual.shape == (3, 60)
    expected = explainer.explain(X_test[report.test_indices], y_test[report.test_indices])
    np.testing.assert_allclose(report.estimated, expected[:, report.train_indices])
    assert report.pearson == pytest.approx(pearson(report.estimated, report.actual))
    assert 0.9 < report.pearson <= 1 and 0.9 < report.spearman <= 1
    assert 0 <= report.helpful_overlap <= 1 and 0 <= report.harmful_overlap <= 1
    gaps = np.abs(report.disagreements.estimated - report.disagreements.actual)
    assert np.all(np.diff(gaps) <= 0)
    all_gaps = np.abs(report.estimated - report.actual)
    assert gaps[0] == pytest.approx(all_gaps.max())
    again = explainer.trust_report(X_test, y_test, n_test=3, n_train=60, k=5,
                                   loo_method="newton", random_state=0)
    np.testing.assert_array_equal(report.actual, again.actual)


def test_trust_report_plot(digits_1_7):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X_train, X_test, y_train, y_test = digits_1_7
    explainer = InfluenceExplainer(LogisticRegression().fit(X_train, y_train)).fit(
        X_train, y_train)
    report = explainer.trust_report(X_test, y_test, n_test=2, n_train=30,
                                    loo_method="newton", random_state=0, plot=True)
    assert report.ax.figure is report.figure
    assert len(report.ax.collections) == 1
