"""SGDClassifier and SGDRegressor against independent truths.

* Losses: scikit-learn's own loss objects (``_sgd_fast`` and ``sklearn._loss``).
* The objective ``1/n sum c_i l_i + alpha/2 ||w||^2``: its optimum is that of
  estimators solved to machine precision by other solvers,
  LogisticRegression(C = 1/(n alpha)), Ridge(alpha = n alpha) (SGD's squared
  error is halved), LinearSVC(C = 1/(n alpha)) without intercept, and one
  binary LogisticRegression per one-vs-rest problem.
* Leave-one-out: those estimators refitted on n - 1 rows with the constant
  rescaled to n - 1, as a refit of SGD's objective does.
* The optimality gap separates SGD's default iterate from the optimum.
"""

import warnings

import numpy as np
import pytest
from sklearn._loss.loss import HalfBinomialLoss, HalfSquaredError, HuberLoss
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.linear_model._sgd_fast import (
    Hinge,
    ModifiedHuber,
    SquaredEpsilonInsensitive,
    SquaredHinge,
)
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.exact import newton_minimize
from skinfluence.families import SGDClassifierFamily, SGDRegressorFamily, family_for
from skinfluence.families.sgd import _loss

ALPHA = 0.02


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # far from optimum
        yield


def _classification(n_classes=2, n=90, seed=0):
    X, y = make_classification(n_samples=n, n_features=4, n_informative=3,
                               n_redundant=0, n_classes=n_classes,
                               n_clusters_per_class=1, flip_y=0.1, random_state=seed)
    return StandardScaler().fit_transform(X), np.array(["a", "b", "c"])[y]


def _regression(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = X @ np.array([1.0, -0.5, 0.3, 0.0]) + 0.2 + 0.5 * rng.standard_normal(n)
    y[:4] += 5.0  # outliers for the robust losses
    return X, y


def _weights(n, seed=1):
    sw = np.random.default_rng(seed).uniform(0.3, 2.0, n)
    sw[:2] = 0.0
    return sw


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("name, theirs", [
    ("modified_huber", ModifiedHuber()),
    ("squared_hinge", SquaredHinge(1.0)),
    ("hinge", Hinge(1.0)),
    ("squared_epsilon_insensitive", SquaredEpsilonInsensitive(0.3)),
])
def test_losses_are_sgds_own(name, theirs):
    rng = np.random.default_rng(0)
    Z = 3 * rng.standard_normal((200, 1))
    Y = rng.choice([-1.0, 1.0], (200, 1)) if name != "squared_epsilon_insensitive" \
        else rng.standard_normal((200, 1))
    value = [theirs.py_loss(z, y) for z, y in zip(Z[:, 0], Y[:, 0])]
    slope = [theirs.py_dloss(z, y) for z, y in zip(Z[:, 0], Y[:, 0])]
    np.testing.assert_allclose(_loss(name, Y, Z, 0.3, 0)[:, 0], value, rtol=1e-12)
    np.testing.assert_allclose(_loss(name, Y, Z, 0.3, 1)[:, 0], slope, rtol=1e-12)


@pytest.mark.parametrize("name, theirs, labels01", [
    ("log_loss", HalfBinomialLoss(), True),
    ("squared_error", HalfSquaredError(), False),
    ("huber", HuberLoss(delta=0.3), False),
])
def test_cython_losses_are_sgds_own(name, theirs, labels01):
    rng = np.random.default_rng(0)
    Z = 3 * rng.standard_normal(200)
    Y = rng.choice([-1.0, 1.0], 200) if labels01 else rng.standard_normal(200)
    target = (Y > 0).astype(float) if labels01 else Y
    np.testing.assert_allclose(_loss(name, Y[:, None], Z[:, None], 0.3, 0)[:, 0],
                               theirs.loss(target, Z), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(_loss(name, Y[:, None], Z[:, None], 0.3, 1)[:, 0],
                               theirs.gradient(target, Z), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["log_loss", "modified_huber", "squared_hinge",
                                  "squared_error", "huber",
                                  "squared_epsilon_insensitive"])
def test_second_derivative_matches_finite_differences(name):
    rng = np.random.default_rng(1)
    Z = 3 * rng.standard_normal((300, 1))
    Y = rng.choice([-1.0, 1.0], (300, 1))
    h = 1e-6
    numeric = (_loss(name, Y, Z + h, 0.3, 1) - _loss(name, Y, Z - h, 0.3, 1)) / (2 * h)
    kinks = {"modified_huber": [1, -1], "squared_hinge": [1]}.get(name, [])
    away = np.all([np.abs(Y * Z - k) > 1e-3 for k in kinks], axis=0) if kinks else \
        np.ones_like(Z, dtype=bool)
    away &= np.abs(np.abs(Y - Z) - 0.3) > 1e-3
    np.testing.assert_allclose(_loss(name, Y, Z, 0.3, 2)[away], numeric[away],
                               rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- objective
def _sgd(estimator, X, y, sw):
    """A short SGD fit: only its settings (and the family layout) are used."""
    return estimator.set_params(alpha=ALPHA, random_state=0, max_iter=5,
                                tol=None).fit(X, y, sample_weight=sw)


def _optimum(fam, X, y, sw):
    return fam.with_theta(newton_minimize(fam, X, y, sw, tol=1e-13)[0])


def test_log_loss_optimum_is_logistic_regression_with_C_1_over_n_alpha():
    X, y = _classification()
    sw = _weights(len(y))
    cw = {"a": 2.0, "b": 0.5}
    sgd = _sgd(SGDClassifier(loss="log_loss", class_weight=cw), X, y, sw)
    fam = family_for(sgd)
    assert isinstance(fam, SGDClassifierFamily)
    lr = LogisticRegression(C=1 / (len(y) * ALPHA), class_weight=cw,
                            solver="newton-cholesky", tol=1e-12).fit(X, y, sample_weight=sw)
    fam_lr = fam.with_theta(np.r_[lr.coef_[0], lr.intercept_])
    assert fam_lr.bind(X, y, sw).relative_gradient_norm() < 1e-9
    # the check can fail: the same LogisticRegression without the class weights
    lr.set_params(class_weight=None).fit(X, y, sample_weight=sw)
    assert fam.with_theta(np.r_[lr.coef_[0], lr.intercept_]).bind(
        X, y, sw).relative_gradient_norm() > 1e-3


def test_multiclass_is_one_binary_problem_per_class():
    X, y = _classification(3)
    sw = _weights(len(y))
    cw = {"a": 2.0, "c": 0.5}
    sgd = _sgd(SGDClassifier(loss="log_loss", class_weight=cw), X, y, sw)
    fam = _optimum(family_for(sgd), X, y, sw)
    for k, label in enumerate(sgd.classes_):
        positive = (y == label).astype(int)
        lr = LogisticRegression(C=1 / (len(y) * ALPHA), class_weight={1: cw.get(label, 1.0)},
                                solver="newton-cholesky", tol=1e-12)
        lr.fit(X, positive, sample_weight=sw)
        np.testing.assert_allclose(fam.coef[k], lr.coef_[0], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(fam.intercept[k], lr.intercept_[0], rtol=1e-7, atol=1e-9)


def test_squared_error_optimum_is_ridge_with_n_alpha():
    X, y = _regression()
    sw = _weights(len(y))
    sgd = _sgd(SGDRegressor(loss="squared_error"), X, y, sw)
    fam = _optimum(family_for(sgd), X, y, sw)
    assert isinstance(fam, SGDRegressorFamily)
    ridge = Ridge(alpha=len(y) * ALPHA).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(fam.coef[0], ridge.coef_, rtol=1e-9)
    np.testing.assert_allclose(fam.intercept[0], ridge.intercept_, rtol=1e-9)


def test_squared_hinge_optimum_is_linear_svc_without_intercept():
    X, y = _classification()
    sw = _weights(len(y))
    sgd = _sgd(SGDClassifier(loss="squared_hinge", fit_intercept=False), X, y, sw)
    fam = _optimum(family_for(sgd), X, y, sw)
    svc = LinearSVC(C=1 / (len(y) * ALPHA), fit_intercept=False, dual=False, tol=1e-12,
                    max_iter=100_000).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(fam.coef[0], svc.coef_[0], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("loss", ["huber", "modified_huber", "squared_epsilon_insensitive"])
def test_long_sgd_runs_approach_the_family_optimum(loss):
    """Losses no other estimator minimises: SGD itself, run long with
    averaging, gets close to the family's optimum, closer than to the optimum
    of the objective with three times the alpha."""
    if loss == "modified_huber":
        X, y = _classification()
        est = SGDClassifier(loss=loss)
    else:
        X, y = _regression()
        est = SGDRegressor(loss=loss, epsilon=0.3)
    sgd = est.set_params(alpha=ALPHA, max_iter=3000, tol=None, average=True,
                         random_state=0).fit(X, y)
    fam = family_for(sgd)
    sw = np.ones(len(y))
    optimum = _optimum(fam, X, y, sw).theta
    other = fam.with_theta(fam.theta)
    other.alpha = 3 * ALPHA
    other = _optimum(other, X, y, sw).theta
    distance = np.linalg.norm(fam.theta - optimum)
    assert distance < 0.02 * np.linalg.norm(optimum)
    assert distance < 0.2 * np.linalg.norm(other - optimum)


def test_balanced_class_weights_count_rows():
    X, y = _classification(3)
    sw = _weights(len(y))
    sgd = _sgd(SGDClassifier(loss="log_loss", class_weight="balanced"), X, y, sw)
    np.testing.assert_allclose(family_for(sgd).class_weights(y, sw),
                               sgd._expanded_class_weight, rtol=1e-12)


def _central_difference(func, theta, eps=1e-6):
    cols = []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        cols.append((func(theta + e) - func(theta - e)) / (2 * eps))
    return np.array(cols)


@pytest.mark.parametrize("loss, n_classes", [("log_loss", 2), ("log_loss", 3),
                                             ("modified_huber", 3), ("huber", 0)])
def test_gradient_and_hessian_match_finite_differences(loss, n_classes):
    if n_classes:
        X, y = _classification(n_classes)
        sgd = _sgd(SGDClassifier(loss=loss, class_weight="balanced"), X, y, None)
    else:
        X, y = _regression()
        sgd = _sgd(SGDRegressor(loss=loss, epsilon=0.3), X, y, None)
    sw = _weights(len(y))
    fam = family_for(sgd)
    theta = fam.theta + 0.05 * np.random.default_rng(0).standard_normal(fam.n_parameters)
    prob = fam.bind(X, y, sw, theta=theta)
    numeric = _central_difference(lambda t: fam.bind(X, y, sw, theta=t).objective(), theta)
    np.testing.assert_allclose(prob.gradient(), numeric, rtol=1e-6, atol=1e-8)
    numeric = _central_difference(lambda t: fam.bind(X, y, sw, theta=t).gradient(), theta)
    np.testing.assert_allclose(prob.hessian(), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_removal_gradient_is_that_of_the_refit_objective(class_weight):
    """A refit divides by n - 1 and recounts balanced class weights:
    ``(n - 1) / n grad F_{-i} - grad F`` is minus the removal gradient."""
    X, y = _classification(3)
    sw = _weights(len(y))
    sgd = _sgd(SGDClassifier(loss="log_loss", class_weight=class_weight), X, y, sw)
    explainer = InfluenceExplainer(sgd).fit(X, y, sample_weight=sw)
    fitted, prob, fam = explainer.influence_, explainer.problem_, explainer.family_
    vectors, delta = fitted.class_shift
    removal = prob.row_gradients(X, fitted.removal_residuals) - vectors @ delta.T
    n = len(y)
    for i in [0, 7, 33, 64]:
        keep = np.arange(n) != i
        refit = fam.bind(X[keep], y[keep], sw[keep])
        np.testing.assert_allclose((n - 1) / n * refit.gradient() - prob.gradient(),
                                   -removal[:, i], rtol=1e-9,
                                   atol=1e-9 * np.abs(removal).max())


def test_exact_loo_is_the_rescaled_refit():
    """loo(method="exact") against LogisticRegression refits with
    C = 1 / ((n - 1) alpha) and Ridge refits with alpha = (n - 1) alpha."""
    X, y = _classification()
    sw = _weights(len(y))
    cw = {"a": 1.5}
    sgd = _sgd(SGDClassifier(loss="log_loss", class_weight=cw), X, y, sw)
    explainer = InfluenceExplainer(sgd, polish=True).fit(X, y, sample_weight=sw)
    fam = explainer.family_
    n = len(y)
    X_test, y_test = X[:5], y[:5]
    rows = [0, 4, 20, 51]
    base = fam.test_quantity(X_test, y_test)
    truth = np.empty((5, len(rows)))
    for k, i in enumerate(rows):
        keep = np.arange(n) != i
        lr = LogisticRegression(C=1 / ((n - 1) * ALPHA), class_weight=cw,
                                solver="newton-cholesky", tol=1e-12)
        lr.fit(X[keep], y[keep], sample_weight=sw[keep])
        truth[:, k] = fam.test_quantity(X_test, y_test,
                                        np.r_[lr.coef_[0], lr.intercept_]) - base
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    np.testing.assert_allclose(exact, truth, rtol=1e-7, atol=1e-9 * np.abs(truth).max())
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    assert np.abs(newton - truth).max() < 0.1 * np.abs(truth).max()
    # the regressor
    X, y = _regression()
    sgd = _sgd(SGDRegressor(loss="squared_error"), X, y, sw)
    explainer = InfluenceExplainer(sgd, polish=True).fit(X, y, sample_weight=sw)
    exact = explainer.loo(X[:5], method="exact", train_indices=rows)
    base = explainer.family_.test_quantity(X[:5])
    for k, i in enumerate(rows):
        keep = np.arange(n) != i
        ridge = Ridge(alpha=(n - 1) * ALPHA).fit(X[keep], y[keep], sample_weight=sw[keep])
        np.testing.assert_allclose(exact[:, k], ridge.predict(X[:5]) - base,
                                   rtol=1e-7, atol=1e-10)


def test_far_from_optimum_warns_and_polish_explains_the_optimum():
    X, y = _classification()
    sgd = SGDClassifier(loss="modified_huber", alpha=ALPHA, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="leave-one-out steps away from the optimum"):
        explainer = InfluenceExplainer(sgd).fit(X, y)
    assert explainer.optimality_gap_.ratio > 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        polished = InfluenceExplainer(sgd, polish=True).fit(X, y)
    assert polished.optimality_gap_.ratio > 1  # measured at the estimator's iterate
    assert polished.problem_.relative_gradient_norm() < 1e-10
    np.testing.assert_array_equal(sgd.coef_, family_for(sgd).coef)  # untouched
    # at the optimum the gap is zero
    optimum = SGDClassifier(loss="modified_huber", alpha=ALPHA).fit(X, y)
    theta = polished.family_.theta
    optimum.coef_, optimum.intercept_ = theta[None, :-1].copy(), theta[-1:].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert InfluenceExplainer(optimum).fit(X, y).optimality_gap_.ratio < 1e-6


@pytest.mark.parametrize("params, match", [
    ({"penalty": "l1"}, "L1 part"),
    ({"penalty": "elasticnet", "l1_ratio": 0.3}, "L1 part"),
    ({"early_stopping": True}, "early_stopping"),
    ({"loss": "perceptron"}, "piecewise linear"),
    ({"loss": "epsilon_insensitive"}, "piecewise linear"),
    ({"learning_rate": "pa1", "eta0": 0.1}, "passive-aggressive"),
])
def test_unsupported_settings_are_refused(params, match):
    X, y = _classification()
    est = SGDClassifier(max_iter=5, tol=None, **params).fit(X, y)
    with pytest.raises(ValueError, match=match):
        family_for(est)
