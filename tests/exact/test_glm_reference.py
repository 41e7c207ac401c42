"""Logistic regression against R's ``glm``: exact leave-one-out and the GLM
diagnostics.

Truth: ``glm(family = binomial)`` fits and leave-one-out refits at
``epsilon = 1e-14`` (``tests/data/make_r_references.R``) on 150 rows of the
breast-cancer data, five standardised features, without and with prior weights
(``tests/data/binomial.csv``). The models are unpenalised
(``C=np.inf``), which is what ``glm`` fits.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = {"binomial": False, "binomial_weighted": True}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    name = request.param
    d = pd.read_csv(DATA / "binomial.csv")
    X, y = d.iloc[:, 1:6].to_numpy(), d.y.to_numpy()
    w = d.w.to_numpy() if CASES[name] else None
    ref = pd.read_csv(DATA / "r" / f"{name}.csv")
    coef = pd.read_csv(DATA / "r" / f"{name}_coef.csv").to_numpy()[0]
    loo = ref[[c for c in ref.columns if c.startswith("loo_")]].to_numpy()
    return name, X, y, w, ref, coef, loo


def intercept_last(M):
    M = np.atleast_2d(M)
    return np.column_stack([M[:, 1:], M[:, :1]])


def log_loss(theta, X, y):
    z = X @ theta[1:] + theta[0]
    return np.logaddexp(0.0, z) - y * z


def normwise(a, b):
    a, b = np.atleast_2d(np.asarray(a, float).T).T, np.atleast_2d(np.asarray(b, float).T).T
    return float(np.max(np.abs(a - b).max(axis=0) / np.abs(b).max(axis=0)))


def r_effects(X, y, coef, loo, X_test, y_test):
    """Test log-loss changes at R's leave-one-out refits."""
    refits = np.array([log_loss(t, X_test, y_test) for t in loo]).T
    return refits - log_loss(coef, X_test, y_test)[:, None]


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
@pytest.mark.parametrize("method", ["exact", "refit"])
def test_exact_loo_matches_glm_refits(case, method, tol):
    """Within 1e-10 of the largest effect, whatever the estimator's own tol;
    no exact zeros where R's effects are non-zero."""
    name, X, y, w, ref, coef, loo = case
    model = LogisticRegression(C=np.inf, tol=tol, max_iter=1000).fit(X, y, sample_weight=w)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=w)
    X_test, y_test = X[:20], y[:20]
    truth = r_effects(X, y, coef, loo, X_test, y_test)
    ours = explainer.loo(X_test, y_test, method=method)
    assert np.abs(ours - truth).max() <= 1e-10 * np.abs(truth).max()
    assert np.count_nonzero(ours == 0) == np.count_nonzero(truth == 0) == 0
    assert explainer.loo_info_.converged.all()


def test_a_loose_newton_tolerance_misses_the_target(case):
    """The test above can fail: tol=1e-6 leaves errors far above 1e-10."""
    name, X, y, w, ref, coef, loo = case
    model = LogisticRegression(C=np.inf).fit(X, y, sample_weight=w)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=w)
    truth = r_effects(X, y, coef, loo, X[:20], y[:20])
    ours = explainer.loo(X[:20], y[:20], method="exact", tol=1e-6)
    assert np.abs(ours - truth).max() > 1e-10 * np.abs(truth).max()


def test_glm_diagnostics_match_r(case):
    name, X, y, w, ref, coef, loo = case
    model = LogisticRegression(C=np.inf).fit(X, y, sample_weight=w)
    diag = InfluenceExplainer(model).fit(X, y, sample_weight=w).regression_diagnostics()
    theta = intercept_last(coef)[0]
    checks = {
        "params": (diag.params, theta),
        "leverage": (diag.leverage, ref.hat),
        "pearson": (diag.pearson_residuals, ref.pearson),
        "deviance": (diag.deviance_residuals, ref.deviance),
        "standardized_deviance": (diag.resid_standardized_deviance,
                                  ref.rstandard_deviance),
        "standardized_pearson": (diag.resid_standardized_pearson,
                                 ref.rstandard_pearson),
        "studentized": (diag.resid_studentized, ref.rstudent),
        "cooks": (diag.cooks_distance, ref.cooks),
        "dfbeta": (diag.dfbeta, intercept_last(
            ref[[c for c in ref.columns if c.startswith("dfbeta_")]].to_numpy())),
        "dfbeta_exact": (diag.dfbeta_exact, theta[None, :] - intercept_last(loo)),
    }
    errors = {key: normwise(*pair) for key, pair in checks.items()}
    assert max(errors.values()) <= 1e-10, errors


def test_pregibon_one_step_dfbeta_from_its_formula(case):
    """(X^T W X)^{-1} x_i w_i (y_i - p_i) / (1 - h_i), built from R's fit."""
    name, X, y, w, ref, coef, loo = case
    w = np.ones(len(y)) if w is None else w
    Xt = np.column_stack([np.ones(len(y)), X])
    p = expit(Xt @ coef)
    A = np.linalg.inv(Xt.T @ (Xt * (w * p * (1 - p))[:, None]))
    expected = (Xt * (w * (y - p) / (1 - ref.hat.to_numpy()))[:, None]) @ A
    model = LogisticRegression(C=np.inf).fit(X, y, sample_weight=None if CASES[name] is False else w)
    diag = InfluenceExplainer(model).fit(
        X, y, sample_weight=None if CASES[name] is False else w).regression_diagnostics(
        exact_dfbeta=False)
    assert normwise(diag.dfbeta_one_step, intercept_last(expected)) <= 1e-10
    assert "dfbeta_exact" not in diag
