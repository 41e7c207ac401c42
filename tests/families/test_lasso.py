"""Lasso, ElasticNet, LassoCV, ElasticNetCV against independent truths: the
objective written out from scikit-learn's documentation, the KKT conditions at
scikit-learn's fit, finite differences, and brute-force leave-one-out refits
of scikit-learn's coordinate descent at a tight tolerance."""

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, ElasticNetCV, Lasso, LassoCV
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.exact import active_set_loo_parameters, l1_minimize
from skinfluence.families import LassoFamily, family_for

TIGHT = dict(tol=1e-14, max_iter=1_000_000)


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 150)
    return X[:150], y[:150], X[400:406], y[400:406], sw


MODELS = [
    ("lasso", Lasso(alpha=1.0, **TIGHT)),
    ("lasso-sparse-support", Lasso(alpha=8.0, **TIGHT)),
    ("lasso-noint", Lasso(alpha=1.0, fit_intercept=False, **TIGHT)),
    ("enet", ElasticNet(alpha=0.5, l1_ratio=0.5, **TIGHT)),
    ("lassocv", LassoCV(alphas=[0.5, 2.0, 8.0], cv=3, **TIGHT)),
    ("enetcv", ElasticNetCV(alphas=[0.5, 2.0], l1_ratio=[0.3, 0.9], cv=3, **TIGHT)),
]
models = pytest.mark.parametrize("model", [m for _, m in MODELS],
                                 ids=[name for name, _ in MODELS])


def sklearn_objective(X, y, sw, coef, intercept, alpha, l1_ratio):
    """scikit-learn's documented objective with normalised sample weights."""
    residual = y - X @ coef - intercept
    return (0.5 * np.sum(sw * residual ** 2) / sw.sum()
            + alpha * l1_ratio * np.abs(coef).sum()
            + 0.5 * alpha * (1 - l1_ratio) * np.sum(coef ** 2))


def brute_force_loo(model, X, y, sw, X_test, y_test, rows):
    """``(effects, support_changed)`` of refits without each row of ``rows``."""
    full = clone(model).fit(X, y, sample_weight=sw)
    base = (y_test - full.predict(X_test)) ** 2
    effects, changed = [], []
    for i in rows:
        keep = np.arange(len(y)) != i
        refit = clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
        effects.append((y_test - refit.predict(X_test)) ** 2 - base)
        changed.append(np.any((refit.coef_ != 0) != (full.coef_ != 0)))
    return np.array(effects).T, np.array(changed)


def chosen(model):
    """The Lasso / ElasticNet a CV model refits with its chosen parameters."""
    if isinstance(model, (LassoCV, ElasticNetCV)):
        return ElasticNet(alpha=model.alpha_, l1_ratio=getattr(model, "l1_ratio_", 1.0),
                          fit_intercept=model.fit_intercept, **TIGHT)
    return model


@models
@pytest.mark.parametrize("use_sw", [False, True], ids=["unweighted", "weighted"])
def test_sklearn_fit_satisfies_the_kkt_conditions(data, model, use_sw):
    X, y, _, _, sw = data
    sw = sw if use_sw else None
    model = clone(model).fit(X, y, sample_weight=sw)
    family = family_for(model)
    assert isinstance(family, LassoFamily)
    problem = family.bind(X, y, sw)
    assert problem.relative_gradient_norm(subgradient=True) < 1e-9
    # the objective is scikit-learn's, normalisation and penalties included
    weights = np.ones(len(y)) if sw is None else sw
    ref = chosen(model)
    expected = sklearn_objective(X, y, weights, model.coef_, model.intercept_,
                                 ref.alpha, getattr(ref, "l1_ratio", 1.0))
    np.testing.assert_allclose(problem.objective(), expected, rtol=1e-12)
    np.testing.assert_allclose(family.decision(X)[:, 0], model.predict(X), rtol=1e-12)


def test_kkt_check_is_not_vacuous(data):
    X, y, _, _, sw = data
    model = Lasso(alpha=1.0, **TIGHT).fit(X, y, sample_weight=sw)
    family = family_for(model)
    # the weights are normalised: scaling them changes nothing, other weights do
    assert family.bind(X, y, 3 * sw).relative_gradient_norm(subgradient=True) < 1e-9
    assert family.bind(X, y, sw ** 2).relative_gradient_norm(subgradient=True) > 1e-3
    family.alpha = 1.2  # the coefficients are not optimal for another alpha
    assert family.bind(X, y, sw).relative_gradient_norm(subgradient=True) > 1e-3


def test_derivatives_match_finite_differences(data):
    X, y, _, _, sw = data
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, **TIGHT).fit(X, y, sample_weight=sw)
    family = family_for(model)
    support = family.support
    theta = family.theta + 0.1 * np.random.default_rng(1).normal(size=family.n_parameters)
    theta[~support] = 0.0  # on the support, signs kept: the smooth reduced problem
    assert np.all(np.sign(theta[support][:-1]) == family.signs[support][:-1])
    problem = family.bind(X, y, sw, theta)
    eps = 1e-2  # quadratic on the support: central differences are exact
    g_cols, h_cols = [], []
    for k in np.flatnonzero(support):
        e = np.zeros_like(theta)
        e[k] = eps
        plus, minus = family.bind(X, y, sw, theta + e), family.bind(X, y, sw, theta - e)
        g_cols.append((plus.objective() - minus.objective()) / (2 * eps))
        h_cols.append((plus.gradient() - minus.gradient())[support] / (2 * eps))
    grad = problem.gradient()[support]
    H = problem.hessian()[np.ix_(support, support)]
    np.testing.assert_allclose(grad, g_cols, rtol=1e-7, atol=1e-9 * np.abs(grad).max())
    np.testing.assert_allclose(H, np.array(h_cols).T, rtol=1e-7, atol=1e-9)
    # the objective with the L1 norm itself (signs kept) matches
    coef, intercept = family.split_theta(theta)
    np.testing.assert_allclose(
        problem.objective(),
        sklearn_objective(X, y, sw, coef[0], intercept[0], 0.5, 0.5), rtol=1e-12)


def test_removal_terms_are_the_gradient_of_the_refit_objective(data):
    """``(S - s_i) / S * grad F_{-i}(theta) = -(g_i - (s_i / S) G)`` at the optimum."""
    X, y, _, _, sw = data
    model = ElasticNet(alpha=0.5, l1_ratio=0.7, **TIGHT).fit(X, y, sample_weight=sw)
    family = family_for(model)
    problem = family.bind(X, y, sw)
    row_scale, delta, residuals = family.removal_terms(y, sw, problem.Y, problem.Z)
    G = problem.rows_to_parameters(residuals[0])
    removal = problem.row_gradients(X, problem.residuals * row_scale) - np.outer(G, delta)
    S = sw.sum()
    for i in [0, 7, 99]:
        keep = np.arange(len(y)) != i
        refit = family.bind(X[keep], y[keep], sw[keep], problem.theta)
        np.testing.assert_allclose((S - sw[i]) / S * refit.gradient(), -removal[:, i],
                                   rtol=0, atol=1e-9 * np.abs(removal).max())


@models
def test_exact_loo_and_active_set_influence_against_refits(data, model):
    X, y, X_test, y_test, sw = data
    model = clone(model).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    rows = np.arange(0, len(y), 3)
    truth, changed = brute_force_loo(chosen(model), X, y, sw, X_test, y_test, rows)
    scale = np.abs(truth).max()
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    np.testing.assert_allclose(exact, truth, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(
        explainer.loo(X_test, y_test, method="refit", train_indices=rows), truth,
        rtol=0, atol=1e-9 * scale)
    # the detector flags exactly the rows whose refit changed the support ...
    flagged = explainer.support_changes(rows).changed
    np.testing.assert_array_equal(flagged, changed)
    _, _, engine_changed, _ = active_set_loo_parameters(explainer.family_, X, y, sw, rows)
    np.testing.assert_array_equal(engine_changed, changed)
    # ... and on the others the active-set Newton step is exact for the Lasso
    # (with an L2 part the shrunk penalty's curvature enters at O(s_i / S))
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    lasso = explainer.family_.l1_ratio == 1.0
    np.testing.assert_allclose(newton[:, ~changed], truth[:, ~changed], rtol=0,
                               atol=(1e-8 if lasso else 1e-2) * scale)
    first = explainer.explain(X_test, y_test)[:, rows]
    assert np.corrcoef(first.ravel(), truth.ravel())[0, 1] > 0.95


def test_support_changes_matter(data):
    """Where the support changes, the active-set step is wrong: the check can fail."""
    X, y, X_test, y_test, sw = data
    model = Lasso(alpha=1.0, **TIGHT).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    result = explainer.support_changes()
    assert 0 < result.changed.mean() < 0.5
    assert np.all(result.slack[result.entering > 0] < 0)
    rows = result.rows[result.changed]
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    assert np.abs(newton - exact).max() > 1e-3 * np.abs(exact).max()


def test_exact_engine_polishes_a_loose_fit(data):
    X, y, _, _, sw = data
    loose = Lasso(alpha=1.0, tol=1e-2).fit(X, y, sample_weight=sw)
    tight = Lasso(alpha=1.0, **TIGHT).fit(X, y, sample_weight=sw)
    theta, family = l1_minimize(family_for(loose), X, y, sw)
    np.testing.assert_allclose(theta, family_for(tight).theta, rtol=0, atol=1e-9)
    assert family.bind(X, y, sw, theta).relative_gradient_norm(subgradient=True) < 1e-12


def test_errors_name_the_fix(data):
    X, y, _, _, _ = data
    with pytest.raises(ValueError, match="positive=False"):
        family_for(Lasso(positive=True).fit(X, y))
    with pytest.raises(ValueError, match="one model per column"):
        family_for(Lasso().fit(X, np.column_stack([y, y])))
    from sklearn.linear_model import MultiTaskLasso  # a subclass of Lasso

    with pytest.raises(ValueError, match="group penalty"):
        family_for(MultiTaskLasso().fit(X, np.column_stack([y, y])))
    explainer = InfluenceExplainer(Lasso().fit(X, y)).fit(X, y)
    explainer_l2 = InfluenceExplainer(ElasticNet(l1_ratio=0.0).fit(X, y))
    with pytest.raises(ValueError, match="L1 part"):
        InfluenceExplainer(__import__("sklearn.linear_model").linear_model.Ridge().fit(
            X, y)).fit(X, y).support_changes()
    assert explainer.support_changes().changed.dtype == bool
    from skinfluence.estimators import SubsetEngine

    with pytest.raises(ValueError, match="engine='refit'"):
        SubsetEngine(Lasso().fit(X, y), X, y, engine="newton")
    assert explainer_l2.fit(X, y).support_changes().changed.sum() == 0


def test_sparse_input_and_n_jobs(data):
    import scipy.sparse as sp

    X, y, X_test, y_test, sw = data
    Xs = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    model = Lasso(alpha=1.0, **TIGHT).fit(Xs, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(Xs, y, sample_weight=sw)
    assert explainer.relative_gradient_norm_ < 1e-9
    dense = InfluenceExplainer(model).fit(Xs.toarray(), y, sample_weight=sw)
    np.testing.assert_allclose(explainer.explain(X_test, y_test, method="newton"),
                               dense.explain(X_test, y_test, method="newton"),
                               rtol=1e-9, atol=1e-9)
    rows = np.arange(0, 150, 2)
    one = explainer.loo(X_test, y_test, method="exact", train_indices=rows, n_jobs=1)
    with parallel_config(backend="threading"):  # no process start-up in the test
        two = explainer.loo(X_test, y_test, method="exact", train_indices=rows, n_jobs=2)
    np.testing.assert_array_equal(one, two)
    truth, _ = brute_force_loo(model, Xs, y, sw, X_test, y_test, rows[:20])
    np.testing.assert_allclose(one[:, :20], truth, rtol=0,
                               atol=1e-9 * np.abs(truth).max())


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["lasso", "enet"])
def test_wide_data_solvers_agree_on_the_reduced_problem(l1_ratio):
    """p > n: the dual direct solver and cg see the same reduced Hessian."""
    from sklearn.datasets import make_regression

    from skinfluence.solvers import DirectSolver

    X, y = make_regression(n_samples=40, n_features=120, n_informative=8, noise=5.0,
                           random_state=0)
    model = ElasticNet(alpha=1.0, l1_ratio=l1_ratio, **TIGHT).fit(X, y)
    results = []
    for solver in ("direct", "cg"):
        explainer = InfluenceExplainer(model, solver=solver, tol=1e-12).fit(X, y)
        results.append(explainer.explain(X[:3], y[:3], method="newton"))
    problem = explainer.problem_
    forms = {form: DirectSolver(form=form).fit(problem) for form in ("primal", "dual")}
    b = problem.row_gradients(X[:2], np.ones((2, 1)))
    np.testing.assert_allclose(forms["dual"].solve(b), forms["primal"].solve(b),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6,
                               atol=1e-8 * np.abs(results[0]).max())
    rows = np.arange(0, 40, 4)
    truth, changed = brute_force_loo(model, X, y, np.ones(40), X[:3], y[:3], rows)
    np.testing.assert_allclose(
        explainer.loo(X[:3], y[:3], method="exact", train_indices=rows), truth,
        rtol=0, atol=1e-8 * np.abs(truth).max())
