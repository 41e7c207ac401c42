"""KernelRidge against independent truths: stationarity of scikit-learn's fit,
finite differences, the kernel hat-matrix leave-one-out formula in the dual,
and brute-force leave-one-out refits of KernelRidge on the original inputs
(for a precomputed kernel: the Gram without row and column i)."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.families import KernelRidgeFamily, family_for
from skinfluence.families import kernel_ridge as kernel_ridge_module


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 120)
    return X[:120], y[:120], X[400:406], y[400:406], sw


KERNELS = [
    ("rbf", KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1)),
    ("rbf-small-alpha", KernelRidge(alpha=1e-3, kernel="rbf", gamma=0.05)),
    ("laplacian", KernelRidge(alpha=1.0, kernel="laplacian", gamma=0.05)),
    ("polynomial", KernelRidge(alpha=0.1, kernel="polynomial", degree=2, coef0=1,
                               gamma=0.1)),
    ("linear", KernelRidge(alpha=3.0, kernel="linear")),
    ("precomputed", KernelRidge(alpha=1.0, kernel="precomputed")),
]
kernels = pytest.mark.parametrize("model", [m for _, m in KERNELS],
                                  ids=[name for name, _ in KERNELS])


def inputs(model, X, X_test):
    """The estimator's inputs: the rows, or their rbf kernel if precomputed."""
    if model.kernel == "precomputed":
        return rbf_kernel(X, gamma=0.1), rbf_kernel(X_test, X, gamma=0.1)
    return X, X_test


def brute_force_loo(model, X, y, sw, X_test, y_test):
    """Refits of KernelRidge without each row (rows and columns of a Gram)."""
    precomputed = model.kernel == "precomputed"

    def quantity(m, keep):
        pred = m.predict(X_test[:, keep] if precomputed else X_test)
        return pred if y_test is None else (y_test - pred) ** 2

    everything = np.ones(len(y), dtype=bool)
    base = quantity(clone(model).fit(X, y, sample_weight=sw), everything)
    out = []
    for i in range(len(y)):
        keep = everything.copy()
        keep[i] = False
        X_keep = X[np.ix_(keep, keep)] if precomputed else X[keep]
        refit = clone(model).fit(X_keep, y[keep], sample_weight=sw[keep])
        out.append(quantity(refit, keep) - base)
    return np.moveaxis(np.array(out), 0, 1)


@kernels
def test_sklearn_fit_is_stationary_point(data, model):
    X, y, X_test, _, sw = data
    X, X_test = inputs(model, X, X_test)
    model = clone(model).fit(X, y, sample_weight=sw)
    family = family_for(model)
    assert isinstance(family, KernelRidgeFamily)
    F = family.design(X)
    assert family.bind(F, y, sw).relative_gradient_norm() < 1e-10
    np.testing.assert_allclose(family.decision(family.design(X_test))[:, 0],
                               model.predict(X_test), rtol=1e-9,
                               atol=1e-9 * np.abs(y).max())
    # other targets are not fitted by these coefficients
    assert family.bind(F, y[::-1], sw).relative_gradient_norm() > 1e-2


def test_derivatives_match_finite_differences(data):
    X, y, _, _, sw = data
    model = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X[:40], y[:40],
                                                                sample_weight=sw[:40])
    family = family_for(model)
    F = family.design(X[:40])
    theta = family.theta + np.random.default_rng(1).normal(size=family.n_parameters)
    problem = family.bind(F, y[:40], sw[:40], theta)
    eps = 1e-2  # the objective is quadratic: central differences are exact
    g_cols, h_cols = [], []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        plus = family.bind(F, y[:40], sw[:40], theta + e)
        minus = family.bind(F, y[:40], sw[:40], theta - e)
        g_cols.append((plus.objective() - minus.objective()) / (2 * eps))
        h_cols.append((plus.gradient() - minus.gradient()) / (2 * eps))
    grad, H = problem.gradient(), problem.hessian()
    np.testing.assert_allclose(grad, g_cols, rtol=1e-6, atol=1e-6 * np.abs(grad).max())
    np.testing.assert_allclose(H, np.array(h_cols).T, rtol=1e-6, atol=1e-6 * np.abs(H).max())


def test_newton_influence_is_the_kernel_hat_matrix_formula(data):
    """``f_{-i}(x) - f(x) = -k(x, X) (S K + alpha I)^{-1} e_i s_i r_i / (1 - h_ii)``."""
    X, y, X_test, _, sw = data
    alpha, gamma = 0.3, 0.1
    model = KernelRidge(alpha=alpha, kernel="rbf", gamma=gamma).fit(X, y, sample_weight=sw)
    K, K_test = rbf_kernel(X, gamma=gamma), rbf_kernel(X_test, X, gamma=gamma)
    M_inv = np.linalg.inv(sw[:, None] * K + alpha * np.eye(len(y)))
    residual = y - K @ model.dual_coef_
    leverage = np.einsum("ij,ji->i", K @ M_inv, np.diag(sw))
    expected = -(K_test @ M_inv) * (sw * residual / (1 - leverage))
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    got = explainer.explain(X_test, method="newton")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


@kernels
def test_explain_and_exact_loo_against_brute_force_refits(data, model):
    X, y, X_test, y_test, sw = data
    X, X_test = inputs(model, X, X_test)
    model = clone(model).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    for targets in (y_test, None):
        truth = brute_force_loo(model, X, y, sw, X_test, targets)
        scale = np.abs(truth).max()
        for estimate in (explainer.loo(X_test, targets, method="exact"),
                         explainer.explain(X_test, targets, method="newton"),
                         explainer.loo(X_test, targets, method="refit")):
            np.testing.assert_allclose(estimate, truth, rtol=0, atol=1e-9 * scale)
        first = explainer.explain(X_test, targets)
        # first order misses the leverage correction, large for a small alpha
        assert np.corrcoef(first.ravel(), truth.ravel())[0, 1] > 0.7


def test_callable_kernel_is_the_same_model_as_its_named_kernel(data):
    X, y, X_test, y_test, sw = data
    X, X_test = X[:40], X_test[:3]

    def rbf(a, b):
        return np.exp(-0.1 * np.sum((a - b) ** 2))

    results = []
    for kernel in (rbf, "rbf"):
        model = KernelRidge(alpha=1.0, kernel=kernel, gamma=0.1).fit(
            X, y[:40], sample_weight=sw[:40])
        explainer = InfluenceExplainer(model).fit(X, y[:40], sample_weight=sw[:40])
        assert explainer.relative_gradient_norm_ < 1e-10
        results.append(explainer.loo(X_test, y_test[:3], method="exact"))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-9,
                               atol=1e-9 * np.abs(results[1]).max())


def test_multi_target_and_sparse_input(data):
    X, y, X_test, _, sw = data
    Y = np.column_stack([y, y ** 0.5])
    model = KernelRidge(alpha=[1.0, 0.1], kernel="rbf", gamma=0.1)
    Xs, Xs_test = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0, X)), sp.csr_matrix(X_test)
    model.fit(Xs, Y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(Xs, Y, sample_weight=sw)
    assert explainer.relative_gradient_norm_ < 1e-10
    truth = brute_force_loo(model, Xs.toarray(), Y, sw, X_test, None)
    shift = explainer.loo(Xs_test, method="exact")
    assert shift.shape == (6, 120, 2)
    np.testing.assert_allclose(shift, truth, rtol=0, atol=1e-9 * np.abs(truth).max())


def test_wrong_training_data_warns(data):
    X, y, _, _, sw = data
    model = KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1).fit(X, y)
    with pytest.warns(UserWarning, match="does not look fitted"):
        InfluenceExplainer(model).fit(X[::-1], y)


@pytest.mark.filterwarnings("ignore:Singular matrix:UserWarning")  # the sigmoid fit
def test_refusals_name_the_fix(data, monkeypatch):
    X, y, _, _, _ = data
    sigmoid = KernelRidge(alpha=1.0, kernel="sigmoid", gamma=1.0, coef0=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        family_for(sigmoid)
    monkeypatch.setattr(kernel_ridge_module, "MAX_KERNEL_SAMPLES", 100)
    with pytest.raises(ValueError, match="Nystroem"):
        family_for(KernelRidge(kernel="rbf").fit(X, y))
    from skinfluence.estimators import SubsetEngine

    with pytest.raises(ValueError, match="kernel map"):
        SubsetEngine(KernelRidge(kernel="rbf").fit(X[:50], y[:50]), X[:50], y[:50],
                     engine="refit")
    # the linear kernel needs no n x n matrix
    assert family_for(KernelRidge(kernel="linear").fit(X, y)).n_features == X.shape[1]
    explainer = InfluenceExplainer(KernelRidge(kernel="precomputed").fit(
        rbf_kernel(X[:50]), y[:50])).fit(rbf_kernel(X[:50]), y[:50])
    with pytest.raises(ValueError, match="50 features"):
        explainer.explain(X[:2])


def test_inside_a_pipeline(data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, X_test, y_test, sw = data
    pipeline = make_pipeline(StandardScaler(), KernelRidge(alpha=1.0, kernel="rbf",
                                                           gamma=0.1)).fit(X, y)
    explainer = InfluenceExplainer(pipeline).fit(X, y)
    assert explainer.relative_gradient_norm_ < 1e-10
    scaled = pipeline[0].transform(X)
    truth = brute_force_loo(pipeline[-1], scaled, y, np.ones(len(y)),
                            pipeline[0].transform(X_test), y_test)
    np.testing.assert_allclose(explainer.loo(X_test, y_test, method="exact"), truth,
                               rtol=0, atol=1e-9 * np.abs(truth).max())
