"""Matrix-free solvers (cg, lissa) against independent truths.

* cg against the direct Cholesky solver, dense and sparse, and against a
  from-scratch numpy computation (explicit Hessian, ``np.linalg.solve``) on a
  sparse logistic problem;
* lissa at its default parameters against the direct solver (Pearson);
* the failure modes: too few iterations, a diverging LiSSA scale.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.families import family_for
from skinfluence.solvers import (
    ConjugateGradientSolver,
    DirectSolver,
    LissaSolver,
    make_solver,
)


def _standardised_digits(classes):
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, classes)
    X, y = X[keep], y[keep]
    X = X[:, X.std(axis=0) > 0]  # constant pixels carry no information
    return StandardScaler().fit_transform(X), y


def _standardised_diabetes():
    X, y = load_diabetes(return_X_y=True, scaled=False)
    return StandardScaler().fit_transform(X), y


def _case(name):
    if name == "binary":
        X, y = _standardised_digits([1, 7])
        model = LogisticRegression(tol=1e-10, max_iter=10_000)
    elif name == "multinomial":
        X, y = _standardised_digits([0, 1, 2])
        model = LogisticRegression(C=0.1, tol=1e-10, max_iter=10_000)
    else:
        X, y = _standardised_diabetes()
        model = Ridge(alpha=1.0)
    return X[:-30], y[:-30], X[-30:], y[-30:], model


def _relative_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", ["binary", "multinomial", "ridge"])
def test_cg_matches_direct(name, sparse):
    X, y, X_test, y_test, model = _case(name)
    if sparse:
        X, X_test = sp.csr_matrix(X), sp.csr_matrix(X_test)
    model.fit(X, y)
    direct = InfluenceExplainer(model, solver="direct").fit(X, y)
    cg = InfluenceExplainer(model, solver="cg").fit(X, y)
    expected = direct.explain(X_test, y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        got = cg.explain(X_test, y_test)
    assert _relative_error(got, expected) < 1e-5
    info = cg.solver_.diagnostics_
    assert info["converged"].all() and info["residual"] < 1e-8
    assert cg.n_iter_ == info["n_iter"] >= 1
    if sparse:
        assert sp.issparse(cg.problem_.X)


@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cg_handles_rank_deficient_least_squares():
    # duplicated column, no penalty: the direct solver needs a pseudo-inverse;
    # cg solves the consistent singular system (right-hand sides lie in the
    # range of H, so the influence does not depend on the null-space component)
    X, y = _standardised_diabetes()
    X = np.hstack([X, X[:, :1]])
    model = LinearRegression().fit(X[:-20], y[:-20])
    direct = InfluenceExplainer(model).fit(X[:-20], y[:-20])
    cg = InfluenceExplainer(model, solver="cg").fit(X[:-20], y[:-20])
    expected = direct.explain(X[-20:], y[-20:])
    assert _relative_error(cg.explain(X[-20:], y[-20:]), expected) < 1e-5


def _sparse_logistic(n, d, density, seed):
    rng = np.random.RandomState(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    w = rng.standard_normal(d) * 3 / np.sqrt(density * d)
    y = (rng.uniform(size=n) < expit(X @ w)).astype(int)
    return X, y


def test_cg_sparse_logistic_against_numpy_reference():
    # independent truth: the binary logistic objective
    # C sum_i logloss_i + 1/2 ||w||^2 (free intercept) written out in numpy,
    # its Hessian formed explicitly and solved densely
    C = 2.0
    X, y = _sparse_logistic(500, 1500, 0.01, seed=0)
    X_train, y_train, X_test, y_test = X[:420], y[:420], X[420:], y[420:]
    model = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model, solver="cg", tol=1e-10).fit(X_train, y_train)
    got = explainer.explain(X_test, y_test)
    assert sp.issparse(explainer.problem_.X)

    Xt = np.hstack([X_train.toarray(), np.ones((420, 1))])
    Xs = np.hstack([X_test.toarray(), np.ones((80, 1))])
    theta = np.append(model.coef_.ravel(), model.intercept_)
    p = expit(Xt @ theta)
    H = Xt.T @ ((C * p * (1 - p))[:, None] * Xt)
    H[np.arange(1500), np.arange(1500)] += 1.0  # penalty on w, not on b
    G_train = C * (p - y_train)[:, None] * Xt  # gradients of f_i
    G_test = (expit(Xs @ theta) - y_test)[:, None] * Xs  # of the test loss
    expected = G_test @ np.linalg.solve(H, G_train.T)
    assert _relative_error(got, expected) < 1e-6


def test_hessian_diagonal_and_row_subset_hvp():
    X, y = _standardised_digits([0, 1, 2])
    for data in (X, sp.csr_matrix(X)):
        model = LogisticRegression(C=0.1, max_iter=5000).fit(data, y)
        problem = family_for(model).bind(data, y)
        H = problem.hessian()
        np.testing.assert_allclose(problem.hessian_diagonal(), np.diag(H),
                                   rtol=1e-12, atol=1e-12)
        rows = np.arange(0, data.shape[0], 3)
        sub = family_for(model).bind(data[rows], y[rows])
        # the data part of the subset's Hessian, rescaled by n / batch
        H_rows = ((sub.hessian() - np.diag(sub.penalty)) * data.shape[0] / len(rows)
                  + np.diag(problem.penalty))
        V = np.random.RandomState(0).standard_normal((H.shape[0], 3))
        np.testing.assert_allclose(problem.hvp(V, rows=rows), H_rows @ V,
                                   rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(problem.hvp(V), H @ V, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["binary", "ridge"])
def test_lissa_defaults_agree_with_direct(name):
    # digits 1 vs 7: standardised pixels, constant ones dropped; diabetes:
    # the raw (unscaled) features standardised, as a user would
    X, y, X_test, y_test, model = _case(name)
    model.fit(X, y)
    expected = InfluenceExplainer(model).fit(X, y).explain(X_test, y_test)
    lissa = InfluenceExplainer(model, solver="lissa", random_state=0).fit(X, y)
    got = lissa.explain(X_test, y_test)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] >= 0.98
    assert lissa.solver_.diagnostics_["converged"].all()


def test_cg_warns_when_max_iter_is_too_small():
    X, y, X_test, y_test, model = _case("binary")
    model.fit(X, y)
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):  # the fit check
        explainer = InfluenceExplainer(model, solver="cg", max_iter=2).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="Increase max_iter.*damping.*direct"):
        explainer.explain(X_test, y_test)
    assert not explainer.solver_.diagnostics_["converged"].any()
    assert explainer.n_iter_ == 2


def test_lissa_raises_when_forced_to_diverge():
    X, y, X_test, y_test, model = _case("binary")
    model.fit(X, y)
    explainer = InfluenceExplainer(model, solver="lissa",
                                   solver_params={"scale": 1.0}).fit(X, y)
    with pytest.raises(ValueError, match="diverges.*larger scale.*damping.*direct"):
        explainer.explain(X_test, y_test)


def test_lissa_same_random_state_same_numbers():
    X, y, X_test, y_test, model = _case("binary")
    model.fit(X, y)
    params = {"batch_size": 64, "repeats": 2, "depth": 100}

    def run(seed):
        return InfluenceExplainer(model, solver="lissa", solver_params=params,
                                  random_state=seed).fit(X, y).explain(X_test, y_test)

    first = run(0)
    np.testing.assert_array_equal(first, run(0))
    assert not np.array_equal(first, run(1))
    expected = InfluenceExplainer(model).fit(X, y).explain(X_test, y_test)
    assert np.corrcoef(first.ravel(), expected.ravel())[0, 1] > 0.9


def test_solver_interface_single_vector_and_factory():
    X, y, *_ = _case("multinomial")
    model = LogisticRegression(C=0.1, max_iter=5000).fit(X, y)
    problem = family_for(model).bind(X, y)
    b = problem.row_gradients(X[:1], np.array([[0.3, -0.1, -0.2]]))[:, 0]
    expected = DirectSolver().fit(problem).solve(b)
    for solver in (ConjugateGradientSolver(), LissaSolver(random_state=0)):
        got = solver.fit(problem).solve(b)
        assert got.shape == b.shape
        assert _relative_error(got, expected) < 1e-3
    assert isinstance(make_solver("cg", tol=1e-6), ConjugateGradientSolver)
    assert make_solver("lissa", max_iter=50, depth=10).max_depth == 50
    with pytest.raises(ValueError, match="not options of solver='cg'"):
        make_solver("cg", depth=3)
    with pytest.raises(ValueError, match="not options"):
        InfluenceExplainer(model, solver="direct",
                           solver_params={"scale": 2.0}).fit(X, y)
