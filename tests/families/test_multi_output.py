"""Multi-output squared loss (LinearRegression, Ridge, RidgeCV on 2-D y) against
independent truths: stationarity at scikit-learn's fit, finite differences,
brute-force leave-one-out refits written out here, and the leave-one-out errors
RidgeCV stores (``store_cv_results=True``)."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_diabetes, load_linnerud
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.families import MultiOutputSquaredFamily, SquaredLossFamily, family_for


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


def diabetes_targets(n=None):
    """Diabetes with three real targets: progression, s5 and bmi (rescaled)."""
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, 100 * X[:, 8], 50 * X[:, 2]])
    X = np.delete(X, [8, 2], axis=1)
    return (X, Y) if n is None else (X[:n], Y[:n])


def weights(n, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, n)


def brute_force_loo(model, X, Y, sw, X_test, Y_test=None):
    """Refit a clone without each row; change of the summed squared error
    (or of each target's prediction without Y_test)."""
    from sklearn.base import clone

    def quantity(m):
        pred = m.predict(X_test)
        return pred if Y_test is None else ((Y_test - pred) ** 2).sum(axis=1)

    full = clone(model).fit(X, Y, sample_weight=sw)
    out = []
    for i in range(X.shape[0]):
        keep = np.arange(X.shape[0]) != i
        refit = clone(model).fit(X[keep], Y[keep],
                                 sample_weight=None if sw is None else sw[keep])
        out.append(quantity(refit) - quantity(full))
    return np.moveaxis(np.array(out), 0, 1)


MODELS = [
    ("ridge", Ridge(alpha=2.0)),
    ("ridge-per-target", Ridge(alpha=[0.3, 3.0, 30.0])),
    ("ridge-noint", Ridge(alpha=[0.3, 3.0, 30.0], fit_intercept=False)),
    ("ols", LinearRegression()),
    ("ridgecv-per-target", RidgeCV(alphas=[1e-3, 1e-2, 0.1, 1.0], alpha_per_target=True)),
]
models = pytest.mark.parametrize("model", [m for _, m in MODELS],
                                 ids=[name for name, _ in MODELS])


@models
@pytest.mark.parametrize("use_sw", [False, True], ids=["unweighted", "weighted"])
def test_sklearn_fit_is_stationary_point(model, use_sw):
    X, Y = diabetes_targets()
    sw = weights(len(X)) if use_sw else None
    model.fit(X, Y, sample_weight=sw)
    family = family_for(model)
    assert isinstance(family, MultiOutputSquaredFamily)
    assert family.n_outputs == 3
    problem = family.bind(X, Y, sw)
    assert problem.relative_gradient_norm() < 1e-10
    np.testing.assert_allclose(family.decision(X), model.predict(X), rtol=1e-12)
    # the check is not vacuous: the same coefficients on other targets are off
    assert family.bind(X, Y[:, ::-1], sw).relative_gradient_norm() > 1e-2


def test_per_target_alpha_is_read():
    X, Y = diabetes_targets()
    model = RidgeCV(alphas=[1e-3, 1e-2, 0.1, 1.0], alpha_per_target=True).fit(X, Y)
    assert np.unique(model.alpha_).size > 1  # the targets chose different alphas
    np.testing.assert_array_equal(family_for(model).alpha, model.alpha_)
    # one alpha for all (the first) would not be a stationary point
    family = family_for(Ridge(alpha=model.alpha_[0]).fit(X, Y))
    family.coef, family.intercept = model.coef_, model.intercept_
    assert family.bind(X, Y).relative_gradient_norm() > 1e-6


def test_single_column_targets_keep_the_single_output_family():
    X, Y = diabetes_targets()
    assert isinstance(family_for(Ridge().fit(X, Y[:, :1])), SquaredLossFamily)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_derivatives_match_finite_differences(sparse):
    X, Y = diabetes_targets(60)
    sw = weights(60)
    model = Ridge(alpha=[0.3, 3.0, 30.0]).fit(X, Y, sample_weight=sw)
    family = family_for(model)
    Xs = sp.csr_matrix(X) if sparse else X
    theta = family.theta + np.random.default_rng(1).normal(size=family.n_parameters)
    problem = family.bind(Xs, Y, sw, theta)
    eps = 1e-6

    def fd(function):
        cols = []
        for k in range(theta.size):
            e = np.zeros_like(theta)
            e[k] = eps
            cols.append((function(theta + e) - function(theta - e)) / (2 * eps))
        return np.array(cols)

    grad = problem.gradient()
    np.testing.assert_allclose(
        grad, fd(lambda t: family.bind(Xs, Y, sw, t).objective()),
        rtol=1e-6, atol=1e-6 * np.abs(grad).max())
    H = problem.hessian()
    np.testing.assert_allclose(
        H, fd(lambda t: family.bind(Xs, Y, sw, t).gradient()).T,
        rtol=1e-6, atol=1e-6 * np.abs(H).max())
    v = np.random.default_rng(2).normal(size=(family.n_parameters, 2))
    np.testing.assert_allclose(problem.hvp(v), H @ v, rtol=1e-10, atol=1e-10)


@models
def test_explain_newton_and_exact_loo_equal_brute_force_refits(model):
    X, Y = diabetes_targets(80)
    X_test, Y_test = diabetes_targets()[0][400:405], diabetes_targets()[1][400:405]
    sw = weights(80)
    model.fit(X, Y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, Y, sample_weight=sw)
    if isinstance(model, RidgeCV):  # the truth refits the alphas it chose
        model = Ridge(alpha=model.alpha_)
    for targets in (Y_test, None):
        truth = brute_force_loo(model, X, Y, sw, X_test, targets)
        shape = (5, 80) if targets is not None else (5, 80, 3)
        assert truth.shape == shape
        scale = np.abs(truth).max()
        for estimate in (explainer.explain(X_test, targets, method="newton"),
                         explainer.loo(X_test, targets, method="exact"),
                         explainer.loo(X_test, targets, method="refit")):
            assert estimate.shape == shape
            np.testing.assert_allclose(estimate, truth, rtol=0, atol=1e-9 * scale)
        first = explainer.explain(X_test, targets)
        assert first.shape == shape
        assert np.corrcoef(first.ravel(), truth.ravel())[0, 1] > 0.95
    # prediction_influence is the same change of the predictions
    np.testing.assert_allclose(explainer.prediction_influence(X_test, method="newton"),
                               brute_force_loo(model, X, Y, sw, X_test), rtol=0,
                               atol=1e-9 * scale)


@pytest.mark.parametrize("gcv_mode", ["svd", "eigen"])
@pytest.mark.parametrize("n", [442, 8], ids=["n>p", "n<p"])
@pytest.mark.parametrize("use_sw", [False, True], ids=["unweighted", "weighted"])
def test_exact_loo_reproduces_ridgecv_stored_loo_errors(gcv_mode, n, use_sw):
    """RidgeCV (cv=None) stores ``s_i (y_ik - yhat_{-i,k})^2`` for every alpha
    (and the leave-one-out predictions with a scorer)."""
    X, Y = diabetes_targets(n)
    sw = weights(n) if use_sw else None
    alphas = [1e-3, 1e-2, 0.1, 1.0]
    kwargs = dict(alphas=alphas, store_cv_results=True, gcv_mode=gcv_mode)
    cv = RidgeCV(alpha_per_target=True, **kwargs).fit(X, Y, sample_weight=sw)
    cv_pred = RidgeCV(scoring="r2", **kwargs).fit(X, Y, sample_weight=sw)
    assert cv.cv_results_.shape == (n, 3, 4)
    for position, alpha in enumerate(alphas):
        ridge = Ridge(alpha=alpha).fit(X, Y, sample_weight=sw)
        explainer = InfluenceExplainer(ridge).fit(X, Y, sample_weight=sw)
        own = np.einsum("iik->ik", explainer.loo(X, method="exact"))
        loo_prediction = ridge.predict(X) + own
        stored = cv.cv_results_[:, :, position]
        errors = (1.0 if sw is None else sw[:, None]) * (Y - loo_prediction) ** 2
        np.testing.assert_allclose(errors, stored, rtol=0,
                                   atol=1e-10 * np.abs(stored).max())
        np.testing.assert_allclose(loo_prediction, cv_pred.cv_results_[:, :, position],
                                   rtol=0, atol=1e-10 * np.abs(Y).max())
        if use_sw:  # the weights are part of the stored value
            assert np.abs((Y - loo_prediction) ** 2 - stored).max() > 1e-3 * stored.max()
    # and the model RidgeCV chose, with one alpha per target
    explainer = InfluenceExplainer(cv).fit(X, Y, sample_weight=sw)
    loo_prediction = cv.predict(X) + np.einsum("iik->ik", explainer.loo(X, method="exact"))
    chosen = np.stack([cv.cv_results_[:, k, alphas.index(a)]
                       for k, a in enumerate(cv.alpha_)], axis=1)
    errors = (1.0 if sw is None else sw[:, None]) * (Y - loo_prediction) ** 2
    np.testing.assert_allclose(errors, chosen, rtol=0, atol=1e-10 * np.abs(chosen).max())


def test_linnerud():
    X, Y = load_linnerud(return_X_y=True)
    model = Ridge(alpha=[1.0, 10.0, 100.0]).fit(X[:15], Y[:15])
    explainer = InfluenceExplainer(model).fit(X[:15], Y[:15])
    truth = brute_force_loo(model, X[:15], Y[:15], None, X[15:], Y[15:])
    np.testing.assert_allclose(explainer.loo(X[15:], Y[15:], method="exact"), truth,
                               rtol=0, atol=1e-10 * np.abs(truth).max())


def test_errors_name_the_fix():
    X, Y = diabetes_targets(60)
    explainer = InfluenceExplainer(Ridge().fit(X, Y)).fit(X, Y)
    with pytest.raises(ValueError, match="one prediction per target"):
        explainer.top_influencers(X[:2])
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        explainer.explain(X[:2], Y[:2, :2])
    with pytest.raises(ValueError, match="one alpha or one per target"):
        family_for(Ridge(alpha=[1.0, 2.0]).fit(X, Y[:, :2]).set_params(
            alpha=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="positive=True"):
        family_for(LinearRegression(positive=True).fit(X, Y))


@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
def test_rank_deficient_least_squares():
    X, Y = diabetes_targets(80)
    X = np.hstack([X, X[:, :1]])  # a duplicated column: rank_ < n_features
    model = LinearRegression().fit(X, Y)
    assert model.rank_ < X.shape[1]
    explainer = InfluenceExplainer(model).fit(X, Y)
    assert explainer.solver_.diagnostics_["form"] == "pseudo-inverse"
    X_test = X[:3]
    truth = brute_force_loo(model, X, Y, None, X_test)
    np.testing.assert_allclose(explainer.loo(X_test, method="exact"), truth, rtol=0,
                               atol=1e-8 * np.abs(truth).max())
