"""HuberRegressor against independent truths.

* The joint objective in (theta, sigma) and its gradient equal scikit-learn's
  own ``_huber_loss_and_gradient`` at arbitrary parameters.
* The profiled Hessian and gradient (scale minimised out for each theta)
  against finite differences of the profile objective, whose inner minimum is
  found by scipy's scalar minimiser.
* The influence against the joint influence function assembled from
  sklearn's per-row gradients and a finite-difference Hessian of sklearn's
  gradient.
* loo(method="exact") against stationary points of sklearn's own gradient
  (Newton with a finite-difference Hessian: the exact gradient fixes the
  limit).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.linear_model import HuberRegressor
from sklearn.linear_model._huber import _huber_loss_and_gradient
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.exact.huber import joint_newton
from skinfluence.families import HuberFamily, family_for


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


def _data(n=60, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    y = X @ np.array([1.0, -2.0, 0.5])[:p] + 0.5 + 0.3 * rng.standard_normal(n)
    y[:6] += rng.choice([-4.0, 4.0], 6)[: min(n, 6)]  # outliers
    return X, y


def _fit(fit_intercept=True, alpha=0.5, seed=0):
    X, y = _data(seed=seed)
    sw = np.random.default_rng(1).uniform(0.3, 2.0, len(y))
    est = HuberRegressor(alpha=alpha, epsilon=1.35, fit_intercept=fit_intercept,
                         tol=1e-12, max_iter=100_000).fit(X, y, sample_weight=sw)
    return est, X, y, sw


def _sk(params, X, y, est, sw):
    """sklearn's objective and gradient; params = [w, (b,) sigma]."""
    return _huber_loss_and_gradient(params, X, y, est.epsilon, est.alpha, sw)


def _params(est):
    head = np.r_[est.coef_, est.intercept_] if est.fit_intercept else est.coef_
    return np.r_[head, est.scale_]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "noint"])
def test_joint_objective_is_sklearns(fit_intercept, sparse):
    est, X, y, sw = _fit(fit_intercept)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) < 0.3, 0.0, X))
    fam = family_for(est)
    assert isinstance(fam, HuberFamily)
    rng = np.random.default_rng(3)
    for _ in range(4):
        params = _params(est) * (1 + 0.2 * rng.standard_normal(fam.n_parameters + 1))
        value, gradient, _ = fam.joint_parts(X, y, sw, params[:-1], params[-1])
        sk_value, sk_gradient = _sk(params, X, y, est, sw)
        np.testing.assert_allclose(value, sk_value, rtol=1e-12)
        np.testing.assert_allclose(gradient, sk_gradient, rtol=1e-10,
                                   atol=1e-12 * np.abs(sk_gradient).max())


def test_sklearn_fit_is_nearly_stationary_and_predicts_the_same():
    est, X, y, sw = _fit()
    fam = family_for(est)
    # L-BFGS-B stops on its fixed relative function tolerance (about 2e-9)
    assert fam.bind(X, y, sw).relative_gradient_norm() < 1e-4
    np.testing.assert_allclose(fam.predicted(fam.decision(X)), est.predict(X),
                               rtol=1e-12)
    theta, scale, converged = joint_newton(fam, X, y, sw, fam.theta, fam.scale)
    assert converged
    gradient = _sk(np.r_[theta, scale], X, y, est, sw)[1]
    assert np.abs(gradient).max() < 1e-10
    # the check can fail: other targets are far from stationary
    assert fam.bind(X, np.roll(y, 7), sw).relative_gradient_norm() > 1e-2
    assert not joint_newton(fam, X, y, sw, fam.theta, fam.scale, max_iter=0)[2]


def _profile_value(est, X, y, sw, theta):
    """min over sigma of sklearn's objective at fixed theta."""
    result = minimize_scalar(
        lambda s: _sk(np.r_[theta, s], X, y, est, sw)[0],
        bounds=(1e-3, 10.0), method="bounded", options={"xatol": 1e-12})
    return result.fun


def test_profile_hessian_and_gradient_match_finite_differences_of_the_profile():
    est, X, y, sw = _fit()
    fam = family_for(est)
    theta, scale, _ = joint_newton(fam, X, y, sw, fam.theta, fam.scale)
    theta = theta + 0.01  # off the optimum; rows stay on their side of the kink
    # sigma*(theta) by the stationarity of sklearn's scale gradient
    scale = minimize_scalar(lambda s: _sk(np.r_[theta, s], X, y, est, sw)[0],
                            bounds=(1e-3, 10.0), method="bounded",
                            options={"xatol": 1e-13}).x
    prob = fam.with_theta(theta)
    prob.scale = scale
    prob = prob.bind(X, y, sw)
    eps = 1e-4
    d = fam.n_parameters
    grad_fd, hess_fd = np.empty(d), np.empty((d, d))
    E = np.eye(d) * eps
    G = lambda t: _profile_value(est, X, y, sw, t)
    for k in range(d):
        grad_fd[k] = (G(theta + E[k]) - G(theta - E[k])) / (2 * eps)
        for m in range(d):
            hess_fd[k, m] = (G(theta + E[k] + E[m]) - G(theta + E[k] - E[m])
                             - G(theta - E[k] + E[m]) + G(theta - E[k] - E[m])) / (4 * eps**2)
    np.testing.assert_allclose(prob.gradient(), grad_fd, rtol=1e-5,
                               atol=1e-6 * np.abs(grad_fd).max())
    np.testing.assert_allclose(prob.hessian(), hess_fd, rtol=1e-3,
                               atol=1e-4 * np.abs(hess_fd).max())
    # and the profile Hessian is not the fixed-scale one
    fixed = HuberFamily(fam.coef, fam.intercept, scale=scale, epsilon=fam.epsilon,
                        alpha=fam.alpha, profile_scale=False).with_theta(theta)
    assert np.abs(fixed.bind(X, y, sw).hessian() - hess_fd).max() > 5e-3 * np.abs(hess_fd).max()


def _fd_hessian(params, X, y, est, sw, eps=1e-6):
    cols = []
    for k in range(params.size):
        e = np.zeros_like(params)
        e[k] = eps
        cols.append((_sk(params + e, X, y, est, sw)[1]
                     - _sk(params - e, X, y, est, sw)[1]) / (2 * eps))
    H = np.array(cols)
    return (H + H.T) / 2


def _sklearn_stationary_point(params, X, y, est, sw):
    for _ in range(30):
        g = _sk(params, X, y, est, sw)[1]
        params = params - np.linalg.solve(_fd_hessian(params, X, y, est, sw), g)
    assert np.abs(_sk(params, X, y, est, sw)[1]).max() < 1e-11
    return params


def test_first_order_influence_is_the_joint_influence_function():
    est, X, y, sw = _fit()
    explainer = InfluenceExplainer(est, polish=True).fit(X, y, sample_weight=sw)
    fam = explainer.family_
    params = _sklearn_stationary_point(np.r_[fam.theta, est.scale_], X, y, est, sw)
    np.testing.assert_allclose(params[:-1], fam.theta, rtol=1e-9, atol=1e-10)
    H = _fd_hessian(params, X, y, est, sw)
    rows = np.arange(0, len(y), 4)
    G = np.empty((params.size, len(rows)))
    for k, i in enumerate(rows):  # row i's gradient: sklearn with one-hot weights
        onehot = np.zeros(len(y))
        onehot[i] = sw[i]
        G[:, k] = _sk(params, X, y, HuberRegressor(epsilon=est.epsilon, alpha=0.0), onehot)[1]
    step = np.linalg.solve(H, G)[:-1]  # coefficient part of the joint step
    X_test = _data(n=5, seed=4)[0]
    expected = np.hstack([X_test, np.ones((5, 1))]) @ step
    np.testing.assert_allclose(explainer.explain(X_test)[:, rows], expected,
                               rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_exact_loo_reestimates_the_scale():
    est, X, y, sw = _fit()
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    fam = explainer.family_
    X_test, y_test = _data(n=5, seed=4)
    full = _sklearn_stationary_point(_params(est), X, y, est, sw)
    rows = [0, 3, 10, 25, 41]  # outliers and inliers
    for target in (None, y_test):
        base = fam.test_quantity(X_test, target, full[:-1])
        truth = np.empty((5, len(rows)))
        for k, i in enumerate(rows):
            keep = np.arange(len(y)) != i
            refit = _sklearn_stationary_point(full, X[keep], y[keep], est, sw[keep])
            truth[:, k] = fam.test_quantity(X_test, target, refit[:-1]) - base
        exact = explainer.loo(X_test, target, method="exact", train_indices=rows)
        assert np.abs(exact - truth).max() < 1e-9 * np.abs(truth).max()
        # sklearn's own refits stop on L-BFGS-B's function tolerance
        refit = explainer.loo(X_test, target, method="refit", train_indices=rows)
        assert np.abs(refit - truth).max() < 0.05 * np.abs(truth).max()


def test_profiled_scale_is_closer_to_refits_than_a_fixed_scale():
    est, X, y, sw = _fit(alpha=0.1)
    X_test = _data(n=20, seed=4)[0]
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    truth = explainer.loo(X_test, method="exact")
    profiled = explainer.explain(X_test)
    fam = family_for(est)
    fam.profile_scale = False
    from skinfluence._fitted import FittedInfluence
    fixed = FittedInfluence(fam, X, y, sw).explain(X_test)
    error = lambda v: np.abs(v - truth).mean()
    assert error(profiled) < 0.8 * error(fixed)


def test_every_row_an_outlier_is_refused():
    est, X, y, sw = _fit()
    fam = family_for(est)
    fam.scale = 1e-6
    with pytest.raises(ValueError, match="Every training row is an outlier"):
        fam.bind(X, y, sw)


def test_test_loss_is_the_huber_loss_at_the_fitted_scale():
    est, X, y, _ = _fit()
    fam = family_for(est)
    r = y - est.predict(X)
    s, eps = est.scale_, est.epsilon
    expected = np.where(np.abs(r) <= eps * s, r**2 / s, 2 * eps * np.abs(r) - eps**2 * s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(fam.loss(fam.encode_target(y), fam.decision(X)),
                                   expected, rtol=1e-12)
