"""Estimators inside wrappers: search objects, TransformedTargetRegressor, and
the wrappers refused.

The truths: explainers of the unwrapped model built by hand, brute-force
refits of the chosen model (a search's hyperparameters held fixed), refits of
the whole TransformedTargetRegressor (its ``func`` is stateless), and finite
differences of the inverse for the chain rule.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_classification
from sklearn.ensemble import BaggingRegressor
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence._resolve import TargetTransform, resolve, sample_weight_key


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


def _regression(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1] + 0.2 * rng.standard_normal(n)) + 1.0
    return X, y


def _classification():
    X, y = make_classification(n_samples=80, n_features=4, n_informative=3,
                               n_redundant=0, flip_y=0.1, random_state=0)
    return X, y


TIGHT_LOGIT = {"solver": "newton-cholesky", "tol": 1e-10}


# ------------------------------------------------------------------ searches
@pytest.mark.parametrize("search", [
    GridSearchCV(Ridge(), {"alpha": [0.1, 3.0, 30.0]}, cv=3),
    RandomizedSearchCV(Ridge(), {"alpha": [0.1, 3.0, 30.0]}, n_iter=2, cv=3,
                       random_state=0),
    HalvingGridSearchCV(Ridge(), {"alpha": [0.1, 3.0, 30.0]}, cv=3, min_resources=20,
                        random_state=0),
], ids=["grid", "randomized", "halving"])
def test_search_is_explained_through_its_best_estimator(search):
    X, y = _regression()
    search = clone(search).fit(X, y)
    explainer = InfluenceExplainer(search).fit(X, y)
    by_hand = InfluenceExplainer(search.best_estimator_).fit(X, y)
    np.testing.assert_allclose(explainer.explain(X[:4], y[:4]),
                               by_hand.explain(X[:4], y[:4]), rtol=1e-12)
    # the truth is a refit of the chosen model without the row, not a new search
    alpha = search.best_params_["alpha"]
    rows = [0, 7, 30]
    refit = explainer.loo(X[:4], method="refit", train_indices=rows)
    base = Ridge(alpha=alpha).fit(X, y).predict(X[:4])
    for k, i in enumerate(rows):
        keep = np.arange(len(y)) != i
        expected = Ridge(alpha=alpha).fit(X[keep], y[keep]).predict(X[:4]) - base
        np.testing.assert_allclose(refit[:, k], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(explainer.explain(X[:4], method="newton")[:, rows],
                               refit, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(explainer.predict(X[:4]), search.predict(X[:4]))


def test_unfitted_search_over_a_pipeline_is_fitted_with_its_sample_weights():
    X, y = _classification()
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT_LOGIT))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=3)
    assert sample_weight_key(search) == "logisticregression__sample_weight"
    explainer = InfluenceExplainer(search).fit(X, y, sample_weight=sw)
    fitted = clone(search).fit(X, y, logisticregression__sample_weight=sw)
    by_hand = InfluenceExplainer(fitted.best_estimator_).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(explainer.explain(X[:3], y[:3]),
                               by_hand.explain(X[:3], y[:3]), rtol=1e-10)
    assert explainer.relative_gradient_norm_ < 1e-8  # the weights reached the model


def test_search_without_refit_is_refused():
    X, y = _regression()
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=3, refit=False).fit(X, y)
    with pytest.raises(ValueError, match="refit=False"):
        InfluenceExplainer(search).fit(X, y)


# ------------------------------------------------- TransformedTargetRegressor
def test_transformed_target_loss_is_in_the_transformed_space():
    X, y = _regression()
    ttr = TransformedTargetRegressor(Ridge(alpha=1.0), func=np.log, inverse_func=np.exp)
    ttr.fit(X, y)
    explainer = InfluenceExplainer(ttr).fit(X, y)
    inner = InfluenceExplainer(ttr.regressor_).fit(X, np.log(y))
    np.testing.assert_allclose(explainer.explain(X[:4], y[:4]),
                               inner.explain(X[:4], np.log(y[:4])), rtol=1e-12)
    np.testing.assert_allclose(explainer.loo(X[:4], y[:4], method="exact"),
                               inner.loo(X[:4], np.log(y[:4]), method="exact"),
                               rtol=1e-10, atol=1e-14)


def test_transformed_target_prediction_goes_through_the_inverse():
    """Ridge is quadratic: the Newton step is its exact refit, and exp of the
    refitted log-prediction is the refit TransformedTargetRegressor's predict."""
    X, y = _regression()
    ttr = TransformedTargetRegressor(make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
                                     func=np.log, inverse_func=np.exp).fit(X, y)
    explainer = InfluenceExplainer(ttr).fit(X, y)
    X_test = _regression(n=4, seed=1)[0]
    base = ttr.predict(X_test)
    truth = np.empty((4, len(y)))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        # the Pipeline's scaler is held fixed, as for any Pipeline
        refit = clone(ttr.regressor_[-1]).fit(ttr.regressor_[0].transform(X[keep]),
                                               np.log(y[keep]))
        truth[:, i] = np.exp(refit.predict(ttr.regressor_[0].transform(X_test))) - base
    np.testing.assert_allclose(explainer.explain(X_test, method="newton"), truth,
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(explainer.loo(X_test, method="refit"), truth,
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(explainer.loo(X_test, method="exact"), truth,
                               rtol=1e-8, atol=1e-12)
    # first order: the chain rule, d predict = exp(t) dt
    inner = InfluenceExplainer(ttr.regressor_).fit(X, np.log(y))
    np.testing.assert_allclose(explainer.explain(X_test),
                               base[:, None] * inner.explain(X_test), rtol=1e-8)
    assert np.corrcoef(explainer.explain(X_test).ravel(), truth.ravel())[0, 1] > 0.99


def test_a_fitted_transformer_is_held_fixed():
    X, y = _regression()
    ttr = TransformedTargetRegressor(Ridge(alpha=1.0), transformer=StandardScaler())
    ttr.fit(X, y)
    explainer = InfluenceExplainer(ttr).fit(X, y)
    t = ttr.transformer_.transform(y[:, None])[:, 0]
    rows = [0, 11, 40]
    refit = explainer.loo(X[:3], method="refit", train_indices=rows)
    base = ttr.predict(X[:3])
    for k, i in enumerate(rows):
        keep = np.arange(len(y)) != i
        t_hat = Ridge(alpha=1.0).fit(X[keep], t[keep]).predict(X[:3])
        expected = ttr.transformer_.inverse_transform(t_hat[:, None])[:, 0] - base
        np.testing.assert_allclose(refit[:, k], expected, rtol=1e-9, atol=1e-12)


def test_transformed_target_glm_and_pipeline_around_it():
    X, y = _regression()
    inner = make_pipeline(PolynomialFeatures(2), PoissonRegressor(
        alpha=0.1, solver="newton-cholesky", tol=1e-12))
    model = make_pipeline(StandardScaler(), TransformedTargetRegressor(
        inner, func=np.sqrt, inverse_func=np.square))
    model.fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    final, transform, target = resolve(model)
    assert isinstance(final, PoissonRegressor) and target is not None
    fitted_inner = model[-1].regressor_
    np.testing.assert_allclose(transform(X[:3]),
                               fitted_inner[0].transform(model[0].transform(X[:3])))
    rows = [2, 9]
    newton = explainer.explain(X[:3], method="newton")[:, rows]
    refit = explainer.loo(X[:3], method="refit", train_indices=rows)
    np.testing.assert_allclose(newton, refit, rtol=0.05, atol=1e-3 * np.abs(refit).max())
    np.testing.assert_allclose(explainer.predict(X[:3]), model.predict(X[:3]))


def test_target_transform_derivative_matches_the_inverse():
    X, y = _regression()
    ttr = TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1)
    target = TargetTransform(ttr.fit(X, y).transformer_)
    t = np.linspace(-2, 5, 9)
    np.testing.assert_allclose(target.derivative(t), np.exp(t), rtol=1e-9)


def test_non_invertible_target_transform_is_refused():
    X, y = _regression()
    ttr = TransformedTargetRegressor(Ridge(), func=np.log, inverse_func=np.sqrt,
                                     check_inverse=False).fit(X, y)
    with pytest.raises(ValueError, match="not invertible"):
        InfluenceExplainer(ttr).fit(X, y)


def test_nested_transformed_target_is_refused():
    X, y = _regression()
    ttr = TransformedTargetRegressor(
        TransformedTargetRegressor(Ridge(), func=np.log, inverse_func=np.exp),
        func=np.sqrt, inverse_func=np.square).fit(X, y)
    with pytest.raises(TypeError, match="inside another"):
        InfluenceExplainer(ttr).fit(X, y)


# ------------------------------------------------------------------- refused
@pytest.mark.parametrize("model, match", [
    (CalibratedClassifierCV(LogisticRegression(), cv=3),
     "averages classifiers fitted on cross-validation folds"),
    (OneVsRestClassifier(LogisticRegression()), "one independent binary model"),
], ids=["calibrated", "ovr"])
def test_wrappers_that_are_not_one_linear_model_are_refused(model, match):
    X, y = _classification()
    with pytest.raises(TypeError, match=match):
        InfluenceExplainer(model).fit(X, y)
    fitted = clone(model).fit(X, y)
    with pytest.raises(TypeError, match=match):
        InfluenceExplainer(FrozenEstimator(fitted)).fit(X, y)


def test_ensembles_are_refused_with_the_reason():
    X, y = _regression()
    with pytest.raises(TypeError, match="combines several models"):
        InfluenceExplainer(BaggingRegressor(Ridge(), n_estimators=3)).fit(X, y)
