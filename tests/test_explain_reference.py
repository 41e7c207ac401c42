"""explain() against an independent computation of grad L_j^T H^{-1} grad f_i.

The reference below writes each objective from scratch in numpy (the formulas
of DESIGN.md), and obtains every derivative by finite differences: the Hessian
from the objective's values, the removal gradient of row i from the objective
with row i deleted (class weights recomputed for "balanced"), the test-loss
gradient from the test loss. Nothing of skinfluence is used but ``explain``.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeCV
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils.class_weight import compute_class_weight

from skinfluence import InfluenceExplainer

H_STEP = 1e-4


# ---------------------------------------------------------------- objectives
def _unpack(theta, K, p, fit_intercept):
    Theta = theta.reshape(K, p + int(fit_intercept))
    if fit_intercept:
        return Theta[:, :p], Theta[:, p]
    return Theta, np.zeros(K)


def _class_weights(model, y, sw):
    if model.class_weight is None:
        return np.ones(len(model.classes_))
    return compute_class_weight(model.class_weight, classes=model.classes_, y=y,
                                sample_weight=sw)


def make_reference(model, smoothing=0.01):
    """Return (theta, objective(theta, X, y, sw), test_loss(theta, X, y))."""
    fit_intercept = model.fit_intercept
    coef = np.atleast_2d(model.coef_)
    K, p = coef.shape
    intercept = np.ravel(model.intercept_) if fit_intercept else np.zeros(K)
    theta = (np.hstack([coef, intercept[:, None]]) if fit_intercept else coef).ravel()

    if isinstance(model, (LinearRegression, Ridge, RidgeCV)):
        alpha = 0.0 if isinstance(model, LinearRegression) else float(
            getattr(model, "alpha_", getattr(model, "alpha", 0.0)))

        def test_loss(t, X, y):
            W, b = _unpack(t, K, p, fit_intercept)
            return (y - X @ W[0] - b[0]) ** 2

        def objective(t, X, y, sw):
            W, _ = _unpack(t, K, p, fit_intercept)
            return np.sum(sw * test_loss(t, X, y)) + alpha * np.sum(W**2)

        return theta, objective, test_loss

    if isinstance(model, LinearSVR):
        C, isc, eps = model.C, model.intercept_scaling, model.epsilon
        squared = model.loss == "squared_epsilon_insensitive"

        def test_loss(t, X, y):
            W, b = _unpack(t, K, p, fit_intercept)
            excess = np.maximum(0, np.abs(y - X @ W[0] - b[0]) - eps)
            return excess**2 if squared else excess

        def objective(t, X, y, sw):
            W, b = _unpack(t, K, p, fit_intercept)
            r = y - X @ W[0] - b[0]
            if squared:
                loss = np.maximum(0, np.abs(r) - eps) ** 2
            else:
                loss = smoothing * (np.logaddexp(0, (r - eps) / smoothing)
                                    + np.logaddexp(0, (-r - eps) / smoothing))
            pen = 0.5 * np.sum(W**2) + (np.sum(b**2) / (2 * isc**2) if fit_intercept else 0)
            return C * np.sum(sw * loss) + pen

        return theta, objective, test_loss

    classes = model.classes_
    if isinstance(model, LogisticRegression):
        C = model.C
        isc = model.intercept_scaling if model.solver == "liblinear" else None

        def test_loss(t, X, y):
            W, b = _unpack(t, K, p, fit_intercept)
            Z = X @ W.T + b
            if K == 1:
                z = Z[:, 0]
                return np.logaddexp(0, z) - (y == classes[1]) * z
            onehot = (y[:, None] == classes[None, :])
            return logsumexp(Z, axis=1) - np.sum(onehot * Z, axis=1)

        def objective(t, X, y, sw):
            W, b = _unpack(t, K, p, fit_intercept)
            cw = _class_weights(model, y, sw)
            s = sw * cw[np.searchsorted(classes, y)]
            pen = 0.5 * np.sum(W**2)
            if isc is not None and fit_intercept:
                pen += np.sum(b**2) / (2 * isc**2)
            if np.isinf(C):
                return np.sum(s * test_loss(t, X, y))
            return C * np.sum(s * test_loss(t, X, y)) + pen

        return theta, objective, test_loss

    # LinearSVC, one-vs-rest (one problem for two classes)
    C, isc = model.C, model.intercept_scaling
    squared = model.loss == "squared_hinge"

    def signs(y):
        if K == 1:
            return np.where(y == classes[1], 1.0, -1.0)[:, None]
        return np.where(y[:, None] == classes[None, :], 1.0, -1.0)

    def test_loss(t, X, y):
        W, b = _unpack(t, K, p, fit_intercept)
        slack = np.maximum(0, 1 - signs(y) * (X @ W.T + b))
        return np.sum(slack**2 if squared else slack, axis=1)

    def objective(t, X, y, sw):
        W, b = _unpack(t, K, p, fit_intercept)
        Yk = signs(y)
        margin = Yk * (X @ W.T + b)
        loss = (np.maximum(0, 1 - margin) ** 2 if squared
                else smoothing * np.logaddexp(0, (1 - margin) / smoothing))
        cw = _class_weights(model, y, sw)
        label = np.searchsorted(classes, y)
        if K == 1:
            c = (C * sw * cw[label])[:, None]
        else:
            c = C * sw[:, None] * np.where(Yk > 0, cw[None, :], 1.0)
        pen = 0.5 * np.sum(W**2) + (np.sum(b**2) / (2 * isc**2) if fit_intercept else 0)
        return np.sum(c * loss) + pen

    return theta, objective, test_loss


# ------------------------------------------------------- finite differences
def fd_gradient(f, x, h=H_STEP):
    g = np.empty_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def fd_hessian(f, x, h=H_STEP):
    d = x.size
    H = np.empty((d, d))
    E = np.eye(d) * h
    for a in range(d):
        for b in range(a, d):
            H[a, b] = H[b, a] = (
                f(x + E[a] + E[b]) - f(x + E[a] - E[b])
                - f(x - E[a] + E[b]) + f(x - E[a] - E[b])
            ) / (4 * h * h)
    return H


def reference_influence(model, X, y, sw, X_test, y_test, smoothing=0.01, theta=None):
    fitted_theta, objective, test_loss = make_reference(model, smoothing)
    theta = fitted_theta if theta is None else theta
    H = fd_hessian(lambda t: objective(t, X, y, sw), theta)
    H_inv = np.linalg.pinv(H, rcond=1e-10, hermitian=True)
    n = X.shape[0]
    removal = np.empty((theta.size, n))
    for i in range(n):
        keep = np.arange(n) != i
        removal[:, i] = fd_gradient(
            lambda t: objective(t, X, y, sw) - objective(t, X[keep], y[keep], sw[keep]),
            theta)
    test = np.column_stack([
        fd_gradient(lambda t: test_loss(t, X_test[j:j + 1], y_test[j:j + 1])[0], theta)
        for j in range(X_test.shape[0])
    ])
    return test.T @ H_inv @ removal


def _hinge_support(model, X, y):
    """Rows of a binary hinge fit whose dual multiplier is not 0.

    A row off its margin (margin > 1) has multiplier 0, and removing it leaves
    the optimum unchanged, so its influence is 0; rows of a tight fit
    (tol=1e-10) within 1e-6 of the margin count as support vectors.
    """
    sign = np.where(y == model.classes_[1], 1.0, -1.0)
    return sign * model.decision_function(X) <= 1.0 + 1e-6


# ------------------------------------------------------------------- cases
def _data(n=36, p=4, n_classes=2, seed=0, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if regression:
        y = X @ rng.normal(size=p) + 0.5 * rng.normal(size=n) + 1.0
        return X, y
    scores = X @ rng.normal(size=(p, n_classes)) + rng.normal(scale=1.5, size=(n, n_classes))
    y = np.argmax(scores, axis=1)
    # imbalance makes class weights matter
    y[: n // 6] = 0
    return X, y


CASES = {
    "ridge": (Ridge(alpha=1.0), True, False),
    "ridge-no-intercept": (Ridge(alpha=0.5, fit_intercept=False), True, False),
    "ridge-weights": (Ridge(alpha=2.0), True, True),
    "ridgecv": (RidgeCV(alphas=[0.1, 1.0, 10.0]), True, False),
    "ols": (LinearRegression(), True, True),
    "logistic": (LogisticRegression(C=0.7, tol=1e-10), 2, False),
    "logistic-no-intercept": (LogisticRegression(fit_intercept=False, tol=1e-10), 2, False),
    "logistic-weights-dict": (LogisticRegression(class_weight={0: 2.0, 1: 0.5}), 2, True),
    "logistic-balanced": (LogisticRegression(class_weight="balanced", tol=1e-10), 2, False),
    "logistic-balanced-weights": (LogisticRegression(class_weight="balanced"), 2, True),
    "logistic-unpenalised": (LogisticRegression(C=np.inf, solver="newton-cholesky"), 2, False),
    "liblinear": (LogisticRegression(solver="liblinear", intercept_scaling=2.5, tol=1e-8), 2, True),
    "multinomial": (LogisticRegression(C=2.0, tol=1e-10), 3, False),
    "multinomial-balanced": (LogisticRegression(class_weight="balanced"), 3, True),
    "multinomial-no-intercept": (LogisticRegression(fit_intercept=False), 3, False),
    "svc-squared": (LinearSVC(C=0.5, dual=False, tol=1e-10), 2, False),
    "svc-squared-weights": (LinearSVC(C=0.5, class_weight={0: 3.0}, intercept_scaling=2.0), 2, True),
    "svc-ovr": (LinearSVC(C=0.3, class_weight={1: 2.0}, dual=False, tol=1e-10), 3, True),
    "svc-ovr-balanced": (LinearSVC(C=0.3, class_weight="balanced", dual=False), 3, False),
    "svc-hinge": (LinearSVC(loss="hinge", C=0.5, tol=1e-10, max_iter=100_000), 2, False),
    "svr": (LinearSVR(C=0.5, epsilon=0.5, tol=1e-10, max_iter=100_000), True, False),
    "svr-squared-weights": (LinearSVR(loss="squared_epsilon_insensitive", C=0.5,
                                      epsilon=0.3, dual=False, tol=1e-10,
                                      intercept_scaling=2.0), True, True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_explain_matches_independent_reference(name):
    model, kind, weighted = CASES[name]
    regression = kind is True
    X, y = _data(regression=regression, n_classes=2 if regression else kind)
    rng = np.random.default_rng(1)
    sw = rng.uniform(0.5, 2.0, size=len(y)) if weighted else np.ones(len(y))
    model.fit(X, y, sample_weight=sw if weighted else None)
    X_test, y_test = X[:5] + 0.1, y[:5]
    smoothing = 0.1
    explainer = InfluenceExplainer(model, smoothing=smoothing, smoothing_resolve=False,
                                   gradient_tol=1.0)
    influence = explainer.fit(X, y, sample_weight=sw if weighted else None).explain(
        X_test, y_test)
    expected = reference_influence(model, X, y, sw, X_test, y_test, smoothing)
    if getattr(model, "loss", None) == "hinge":
        expected[:, ~_hinge_support(model, X, y)] = 0.0
    if getattr(model, "loss", None) == "epsilon_insensitive":
        # rows strictly inside the tube have multiplier 0: removing one leaves
        # the optimum unchanged
        inside = np.abs(y - model.predict(X)) < model.epsilon - 1e-6
        assert inside.any()
        expected[:, inside] = 0.0
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(influence, expected, rtol=0, atol=1e-6 * scale)


WIDE_CASES = {
    "ridge": (Ridge(alpha=1.0), True),
    "ridge-no-intercept": (Ridge(alpha=1.0, fit_intercept=False), True),
    "logistic": (LogisticRegression(tol=1e-10), 2),
    "liblinear": (LogisticRegression(solver="liblinear", intercept_scaling=2.0), 2),
    "logistic-balanced": (LogisticRegression(class_weight="balanced"), 2),
    "multinomial": (LogisticRegression(C=0.5), 3),
    "svc-ovr": (LinearSVC(C=0.2, dual=False, tol=1e-8), 3),
}


@pytest.mark.parametrize("name", list(WIDE_CASES))
def test_dual_form_matches_reference(name):
    """More features than rows: the direct solver factorises the n x n kernel."""
    model, kind = WIDE_CASES[name]
    regression = kind is True
    X, y = _data(n=14, p=20, regression=regression, n_classes=2 if regression else kind,
                 seed=3)
    model.fit(X, y)
    X_test, y_test = X[:3] + 0.1, y[:3]
    explainer = InfluenceExplainer(model, gradient_tol=1.0).fit(X, y)
    assert explainer.solver_.diagnostics_["form"] == "dual"
    influence = explainer.explain(X_test, y_test)
    expected = reference_influence(model, X, y, np.ones(len(y)), X_test, y_test)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(influence, expected, rtol=0, atol=1e-6 * scale)


def test_smoothing_resolve_moves_to_the_smoothed_optimum():
    """With smoothing_resolve the influence is taken at the smoothed optimum."""
    model = LinearSVC(loss="hinge", C=0.5, tol=1e-10, max_iter=100_000)
    X, y = _data(n_classes=2)
    model.fit(X, y)
    coef = model.coef_.copy()
    explainer = InfluenceExplainer(model, smoothing=0.1, smoothing_resolve=True).fit(X, y)
    theta = explainer.family_.theta
    _, objective, _ = make_reference(model, smoothing=0.1)
    sw = np.ones(len(y))
    gradient = fd_gradient(lambda t: objective(t, X, y, sw), theta)
    scale = fd_gradient(lambda t: objective(t, X, y, sw), make_reference(model, 0.1)[0])
    assert np.linalg.norm(gradient) < 1e-6 * np.linalg.norm(scale)
    np.testing.assert_array_equal(model.coef_, coef)
    X_test, y_test = X[:5] + 0.1, y[:5]
    expected = reference_influence(model, X, y, sw, X_test, y_test, 0.1, theta=theta)
    expected[:, ~_hinge_support(model, X, y)] = 0.0
    np.testing.assert_allclose(explainer.explain(X_test, y_test), expected, rtol=0,
                               atol=1e-6 * np.abs(expected).max())
