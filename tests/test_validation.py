"""Parameters, input validation, error messages, non-mutation and delegation."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, QuantileRegressor, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skinfluence import InfluenceExplainer


# ---------------------------------------------------------------- data
def _classification(n=40, p=4, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    w = rng.normal(size=(p, n_classes))
    logits = X @ w + rng.gumbel(size=(n, n_classes))
    y = np.argmax(logits, axis=1)
    return X, y


def _regression(n=40, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 0.5 + 0.3 * rng.normal(size=n)
    return X, y


@pytest.fixture
def clf_data():
    X, y = _classification()
    return X[:30], y[:30], X[30:], y[30:]


@pytest.fixture
def reg_data():
    X, y = _regression()
    return X[:30], y[:30], X[30:], y[30:]


def _tight_logreg(**kw):
    # tight tol so that the "does not look fitted" check has a wide margin
    return LogisticRegression(tol=1e-10, max_iter=1000, **kw)


# ------------------------------------------------------------ parameters
def test_get_params_set_params_clone():
    explainer = InfluenceExplainer(LogisticRegression(C=2.0), damping=1e-3)
    params = explainer.get_params()
    assert {"estimator", "solver", "smoothing", "damping", "gradient_tol"} <= set(params)
    assert params["solver"] == "direct"
    assert params["damping"] == 1e-3
    assert params["estimator__C"] == 2.0

    assert explainer.set_params(smoothing=0.1, estimator__C=0.5) is explainer
    assert explainer.smoothing == 0.1
    assert explainer.estimator.C == 0.5

    copy = clone(explainer)
    assert copy is not explainer
    assert copy.estimator is not explainer.estimator
    assert copy.get_params(deep=False).keys() == explainer.get_params(deep=False).keys()
    assert copy.smoothing == 0.1 and copy.estimator.C == 0.5


@pytest.mark.parametrize(
    "params, match",
    [
        ({"solver": "newton"}, "'solver' parameter"),
        ({"damping": -1.0}, "'damping' parameter"),
        ({"smoothing": 0.0}, "'smoothing' parameter"),
        ({"gradient_tol": 0.0}, "'gradient_tol' parameter"),
        ({"smoothing_resolve": "yes"}, "'smoothing_resolve' parameter"),
        ({"estimator": "not an estimator"}, "'estimator' parameter"),
    ],
)
def test_invalid_parameters(clf_data, params, match):
    X, y, _, _ = clf_data
    params = {"estimator": LogisticRegression(), **params}
    explainer = InfluenceExplainer(**params)  # __init__ does not validate
    with pytest.raises(InvalidParameterError, match=match):
        explainer.fit(X, y)
    assert issubclass(InvalidParameterError, ValueError)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("fitted", [False, True])
@pytest.mark.parametrize(
    "estimator, name",
    [(QuantileRegressor(alpha=0.1), "QuantileRegressor"),
     (make_pipeline(StandardScaler(), SVC()), "SVC")],
)
def test_unsupported_estimator_lists_supported_ones(reg_data, estimator, name, fitted):
    X, y, _, _ = reg_data
    if name == "SVC":
        y = (y > np.median(y)).astype(int)
    if fitted:
        estimator = clone(estimator).fit(X, y)
    with pytest.raises(TypeError, match=f"{name} is not supported") as exc:
        InfluenceExplainer(estimator).fit(X, y)
    for supported in ("LinearRegression", "Ridge", "LogisticRegression", "LinearSVC"):
        assert supported in str(exc.value)


@pytest.mark.parametrize("fitted", [False, True])
def test_l1_logistic_regression_is_explained_on_its_support(clf_data, fitted):
    X, y, _, _ = clf_data
    model = LogisticRegression(l1_ratio=1, solver="saga", tol=1e-8, max_iter=100_000)
    if fitted:
        model.fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    assert explainer.family_.exact_engine == "active_set"
    assert explainer.relative_gradient_norm_ < 1e-4


def test_l1_linear_svc_is_refused(clf_data):
    X, y, _, _ = clf_data
    model = LinearSVC(penalty="l1", dual=False).fit(X, y)
    with pytest.raises(ValueError, match="penalty='l1'"):
        InfluenceExplainer(model).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X_in_fit_and_explain(clf_data, bad):
    X, y, X_test, y_test = clf_data
    model = _tight_logreg().fit(X, y)
    X_bad = X.copy()
    X_bad[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        InfluenceExplainer(model).fit(X_bad, y)
    # unfitted estimator: the clone's own fit refuses it
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        InfluenceExplainer(LogisticRegression()).fit(X_bad, y)

    explainer = InfluenceExplainer(model).fit(X, y)
    X_test_bad = X_test.copy()
    X_test_bad[0, 0] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        explainer.explain(X_test_bad, y_test)


def test_nan_y_for_regressor(reg_data):
    X, y, _, _ = reg_data
    model = Ridge().fit(X, y)
    y_bad = y.copy()
    y_bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        InfluenceExplainer(model).fit(X, y_bad)


def test_wrong_n_features(clf_data):
    X, y, X_test, y_test = clf_data
    model = _tight_logreg().fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features.*fitted with 4 features"):
        explainer.explain(X_test[:, :3], y_test)
    with pytest.raises(ValueError, match="X has 5 features.*fitted with 4 features"):
        explainer.explain(np.hstack([X_test, X_test[:, :1]]), y_test)
    # fit with the wrong number of features for an already fitted model
    with pytest.raises(ValueError, match="X has 3 features.*fitted with 4 features"):
        InfluenceExplainer(model).fit(X[:, :3], y)


def test_one_dimensional_X_in_explain(clf_data):
    X, y, X_test, y_test = clf_data
    explainer = InfluenceExplainer(_tight_logreg()).fit(X, y)
    with pytest.raises(ValueError, match="Expected 2D array"):
        explainer.explain(X_test[0], y_test[:1])


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("model", [_tight_logreg(), LinearSVC()])
def test_unseen_labels_in_y_test(model, n_classes):
    X, y = _classification(n=40, n_classes=n_classes)
    explainer = InfluenceExplainer(model).fit(X, y)
    known = str(list(range(n_classes))).replace("[", r"\[").replace("]", r"\]")
    y_test = y[:5].copy()
    y_test[2] = 7
    with pytest.raises(ValueError, match=rf"\[7\].*Known classes are {known}"):
        explainer.explain(X[:5], y_test)


def test_string_labels(clf_data):
    X, y, X_test, y_test = clf_data
    labels = np.array(["no", "yes"])
    explainer = InfluenceExplainer(_tight_logreg()).fit(X, labels[y])
    assert_array_equal(explainer.classes_, labels)
    expected = InfluenceExplainer(_tight_logreg()).fit(X, y).explain(X_test, y_test)
    assert_allclose(explainer.explain(X_test, labels[y_test]), expected, rtol=1e-10)
    with pytest.raises(ValueError, match=r"\['maybe'\].*Known classes are \['no', 'yes'\]"):
        explainer.explain(X_test[:1], ["maybe"])


@pytest.mark.parametrize("estimator", [LogisticRegression(), Ridge()])
def test_explain_before_fit(clf_data, estimator):
    X, _, _, _ = clf_data
    with pytest.raises(NotFittedError):
        InfluenceExplainer(estimator).explain(X)


def test_mismatched_length_of_y(clf_data):
    X, y, X_test, y_test = clf_data
    model = _tight_logreg().fit(X, y)
    with pytest.raises(ValueError, match="X has 30 rows but y has 29"):
        InfluenceExplainer(model).fit(X, y[:-1])
    # unfitted: the estimator's own fit refuses it
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        InfluenceExplainer(LogisticRegression()).fit(X, y[:-1])
    explainer = InfluenceExplainer(model).fit(X, y)
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        explainer.explain(X_test, y_test[:-1])


def test_mismatched_length_of_sample_weight(clf_data):
    X, y, _, _ = clf_data
    model = _tight_logreg().fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        InfluenceExplainer(model).fit(X, y, sample_weight=np.ones(len(y) - 1))


@pytest.mark.parametrize("model", [_tight_logreg(), Ridge()])
def test_y_none_in_fit_raises_value_error(clf_data, model):
    # DEFECT (fails today): with a fitted estimator, fit(X, None) reaches
    # ``np.asarray(None).shape[0]`` and raises IndexError("tuple index out of
    # range") instead of a ValueError saying that y is required.
    X, y, _, _ = clf_data
    model = clone(model).fit(X, y)
    with pytest.raises(ValueError, match="y"):
        InfluenceExplainer(model).fit(X, None)


# ------------------------------------------- the user's model is untouched
def _models_and_data():
    Xc, yc = _classification()
    X3, y3 = _classification(n_classes=3, seed=1)
    Xr, yr = _regression()
    return [
        (_tight_logreg(), Xc, yc),
        (_tight_logreg(class_weight="balanced"), Xc, yc),
        (_tight_logreg(), X3, y3),
        (LogisticRegression(solver="liblinear", tol=1e-10), Xc, yc),
        (LinearSVC(tol=1e-10, max_iter=100_000), Xc, yc),
        (LinearSVC(loss="hinge", tol=1e-10, max_iter=100_000), X3, y3),
        (Ridge(), Xr, yr),
        (make_pipeline(StandardScaler(), _tight_logreg()), Xc, yc),
    ]


_MODEL_IDS = [
    "logreg", "logreg-balanced", "logreg-multinomial", "logreg-liblinear",
    "svc-squared-hinge", "svc-hinge-3class", "ridge", "pipeline",
]


@pytest.mark.parametrize("model, X, y", _models_and_data(), ids=_MODEL_IDS)
def test_fitted_estimator_is_unchanged(model, X, y):
    model = clone(model).fit(X, y)
    before = pickle.dumps(model)
    final = model[-1] if hasattr(model, "steps") else model
    coef, intercept = final.coef_.copy(), np.copy(final.intercept_)
    params = model.get_params(deep=False)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(model).fit(X, y)
    explainer.explain(X[:5], y[:5])
    explainer.explain(X[:5])
    explainer.predict(X[:5])

    assert explainer.estimator_ is model
    assert explainer.estimator is model
    assert pickle.dumps(model) == before
    assert_array_equal(final.coef_, coef)
    assert_array_equal(final.intercept_, intercept)
    assert model.get_params(deep=False) == params


@pytest.mark.parametrize(
    "estimator", [LogisticRegression(), Ridge(), make_pipeline(StandardScaler(), Ridge())]
)
def test_unfitted_estimator_is_cloned_and_stays_unfitted(reg_data, estimator):
    X, y, X_test, _ = reg_data
    if is_classifier(estimator):
        y = (y > np.median(y)).astype(int)
    params = estimator.get_params()
    before = pickle.dumps(estimator)

    explainer = InfluenceExplainer(estimator).fit(X, y)

    assert explainer.estimator_ is not estimator
    check_is_fitted(explainer.estimator_)
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    assert pickle.dumps(estimator) == before
    assert estimator.get_params().keys() == params.keys()
    # the clone is fitted on X, y: same predictions as fitting a copy ourselves
    assert_allclose(explainer.predict(X_test), clone(estimator).fit(X, y).predict(X_test))


def test_unfitted_estimator_gets_sample_weight(clf_data):
    X, y, X_test, y_test = clf_data
    sw = np.linspace(0.5, 2.0, len(y))
    explainer = InfluenceExplainer(_tight_logreg()).fit(X, y, sample_weight=sw)
    reference = _tight_logreg().fit(X, y, sample_weight=sw)
    assert_allclose(explainer.estimator_.coef_, reference.coef_, rtol=1e-8)
    # and through a Pipeline (routed to the final step)
    pipe = make_pipeline(StandardScaler(), _tight_logreg())
    explainer = InfluenceExplainer(pipe).fit(X, y, sample_weight=sw)
    reference = clone(pipe).fit(X, y, logisticregression__sample_weight=sw)
    assert_allclose(explainer.estimator_[-1].coef_, reference[-1].coef_, rtol=1e-8)


# ---------------------------------------------------------- FrozenEstimator
@pytest.mark.parametrize(
    "model, X, y", _models_and_data()[:3] + _models_and_data()[-2:],
    ids=["logreg", "balanced", "multinomial", "ridge", "pipeline"],
)
def test_frozen_estimator_gives_same_influence(model, X, y):
    model = clone(model).fit(X, y)
    before = pickle.dumps(model)
    direct = InfluenceExplainer(model).fit(X, y)
    frozen = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    assert frozen.estimator_.estimator is model
    assert_allclose(frozen.explain(X[:6], y[:6]), direct.explain(X[:6], y[:6]),
                    rtol=1e-12, atol=0)
    assert_allclose(frozen.explain(X[:6]), direct.explain(X[:6]), rtol=1e-12, atol=0)
    assert_array_equal(frozen.predict(X), model.predict(X))
    # cloning the explainer keeps a frozen model (a plain fitted one is reset)
    recloned = clone(frozen).fit(X, y)
    assert recloned.estimator_.estimator is model
    assert pickle.dumps(model) == before


# ---------------------------------------------------- "not fitted" warning
def _wrong_data_cases():
    rng = np.random.default_rng(42)
    Xc, yc = _classification(n=60)
    Xr, yr = _regression(n=60)
    perm_c, perm_r = rng.permutation(60), rng.permutation(60)
    noise_c, noise_r = rng.normal(size=Xc.shape), rng.normal(size=Xr.shape)
    return [
        pytest.param(_tight_logreg(), Xc, yc, Xc[perm_c], yc, id="logreg-permuted-rows"),
        pytest.param(_tight_logreg(), Xc, yc, Xc + noise_c, yc, id="logreg-noise"),
        pytest.param(Ridge(), Xr, yr, Xr[perm_r], yr, id="ridge-permuted-rows"),
        pytest.param(Ridge(), Xr, yr, Xr + noise_r, yr, id="ridge-noise"),
        pytest.param(LinearSVC(), Xc, yc, Xc[perm_c], yc, id="svc-permuted-rows"),
        pytest.param(_tight_logreg(), Xc, yc, Xc[:30], yc[:30], id="logreg-subset"),
    ]


@pytest.mark.parametrize("model, X, y, X_wrong, y_wrong", _wrong_data_cases())
@pytest.mark.filterwarnings("ignore:This LinearSVC is not at the optimum")
def test_warns_when_model_was_fitted_on_other_data(model, X, y, X_wrong, y_wrong):
    model = clone(model).fit(X, y)
    with pytest.warns(UserWarning, match="does not look fitted"):
        explainer = InfluenceExplainer(model).fit(X_wrong, y_wrong)
    assert explainer.fit_gap_ > explainer.gradient_tol


@pytest.mark.parametrize("model, X, y, X_wrong, y_wrong", _wrong_data_cases())
def test_no_warning_with_the_right_data(model, X, y, X_wrong, y_wrong):
    model = clone(model).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(model).fit(X, y)
        explainer.explain(X[:3], y[:3])
    assert explainer.fit_gap_ < explainer.gradient_tol


def test_no_warning_for_default_fitted_docstring_model():
    # the docstring example: a default-tolerance LogisticRegression in a Pipeline
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InfluenceExplainer(model).fit(X[:400], y[:400])


# --------------------------------------------------------------- delegation
def test_delegation_classifier(clf_data):
    X, y, X_test, y_test = clf_data
    model = _tight_logreg().fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    assert_array_equal(explainer.predict(X_test), model.predict(X_test))
    assert_array_equal(explainer.predict_proba(X_test), model.predict_proba(X_test))
    assert_array_equal(explainer.predict_log_proba(X_test), model.predict_log_proba(X_test))
    assert_array_equal(explainer.decision_function(X_test), model.decision_function(X_test))
    assert explainer.score(X_test, y_test) == model.score(X_test, y_test)
    assert_array_equal(explainer.classes_, model.classes_)


def test_delegation_regressor(reg_data):
    X, y, X_test, y_test = reg_data
    model = Ridge().fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    assert_array_equal(explainer.predict(X_test), model.predict(X_test))
    assert explainer.score(X_test, y_test) == model.score(X_test, y_test)
    sw = np.arange(1.0, 11.0)
    assert explainer.score(X_test, y_test, sample_weight=sw) == model.score(
        X_test, y_test, sample_weight=sw
    )
    assert not hasattr(explainer, "predict_proba")
    assert not hasattr(explainer, "decision_function")
    assert not hasattr(InfluenceExplainer(LinearSVC()), "predict_proba")


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
def test_delegation_before_fit(clf_data, method):
    X, y, _, _ = clf_data
    explainer = InfluenceExplainer(_tight_logreg().fit(X, y))
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError):
        getattr(explainer, method)(*args)


# -------------------------------------------------------------------- pandas
@pytest.mark.parametrize("estimator", [_tight_logreg(), Ridge(), LinearSVC(tol=1e-10)])
def test_dataframe_same_as_numpy(estimator):
    pd = pytest.importorskip("pandas")
    if is_classifier(estimator):
        X, y = _classification()
    else:
        X, y = _regression()
    columns = [f"f{i}" for i in range(X.shape[1])]
    df, ys = pd.DataFrame(X, columns=columns), pd.Series(y, name="target")

    ref = InfluenceExplainer(estimator).fit(X[:30], y[:30])
    expected = ref.explain(X[30:], y[30:])
    # unfitted path: the explainer fits its clone on the DataFrame
    got = InfluenceExplainer(estimator).fit(df.iloc[:30], ys.iloc[:30])
    assert_allclose(got.explain(df.iloc[30:], ys.iloc[30:]), expected, rtol=1e-10,
                    atol=1e-12)
    assert_allclose(got.explain(df.iloc[30:]), ref.explain(X[30:]), rtol=1e-10,
                    atol=1e-12)
    assert got.n_features_in_ == X.shape[1]
    # fitted path: a model fitted on the DataFrame, explained with DataFrames
    model = clone(estimator).fit(df.iloc[:30], ys.iloc[:30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = InfluenceExplainer(model).fit(df.iloc[:30], ys.iloc[:30])
        result = fitted.explain(df.iloc[30:], ys.iloc[30:])
    assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


def test_dataframe_in_pipeline_same_as_numpy():
    pd = pytest.importorskip("pandas")
    X, y = _classification()
    df = pd.DataFrame(X, columns=list("abcd"))
    pipe = make_pipeline(StandardScaler(), _tight_logreg())
    expected = InfluenceExplainer(pipe).fit(X[:30], y[:30]).explain(X[30:], y[30:])
    got = InfluenceExplainer(pipe).fit(df.iloc[:30], y[:30]).explain(df.iloc[30:], y[30:])
    assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_dataframe_with_reordered_columns_is_refused():
    # DEFECT (fails today): a plain estimator fitted on a DataFrame refuses
    # reordered columns in predict, but explain() silently uses them by
    # position and returns the influence of the wrong features.
    pd = pytest.importorskip("pandas")
    X, y = _classification()
    df = pd.DataFrame(X, columns=list("abcd"))
    explainer = InfluenceExplainer(_tight_logreg()).fit(df, y)
    reordered = df[list("dcba")]
    with pytest.raises(ValueError, match="feature names"):
        explainer.predict(reordered)  # the model itself refuses
    with pytest.raises(ValueError, match="feature names"):
        explainer.explain(reordered, y)


# -------------------------------------------------------------------- sparse
@pytest.mark.parametrize(
    "estimator, n, p",
    [
        (_tight_logreg(), 40, 5),
        (Ridge(), 40, 5),
        (Ridge(alpha=3.0), 15, 40),  # more features than rows: dual form
        (_tight_logreg(C=0.5), 15, 40),
    ],
)
def test_sparse_same_as_dense(estimator, n, p):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n + 8, p)) * (rng.random(size=(n + 8, p)) < 0.4)
    if is_classifier(estimator):
        y = (X[:, 0] + X[:, 1] + 0.5 * rng.normal(size=n + 8) > 0).astype(int)
    else:
        y = X @ rng.normal(size=p) + 0.1 * rng.normal(size=n + 8)
    X_train, y_train, X_test, y_test = X[:n], y[:n], X[n:], y[n:]
    model = clone(estimator).fit(X_train, y_train)

    dense = InfluenceExplainer(model).fit(X_train, y_train)
    sparse = InfluenceExplainer(model).fit(sp.csr_matrix(X_train), y_train)
    expected = dense.explain(X_test, y_test)
    for X_t in (sp.csr_matrix(X_test), sp.csc_matrix(X_test), X_test):
        assert_allclose(sparse.explain(X_t, y_test), expected, rtol=1e-8, atol=1e-12)
    assert_allclose(sparse.explain(sp.csr_matrix(X_test)), dense.explain(X_test),
                    rtol=1e-8, atol=1e-12)
    assert_allclose(dense.explain(sp.csr_matrix(X_test), y_test), expected,
                    rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- estimator type
@pytest.mark.parametrize(
    "estimator, classifier",
    [
        (LogisticRegression(), True),
        (LinearSVC(), True),
        (make_pipeline(StandardScaler(), LogisticRegression()), True),
        (Ridge(), False),
        (make_pipeline(StandardScaler(), Ridge()), False),
    ],
)
def test_is_classifier_is_regressor(clf_data, estimator, classifier):
    explainer = InfluenceExplainer(estimator)
    assert is_classifier(explainer) is classifier
    assert is_regressor(explainer) is (not classifier)
    X, y, _, _ = clf_data
    frozen = InfluenceExplainer(FrozenEstimator(clone(estimator).fit(X, y)))
    assert is_classifier(frozen) is classifier
    assert is_regressor(frozen) is (not classifier)
