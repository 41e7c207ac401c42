"""Edge cases a new user runs into: each gets the right number or a clear error.

Right numbers are checked against brute-force refits of scikit-learn clones;
errors by the text that names the problem and the fix.
"""

import io
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer


def regression(n=40, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, X @ rng.normal(size=p) + rng.normal(size=n)


def classification(n=60, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, (X[:, 0] + 0.7 * rng.normal(size=n) > 0).astype(int)


@pytest.fixture
def ridge():
    X, y = regression()
    return InfluenceExplainer(Ridge().fit(X, y)).fit(X, y), X, y


# ------------------------------------------------------------ test targets
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_test_targets_are_refused(ridge, bad):
    explainer, X, y = ridge
    y_test = y[:4].copy()
    y_test[2] = bad
    match = r"NaN or infinity at test rows \[2\]"
    with pytest.raises(ValueError, match=match):
        explainer.explain(X[:4], y_test)
    with pytest.raises(ValueError, match=match):
        explainer.loo(X[:4], y_test, method="exact")
    with pytest.raises(ValueError, match=match):
        explainer.validation_influence(X[:4], y_test)
    with pytest.raises(ValueError, match=match):  # even if row 2 is not sampled
        explainer.trust_report(X[:4], y_test, n_test=1, loo_method="exact",
                               random_state=0)


# ------------------------------------------------------------ chunk_size
@pytest.mark.parametrize("chunk_size", [-1, 0, 1.5, True])
def test_chunk_size_is_validated(ridge, chunk_size):
    explainer, X, y = ridge
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        explainer.explain(X[:4], y[:4], chunk_size=chunk_size)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        explainer.top_influencers(X[:4], y[:4], chunk_size=chunk_size)


def test_chunk_size_one_gives_the_same_numbers(ridge):
    explainer, X, y = ridge
    np.testing.assert_allclose(explainer.explain(X[:4], y[:4], chunk_size=1),
                               explainer.explain(X[:4], y[:4]), rtol=1e-12)


# ------------------------------------------------------------ trust_report
def test_trust_report_checks_lengths_and_sizes(ridge):
    explainer, X, y = ridge
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        explainer.trust_report(X[:5], y[:4], loo_method="exact")
    for name in ("n_train", "n_test", "k"):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            explainer.trust_report(X[:5], y[:5], loo_method="exact", **{name: 0})


def test_trust_report_on_flat_test_losses_says_why_correlations_are_nan():
    """Test rows outside the hinge margin have zero loss whatever a removal
    does: the correlations are undefined and the report says so, without
    numpy warnings."""
    X, y = classification(n=80)
    model = LinearSVC(loss="hinge", C=1.0, max_iter=100_000, tol=1e-10).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    outside = np.flatnonzero(model.decision_function(X) * (2 * y - 1) > 1.5)[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = explainer.trust_report(X[outside], y[outside], loo_method="exact")
    assert np.ptp(report.actual) == 0  # the truth itself is flat
    assert np.isnan(report.pearson) and np.isnan(report.spearman)
    assert "constant" in report.note and "note:" in repr(report)
    inside = np.argsort(np.abs(model.decision_function(X)))[:3]
    report = explainer.trust_report(X[inside], y[inside], loo_method="exact")
    assert np.isfinite(report.pearson) and report.note is None


# ------------------------------------------------------------ sole member of a class
@pytest.mark.parametrize("method", ["refit", "exact", "newton"])
def test_removing_the_only_member_of_a_class_is_nan_and_named(method):
    X, y = classification(n=60)
    y = np.where(y == 1, "b", "a").astype(object)
    y[:30] = np.where(X[:30, 0] > 0, "b", "a")
    y[17] = "c"                     # the only row of class "c"
    model = LogisticRegression(C=0.5).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    rows = [3, 17, 40]
    with pytest.warns(UserWarning, match=r"17 \(class 'c'\).*NaN"):
        loo = explainer.loo(X[:5], y[:5], method=method, train_indices=rows)
    assert np.isnan(loo[:, 1]).all() and np.isfinite(loo[:, [0, 2]]).all()
    # the other columns are the refit truth
    for column, row in ((0, 3), (2, 40)):
        keep = np.arange(60) != row
        refit = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12).fit(
            X[keep], y[keep])
        full = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12).fit(X, y)
        labels = np.searchsorted(full.classes_, y[:5])
        truth = (-np.log(refit.predict_proba(X[:5])[np.arange(5), labels])
                 + np.log(full.predict_proba(X[:5])[np.arange(5), labels]))
        np.testing.assert_allclose(loo[:, column], truth, rtol=0,
                                   atol=1e-8 * np.abs(truth).max())


# ------------------------------------------------------------ weights
def test_negative_sample_weight_is_refused_naming_the_rows():
    X, y = regression()
    weights = np.ones(len(y))
    weights[[3, 8]] = -0.5
    with pytest.raises(ValueError, match=r"negative.*rows \[3, 8\].*weights to 0"):
        InfluenceExplainer(Ridge()).fit(X, y, sample_weight=weights)


# ------------------------------------------------------------ pickling
@pytest.mark.parametrize("solver", ["direct", "cg", "lissa"])
def test_every_solver_survives_joblib_dump(solver):
    X, y = classification()
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y), solver=solver,
                                   random_state=0).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(explainer, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_allclose(loaded.explain(X[:3], y[:3]),
                               explainer.explain(X[:3], y[:3]), rtol=1e-12)


# ------------------------------------------------------------ reproducible refits
def test_hinge_refits_are_reproducible():
    X, y = classification(n=80)
    model = LinearSVC(loss="hinge", C=0.5, max_iter=20_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = InfluenceExplainer(model).fit(X, y)
        first = explainer.loo(X[:4], y[:4], method="refit", train_indices=np.arange(20))
        second = explainer.loo(X[:4], y[:4], method="refit", train_indices=np.arange(20))
    np.testing.assert_array_equal(first, second)


# ------------------------------------------------------------ messages
def test_multi_output_target_names_the_fix():
    """Ridge explains several targets; a multi-target Lasso is refused."""
    from sklearn.linear_model import Lasso

    X, y = regression()
    Y = np.column_stack([y, -y])
    with pytest.raises(ValueError, match="2-column target.*one model per column"):
        InfluenceExplainer(Lasso(alpha=0.1).fit(X, Y)).fit(X, Y)


def test_search_without_a_refitted_model_names_the_fix():
    X, y = classification()
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3,
                          refit=False).fit(X, y)
    with pytest.raises(ValueError, match="refit=True"):
        InfluenceExplainer(search).fit(X, y)


def test_pipeline_ending_in_passthrough_is_named():
    X, y = classification()
    pipe = Pipeline([("scale", StandardScaler()), ("model", "passthrough")]).fit(X, y)
    with pytest.raises(TypeError, match="'passthrough'.*last step"):
        InfluenceExplainer(pipe).fit(X, y)


def test_integer_labels_against_string_classes():
    X, y = classification()
    labels = np.where(y == 1, "yes", "no")
    explainer = InfluenceExplainer(LogisticRegression().fit(X, labels)).fit(X, labels)
    with pytest.raises(ValueError, match=r"not fitted on: \[0, 1\].*same form"):
        explainer.explain(X[:3], np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="not fitted on"):
        explainer.explain(X[:3], np.array([0, 1, 0], dtype=object))


# ------------------------------------------------------------ interpolation
def test_interpolated_rows_get_refits_never_inf_or_zero():
    """n <= d + 1 for LinearRegression: leverage 1 everywhere."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), rng.normal(size=5)
    X_test, y_test = rng.normal(size=(3, 4)), rng.normal(size=3)
    model = LinearRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = InfluenceExplainer(model).fit(X, y)
    truth = np.empty((3, 5))
    base = (model.predict(X_test) - y_test) ** 2
    for i in range(5):
        keep = np.arange(5) != i
        refit = clone(model).fit(X[keep], y[keep])
        truth[:, i] = (refit.predict(X_test) - y_test) ** 2 - base
    for method in ("first_order", "newton"):
        with pytest.warns(UserWarning, match="interpolates training row"):
            estimate = explainer.explain(X_test, y_test, method=method)
        np.testing.assert_allclose(estimate, truth, rtol=1e-10)
    for method in ("exact", "newton", "refit"):
        np.testing.assert_allclose(explainer.loo(X_test, y_test, method=method), truth,
                                   rtol=1e-10)


def test_a_single_interpolated_row_among_many():
    """A dummy column set in one row only: that row has leverage 1."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=(50, 3)), np.zeros(50)])
    X[7, 3] = 1.0
    y = rng.normal(size=50)
    model = LinearRegression().fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    with pytest.warns(UserWarning, match=r"interpolates training row\(s\) \[7\]"):
        estimate = explainer.explain(X[:3], y[:3], method="newton")
    refit = explainer.loo(X[:3], y[:3], method="refit")
    np.testing.assert_allclose(estimate, refit, rtol=0, atol=1e-10 * np.abs(refit).max())
    assert np.isfinite(estimate).all()


# ------------------------------------------------------------ progress
@pytest.mark.parametrize("method", ["refit", "exact"])
def test_long_loops_report_progress_when_verbose(method, capsys):
    X, y = classification(n=80)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    explainer.loo(X[:2], y[:2], method=method, verbose=2)
    err = capsys.readouterr().err
    assert "80/80 rows" in err and "rows/s" in err and "s left" in err
    explainer.loo(X[:2], y[:2], method=method)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("call", ["explain", "newton", "top", "top_sorted"])
def test_chunked_explain_and_top_k_report_progress_when_verbose(call, capsys):
    X, y = classification(n=80)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    run = {
        "explain": lambda v: explainer.explain(X, y, verbose=v),
        "newton": lambda v: explainer.explain(X, y, method="newton", verbose=v),
        "top": lambda v: explainer.top_influencers(X, y, k=3, verbose=v).helpful_values,
        "top_sorted": lambda v: explainer.top_influencers(X, y, k=40,
                                                          verbose=v).helpful_values,
    }[call]
    quiet = run(0)
    assert capsys.readouterr().err == ""
    loud = run(2)
    err = capsys.readouterr().err
    assert "80/80 test rows" in err and "s left" in err
    np.testing.assert_array_equal(loud, quiet)  # ten chunks, the same numbers


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_certified_intervals_report_progress_when_verbose(n_jobs, capsys):
    X, y = classification(n=80)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    quiet = explainer.loo_interval(X[:2], y[:2], n_jobs=n_jobs)
    assert capsys.readouterr().err == ""
    loud = explainer.loo_interval(X[:2], y[:2], n_jobs=n_jobs, verbose=2)
    err = capsys.readouterr().err
    assert "certified intervals: 80/80 removals" in err and "s left" in err
    np.testing.assert_array_equal(loud.lower, quiet.lower)  # reporting changes nothing


def test_long_exact_runs_say_so_unless_asked_row_by_row(monkeypatch):
    import skinfluence._progress as progress

    monkeypatch.setattr(progress, "LONG_SECONDS", 0.0)
    X, y = classification(n=200)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    with pytest.warns(UserWarning, match=r"over 200 rows will take about .* s.*"
                                         r"train_indices"):
        explainer.loo(X[:2], y[:2], method="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer.loo(X[:2], y[:2], method="exact", train_indices=np.arange(200))
        explainer.loo(X[:2], y[:2], method="exact", verbose=1)
    with pytest.warns(UserWarning, match=r"exact DFBETA over 200 rows .*exact_dfbeta"):
        explainer.regression_diagnostics()


def test_long_refit_runs_say_so_unless_asked_row_by_row(monkeypatch):
    from skinfluence.exact import refit as refit_module

    monkeypatch.setattr(refit_module, "LONG_REFITS", 50)
    X, y = classification(n=80)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    with pytest.warns(UserWarning, match=r"80 times .* about .* s.*train_indices"):
        explainer.loo(X[:2], y[:2], method="refit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer.loo(X[:2], y[:2], method="refit", train_indices=np.arange(80))
        explainer.loo(X[:2], y[:2], method="exact")
