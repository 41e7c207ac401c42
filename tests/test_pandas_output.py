"""pandas in, pandas out: every result labelled by the caller's index.

The numbers are those of the numpy path (checked elsewhere against refits);
here the labels and the layout are checked, and that numpy input keeps numpy
output and ``output`` forces either.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:260].copy()
    y = data.target.iloc[:260].map({0: "malignant", 1: "benign"})
    X.index = y.index = [f"patient-{i}" for i in range(260)]
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=1000))
    model.fit(X.iloc[:200], y.iloc[:200])
    explainer = InfluenceExplainer(model).fit(X.iloc[:200], y.iloc[:200])
    numpy = InfluenceExplainer(model, output="numpy").fit(X.iloc[:200], y.iloc[:200])
    return explainer, numpy, X, y


def test_explain_and_loo_are_frames_on_both_indexes(cancer):
    explainer, numpy, X, y = cancer
    X_test, y_test = X.iloc[200:205], y.iloc[200:205]
    frame = explainer.explain(X_test, y_test)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == list(X_test.index)
    assert list(frame.columns) == list(X.index[:200])
    np.testing.assert_array_equal(frame.to_numpy(), numpy.explain(X_test, y_test))
    loo = explainer.loo(X_test, y_test, method="exact", train_indices=[3, 10])
    assert list(loo.columns) == ["patient-3", "patient-10"]
    assert isinstance(numpy.loo(X_test, y_test, method="exact", train_indices=[3]),
                      np.ndarray)


def test_vectors_are_series_on_the_training_index(cancer):
    explainer, numpy, X, y = cancer
    for name, args in [("self_influence", ()), ("loo_self_loss", ()),
                       ("validation_influence", (X.iloc[200:], y.iloc[200:]))]:
        series = getattr(explainer, name)(*args)
        assert isinstance(series, pd.Series), name
        assert list(series.index) == list(X.index[:200])
        np.testing.assert_allclose(series.to_numpy(), getattr(numpy, name)(*args),
                                   rtol=1e-12)


def test_top_influencers_is_a_tidy_long_frame(cancer):
    explainer, numpy, X, y = cancer
    X_test, y_test = X.iloc[200:203], y.iloc[200:203]
    top = explainer.top_influencers(X_test, y_test, k=4)
    assert list(top.columns) == ["test", "direction", "rank", "train", "influence"]
    assert len(top) == 3 * 2 * 4
    raw = numpy.top_influencers(X_test, y_test, k=4)
    first = top[(top.test == "patient-200") & (top.direction == "harmful")]
    assert list(first["rank"]) == [1, 2, 3, 4]
    assert list(first.train) == list(X.index[raw.harmful_indices[0]])
    np.testing.assert_array_equal(first.influence.to_numpy(), raw.harmful_values[0])


def test_groups_parameters_and_ranking_are_named(cancer):
    explainer, numpy, X, y = cancer
    groups = np.repeat(["clinic A", "clinic B"], 100)
    by_group = explainer.group_influence(X.iloc[200:202], y.iloc[200:202], groups)
    assert list(by_group.columns) == ["clinic A", "clinic B"]
    params = explainer.parameter_influence(rows=[0, 1])
    assert list(params.index) == ["patient-0", "patient-1"]
    assert params.columns[0] == "mean radius" and params.columns[-1] == "intercept"
    ranking = explainer.rank_suspicious()
    assert ranking.ranking[0] in set(X.index[:200])
    assert ranking.scores[ranking.ranking[0]] == ranking.scores.max()


def test_certified_intervals_are_labelled_by_test_row_and_removal(cancer):
    explainer, numpy, X, y = cancer
    X_test, y_test = X.iloc[200:203], y.iloc[200:203]
    rows = [3, 10, 42]
    result = explainer.loo_interval(X_test, y_test, train_indices=rows)
    plain = numpy.loo_interval(X_test, y_test, train_indices=rows)
    for key in ("estimate", "lower", "upper", "certified_sign"):
        frame = result[key]
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.index) == list(X_test.index)
        assert list(frame.columns) == [X.index[r] for r in rows]
        np.testing.assert_array_equal(frame.to_numpy(), plain[key])
    assert list(result.refined.index) == [X.index[r] for r in rows]
    groups = np.where(np.arange(200) < 100, "first half", "second half")
    by_group = explainer.loo_interval(X_test, y_test, groups=groups)
    assert list(by_group.upper.columns) == ["first half", "second half"]
    assert isinstance(plain.lower, np.ndarray)


def test_regression_diagnostics_frame_has_named_coefficients():
    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    model = LinearRegression().fit(X, y)
    diag = InfluenceExplainer(model).fit(X, y).regression_diagnostics()
    frame = diag.frame
    assert list(frame.index) == list(X.index)
    assert {"leverage", "cooks_distance", "covratio", "dfbetas_bmi",
            "dfbetas_intercept"} <= set(frame.columns)
    np.testing.assert_array_equal(frame.cooks_distance.to_numpy(), diag.cooks_distance)


def test_numpy_in_numpy_out_and_pandas_forced():
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    assert isinstance(InfluenceExplainer(model).fit(X, y).explain(X[:2], y[:2]),
                      np.ndarray)
    forced = InfluenceExplainer(model, output="pandas").fit(X, y)
    frame = forced.explain(X[:2], y[:2])
    assert isinstance(frame, pd.DataFrame) and list(frame.columns[:2]) == [0, 1]
    # a DataFrame of test rows alone is enough for labels
    labelled = InfluenceExplainer(model).fit(X, y).explain(
        pd.DataFrame(X[:2], index=["a", "b"]), y[:2])
    assert list(labelled.index) == ["a", "b"]
    with pytest.raises(ValueError, match="'output' parameter"):
        InfluenceExplainer(model, output="xarray").fit(X, y)


def test_several_outputs_get_a_column_level():
    data = load_diabetes(as_frame=True)
    X = data.data.iloc[:80]
    y = (data.target.iloc[:80] > data.target.median()).map({True: "high", False: "low"})
    y.iloc[:20] = "mid"
    model = LogisticRegression(max_iter=1000).fit(X, y)
    shift = InfluenceExplainer(model).fit(X, y).prediction_influence(X.iloc[:3])
    assert shift.columns.names == ["train", "output"]
    assert set(shift.columns.get_level_values("output")) == {"high", "low", "mid"}


def test_reports_print_short_and_name_rows(cancer):
    explainer, numpy, X, y = cancer
    report = explainer.trust_report(X.iloc[200:220], y.iloc[200:220], n_train=60,
                                    random_state=0)
    text = repr(report)
    assert len(text.splitlines()) <= 12
    assert "Pearson" in text and "patient-" in text and "certified sign" in text
    assert report.disagreements.train_label[0] in set(X.index[:200])
    top = repr(numpy.top_influencers(X.iloc[200:203], y.iloc[200:203], k=3))
    assert "helpful_indices: ndarray int64 of shape (3, 3)" in top
