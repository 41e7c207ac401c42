"""A Pipeline is explained as its final model on the transformed rows."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skinfluence import InfluenceExplainer


def test_pipeline_equals_final_step_on_transformed_data():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=3.0)).fit(X[:300], y[:300])
    through_pipeline = InfluenceExplainer(pipe).fit(X[:300], y[:300]).explain(
        X[300:310], y[300:310])
    scaler, ridge = pipe[0], pipe[-1]
    direct = InfluenceExplainer(ridge).fit(scaler.transform(X[:300]), y[:300]).explain(
        scaler.transform(X[300:310]), y[300:310])
    np.testing.assert_allclose(through_pipeline, direct, rtol=1e-12, atol=0)


def _mixed_frame(n=150, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "size": rng.normal(size=n),
        "age": rng.uniform(0, 10, size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n),
    })
    logit = frame["size"] + 0.3 * frame["age"] - 1.5 + (frame["colour"] == "red")
    y = (logit + rng.normal(size=n) > 0).map({True: "yes", False: "no"}).to_numpy()
    return frame, y


def test_column_transformer_with_sparse_one_hot_and_dataframe():
    frame, y = _mixed_frame()
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["size", "age"]),
        ("cat", OneHotEncoder(sparse_output=True), ["colour"]),
    ], sparse_threshold=1.0)
    pipe = make_pipeline(pre, LogisticRegression(tol=1e-10)).fit(frame, y)
    influence = InfluenceExplainer(pipe).fit(frame, y).explain(frame.iloc[:4], y[:4])
    Xt = pipe[0].transform(frame)
    direct = InfluenceExplainer(pipe[-1]).fit(Xt, y).explain(Xt[:4], y[:4])
    assert influence.shape == (4, len(y))
    np.testing.assert_allclose(influence, direct, rtol=1e-10, atol=1e-14)


def test_unfitted_pipeline_is_cloned_and_fitted_with_sample_weight():
    frame, y = _mixed_frame(seed=1)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    pipe = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["size", "age"]),
                           ("cat", OneHotEncoder(), ["colour"])]),
        LogisticRegression(C=0.5, tol=1e-10),
    )
    explainer = InfluenceExplainer(pipe).fit(frame, y, sample_weight=sw)
    assert not hasattr(pipe[-1], "coef_")  # the user's pipeline stays unfitted
    fitted = explainer.estimator_
    reference = LogisticRegression(C=0.5, tol=1e-10).fit(
        fitted[0].transform(frame), y, sample_weight=sw)
    np.testing.assert_allclose(fitted[-1].coef_, reference.coef_, rtol=1e-6)
    assert explainer.relative_gradient_norm_ < 1e-6


def test_loo_can_refit_the_whole_pipeline():
    """refit='pipeline' equals brute-force refits of the whole pipeline (its
    scaler refitted too); the default holds the preprocessing fixed, which
    differs by a few percent here."""
    from sklearn.base import clone
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:150], y[:150], X[150:155], y[150:155]
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=1000))
    explainer = InfluenceExplainer(model.fit(X_train, y_train)).fit(X_train, y_train)
    rows = np.arange(0, 150, 15)
    truth_model = make_pipeline(StandardScaler(), LogisticRegression(
        solver="newton-cholesky", tol=1e-12)).fit(X_train, y_train)

    def log_loss(fitted):
        return -np.log(fitted.predict_proba(X_test)[np.arange(5), y_test])

    truth = np.column_stack([
        log_loss(clone(truth_model).fit(np.delete(X_train, i, 0), np.delete(y_train, i)))
        - log_loss(truth_model) for i in rows])
    whole = explainer.loo(X_test, y_test, train_indices=rows, refit="pipeline")
    np.testing.assert_allclose(whole, truth, rtol=0, atol=1e-9 * np.abs(truth).max())
    final_step = explainer.loo(X_test, y_test, train_indices=rows)
    assert np.abs(final_step - truth).max() > 1e-3 * np.abs(truth).max()
    with pytest.raises(ValueError, match="needs method='refit'"):
        explainer.loo(X_test, y_test, method="exact", refit="pipeline")
    with warnings.catch_warnings():  # an unscaled fit, only to be refused
        warnings.simplefilter("ignore")
        plain = InfluenceExplainer(LogisticRegression().fit(X_train, y_train)).fit(
            X_train, y_train)
    with pytest.raises(ValueError, match="refits a Pipeline"):
        plain.loo(X_test, y_test, refit="pipeline")
