"""Data cleaning and model debugging, against independent truths.

Truths: sums of ``explain``, exact leave-one-out and leave-group-out refits of
tightly converged clones, statsmodels' ``OLSInfluence`` and central finite
differences of refitted models.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from conftest import digits
from skinfluence import InfluenceExplainer
from skinfluence.exact import tight_clone
from skinfluence.applications import refit_groups


def pearson(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def regression(n=60, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 0.5 * rng.normal(size=n) + 1.0
    return X, y


def classification(n=120, p=5, n_classes=2, seed=0):
    X, y = make_classification(n_samples=n, n_features=p, n_informative=p,
                               n_redundant=0, n_classes=n_classes,
                               n_clusters_per_class=1, flip_y=0.05,
                               random_state=seed)
    return X, y


MODELS = {
    "ridge": (lambda: Ridge(alpha=1.0), "reg"),
    "ols": (lambda: LinearRegression(), "reg"),
    "logistic": (lambda: LogisticRegression(C=1.0, tol=1e-10, max_iter=1000), 2),
    "balanced": (lambda: LogisticRegression(class_weight="balanced", tol=1e-10,
                                            max_iter=1000), 2),
    "multinomial": (lambda: LogisticRegression(tol=1e-10, max_iter=1000), 3),
    "svc": (lambda: LinearSVC(dual=False, tol=1e-10), 3),
}


def fitted(name, seed=0):
    make, kind = MODELS[name]
    if kind == "reg":
        X, y = regression(seed=seed)
    else:
        X, y = classification(n_classes=kind, seed=seed)
        if name == "balanced":  # unbalanced classes
            keep = (y == 1) | (np.arange(len(y)) % 3 == 0)
            X, y = X[keep], y[keep]
    X_train, X_val, y_train, y_val = X[:-20], X[-20:], y[:-20], y[-20:]
    model = make().fit(X_train, y_train)
    return InfluenceExplainer(model).fit(X_train, y_train), X_train, y_train, X_val, y_val


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("name", list(MODELS))
def test_validation_influence_is_column_sum_of_explain(name):
    explainer, _, _, X_val, y_val = fitted(name)
    net = explainer.validation_influence(X_val, y_val)
    truth = explainer.explain(X_val, y_val).sum(axis=0)
    assert net.shape == truth.shape
    assert rel_err(net, truth) < 1e-8


def test_validation_influence_without_labels_regressor():
    explainer, _, _, X_val, _ = fitted("ridge")
    truth = explainer.explain(X_val).sum(axis=0)
    assert rel_err(explainer.validation_influence(X_val), truth) < 1e-8


def test_validation_influence_tracks_loo_refits():
    X_train, X_val, y_train, y_val = digits([1, 7])
    model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    rows = np.arange(0, len(y_train), 4)
    net = explainer.validation_influence(X_val, y_val)[rows]
    actual = explainer.loo(X_val, y_val, method="refit",
                           train_indices=rows).sum(axis=0)
    assert pearson(net, actual) > 0.95


# ------------------------------------------------------------ mislabels
def test_loo_self_loss_newton_step_is_exact_for_ridge():
    explainer, X, y, _, _ = fitted("ridge")
    truth = np.diag(explainer.loo(X, y, method="refit"))
    assert rel_err(explainer.loo_self_loss(), truth) < 1e-8
    assert rel_err(explainer.loo_self_loss("exact"), truth) < 1e-8


@pytest.mark.parametrize("name", ["logistic", "balanced", "multinomial"])
def test_loo_self_loss_exact_matches_refits(name):
    explainer, X, y, _, _ = fitted(name)
    rows = np.arange(0, len(y), 7)
    truth = np.diag(explainer.loo(X[rows], y[rows], method="refit",
                                  train_indices=rows))
    exact = explainer.loo_self_loss("exact")[rows]
    assert rel_err(exact, truth) < 1e-4
    step = explainer.loo_self_loss("newton_step")[rows]
    assert pearson(step, truth) > 0.99


def test_rank_suspicious_finds_flipped_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X @ np.ones(5) > 0).astype(int)
    X_val, y_val = X[300:], y[300:]
    X, y = X[:300], y[:300].copy()
    flipped = rng.choice(300, 30, replace=False)
    y[flipped] = 1 - y[flipped]
    model = LogisticRegression(C=10.0).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    for method in ["self_influence", "loo_self", "loss", "validation"]:
        kwargs = {"X_val": X_val, "y_val": y_val} if method == "validation" else {}
        result = explainer.rank_suspicious(method, **kwargs)
        assert sorted(result.ranking) == list(range(300))
        assert np.all(np.diff(result.scores[result.ranking]) <= 0)
        found = np.isin(flipped, result.ranking[:60]).mean()  # top 20%
        assert found > 0.5, (method, found)  # random finds 0.2


def test_rank_suspicious_validation_needs_data():
    explainer, *_ = fitted("logistic")
    with pytest.raises(ValueError, match="X_val"):
        explainer.rank_suspicious("validation")
    with pytest.raises(ValueError, match="method"):
        explainer.rank_suspicious("nonsense")


# ------------------------------------------------------------ groups
def random_groups(n, size, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + size] for i in range(0, n - size + 1, size)]


@pytest.mark.parametrize("name", ["ridge", "ols"])
def test_group_newton_is_exact_for_squared_loss(name):
    explainer, X, y, X_val, y_val = fitted(name)
    groups = random_groups(len(y), 10)
    newton = explainer.group_influence(X_val, y_val, groups, method="newton")
    truth = refit_groups(explainer.estimator_, X, y, None, X_val, y_val, groups)
    assert newton.shape == (len(y_val), len(groups))
    assert rel_err(newton, truth) < 1e-8
    # the prediction itself (no labels)
    newton = explainer.group_influence(X_val, None, groups, method="newton")
    truth = refit_groups(explainer.estimator_, X, y, None, X_val, None, groups)
    assert rel_err(newton, truth) < 1e-8


@pytest.mark.parametrize("name", list(MODELS))
def test_group_first_order_is_sum_of_explain(name):
    explainer, X, y, X_val, y_val = fitted(name)
    labels = np.arange(len(y)) % 7
    first = explainer.group_influence(X_val, y_val, labels)
    influence = explainer.explain(X_val, y_val)
    truth = np.stack([influence[:, labels == g].sum(axis=1) for g in range(7)], 1)
    assert rel_err(first, truth) < 1e-8


def test_group_newton_logistic_digits_1_vs_7():
    X_train, X_test, y_train, y_test = digits([1, 7])
    model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    groups = random_groups(len(y_train), 10)
    X_t, y_t = X_test[:10], y_test[:10]
    newton = explainer.group_influence(X_t, y_t, groups, method="newton")
    truth = explainer.group_influence(X_t, y_t, groups, method="refit")
    assert pearson(newton, truth) >= 0.99
    first = explainer.group_influence(X_t, y_t, groups)
    assert pearson(newton, truth) >= pearson(first, truth)


@pytest.mark.parametrize("model", [
    LogisticRegression(class_weight="balanced", C=0.1, tol=1e-10, max_iter=1000),
    LogisticRegression(C=0.1, tol=1e-10, max_iter=1000),  # multinomial
    LinearSVC(C=0.01, dual=False, tol=1e-10),  # one-vs-rest squared hinge
], ids=["balanced", "multinomial", "svc"])
def test_group_newton_tracks_refits(model):
    X_train, X_test, y_train, y_test = digits([1, 4, 7])
    keep = (y_train != 4) | (np.arange(len(y_train)) % 3 == 0)  # unbalanced
    X_train, y_train = X_train[keep], y_train[keep]
    model = clone(model).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    groups = random_groups(len(y_train), 10, seed=1)
    X_t, y_t = X_test[:10], y_test[:10]
    newton = explainer.group_influence(X_t, y_t, groups, method="newton")
    truth = explainer.group_influence(X_t, y_t, groups, method="refit")
    first = explainer.group_influence(X_t, y_t, groups)
    assert pearson(newton, truth) > 0.99
    assert pearson(newton, truth) >= pearson(first, truth)


def test_group_labels_and_errors():
    explainer, X, y, X_val, y_val = fitted("ridge")
    labels = np.where(np.arange(len(y)) < 10, "a", "b")
    out = explainer.group_influence(X_val, y_val, labels, method="newton")
    explicit = explainer.group_influence(
        X_val, y_val, [np.arange(10), np.arange(10, len(y))], method="newton")
    np.testing.assert_allclose(out, explicit)
    with pytest.raises(ValueError, match="groups"):
        explainer.group_influence(X_val, y_val, np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        explainer.group_influence(X_val, y_val, labels, method="exact")


# ------------------------------------------------------------ parameters
def refit_parameters(estimator, X, y, rows):
    est = tight_clone(estimator)
    base = clone(est).fit(X, y)
    theta = np.hstack([base.coef_.reshape(len(np.atleast_1d(base.intercept_)), -1),
                       np.reshape(base.intercept_, (-1, 1))]).ravel()
    out = []
    for row in rows:
        keep = np.arange(len(y)) != row
        other = clone(est).fit(X[keep], y[keep])
        out.append(np.hstack([other.coef_.reshape(theta.size // (X.shape[1] + 1), -1),
                              np.reshape(other.intercept_, (-1, 1))]).ravel() - theta)
    return np.array(out)


def test_parameter_influence_ridge_newton_exact():
    explainer, X, y, _, _ = fitted("ridge")
    rows = [0, 5, 17]
    truth = refit_parameters(explainer.estimator_, X, y, rows)
    delta = explainer.parameter_influence(rows, method="newton")
    assert delta.shape == (3, X.shape[1] + 1)
    assert rel_err(delta, truth) < 1e-8


@pytest.mark.parametrize("name, floor", [("logistic", 0.99), ("balanced", 0.99),
                                         ("svc", 0.97)])  # squared hinge: kinks
def test_parameter_influence_tracks_refits(name, floor):
    explainer, X, y, _, _ = fitted(name)
    rows = np.arange(0, len(y), 5)
    truth = refit_parameters(explainer.estimator_, X, y, rows)
    first = explainer.parameter_influence(rows)
    newton = explainer.parameter_influence(rows, method="newton")
    assert pearson(first, truth) > 0.95
    assert pearson(newton, truth) > floor
    full = explainer.parameter_influence()
    np.testing.assert_allclose(full[rows], first, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["logistic", "balanced", "svc"])
def test_prediction_influence_tracks_refit_decision_function(name):
    explainer, X, y, X_val, _ = fitted(name)
    est = tight_clone(explainer.estimator_)
    base = clone(est).fit(X, y).decision_function(X_val)
    rows = np.arange(0, len(y), 4)
    actual = []
    for row in rows:
        keep = np.arange(len(y)) != row
        actual.append(clone(est).fit(X[keep], y[keep]).decision_function(X_val) - base)
    actual = np.moveaxis(np.array(actual), 0, 1)  # (n_test, n_rows[, K])
    newton = explainer.prediction_influence(X_val, method="newton")[:, rows]
    first = explainer.prediction_influence(X_val)[:, rows]
    assert newton.shape == actual.shape
    assert pearson(newton, actual) > 0.99
    assert pearson(first, actual) > 0.95


def test_prediction_influence_regressor_is_explain_without_labels():
    explainer, _, _, X_val, _ = fitted("ridge")
    truth = explainer.loo(X_val, None, method="refit")
    assert rel_err(explainer.prediction_influence(X_val, method="newton"), truth) < 1e-8


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_regression_diagnostics_match_statsmodels(fit_intercept):
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.stats.outliers_influence import OLSInfluence

    X, y = regression(n=50, p=3, seed=3)
    y[7] += 6.0  # an outlier
    model = LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    diag = InfluenceExplainer(model).fit(X, y).regression_diagnostics()
    exog = np.column_stack([X, np.ones(len(y))]) if fit_intercept else X
    ref = OLSInfluence(sm.OLS(y, exog).fit())
    pairs = {
        "leverage": ref.hat_matrix_diag,
        "resid_studentized_internal": ref.resid_studentized_internal,
        "resid_studentized_external": ref.resid_studentized_external,
        "cooks_distance": ref.cooks_distance[0],
        "dffits": ref.dffits[0],
        "dfbeta": ref.dfbeta,
        "dfbetas": ref.dfbetas,
        "sigma2_loo": ref.sigma2_not_obsi,
    }
    for key, truth in pairs.items():
        assert rel_err(diag[key], truth) < 1e-8, key
    assert diag.sigma2 == pytest.approx(ref.results.scale, rel=1e-10)


def test_regression_diagnostics_weighted_match_whitened_ols():
    # WLS with weights w is OLS on rows scaled by sqrt(w); statsmodels'
    # OLSInfluence on WLS results mixes whitened and raw rows, so compare with
    # the whitened OLS
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.stats.outliers_influence import OLSInfluence

    X, y = regression(n=40, p=2, seed=4)
    w = np.random.default_rng(4).uniform(0.5, 2.0, size=len(y))
    model = LinearRegression().fit(X, y, sample_weight=w)
    diag = InfluenceExplainer(model).fit(X, y, sample_weight=w).regression_diagnostics()
    root = np.sqrt(w)[:, None]
    exog = np.column_stack([X, np.ones(len(y))]) * root
    ref = OLSInfluence(sm.OLS(y * root[:, 0], exog).fit())
    for key, truth in [("leverage", ref.hat_matrix_diag),
                       ("cooks_distance", ref.cooks_distance[0]),
                       ("resid_studentized_external", ref.resid_studentized_external),
                       ("dfbeta", ref.dfbeta), ("dfbetas", ref.dfbetas)]:
        assert rel_err(diag[key], truth) < 1e-8, key


def test_regression_diagnostics_ridge_and_refusal():
    explainer, X, y, _, _ = fitted("ridge")
    diag = explainer.regression_diagnostics()
    assert 0 < diag.n_parameters < X.shape[1] + 1  # shrunk effective dof
    # PRESS residual identity: the LOO residual is e / (1 - h)
    press = diag.residuals / (1 - diag.leverage)
    loo = explainer.loo(X, None, method="refit")
    np.testing.assert_allclose(y - (explainer.predict(X) + np.diag(loo)), press,
                               rtol=1e-8)
    # binary logistic regression gets the GLM diagnostics; more classes refuse
    assert "deviance_residuals" in fitted("logistic")[0].regression_diagnostics(
        exact_dfbeta=False)
    X3, y3 = classification(n_classes=3)
    multinomial = InfluenceExplainer(LogisticRegression().fit(X3, y3)).fit(X3, y3)
    with pytest.raises(ValueError, match="binary LogisticRegression"):
        multinomial.regression_diagnostics()


# ------------------------------------------------------------ perturbation
def finite_difference(estimator, X, y, X_test, y_test, loss, row, h):
    est = tight_clone(estimator)
    out = np.empty(X.shape[1])
    for m in range(X.shape[1]):
        values = []
        for sign in (1, -1):
            Xp = X.copy()
            Xp[row, m] += sign * h
            values.append(loss(clone(est).fit(Xp, y), X_test, y_test))
        out[m] = (values[0] - values[1]) / (2 * h)
    return out


def squared(model, X, y):
    return (y - model.predict(X)) ** 2


def logloss(model, X, y):
    P = model.predict_proba(X)
    return -np.log(P[np.arange(len(y)), np.searchsorted(model.classes_, y)])


@pytest.mark.parametrize("name, loss", [("ridge", squared), ("logistic", logloss),
                                        ("multinomial", logloss),
                                        ("balanced", logloss)])
def test_perturbation_influence_matches_finite_differences(name, loss):
    explainer, X, y, X_val, y_val = fitted(name)
    rows = [0, 3]
    grad = explainer.perturbation_influence(X_val[:3], y_val[:3], rows=rows)
    assert grad.shape == (3, 2, X.shape[1])
    for position, row in enumerate(rows):
        fd = np.stack([finite_difference(explainer.estimator_, X, y, X_val[j:j + 1],
                                         y_val[j:j + 1], lambda *a: loss(*a)[0],
                                         row, 1e-4) for j in range(3)])
        # central differences: O(h^2) truncation, solver noise ~1e-10 / h
        assert rel_err(grad[:, position], fd) < 1e-4, (row, grad[:, position], fd)
