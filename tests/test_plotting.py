"""Display objects: they draw the right numbers, accept ``ax``, and fail clearly
without matplotlib. Truths are computed independently (numpy, brute-force refits,
the estimator's own decision function)."""

import importlib
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.evaluation import plot_estimated_vs_actual
from skinfluence.datasets import load_forestfires
from skinfluence.plotting import (
    EstimatedVsActualDisplay,
    InfluenceVsDistanceDisplay,
    InfluentialRowsDisplay,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ridge_problem():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 * rng.standard_normal(40)
    X_test, y_test = rng.standard_normal((2, 3)), rng.standard_normal(2)
    return X, y, X_test, y_test


def ridge_loo_brute_force(X, y, X_test, y_test, alpha):
    """Refit ridge without each row by solving its normal equations."""
    def fit(Xs, ys):
        A = np.hstack([Xs, np.ones((len(Xs), 1))])
        P = alpha * np.eye(A.shape[1])
        P[-1, -1] = 0.0  # intercept not penalised
        return np.linalg.solve(A.T @ A + P, A.T @ ys)

    A_test = np.hstack([X_test, np.ones((len(X_test), 1))])
    base = (A_test @ fit(X, y) - y_test) ** 2
    out = np.empty((len(X_test), len(X)))
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        out[:, i] = (A_test @ fit(X[keep], y[keep]) - y_test) ** 2 - base
    return out


def test_estimated_vs_actual_from_estimates_draws_data_and_pearson():
    rng = np.random.RandomState(1)
    actual = rng.standard_normal((2, 30))
    estimated = actual + 0.1 * rng.standard_normal((2, 30))
    display = EstimatedVsActualDisplay.from_estimates(estimated, actual, title="t")
    r = np.corrcoef(estimated.ravel(), actual.ravel())[0, 1]
    assert display.pearson == pytest.approx(r)
    assert f"Pearson r = {r:.3f}" in display.ax_.get_title()
    assert display.ax_.get_title().startswith("t\n")
    offsets = display.scatter_[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], actual.ravel())
    np.testing.assert_allclose(offsets[:, 1], estimated.ravel())
    x_line, y_line = display.line_.get_data()
    np.testing.assert_allclose(x_line, y_line)  # the diagonal
    assert display.figure_ is display.ax_.figure


def test_estimated_vs_actual_accepts_ax_and_labels():
    fig, axes = plt.subplots(1, 2)
    actual = np.arange(6.0).reshape(2, 3)
    display = EstimatedVsActualDisplay.from_estimates(
        actual, actual, labels=np.array([0, 1, 1]), ax=axes[1])
    assert display.ax_ is axes[1] and display.figure_ is fig
    assert len(display.scatter_) == 2  # one colour per label
    assert sum(len(s.get_offsets()) for s in display.scatter_) == 6
    assert display.ax_.get_legend() is not None


def test_estimated_vs_actual_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        EstimatedVsActualDisplay(np.zeros(3), np.zeros(4))


def test_estimated_vs_actual_from_explainer_plots_true_loo(ridge_problem):
    X, y, X_test, y_test = ridge_problem
    explainer = InfluenceExplainer(Ridge(alpha=2.0).fit(X, y)).fit(X, y)
    truth = ridge_loo_brute_force(X, y, X_test, y_test, alpha=2.0)
    display = EstimatedVsActualDisplay.from_explainer(
        explainer, X_test, y_test, loo_method="newton")
    np.testing.assert_allclose(display.actual, truth, rtol=1e-8, atol=1e-12)
    assert display.pearson > 0.95
    subset = EstimatedVsActualDisplay.from_explainer(
        explainer, X_test, y_test, loo_method="newton", train_indices=[3, 7, 9])
    np.testing.assert_allclose(subset.actual, truth[:, [3, 7, 9]], rtol=1e-8,
                               atol=1e-12)
    np.testing.assert_allclose(subset.estimated, display.estimated[:, [3, 7, 9]])


def test_plot_estimated_vs_actual_and_trust_report_still_work(ridge_problem):
    X, y, X_test, y_test = ridge_problem
    ax = plot_estimated_vs_actual(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.1, 3.0]),
                                  title="old")
    assert ax.get_title().startswith("old\nPearson r = ")
    explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
    _, given = plt.subplots()
    report = explainer.trust_report(X_test, y_test, n_test=2, loo_method="newton",
                                    plot=True, ax=given)
    assert report.ax is given and report.figure is given.figure


@pytest.fixture(scope="module")
def iris_binary():
    iris = load_iris()
    keep = iris.target > 0
    X = StandardScaler().fit_transform(iris.data[keep])
    y = np.where(iris.target[keep] == 1, 1, -1)
    return X, y


@pytest.mark.parametrize("model", [
    LogisticRegression(C=0.5, tol=1e-10),
    LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100_000),
])
def test_influence_vs_distance_from_explainer(iris_binary, model):
    X, y = iris_binary
    model = model.fit(X, y)
    explainer = InfluenceExplainer(model, smoothing=0.01).fit(X, y)
    norm = np.linalg.norm(model.coef_)
    signed = model.decision_function(X) / norm
    display = InfluenceVsDistanceDisplay.from_explainer(explainer, X[0], y[0])
    np.testing.assert_allclose(display.distance, signed, rtol=1e-10)
    np.testing.assert_allclose(display.influence, explainer.explain(X[:1], y[:1])[0])
    offsets = np.vstack([s.get_offsets() for s in display.scatter_])
    assert offsets.shape == (len(y), 2)
    assert display.figure_ is display.ax_.figure
    margin = InfluenceVsDistanceDisplay.from_explainer(explainer, X[0], y[0],
                                                       distance="margin")
    np.testing.assert_allclose(margin.distance, y * signed, rtol=1e-10)
    _, ax = plt.subplots()
    absolute = InfluenceVsDistanceDisplay.from_explainer(explainer, X[:1], y[:1],
                                                         distance="absolute", ax=ax)
    assert absolute.ax_ is ax
    np.testing.assert_allclose(absolute.distance, np.abs(signed), rtol=1e-10)


def test_influence_vs_distance_svm_far_rows_have_no_influence(iris_binary):
    X, y = iris_binary
    model = LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100_000).fit(X, y)
    explainer = InfluenceExplainer(model, smoothing=0.01).fit(X, y)
    display = InfluenceVsDistanceDisplay.from_explainer(explainer, X[0], y[0])
    far = y * model.decision_function(X) > 1.5
    assert far.sum() > 5
    assert np.abs(display.influence[far]).max() < 1e-6 * np.abs(display.influence).max()
    assert display.margin == pytest.approx(1 / np.linalg.norm(model.coef_))


def test_influence_vs_distance_errors(ridge_problem, iris_binary):
    X, y, _, _ = ridge_problem
    explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
    with pytest.raises(ValueError, match="binary classifier"):
        InfluenceVsDistanceDisplay.from_explainer(explainer, X[0], y[0])
    Xi, yi = iris_binary
    explainer = InfluenceExplainer(LogisticRegression().fit(Xi, yi)).fit(Xi, yi)
    with pytest.raises(ValueError, match="distance must be"):
        InfluenceVsDistanceDisplay.from_explainer(explainer, Xi[0], yi[0],
                                                  distance="euclid")
    with pytest.raises(ValueError, match="one entry per training row"):
        InfluenceVsDistanceDisplay(np.zeros(3), np.zeros(2))


@pytest.fixture(scope="module")
def digits_pipeline():
    from sklearn.pipeline import make_pipeline

    digits = load_digits()
    keep = np.isin(digits.target, [1, 7])
    X, y = digits.data[keep][:150], digits.target[keep][:150]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1)).fit(X[:-1], y[:-1])
    return InfluenceExplainer(model).fit(X[:-1], y[:-1]), X, y


def test_influential_rows_images(digits_pipeline):
    explainer, X, y = digits_pipeline
    display = InfluentialRowsDisplay.from_explainer(
        explainer, X[-1], y[-1], X_train=X[:-1], n_rows=4, image_shape=(8, 8))
    influence = explainer.explain(X[-1:], y[-1:])[0]
    np.testing.assert_array_equal(display.helpful_indices_,
                                  np.argsort(-influence, kind="stable")[:4])
    np.testing.assert_array_equal(display.harmful_indices_,
                                  np.argsort(influence, kind="stable")[:4])
    assert influence[display.helpful_indices_].min() >= influence.max() - np.ptp(influence)
    images = [a for a in display.figure_.axes if a.images]
    assert len(images) == 1 + 2 * 4
    # the first helpful image shows that training row, not a transformed one
    shown = display.ax_[1, 0].images[0].get_array()
    np.testing.assert_array_equal(shown, X[display.helpful_indices_[0]].reshape(8, 8))
    assert f"#{display.helpful_indices_[0]}" in display.ax_[1, 0].get_title()


def test_influential_rows_images_in_given_ax(digits_pipeline):
    explainer, X, y = digits_pipeline
    fig, (left, right) = plt.subplots(1, 2)
    display = InfluentialRowsDisplay.from_explainer(
        explainer, X[-1], y[-1], X_train=X[:-1], n_rows=2, image_shape=(8, 8),
        ax=right)
    assert display.figure_ is fig
    assert sum(bool(a.images) for a in fig.axes) == 5
    axes = fig.subplots(1, 5)
    again = InfluentialRowsDisplay.from_explainer(
        explainer, X[-1], y[-1], X_train=X[:-1], n_rows=2, image_shape=(8, 8),
        ax=axes)
    assert all(a.images for a in again.ax_)
    with pytest.raises(ValueError, match="5 are needed"):
        InfluentialRowsDisplay.from_explainer(
            explainer, X[-1], y[-1], X_train=X[:-1], n_rows=2, image_shape=(8, 8),
            ax=axes[:3])


def test_influential_rows_table_with_dataframe():
    pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = load_forestfires(as_frame=True, log_target=True)
    X, y = data.data.iloc[:120], data.target.iloc[:120]
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"),
                                 ["month", "day"]), remainder=StandardScaler()),
        Ridge(alpha=10.0)).fit(X.iloc[:-1], y.iloc[:-1])
    explainer = InfluenceExplainer(model).fit(X.iloc[:-1], y.iloc[:-1])
    display = InfluentialRowsDisplay.from_explainer(
        explainer, X.iloc[[-1]], y.iloc[[-1]], X_train=X.iloc[:-1], n_rows=3)
    cells = display.table_.get_celld()
    labels = [cells[(0, c)].get_text().get_text() for c in range(7)]
    assert labels[0] == "test"
    assert labels[1] == f"+ #{display.helpful_indices_[0]}"
    row_labels = [cells[(r, -1)].get_text().get_text() for r in range(1, 15)]
    assert row_labels[:3] == ["influence", "label", "X"]
    month_row = 2 + list(X.columns).index("month") + 1
    assert cells[(month_row, 1)].get_text().get_text() == \
        X.iloc[:-1].iloc[display.helpful_indices_[0]]["month"]


def test_influential_rows_errors():
    with pytest.raises(ValueError, match="X_train has 3 rows"):
        InfluentialRowsDisplay(np.zeros(4), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one test row"):
        InfluentialRowsDisplay.from_estimates(np.zeros((2, 3)), np.zeros((3, 2)))


def test_clear_error_without_matplotlib(monkeypatch, ridge_problem):
    X, y, X_test, y_test = ridge_problem
    explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
    for name in [m for m in sys.modules if m == "matplotlib" or
                 m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    module = importlib.reload(importlib.import_module("skinfluence.plotting"))
    match = r"needs matplotlib.*pip install 'skinfluence\[plots\]'"
    with pytest.raises(ImportError, match=match):
        module.EstimatedVsActualDisplay.from_estimates(np.arange(3.0), np.arange(3.0))
    with pytest.raises(ImportError, match=match):
        module.EstimatedVsActualDisplay.from_explainer(explainer, X_test, y_test)
    with pytest.raises(ImportError, match=match):
        module.InfluenceVsDistanceDisplay.from_estimates(np.ones(3), np.ones(3))
    with pytest.raises(ImportError, match=match):
        module.InfluentialRowsDisplay.from_estimates(np.ones(3), np.ones((3, 4)))
    with pytest.raises(ImportError, match=match):
        explainer.trust_report(X_test, y_test, n_test=1, loo_method="newton",
                               plot=True)
    # the numbers need no matplotlib
    display = module.EstimatedVsActualDisplay(np.arange(3.0), np.arange(3.0))
    assert display.pearson == pytest.approx(1.0)
    monkeypatch.undo()
    importlib.reload(module)
