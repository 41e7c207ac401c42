"""LogisticRegression with an L1 part against independent truths: the objective
written out from scikit-learn's documentation, its KKT conditions at
scikit-learn's fits (liblinear and saga), finite differences, and
brute-force leave-one-out refits at tight tolerances."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from conftest import digits
from skinfluence import InfluenceExplainer
from skinfluence.exact import active_set_loo_parameters
from skinfluence.families import family_for
from skinfluence.families.logistic_l1 import (
    BinaryL1LogisticFamily,
    MultinomialL1LogisticFamily,
)

LIBLINEAR = dict(solver="liblinear", tol=1e-10, max_iter=100_000, random_state=0)
SAGA = dict(solver="saga", tol=1e-10, max_iter=100_000, random_state=0)


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def binary():
    X_train, X_test, y_train, y_test = digits([1, 7])
    return X_train[:120], X_test[:4], y_train[:120], y_test[:4]


@pytest.fixture(scope="module")
def three_classes():
    X_train, X_test, y_train, y_test = digits([0, 1, 2])
    return X_train[:120], X_test[:4], y_train[:120], y_test[:4]


def sklearn_objective(model, X, y, sw):
    """``C sum s_i logloss_i + (1 - rho)/2 ||W||^2 + rho ||W||_1 (+ |b| / is)``."""
    C, rho = model.C, model.l1_ratio
    data = C * log_loss(y, model.predict_proba(X), sample_weight=sw, normalize=False)
    W = model.coef_
    value = data + 0.5 * (1 - rho) * np.sum(W ** 2) + rho * np.abs(W).sum()
    if model.solver == "liblinear":
        value += np.abs(model.intercept_).sum() / model.intercept_scaling
    return value


CASES = [
    ("liblinear-l1", "binary", LogisticRegression(C=0.1, l1_ratio=1.0, **LIBLINEAR)),
    ("liblinear-l1-is3", "binary",
     LogisticRegression(C=0.05, l1_ratio=1.0, intercept_scaling=3.0, **LIBLINEAR)),
    ("saga-l1", "binary", LogisticRegression(C=0.1, l1_ratio=1.0, **SAGA)),
    ("saga-enet", "binary", LogisticRegression(C=0.1, l1_ratio=0.5, **SAGA)),
    ("saga-enet-multinomial", "three", LogisticRegression(C=0.1, l1_ratio=0.5, **SAGA)),
    ("saga-enet-balanced", "binary",
     LogisticRegression(C=0.1, l1_ratio=0.5, class_weight="balanced", **SAGA)),
]
cases = pytest.mark.parametrize("kind, model", [c[1:] for c in CASES],
                                ids=[c[0] for c in CASES])


def _data(kind, binary, three_classes):
    return binary if kind == "binary" else three_classes


@cases
def test_sklearn_fit_satisfies_the_kkt_conditions(binary, three_classes, kind, model):
    X, _, y, _ = _data(kind, binary, three_classes)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    model = clone(model).fit(X, y, sample_weight=sw)
    family = family_for(model)
    expected = BinaryL1LogisticFamily if kind == "binary" else MultinomialL1LogisticFamily
    assert isinstance(family, expected)
    problem = family.bind(X, y, sw)
    assert problem.relative_gradient_norm(subgradient=True) < 1e-6
    assert 0 < family.support.sum() < family.n_parameters  # a genuine L1 solution
    if model.class_weight is None:
        np.testing.assert_allclose(problem.objective(),
                                   sklearn_objective(model, X, y, sw), rtol=1e-10)
    # the same coefficients are not optimal for another C
    other = family_for(clone(model).set_params(C=0.2).fit(X, y, sample_weight=sw))
    other.coef, other.intercept = family.coef, family.intercept
    other.fix_support()
    assert other.bind(X, y, sw).relative_gradient_norm(subgradient=True) > 1e-3


def test_liblinear_can_zero_the_intercept(binary):
    X, _, y, _ = binary
    model = LogisticRegression(C=0.02, l1_ratio=1.0, intercept_scaling=0.1,
                               **LIBLINEAR).fit(X, y)
    family = family_for(model)
    assert model.intercept_[0] == 0.0 and not family.support[-1]
    assert family.bind(X, y).relative_gradient_norm(subgradient=True) < 1e-6


def test_derivatives_match_finite_differences(three_classes):
    X, _, y, _ = three_classes
    model = LogisticRegression(C=0.1, l1_ratio=0.5, **SAGA).fit(X, y)
    family = family_for(model)
    support = family.support
    theta = family.theta.copy()
    theta[support] += 1e-3 * np.random.default_rng(1).normal(size=support.sum())
    assert np.all(np.sign(theta) == np.sign(family.theta))
    problem = family.bind(X, y, None, theta)
    eps = 1e-6
    g_cols, h_cols = [], []
    for k in np.flatnonzero(support):
        e = np.zeros_like(theta)
        e[k] = eps
        plus, minus = family.bind(X, y, None, theta + e), family.bind(X, y, None, theta - e)
        g_cols.append((plus.objective() - minus.objective()) / (2 * eps))
        h_cols.append((plus.gradient() - minus.gradient())[support] / (2 * eps))
    grad = problem.gradient()[support]
    H = problem.hessian()[np.ix_(support, support)]
    np.testing.assert_allclose(grad, g_cols, rtol=1e-5, atol=1e-7 * np.abs(grad).max())
    np.testing.assert_allclose(H, np.array(h_cols).T, rtol=1e-5, atol=1e-7 * np.abs(H).max())


def test_multinomial_null_space_is_flat_and_orthogonal_to_gradients(three_classes):
    X, _, y, _ = three_classes
    model = LogisticRegression(C=0.1, l1_ratio=0.5, **SAGA).fit(X, y)
    family = family_for(model)
    N = family.null_space()
    assert N.shape[1] == 1  # the intercepts; no feature is free under an L2 part
    problem = family.bind(X, y)
    np.testing.assert_allclose(problem.hessian() @ N, 0.0, atol=1e-10)
    G = problem.row_gradients(X, problem.residuals)
    np.testing.assert_allclose(N.T @ G, 0.0, atol=1e-12)


@cases
def test_exact_loo_against_refits(binary, three_classes, kind, model):
    X, X_test, y, y_test = _data(kind, binary, three_classes)
    model = clone(model).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    rows = np.arange(0, len(y), 24)
    full = clone(model).set_params(tol=1e-12, max_iter=1_000_000).fit(X, y)
    family = family_for(full)
    base = family.test_quantity(X_test, y_test)
    truth, changed = [], []
    for i in rows:
        keep = np.arange(len(y)) != i
        refit = clone(full).fit(X[keep], y[keep])
        truth.append(family_for(refit).test_quantity(X_test, y_test) - base)
        changed.append(np.any((refit.coef_ != 0) != (full.coef_ != 0)))
    truth = np.array(truth).T
    scale = np.abs(truth).max()
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    np.testing.assert_allclose(exact, truth, rtol=0, atol=1e-6 * scale)
    _, _, engine_changed, _ = active_set_loo_parameters(explainer.family_, X, y, None, rows)
    np.testing.assert_array_equal(engine_changed, changed)
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    assert np.corrcoef(newton.ravel(), exact.ravel())[0, 1] > 0.9
