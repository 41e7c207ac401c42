"""The fit check: scale-free, and each cause named on its own.

Truth: the relative change of the influence itself between the fitted and the
exactly optimal coefficients (computed here by polishing the fit with
Newton's method and explaining again), and a converged fit on the same data.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression

from skinfluence import InfluenceExplainer
from skinfluence._fitcheck import FitWarning
from skinfluence.exact import polish_optimum
from skinfluence.families import family_for


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def polished(model, X, y):
    """The same estimator at the exact optimum of its objective."""
    theta, _ = polish_optimum(family_for(model), X, y)
    coef, intercept = family_for(model).split_theta(theta)
    model.coef_, model.intercept_ = coef.copy(), intercept.copy()
    return model


def no_fit_warning(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        return InfluenceExplainer(model).fit(X, y)


def scaled_features():
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, flip_y=0.15, random_state=0)
    return X * 1e8, y


def raw_digits():
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    return data.data[mask][:250], data.target[mask][:250]


def influence_change(explainer, model, X, y, X_test, y_test):
    """Relative change of explain() when the fit is made exact."""
    exact = InfluenceExplainer(polished(model, X, y)).fit(X, y).explain(X_test, y_test)
    fitted = explainer.explain(X_test, y_test)
    return np.abs(fitted - exact).max() / np.abs(exact).max()


def test_scaled_features_warn_although_the_relative_gradient_is_tiny():
    """Features scaled by 1e8: the intercept's gradient is about 20 while the
    relative gradient norm reads 1e-9; the check sees the change it makes."""
    X, y = scaled_features()
    model = fit_quietly(LogisticRegression(), X, y)
    assert abs(family_for(model).bind(X, y).gradient()[-1]) > 1.0
    with pytest.warns(FitWarning, match="does not look fitted.*tol"):
        explainer = InfluenceExplainer(model).fit(X, y)
    assert explainer.relative_gradient_norm_ < 1e-6      # the old check: silent
    assert explainer.fit_gap_ > 0.05
    change = influence_change(explainer, model, X, y, X[:5], y[:5])
    assert explainer.fit_gap_ <= change <= 5 * explainer.fit_gap_


def test_converged_fit_on_the_same_scaled_data_is_silent():
    X, y = scaled_features()
    model = polished(fit_quietly(LogisticRegression(), X, y), X, y)
    assert no_fit_warning(model, X, y).fit_gap_ < 1e-8


def test_unconverged_lbfgs_warns_and_names_the_cause():
    """Raw digits 1 vs 7: separable, and lbfgs stops at its default tol."""
    X, y = raw_digits()
    model = fit_quietly(LogisticRegression(), X, y)
    with pytest.warns(FitWarning, match="separates the training classes.*tol below"):
        explainer = InfluenceExplainer(model).fit(X, y)
    change = influence_change(explainer, model, X, y, X[:5], y[:5])
    assert change > 0.1 and explainer.fit_gap_ > 0.05


def test_stopping_at_max_iter_is_named():
    X, y = raw_digits()
    model = fit_quietly(LogisticRegression(max_iter=5), X, y)
    with pytest.warns(FitWarning, match="max_iter=5"):
        InfluenceExplainer(model).fit(X, y)


def test_converged_fit_on_the_same_digits_is_silent():
    X, y = raw_digits()
    model = LogisticRegression(solver="newton-cholesky", tol=1e-10).fit(X, y)
    assert no_fit_warning(model, X, y).fit_gap_ < 1e-6


def test_separable_classes_get_the_separability_message():
    iris = load_iris()
    X, y = iris.data, (iris.target == 0).astype(int)   # setosa is separable
    model = fit_quietly(LogisticRegression(C=1e4, max_iter=10_000), X, y)
    with pytest.warns(FitWarning, match="separates the training classes.*smaller C"):
        InfluenceExplainer(model).fit(X, y)
    unpenalised = fit_quietly(LogisticRegression(C=np.inf, max_iter=10_000), X, y)
    with pytest.raises(ValueError, match="no finite optimum.*finite C"):
        InfluenceExplainer(unpenalised).fit(X, y)


def test_default_tolerance_fit_that_is_close_enough_is_silent():
    """sklearn's default tol can be fine: the check does not cry wolf."""
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, flip_y=0.15, random_state=0)
    model = LogisticRegression().fit(X, y)
    explainer = no_fit_warning(model, X, y)
    assert influence_change(explainer, model, X, y, X[:5], y[:5]) < 0.05


def test_interpolation_is_named_and_not_blamed_on_tol():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), rng.normal(size=5)
    model = LinearRegression().fit(X, y)
    with pytest.warns(FitWarning) as record:
        InfluenceExplainer(model).fit(X, y)
    messages = [str(w.message) for w in record if w.category is FitWarning]
    assert any("interpolates the training data" in m for m in messages)
    assert not any("does not look fitted" in m for m in messages)


def test_ill_conditioned_hessian_is_named_with_what_damping_does():
    """No penalty and two columns equal to nine digits: cond(H) ~1e25."""
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, flip_y=0.15, random_state=0)
    noise = np.random.default_rng(0).normal(size=300)
    X = np.column_stack([X, X[:, 0] * (1 + 1e-9) + 1e-12 * noise])
    model = fit_quietly(LogisticRegression(C=np.inf, solver="newton-cholesky"), X, y)
    model = polished(model, X, y)
    with pytest.warns(FitWarning, match="ill-conditioned.*damping"):
        explainer = InfluenceExplainer(model).fit(X, y)
    assert explainer.solver_.diagnostics_["condition"] > 1e20


def test_well_conditioned_penalised_fit_has_no_conditioning_message():
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, flip_y=0.15, random_state=0)
    X = np.column_stack([X, X[:, 0] * (1 + 1e-9)])
    model = LogisticRegression(solver="newton-cholesky", tol=1e-12).fit(X, y)
    no_fit_warning(model, X, y)     # C=1 bounds the condition number
