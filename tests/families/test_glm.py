"""Tweedie GLMs (PoissonRegressor, GammaRegressor, TweedieRegressor) against
independent truths.

* The objective: its gradient equals scikit-learn's own ``LinearModelLoss``
  gradient (with the sample weights normalised to sum 1, as the estimators do)
  at arbitrary parameters, and sklearn's tight fits are stationary points.
* Calculus: gradient and Hessian against central finite differences.
* Test loss: the per-row ``sklearn.metrics.mean_tweedie_deviance``; predictions:
  ``predict``.
* A refit rescales every weight (1 / sum of the remaining weights): the
  removal shift reproduces the gradient of the objective re-bound without the
  row.
* explain against brute-force refits; loo(method="exact") against refits
  polished by Newton steps on sklearn's ``LinearModelLoss``.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.metrics import mean_tweedie_deviance
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.families import TweedieFamily, family_for

TIGHT = {"solver": "newton-cholesky", "tol": 1e-12, "max_iter": 100}


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1), warnings.catch_warnings():
        # newton-cholesky cannot meet an absolute tol of 1e-12 on every scale
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        yield


def _data(power, n=80, p=4, seed=0):
    """Targets drawn from the Tweedie family of ``power`` around a log-linear mean."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    mu = np.exp(1.0 + X @ np.array([0.4, -0.3, 0.2, 0.0])[:p])
    if power == 1:
        y = rng.poisson(mu).astype(float)
    elif 1 < power < 2:  # compound Poisson-gamma: exact zeros and positive values
        counts = rng.poisson(mu / 2)
        y = np.array([rng.gamma(2.0, 1.0, c).sum() for c in counts])
    elif power >= 2:
        y = rng.gamma(4.0, mu / 4.0)
    else:
        y = mu + rng.standard_normal(n)
    return X, y


def _weights(n, seed=1):
    sw = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    sw[:3] = 0.0  # a weight of 0 must behave like a deleted row
    return sw


# (id, estimator, power used to draw y)
CASES = [
    ("poisson", PoissonRegressor(alpha=0.3), 1),
    ("poisson-noint", PoissonRegressor(alpha=0.3, fit_intercept=False), 1),
    ("poisson-unpenalised", PoissonRegressor(alpha=0.0), 1),
    ("gamma", GammaRegressor(alpha=0.3), 2),
    ("tweedie-1.5", TweedieRegressor(power=1.5, alpha=0.3), 1.5),
    ("tweedie-3-inverse-gaussian", TweedieRegressor(power=3, alpha=0.3), 3),
    ("tweedie-2.5", TweedieRegressor(power=2.5, alpha=0.3), 2),
    ("tweedie-0-normal", TweedieRegressor(power=0, alpha=0.3), 0),
    ("tweedie-0-log", TweedieRegressor(power=0, link="log", alpha=0.3), 0),
    ("tweedie-minus1-log", TweedieRegressor(power=-1, link="log", alpha=0.3), 0),
    ("tweedie-0.5-log", TweedieRegressor(power=0.5, alpha=0.3), 1),
    ("tweedie-1-identity", TweedieRegressor(power=1, link="identity", alpha=0.3), 1),
    ("tweedie-2-identity", TweedieRegressor(power=2, link="identity", alpha=0.3), 2),
]
cases = pytest.mark.parametrize("estimator, power", [c[1:] for c in CASES],
                                ids=[c[0] for c in CASES])


def _fit(estimator, power, sparse=False):
    X, y = _data(power)
    sw = _weights(len(y))
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) < 0.4, 0.0, X))
    est = clone(estimator).set_params(**TIGHT).fit(X, y, sample_weight=sw)
    return est, X, y, sw


def _sklearn_loss(est):
    return LinearModelLoss(base_loss=est._base_loss, fit_intercept=est.fit_intercept)


def _sklearn_theta(est):
    return (np.r_[est.coef_, est.intercept_] if est.fit_intercept
            else np.asarray(est.coef_, dtype=float))


@cases
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_sklearn_fit_is_stationary_point_and_prediction_matches(estimator, power, sparse):
    est, X, y, sw = _fit(estimator, power, sparse)
    fam = family_for(est)
    assert isinstance(fam, TweedieFamily)
    assert fam.bind(X, y, sw).relative_gradient_norm() < 1e-8
    np.testing.assert_allclose(fam.predicted(fam.decision(X)), est.predict(X), rtol=1e-12)
    # the check can fail: the fit of other targets is not a stationary point
    other = np.random.default_rng(7).permutation(y)
    assert fam.bind(X, other, sw).relative_gradient_norm() > 1e-3


@cases
def test_gradient_equals_sklearn_objective_gradient(estimator, power):
    """sklearn's LinearModelLoss with weights s / sum(s) is the estimator's
    objective; its gradient must be the family's at arbitrary parameters."""
    est, X, y, sw = _fit(estimator, power)
    fam = family_for(est)
    rng = np.random.default_rng(2)
    for _ in range(3):
        theta = fam.theta * (1 + 0.1 * rng.standard_normal(fam.n_parameters))
        ours = fam.bind(X, y, sw, theta=theta).gradient()
        theirs = _sklearn_loss(est).gradient(theta, X, y, sw / sw.sum(),
                                             l2_reg_strength=est.alpha)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10,
                                   atol=1e-12 * np.abs(theirs).max())


def _central_difference(func, theta, eps):
    cols = []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        cols.append((func(theta + e) - func(theta - e)) / (2 * eps))
    return np.array(cols)


@cases
def test_gradient_and_hessian_match_finite_differences(estimator, power):
    est, X, y, sw = _fit(estimator, power)
    fam = family_for(est)
    theta = fam.theta * (1 + 0.1 * np.random.default_rng(0).standard_normal(fam.n_parameters))
    prob = fam.bind(X, y, sw, theta=theta)
    grad, H = prob.gradient(), prob.hessian()
    numeric = _central_difference(lambda t: fam.bind(X, y, sw, theta=t).objective(),
                                  theta, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7 * np.abs(grad).max())
    numeric = _central_difference(lambda t: fam.bind(X, y, sw, theta=t).gradient(),
                                  theta, 1e-6)
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-6 * np.abs(H).max())
    v = np.random.default_rng(3).standard_normal((fam.n_parameters, 2))
    np.testing.assert_allclose(prob.hvp(v), H @ v, rtol=1e-10, atol=1e-10 * np.abs(H).max())
    # the prediction's derivative (chain rule through the inverse link)
    Z = fam.decision(X[:5], theta)
    step = 1e-6 * np.maximum(1, np.abs(Z))
    numeric = (fam.predicted(Z + step) - fam.predicted(Z - step)) / (2 * step[:, 0])
    np.testing.assert_allclose(fam.predicted_gradient(Z)[:, 0], numeric, rtol=1e-7)


@cases
def test_test_loss_is_the_unit_deviance_of_sklearn_metrics(estimator, power):
    est, X, y, _ = _fit(estimator, power)
    fam = family_for(est)
    mu = est.predict(X)
    ours = fam.loss(fam.encode_target(y), fam.decision(X))
    # twice sklearn's half loss, shifted to zero at mu = y
    raw = fam.decision(X)[:, 0]
    theirs = 2 * (est._base_loss.loss(y, raw) + est._base_loss.constant_to_optimal_zero(y))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    if not 0 < fam.power < 1:  # no Tweedie distribution, no metric
        metric = [mean_tweedie_deviance(y[i:i + 1], mu[i:i + 1], power=fam.power)
                  for i in range(len(y))]
        np.testing.assert_allclose(ours, metric, rtol=1e-10, atol=1e-12)


@cases
def test_removal_shift_gives_gradient_of_the_renormalised_refit_objective(estimator, power):
    """A refit without row i normalises by the remaining weight:
    ``(S - s_i) / S * grad F_{-i} - grad F = -(g_i + s_i / S * alpha w)``."""
    est, X, y, sw = _fit(estimator, power)
    fam = family_for(est)
    prob = fam.bind(X, y, sw)
    shift = fam.removal_shift(prob)
    if est.alpha == 0:
        assert shift is None
        vectors, delta = np.zeros((fam.n_parameters, 1)), np.zeros((len(y), 1))
    else:
        vectors, delta = shift
    removal = prob.row_gradients(X, prob.residuals) - vectors @ delta.T
    S = sw.sum()
    for i in [0, 5, 17, 42, 79]:  # row 0 has weight 0
        keep = np.arange(len(y)) != i
        refit = fam.bind(X[keep], y[keep], sw[keep], theta=prob.theta)
        np.testing.assert_allclose(
            (S - sw[i]) / S * refit.gradient() - prob.gradient(), -removal[:, i],
            rtol=1e-9, atol=1e-9 * np.abs(removal).max())


def _polish(est, X, y, sw, theta):
    """Newton steps on sklearn's own objective (weights normalised)."""
    loss = _sklearn_loss(est)
    for _ in range(40):
        g, H = loss.gradient_hessian(theta, X, y, sw / sw.sum(),
                                     l2_reg_strength=est.alpha)[:2]
        theta = theta - np.linalg.solve(H, g)
    return theta


@pytest.mark.parametrize("estimator, power", [
    (PoissonRegressor(alpha=0.3), 1),
    (GammaRegressor(alpha=1.0), 2),
    (TweedieRegressor(power=3, alpha=0.3), 3),
    (TweedieRegressor(power=2, link="identity", alpha=0.3), 2),
], ids=["poisson", "gamma-strong-penalty", "inverse-gaussian", "gamma-identity"])
def test_explain_and_exact_loo_against_refits(estimator, power):
    est, X, y, sw = _fit(estimator, power)
    X_test, y_test = _data(power, n=6, seed=3)
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    fam = explainer.family_
    theta = _polish(est, X, y, sw, _sklearn_theta(est))
    rows = np.arange(0, len(y), 3)
    for target in (y_test, None):  # the deviance, and the prediction (mean)
        base = fam.test_quantity(X_test, target, theta)
        truth = np.empty((len(X_test), len(rows)))
        for k, i in enumerate(rows):
            keep = np.arange(len(y)) != i
            refit = _polish(est, X[keep], y[keep], sw[keep], theta)
            truth[:, k] = fam.test_quantity(X_test, target, refit) - base
        big = np.abs(truth).max()
        exact = explainer.loo(X_test, target, method="exact", train_indices=rows)
        assert np.abs(exact - truth).max() < 1e-6 * big
        refit = explainer.loo(X_test, target, method="refit", train_indices=rows)
        assert np.abs(refit - truth).max() < 1e-6 * big
        newton = explainer.explain(X_test, target, method="newton")[:, rows]
        first = explainer.explain(X_test, target)[:, rows]
        assert np.corrcoef(newton.ravel(), truth.ravel())[0, 1] > 0.999
        assert np.abs(newton - truth).max() < 0.1 * big
        assert np.corrcoef(first.ravel(), truth.ravel())[0, 1] > 0.97
        # removed rows of weight 0 change nothing
        assert np.all(np.abs(exact[:, 0]) < 1e-9 * big)


def test_without_the_penalty_share_newton_explain_is_worse():
    """The penalty share matters: dropping it degrades the Newton step."""
    est, X, y, sw = _fit(GammaRegressor(alpha=3.0), 2)
    X_test, _ = _data(2, n=6, seed=3)
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    truth = explainer.loo(X_test, method="exact")
    error = np.abs(explainer.explain(X_test, method="newton") - truth).max()
    explainer.influence_.class_shift = None
    crippled = np.abs(explainer.explain(X_test, method="newton") - truth).max()
    assert crippled > 5 * error


def test_negative_curvature_uses_the_primal_hessian():
    """Power 3 (log link) has rows of negative curvature: there is no factor
    J^T J, so the direct solver factorises the dense Hessian even when n < d."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 40))
    y = rng.gamma(1.0, 3.0, 30)
    est = TweedieRegressor(power=3, alpha=0.3, **TIGHT).fit(X, y)
    explainer = InfluenceExplainer(est).fit(X, y)
    prob = explainer.problem_
    assert np.any(prob.curvature < 0) and not prob.factorable
    assert explainer.solver_.diagnostics_["form"] == "primal"
    with pytest.raises(ValueError, match="no factor"):
        prob.hessian_factor()
    direct = np.linalg.solve(prob.hessian(), prob.row_gradients(X[:3], prob.residuals[:3]))
    np.testing.assert_allclose(explainer.solver_.solve(
        prob.row_gradients(X[:3], prob.residuals[:3])), direct, rtol=1e-8, atol=1e-12)


def test_errors_name_the_problem():
    est, X, y, _ = _fit(PoissonRegressor(), 1)
    fam = family_for(est)
    with pytest.raises(ValueError, match="non-negative targets"):
        fam.encode_target(-y)
    with pytest.raises(ValueError, match="positive targets"):
        family_for(GammaRegressor().fit(X, y + 1)).encode_target(np.r_[0.0, y[1:]])
    with pytest.raises(ValueError, match="link must be"):
        TweedieFamily(np.zeros(2), 0.0, link="logit")


def test_prediction_influence_is_the_change_of_predict():
    est, X, y, sw = _fit(PoissonRegressor(alpha=0.3), 1)
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    X_test = _data(1, n=4, seed=3)[0]
    # explain(method="newton") measures from the exact optimum, a step of the
    # fit's residual gradient (about 1e-12 here) away: hence rtol 1e-9
    for method in ("first_order", "newton"):
        np.testing.assert_allclose(explainer.prediction_influence(X_test, method=method),
                                   explainer.explain(X_test, method=method), rtol=1e-9)
    truth = explainer.loo(X_test, method="exact")
    newton = explainer.prediction_influence(X_test, method="newton")
    assert np.abs(newton - truth).max() < 0.05 * np.abs(truth).max()


def test_identity_link_refuses_a_non_positive_mean():
    est, X, y, sw = _fit(TweedieRegressor(power=2, link="identity", alpha=0.3), 2)
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    far = 50 * np.sign(est.coef_)[None, :] * -np.ones((1, X.shape[1]))
    assert est.predict(far)[0] <= 0
    with pytest.raises(ValueError, match="predicts a mean <= 0"):
        explainer.explain(far, y[:1])
    assert np.all(np.isfinite(explainer.explain(far)))  # predictions stay defined
