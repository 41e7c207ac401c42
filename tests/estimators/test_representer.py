"""Representer points against independent truths: scikit-learn's own
decision_function of tightly fitted models, and the Ridge dual closed form."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer, representer_points


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    score = X @ [1.0, -1.0, 0.5, 0.0] + rng.normal(size=80)
    return X, (score > 0).astype(int), np.digitize(score, [-0.7, 0.7]), score


def _fit_explain(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model, InfluenceExplainer(model).fit(X, y)


TIGHT = [
    ("logistic", lambda: LogisticRegression(solver="newton-cholesky", tol=1e-12,
                                            max_iter=1000), "binary"),
    ("logistic-multinomial", lambda: LogisticRegression(
        solver="newton-cholesky", tol=1e-12, max_iter=1000, C=0.7), "multi"),
    ("logistic-liblinear", lambda: LogisticRegression(
        solver="liblinear", dual=True, tol=1e-13, max_iter=1_000_000, C=0.5,
        random_state=0, intercept_scaling=2.0), "binary"),
    ("ridge", lambda: Ridge(alpha=0.3), "regression"),
    ("ridge-no-intercept", lambda: Ridge(alpha=2.0, fit_intercept=False),
     "regression"),
    # dual coordinate descent (deterministic with random_state) gets closest
    ("linear-svc", lambda: LinearSVC(dual=True, tol=1e-12, max_iter=100_000,
                                     random_state=0, C=0.1), "binary"),
    ("linear-svc-ovr", lambda: LinearSVC(dual=True, tol=1e-12, max_iter=100_000,
                                         random_state=0, C=0.1), "multi"),
]


@pytest.mark.parametrize("name, make, target", TIGHT, ids=[t[0] for t in TIGHT])
def test_contributions_sum_to_sklearn_decision(data, name, make, target):
    X, y_bin, y_multi, score = data
    y = {"binary": y_bin, "multi": y_multi, "regression": score}[target]
    model, explainer = _fit_explain(make(), X, y)
    rep = representer_points(explainer, X[:25])
    truth = (model.predict(X[:25]) if target == "regression"
             else model.decision_function(X[:25]))
    total = rep.contributions.sum(axis=1) + rep.intercept
    np.testing.assert_allclose(total, truth, rtol=0, atol=1e-10)
    K = 1 if truth.ndim == 1 else truth.shape[1]
    assert rep.contributions.shape == ((25, 80) if K == 1 else (25, 80, K))
    # liblinear penalises its intercept: it is part of the representer sum
    if name.startswith(("linear-svc", "logistic-liblinear")):
        assert np.all(rep.intercept == 0)
    elif name != "ridge-no-intercept":
        np.testing.assert_allclose(rep.intercept, np.ravel(model.intercept_),
                                   atol=1e-10)


@pytest.mark.parametrize("model", [
    LogisticRegression(solver="liblinear", C=0.5),  # primal liblinear: loose
    LinearSVC(dual=False, C=0.5),
    LinearSVC(C=0.5, max_iter=10_000),
    LogisticRegression(max_iter=200),  # lbfgs at default tol
], ids=["liblinear-primal", "svc-primal", "svc-ovr", "lbfgs"])
def test_polish_closes_the_stationarity_gap(data, model):
    X, y_bin, y_multi, _ = data
    y = y_multi if isinstance(model, LinearSVC) and model.dual == "auto" else y_bin
    model, explainer = _fit_explain(model, X, y)
    loose = representer_points(explainer, X[:10], polish=False)
    tight = representer_points(explainer, X[:10])
    assert np.abs(tight.residual).max() < 1e-10
    assert tight.relative_gradient_norm < 1e-12
    # without polishing the gap is reported, and it is what remains exactly
    total = loose.contributions.sum(axis=1) + loose.intercept + loose.residual
    np.testing.assert_allclose(total, model.decision_function(X[:10]), atol=1e-12)
    # the polished model is sklearn's up to the solver's tolerance
    np.testing.assert_allclose(tight.decision, model.decision_function(X[:10]),
                               atol=1e-3)


def test_ridge_dual_closed_form(data):
    """No intercept: w = X^T a with a = (X X^T + alpha I)^{-1} y."""
    X, _, _, y = data
    alpha = 2.0
    model, explainer = _fit_explain(Ridge(alpha=alpha, fit_intercept=False), X, y)
    a = np.linalg.solve(X @ X.T + alpha * np.eye(len(X)), y)
    rep = representer_points(explainer, X[:5])
    np.testing.assert_allclose(rep.contributions, (X[:5] @ X.T) * a, atol=1e-12)


def test_influence_sign_and_pipeline(data):
    X, y, _, _ = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression(
        solver="newton-cholesky", tol=1e-12))
    pipe.fit(X, y)
    rep = representer_points(InfluenceExplainer(pipe).fit(X, y), X[:5], y[:5])
    p = pipe.predict_proba(X[:5])[:, 1]
    dL = p - y[:5]  # d logloss / dz
    np.testing.assert_allclose(rep.influence, -dL[:, None] * rep.contributions)
    total = rep.contributions.sum(axis=1) + rep.intercept
    np.testing.assert_allclose(total, pipe.decision_function(X[:5]), atol=1e-10)


def test_unpenalised_model_refused(data):
    X, _, _, y = data
    explainer = InfluenceExplainer(LinearRegression().fit(X, y)).fit(X, y)
    with pytest.raises(ValueError, match="need an L2 penalty"):
        representer_points(explainer, X[:2])
