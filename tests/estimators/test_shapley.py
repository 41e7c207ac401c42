"""Data Shapley and Banzhaf against brute-force enumeration of every subset,
fitted by scikit-learn; stability across seeds within the reported errors."""

from itertools import combinations
from math import factorial

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge

from skinfluence import banzhaf, tmc_shapley


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 2))
    y = X @ [1.0, -1.0] + 0.5 * rng.normal(size=6)
    X_val = rng.normal(size=(5, 2))
    y_val = X_val @ [1.0, -1.0] + 0.5 * rng.normal(size=5)
    return X, y, X_val, y_val


def _exact(X, y, X_val, y_val, alpha=1.0):
    """Exact Shapley and Banzhaf values of U(S) = -mean validation squared error,
    every subset fitted by sklearn; the empty set predicts mean(y)."""
    n = len(y)
    U = {}
    for size in range(n + 1):
        for S in combinations(range(n), size):
            if S:
                pred = Ridge(alpha=alpha).fit(X[list(S)], y[list(S)]).predict(X_val)
            else:
                pred = np.full(len(y_val), y.mean())
            U[frozenset(S)] = -np.mean((y_val - pred) ** 2)
    shapley, banz = np.zeros(n), np.zeros(n)
    for i in range(n):
        for S, u in U.items():
            if i in S:
                continue
            gain = U[S | {i}] - u
            shapley[i] += factorial(len(S)) * factorial(n - len(S) - 1) / factorial(n) * gain
            banz[i] += gain / 2 ** (n - 1)
    return shapley, banz


def test_tmc_shapley_matches_enumeration(tiny):
    shapley, _ = _exact(*tiny)
    res = tmc_shapley(Ridge(), *tiny, n_permutations=1000, truncation_tol=0,
                      random_state=0)
    assert np.all(np.abs(res.data_values - shapley) < 4 * res.stderr + 1e-12)
    np.testing.assert_allclose(res.data_values.sum(), shapley.sum(), rtol=1e-9)
    np.testing.assert_allclose(res.test_values.mean(0), res.data_values, atol=1e-12)
    assert res.n_permutations == 1000 and res.n_fits == 1000 * 6


def test_banzhaf_matches_enumeration(tiny):
    _, banz = _exact(*tiny)
    res = banzhaf(Ridge(), *tiny, n_samples=1500, random_state=0)
    assert np.all(np.abs(res.data_values - banz) < 4 * res.stderr)
    assert np.abs(res.data_values - banz).max() < 0.2 * np.abs(banz).max()


def _z(a, b):
    return (a.data_values - b.data_values) / np.hypot(a.stderr, b.stderr)


def _diabetes50():
    X, y = load_diabetes(return_X_y=True)
    return X[:50], y[:50], X[50:100], y[50:100]


@pytest.mark.parametrize("method, kwargs", [
    (tmc_shapley, {"n_permutations": 200}),
    (banzhaf, {"n_samples": 600}),
])
def test_stable_across_random_states_ridge_50_rows(method, kwargs):
    X, y, X_val, y_val = _diabetes50()
    a, b = (method(Ridge(alpha=0.01), X, y, X_val, y_val, random_state=s, **kwargs)
            for s in (0, 1))
    z = _z(a, b)
    assert np.abs(z).max() < 4.5          # 50 rows: |z| > 4.5 has odds ~3e-4
    assert 0.6 < z.std() < 1.5            # the standard errors are honest
    assert np.corrcoef(a.data_values, b.data_values)[0, 1] > 0.8


@pytest.mark.slow
@pytest.mark.parametrize("method, kwargs", [
    (tmc_shapley, {"n_permutations": 400}),
    (banzhaf, {"n_samples": 1000}),
])
def test_stable_across_random_states_logistic_50_rows(method, kwargs):
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    X, y = data.data[mask], data.target[mask]
    X = (X - X.mean(0)) / (X.std(0) + 1e-9)
    a, b = (method(LogisticRegression(C=0.1), X[:50], y[:50], X[50:100], y[50:100],
                   random_state=s, n_jobs=2, **kwargs) for s in (0, 1))
    z = _z(a, b)
    assert np.abs(z).max() < 4.5
    assert 0.6 < z.std() < 1.5


@pytest.mark.parametrize("backend", ["threading", pytest.param("loky", marks=pytest.mark.slow)])
def test_same_numbers_for_any_n_jobs(tiny, backend):
    a = tmc_shapley(Ridge(), *tiny, n_permutations=40, random_state=5, n_jobs=1)
    with parallel_config(backend=backend):
        b = tmc_shapley(Ridge(), *tiny, n_permutations=40, random_state=5, n_jobs=2)
        d = banzhaf(Ridge(), *tiny, n_samples=40, random_state=5, n_jobs=2)
    np.testing.assert_array_equal(a.data_values, b.data_values)
    c = banzhaf(Ridge(), *tiny, n_samples=40, random_state=5, n_jobs=1)
    np.testing.assert_array_equal(c.test_values, d.test_values)


def test_budget_error_names_the_fix(tiny):
    X, y, X_val, y_val = tiny
    with pytest.raises(ValueError, match="max_fits.*banzhaf"):
        tmc_shapley(Ridge(), X, y, X_val, y_val, n_permutations=100, max_fits=100)
    with pytest.raises(ValueError, match="Raise max_fits"):
        banzhaf(Ridge(), X, y, X_val, y_val, n_samples=1000, max_fits=100)
    with pytest.raises(ValueError, match="needs y_test"):
        banzhaf(Ridge(), X, y, X_val, None, n_samples=10)


def test_classifier_subsets_missing_a_class_get_the_null_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 2))
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    res = tmc_shapley(LogisticRegression(), X, y, X, y, n_permutations=30,
                      truncation_tol=0, random_state=0, utility="accuracy")
    assert np.isfinite(res.data_values).all()
    np.testing.assert_allclose(res.data_values.sum(),
                               res.utility_full - res.utility_null, atol=1e-12)
