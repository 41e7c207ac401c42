"""Tests of the model families against independent truths.

* Optimality: an sklearn estimator fitted with a tight tolerance must sit at a
  stationary point of the family's objective (``relative_gradient_norm`` ~ 0).
  This is what proves the objective (weights, C, penalty, intercept handling) is
  the one sklearn minimised.
* Calculus: gradients are checked against central finite differences of the
  objective, Hessians against finite differences of the gradient; the HVP and
  the Hessian factor are checked against the dense Hessian.
* Test loss: the per-sample loss is checked against ``sklearn.metrics``.
* ``class_weight="balanced"``: the removal terms against the gradient of the
  objective re-bound to the data without the row.
* The softmax null space, and the errors raised for unsupported estimators.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    QuantileRegressor,
    Ridge,
    RidgeCV,
)
from sklearn.metrics import hinge_loss, log_loss
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from skinfluence.families import (
    BinaryLogisticFamily,
    LinearSVCFamily,
    MultinomialLogisticFamily,
    SquaredLossFamily,
    family_for,
)


@pytest.fixture(autouse=True)
def _single_thread():
    # many tiny fits: thread pools only slow them down (see DESIGN.md)
    with threadpool_limits(1):
        yield


# ----------------------------------------------------------------- data
BINARY_LABELS = np.array([-1, 4])
MULTI_LABELS = np.array(["ant", "bee", "cat"])


def _classification(n_classes, n=80, p=4, seed=0):
    """Overlapping classes (label noise), so that C=inf has a finite optimum."""
    X, y = make_classification(
        n_samples=n, n_features=p, n_informative=3, n_redundant=0,
        n_classes=n_classes, n_clusters_per_class=1, flip_y=0.2,
        class_sep=0.7, random_state=seed,
    )
    X = StandardScaler().fit_transform(X)
    labels = BINARY_LABELS if n_classes == 2 else MULTI_LABELS
    return X, labels[y]


def _regression(n=60, p=4, seed=0):
    X, y = make_regression(n_samples=n, n_features=p, noise=5.0, bias=3.0,
                           random_state=seed)
    return X, y


def _sample_weight(n, seed=1):
    sw = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    sw[:3] = 0.0  # a weight of 0 must behave like a deleted row
    return sw


def _data(kind):
    if kind == "reg":
        return _regression()
    if kind == "reg-rankdef":
        X, y = _regression()
        return np.hstack([X, X[:, :1]]), y  # duplicated column: rank_ < p
    if kind == "bin":
        return _classification(2)
    if kind == "multi":
        return _classification(3)
    raise ValueError(kind)


# ------------------------------------------------------- fitted estimators
# (id, data kind, estimator, use sample_weight)
NEWTON = dict(solver="newton-cholesky", tol=1e-10, max_iter=1000)
LIBLINEAR = dict(solver="liblinear", tol=1e-8, max_iter=100_000)
PRIMAL_SVC = dict(dual=False, tol=1e-10, max_iter=100_000)

OPTIMUM_CASES = [
    # squared loss
    ("ols", "reg", LinearRegression(), False),
    ("ols-sw", "reg", LinearRegression(), True),
    ("ols-noint", "reg", LinearRegression(fit_intercept=False), True),
    ("ols-rankdef", "reg-rankdef", LinearRegression(), False),
    ("ridge", "reg", Ridge(alpha=3.0), False),
    ("ridge-sw", "reg", Ridge(alpha=3.0), True),
    ("ridge-noint", "reg", Ridge(alpha=3.0, fit_intercept=False), True),
    ("ridge-svd", "reg", Ridge(alpha=0.5, solver="svd"), True),
    ("ridgecv", "reg", RidgeCV(alphas=[0.1, 1.0, 10.0]), False),
    ("ridgecv-sw", "reg", RidgeCV(alphas=[0.1, 1.0, 10.0]), True),
    # binary logistic, every solver
    ("logit-newton-cholesky", "bin", LogisticRegression(C=0.7, **NEWTON), False),
    ("logit-newton-cholesky-sw", "bin", LogisticRegression(C=0.7, **NEWTON), True),
    ("logit-newton-cholesky-noint", "bin",
     LogisticRegression(C=0.7, fit_intercept=False, **NEWTON), True),
    ("logit-lbfgs", "bin",
     LogisticRegression(C=0.7, solver="lbfgs", tol=1e-12, max_iter=10_000), True),
    ("logit-newton-cg", "bin",
     LogisticRegression(C=0.7, solver="newton-cg", tol=1e-12, max_iter=10_000), True),
    ("logit-sag", "bin",
     LogisticRegression(C=0.7, solver="sag", tol=1e-10, max_iter=100_000,
                        random_state=0), True),
    ("logit-saga", "bin",
     LogisticRegression(C=0.7, solver="saga", tol=1e-10, max_iter=100_000,
                        random_state=0), True),
    ("logit-liblinear", "bin", LogisticRegression(C=0.7, **LIBLINEAR), False),
    ("logit-liblinear-is2.5-sw", "bin",
     LogisticRegression(C=0.7, intercept_scaling=2.5, **LIBLINEAR), True),
    ("logit-liblinear-noint", "bin",
     LogisticRegression(C=0.7, fit_intercept=False, **LIBLINEAR), True),
    ("logit-liblinear-dual", "bin",
     LogisticRegression(C=0.7, dual=True, intercept_scaling=2.5, **LIBLINEAR), True),
    ("logit-cw-dict", "bin",
     LogisticRegression(C=0.7, class_weight={-1: 2.0, 4: 0.5}, **NEWTON), True),
    ("logit-cw-balanced", "bin",
     LogisticRegression(C=0.7, class_weight="balanced", **NEWTON), True),
    ("logit-cw-balanced-liblinear", "bin",
     LogisticRegression(C=0.7, class_weight="balanced", intercept_scaling=2.5,
                        **LIBLINEAR), True),
    ("logit-C-inf", "bin", LogisticRegression(C=np.inf, **NEWTON), True),
    ("logit-penalty-None", "bin", LogisticRegression(penalty=None, **NEWTON), True),
    ("logit-penalty-l2", "bin",
     LogisticRegression(penalty="l2", C=0.3, **LIBLINEAR), True),
    ("logitcv", "bin",
     LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                          use_legacy_attributes=False, **NEWTON), True),
    ("logitcv-legacy-balanced", "bin",
     LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                          use_legacy_attributes=True, class_weight="balanced",
                          **NEWTON), True),
    # multinomial logistic
    ("multi-newton-cholesky", "multi", LogisticRegression(C=0.7, **NEWTON), False),
    ("multi-newton-cholesky-sw", "multi", LogisticRegression(C=0.7, **NEWTON), True),
    ("multi-noint", "multi",
     LogisticRegression(C=0.7, fit_intercept=False, **NEWTON), True),
    ("multi-lbfgs", "multi",
     LogisticRegression(C=0.7, solver="lbfgs", tol=1e-12, max_iter=10_000), True),
    ("multi-newton-cg", "multi",
     LogisticRegression(C=0.7, solver="newton-cg", tol=1e-12, max_iter=10_000), True),
    ("multi-sag", "multi",
     LogisticRegression(C=0.7, solver="sag", tol=1e-10, max_iter=100_000,
                        random_state=0), True),
    ("multi-saga", "multi",
     LogisticRegression(C=0.7, solver="saga", tol=1e-10, max_iter=100_000,
                        random_state=0), True),
    ("multi-cw-dict", "multi",
     LogisticRegression(C=0.7, class_weight={"ant": 2.0, "cat": 0.3}, **NEWTON), True),
    ("multi-cw-balanced", "multi",
     LogisticRegression(C=0.7, class_weight="balanced", **NEWTON), True),
    ("multi-C-inf", "multi", LogisticRegression(C=np.inf, **NEWTON), True),
    ("multicv", "multi",
     LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                          use_legacy_attributes=False, **NEWTON), True),
    # LinearSVC, squared hinge
    ("svc-primal", "bin", LinearSVC(C=0.5, **PRIMAL_SVC), False),
    ("svc-primal-sw", "bin", LinearSVC(C=0.5, **PRIMAL_SVC), True),
    ("svc-primal-is2.5", "bin",
     LinearSVC(C=0.5, intercept_scaling=2.5, **PRIMAL_SVC), True),
    ("svc-primal-noint", "bin", LinearSVC(C=0.5, fit_intercept=False, **PRIMAL_SVC), True),
    ("svc-dual", "bin", LinearSVC(C=0.5, dual=True, tol=1e-10, max_iter=100_000), True),
    ("svc-cw-dict", "bin",
     LinearSVC(C=0.5, class_weight={-1: 3.0, 4: 0.5}, **PRIMAL_SVC), True),
    ("svc-cw-balanced", "bin", LinearSVC(C=0.5, class_weight="balanced", **PRIMAL_SVC), True),
    ("svc-ovr", "multi", LinearSVC(C=0.5, **PRIMAL_SVC), False),
    ("svc-ovr-sw-is2.5", "multi",
     LinearSVC(C=0.5, intercept_scaling=2.5, **PRIMAL_SVC), True),
    ("svc-ovr-cw-dict", "multi",
     LinearSVC(C=0.5, class_weight={"ant": 3.0, "bee": 0.4}, **PRIMAL_SVC), True),
    ("svc-ovr-cw-balanced", "multi",
     LinearSVC(C=0.5, class_weight="balanced", **PRIMAL_SVC), True),
    ("svc-ovr-noint", "multi", LinearSVC(C=0.5, fit_intercept=False, **PRIMAL_SVC), True),
]


def _fit(kind, estimator, use_sw, sparse=False):
    X, y = _data(kind)
    sw = _sample_weight(len(y)) if use_sw else None
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    estimator = clone(estimator)
    estimator.fit(X, y, sample_weight=sw)
    return estimator, X, y, sw


@pytest.mark.filterwarnings("ignore::FutureWarning")  # deprecated `penalty`
@pytest.mark.parametrize(
    "kind, estimator, use_sw",
    [case[1:] for case in OPTIMUM_CASES],
    ids=[case[0] for case in OPTIMUM_CASES],
)
def test_fitted_model_is_stationary_point_of_family_objective(kind, estimator, use_sw):
    est, X, y, sw = _fit(kind, estimator, use_sw)
    fam = family_for(est)
    prob = fam.bind(X, y, sample_weight=sw)
    assert prob.gradient().shape == (fam.n_parameters,)
    assert prob.relative_gradient_norm() < 1e-5
    # the family reads the fitted parameters, and predicts what sklearn predicts
    decision = est.decision_function(X) if hasattr(est, "decision_function") else est.predict(X)
    np.testing.assert_allclose(
        fam.decision(X), decision.reshape(len(y), -1), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("kind, estimator", [
    ("bin", LogisticRegression(C=0.7, **NEWTON)),
    ("multi", LogisticRegression(C=0.7, class_weight="balanced", **NEWTON)),
    ("bin", LogisticRegression(C=0.7, intercept_scaling=2.5, **LIBLINEAR)),
    ("multi", LinearSVC(C=0.5, class_weight={"ant": 3.0}, **PRIMAL_SVC)),
], ids=["logit", "multi-balanced", "liblinear", "svc-ovr"])
def test_stationary_point_on_sparse_input(kind, estimator):
    est, X, y, sw = _fit(kind, estimator, True, sparse=True)
    prob = family_for(est).bind(X, y, sample_weight=sw)
    assert prob.relative_gradient_norm() < 1e-5


def test_wrong_data_is_not_a_stationary_point():
    """The check is not vacuous: a model bound to other data is far from optimal."""
    est, X, y, sw = _fit("bin", LogisticRegression(C=0.7, **NEWTON), False)
    X_other, y_other = _classification(2, seed=5)
    assert family_for(est).bind(X_other, y_other).relative_gradient_norm() > 1e-2
    # and neither is one that ignores the class weights it was fitted with
    est, X, y, sw = _fit("bin", LinearSVC(C=0.5, class_weight={-1: 3.0}, **PRIMAL_SVC),
                         False)
    fam = LinearSVCFamily(est.coef_, est.intercept_, est.classes_, C=0.5)
    assert fam.bind(X, y).relative_gradient_norm() > 1e-3


# ------------------------------------------------------- calculus checks
# Families built around arbitrary fitted models; the checks run at a perturbed
# theta, away from the optimum, so that gradients are not zero.
CALCULUS_CASES = [
    ("ridge", "reg", Ridge(alpha=3.0), {}),
    ("ols-noint", "reg", LinearRegression(fit_intercept=False), {}),
    ("logit", "bin", LogisticRegression(C=0.7, class_weight={-1: 2.0}), {}),
    ("logit-liblinear", "bin",
     LogisticRegression(C=0.7, solver="liblinear", intercept_scaling=2.5), {}),
    ("logit-C-inf", "bin", LogisticRegression(C=np.inf, **NEWTON), {}),
    ("multi", "multi", LogisticRegression(C=0.7, class_weight="balanced"), {}),
    ("multi-noint", "multi", LogisticRegression(C=0.7, fit_intercept=False), {}),
    ("svc-sq-hinge", "bin", LinearSVC(C=0.5, intercept_scaling=2.5), {}),
    ("svc-sq-hinge-ovr", "multi",
     LinearSVC(C=0.5, class_weight={"ant": 3.0, "bee": 0.4}), {}),
    ("svc-hinge-t0.1", "bin", LinearSVC(C=0.5, loss="hinge", max_iter=10_000),
     {"smoothing": 0.1}),
    ("svc-hinge-ovr-t0.1", "multi",
     LinearSVC(C=0.5, loss="hinge", class_weight="balanced", max_iter=10_000),
     {"smoothing": 0.1}),
]
calculus_params = pytest.mark.parametrize(
    "kind, estimator, fam_kwargs",
    [case[1:] for case in CALCULUS_CASES],
    ids=[case[0] for case in CALCULUS_CASES],
)
sparsity = pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])


def _perturbed_problem(kind, estimator, fam_kwargs, sparse, seed=0):
    est, X, y, sw = _fit(kind, estimator, True, sparse=sparse)
    fam = family_for(est, **fam_kwargs)
    theta = fam.theta + 0.3 * np.random.default_rng(seed).standard_normal(fam.n_parameters)
    if isinstance(fam, LinearSVCFamily) and fam.loss_name == "squared_hinge":
        # the squared hinge has a kink in its second derivative at margin 1:
        # keep rows well away from it so finite differences are smooth
        margins = fam.encode_target(y) * fam.decision(X, theta)
        keep = np.all(np.abs(1.0 - margins) > 1e-3, axis=1)
        assert keep.sum() > 0.8 * len(y)
        X, y, sw = X[keep], y[keep], sw[keep]
    return fam, X, y, sw, theta


def _central_difference(func, theta, eps):
    cols = []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        cols.append((func(theta + e) - func(theta - e)) / (2 * eps))
    return np.array(cols)


@sparsity
@calculus_params
def test_gradient_matches_finite_differences(kind, estimator, fam_kwargs, sparse):
    fam, X, y, sw, theta = _perturbed_problem(kind, estimator, fam_kwargs, sparse)
    grad = fam.bind(X, y, sw, theta=theta).gradient()
    numeric = _central_difference(
        lambda t: fam.bind(X, y, sw, theta=t).objective(), theta, eps=1e-6
    )
    assert np.linalg.norm(grad) > 1e-2  # not at the optimum
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


@sparsity
@calculus_params
def test_hessian_matches_finite_differences(kind, estimator, fam_kwargs, sparse):
    fam, X, y, sw, theta = _perturbed_problem(kind, estimator, fam_kwargs, sparse)
    H = fam.bind(X, y, sw, theta=theta).hessian()
    numeric = _central_difference(
        lambda t: fam.bind(X, y, sw, theta=t).gradient(), theta, eps=1e-6
    )
    assert H.shape == (fam.n_parameters, fam.n_parameters)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-6 * np.abs(H).max())


def _problems_at_perturbed_and_fitted_theta(kind, estimator, fam_kwargs, sparse):
    fam, X, y, sw, theta = _perturbed_problem(kind, estimator, fam_kwargs, sparse)
    return [fam.bind(X, y, sw, theta=theta), fam.bind(X, y, sw)]


@sparsity
@calculus_params
@pytest.mark.parametrize("n_vectors", [None, 1, 4], ids=["vector", "block1", "block4"])
def test_hvp_matches_dense_hessian(kind, estimator, fam_kwargs, sparse, n_vectors):
    for prob in _problems_at_perturbed_and_fitted_theta(kind, estimator, fam_kwargs, sparse):
        H = prob.hessian()
        shape = (prob.n_parameters,) if n_vectors is None else (prob.n_parameters, n_vectors)
        v = np.random.default_rng(3).standard_normal(shape)
        Hv = prob.hvp(v)
        assert Hv.shape == shape
        np.testing.assert_allclose(Hv, H @ v, rtol=1e-10, atol=1e-10 * np.abs(H).max())


@sparsity
@calculus_params
def test_hessian_factor_reproduces_hessian(kind, estimator, fam_kwargs, sparse):
    for prob in _problems_at_perturbed_and_fitted_theta(kind, estimator, fam_kwargs, sparse):
        H = prob.hessian()
        J = prob.hessian_factor()
        assert sp.issparse(J) == sparse
        assert J.shape == (prob.n_factor_rows, prob.n_parameters)
        JtJ = (J.T @ J).toarray() if sp.issparse(J) else J.T @ J
        np.testing.assert_allclose(
            JtJ + np.diag(prob.penalty), H, rtol=1e-10, atol=1e-10 * np.abs(H).max()
        )


@calculus_params
def test_sparse_and_dense_input_give_the_same_problem(kind, estimator, fam_kwargs):
    fam, X, y, sw, theta = _perturbed_problem(kind, estimator, fam_kwargs, sparse=True)
    dense = fam.bind(X.toarray(), y, sw, theta=theta)
    csr = fam.bind(X, y, sw, theta=theta)
    np.testing.assert_allclose(csr.objective(), dense.objective(), rtol=1e-12)
    np.testing.assert_allclose(csr.gradient(), dense.gradient(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(csr.hessian(), dense.hessian(), rtol=1e-10, atol=1e-10)


def test_smoothed_hinge_objective_is_close_to_hinge_objective():
    """h_t(m) = t log(1 + exp((1-m)/t)) lies within t log 2 of the hinge."""
    est, X, y, sw = _fit("bin", LinearSVC(C=0.5, loss="hinge", max_iter=10_000), True)
    t = 0.1
    fam = family_for(est, smoothing=t)
    prob = fam.bind(X, y, sw)
    margins = fam.encode_target(y)[:, 0] * (X @ est.coef_[0] + est.intercept_[0])
    weights = 0.5 * sw  # C * sample_weight
    hinge_obj = (np.sum(weights * np.maximum(0, 1 - margins))
                 + 0.5 * np.sum(est.coef_**2)
                 + 0.5 * (est.intercept_[0] / est.intercept_scaling) ** 2)
    gap = prob.objective() - hinge_obj
    assert 0 < gap <= t * np.log(2) * weights.sum() + 1e-12


# ------------------------------------------------- class-weight re-balancing
@pytest.mark.parametrize("kind, estimator", [
    ("bin", LogisticRegression(C=0.7, class_weight="balanced")),
    ("multi", LogisticRegression(C=0.7, class_weight="balanced")),
    ("bin", LinearSVC(C=0.5, class_weight="balanced", intercept_scaling=2.5)),
    ("multi", LinearSVC(C=0.5, class_weight="balanced")),
], ids=["logit", "multi", "svc", "svc-ovr"])
def test_removal_terms_give_the_gradient_of_the_rebalanced_refit_objective(kind, estimator):
    """Removing row i changes F by -f_i and by re-balanced class weights.

    The truth is the family bound to the data without row i, where the
    class weights are recomputed by sklearn's ``compute_class_weight``:
    ``grad F_{-i}(theta) - grad F(theta)`` must equal minus the removal
    gradient ``row_scale_i * r_i x~_i - sum_a delta_ia G_a``.
    """
    est, X, y, sw = _fit(kind, estimator, True)
    fam = family_for(est)
    prob = fam.bind(X, y, sw)
    row_scale, delta, class_residuals = fam.removal_terms(y, sw, prob.Y, prob.Z)
    G = np.stack([prob.rows_to_parameters(r) for r in class_residuals], axis=1)
    removal = prob.row_gradients(X, prob.residuals * row_scale) - G @ delta.T
    for i in [0, 5, 17, 42, 79]:  # row 0 has sample weight 0
        keep = np.arange(len(y)) != i
        refit = fam.bind(X[keep], y[keep], sw[keep], theta=prob.theta)
        np.testing.assert_allclose(
            refit.gradient() - prob.gradient(), -removal[:, i],
            rtol=1e-9, atol=1e-9 * np.abs(removal).max(),
        )


def test_removal_terms_are_none_without_balanced_class_weights():
    est, X, y, sw = _fit("bin", LogisticRegression(class_weight={-1: 2.0}), True)
    fam = family_for(est)
    prob = fam.bind(X, y, sw)
    assert fam.removal_terms(y, sw, prob.Y, prob.Z) is None


# ---------------------------------------------------------------- test loss
def _one_hot_weight(n, i):
    w = np.zeros(n)
    w[i] = 1.0
    return w


@pytest.mark.parametrize("kind", ["bin", "multi"])
def test_logistic_loss_is_per_sample_log_loss(kind):
    est, X, y, sw = _fit(kind, LogisticRegression(C=0.7, class_weight="balanced"), True)
    fam = family_for(est)
    assert isinstance(fam, BinaryLogisticFamily if kind == "bin" else MultinomialLogisticFamily)
    X_test, y_test = _classification(len(est.classes_), n=25, seed=7)
    loss = fam.loss(fam.encode_target(y_test), fam.decision(X_test))
    proba = est.predict_proba(X_test)
    expected = [
        log_loss(y_test, proba, sample_weight=_one_hot_weight(len(y_test), i),
                 labels=est.classes_)
        for i in range(len(y_test))
    ]
    assert loss.shape == (len(y_test),)
    np.testing.assert_allclose(loss, expected, rtol=1e-10)
    # unweighted and unpenalised: the sum is sklearn's un-normalised log-loss
    np.testing.assert_allclose(
        loss.sum(), log_loss(y_test, proba, normalize=False, labels=est.classes_),
        rtol=1e-10,
    )


def test_logistic_loss_is_accurate_for_confident_predictions():
    fam = BinaryLogisticFamily(np.array([[1.0]]), np.array([0.0]), BINARY_LABELS)
    Z = np.array([[800.0], [-800.0], [40.0]])
    loss = fam.loss(fam.encode_target(np.array([-1, -1, 4])), Z)
    np.testing.assert_allclose(loss, [800.0, 0.0, np.log1p(np.exp(-40.0))], rtol=1e-12)


def test_squared_loss_is_squared_error():
    est, X, y, sw = _fit("reg", Ridge(alpha=3.0), True)
    fam = family_for(est)
    assert isinstance(fam, SquaredLossFamily)
    X_test, y_test = _regression(n=20, seed=3)
    loss = fam.loss(fam.encode_target(y_test), fam.decision(X_test))
    np.testing.assert_allclose(loss, (y_test - est.predict(X_test)) ** 2, rtol=1e-12)


@pytest.mark.parametrize("kind", ["bin", "multi"])
def test_hinge_test_loss_is_sklearn_hinge_loss_summed_over_ovr_problems(kind):
    est, X, y, sw = _fit(kind, LinearSVC(C=0.5, loss="hinge", max_iter=10_000), True)
    fam = family_for(est, smoothing=0.1)  # smoothing is for training only
    X_test, y_test = _classification(len(est.classes_), n=25, seed=7)
    loss = fam.loss(fam.encode_target(y_test), fam.decision(X_test))
    dec = est.decision_function(X_test).reshape(len(y_test), -1)
    n = len(y_test)
    if kind == "bin":
        problems = [(y_test, dec[:, 0])]
    else:  # one-vs-rest: binary problem k is "class k" against the rest
        problems = [(y_test == c, dec[:, k]) for k, c in enumerate(est.classes_)]
    expected = [
        sum(hinge_loss(yk, dk, sample_weight=_one_hot_weight(n, i)) for yk, dk in problems)
        for i in range(n)
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", ["bin", "multi"])
def test_squared_hinge_test_loss(kind):
    est, X, y, sw = _fit(kind, LinearSVC(C=0.5, **PRIMAL_SVC), False)
    fam = family_for(est)
    X_test, y_test = _classification(len(est.classes_), n=25, seed=7)
    loss = fam.loss(fam.encode_target(y_test), fam.decision(X_test))
    dec = est.decision_function(X_test).reshape(len(y_test), -1)
    if kind == "bin":
        sign = np.where(y_test == est.classes_[1], 1.0, -1.0)[:, None]
    else:
        sign = np.where(y_test[:, None] == est.classes_[None, :], 1.0, -1.0)
    np.testing.assert_allclose(
        loss, (np.maximum(0.0, 1.0 - sign * dec) ** 2).sum(axis=1), rtol=1e-12
    )


# ---------------------------------------------------------- softmax null space
@pytest.mark.parametrize("estimator, expected_dim", [
    (LogisticRegression(C=0.7, **NEWTON), 1),  # the intercepts
    (LogisticRegression(C=np.inf, **NEWTON), 5),  # every column: p + 1
    (LogisticRegression(C=0.7, fit_intercept=False, **NEWTON), 0),
], ids=["free-intercept", "C-inf", "no-intercept"])
def test_multinomial_null_space(estimator, expected_dim):
    est, X, y, sw = _fit("multi", estimator, True)
    fam = family_for(est)
    N = fam.null_space()
    if expected_dim == 0:
        assert N is None
        return
    assert N.shape == (fam.n_parameters, expected_dim)
    np.testing.assert_allclose(N.T @ N, np.eye(expected_dim), atol=1e-12)
    theta = fam.theta + 0.3 * np.random.default_rng(0).standard_normal(fam.n_parameters)
    for at in (None, theta):
        prob = fam.bind(X, y, sw, theta=at)
        H = prob.hessian()
        np.testing.assert_allclose(H @ N, 0.0, atol=1e-10 * np.abs(H).max())
        # every row's gradient is orthogonal to the null space
        G = prob.row_gradients(X, prob.residuals)
        assert G.shape == (fam.n_parameters, len(y))
        np.testing.assert_allclose(N.T @ G, 0.0, atol=1e-12 * np.abs(G).max())
        # moving along the null space changes neither the objective nor the
        # predicted probabilities (independent of the Hessian code)
        shifted = (prob.theta if at is None else at) + N @ np.full(expected_dim, 2.5)
        moved = fam.bind(X, y, sw, theta=shifted)
        np.testing.assert_allclose(moved.objective(), prob.objective(), rtol=1e-12)
    # the Hessian is positive definite on the complement of the null space
    H = fam.bind(X, y, sw).hessian()
    Q = np.linalg.svd(np.eye(fam.n_parameters) - N @ N.T)[0][:, : fam.n_parameters - expected_dim]
    assert np.linalg.eigvalsh(Q.T @ H @ Q).min() > 1e-8 * np.abs(H).max()


def test_multinomial_hessian_is_nonsingular_without_free_directions():
    est, X, y, sw = _fit("multi", LogisticRegression(C=0.7, fit_intercept=False, **NEWTON),
                         True)
    H = family_for(est).bind(X, y, sw).hessian()
    assert np.linalg.eigvalsh(H).min() > 1e-8 * np.abs(H).max()


# -------------------------------------------------------------------- errors
SUPPORTED = ["LinearRegression", "Ridge", "RidgeCV", "LogisticRegression",
             "LogisticRegressionCV", "LinearSVC"]


@pytest.mark.parametrize("estimator, kind", [
    (QuantileRegressor(alpha=0.1), "reg"),
    (SVC(kernel="linear"), "bin"),
], ids=["QuantileRegressor", "SVC"])
def test_unsupported_estimator_raises_type_error_naming_supported(estimator, kind):
    X, y = _data(kind)
    estimator.fit(X, y)
    with pytest.raises(TypeError, match=type(estimator).__name__) as excinfo:
        family_for(estimator)
    for name in SUPPORTED:
        assert name in str(excinfo.value)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # deprecated `penalty`
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:Inconsistent values:UserWarning")  # penalty wins
@pytest.mark.parametrize("estimator, kind, match", [
    (LinearSVC(penalty="l1", dual=False), "bin", "penalty='l1'"),
    (LinearSVC(multi_class="crammer_singer"), "multi", "crammer_singer"),
], ids=["svc-l1", "svc-crammer-singer"])
def test_non_smooth_or_unsupported_options_raise_value_error(estimator, kind, match):
    X, y = _data(kind)
    estimator.fit(X, y)
    with pytest.raises(ValueError, match=match):
        family_for(estimator)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # deprecated `penalty`
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator, kind", [
    (LogisticRegression(l1_ratio=1, solver="saga"), "bin"),
    (LogisticRegression(l1_ratio=0.5, solver="saga"), "multi"),
    (LogisticRegression(penalty="l1", solver="liblinear"), "bin"),
    (LogisticRegression(penalty="elasticnet", l1_ratio=0.5, solver="saga"), "bin"),
], ids=["logit-l1", "logit-enet", "logit-penalty-l1", "logit-penalty-enet"])
@pytest.mark.filterwarnings("ignore:Inconsistent values:UserWarning")  # penalty= is deprecated
def test_l1_logistic_goes_to_the_active_set_families_and_l2_ones_refuse_it(
        estimator, kind):
    X, y = _data(kind)
    estimator.fit(X, y)
    assert family_for(estimator).exact_engine == "active_set"
    single = BinaryLogisticFamily if kind == "bin" else MultinomialLogisticFamily
    with pytest.raises(ValueError, match="L1"):
        single.from_estimator(estimator)


def test_family_for_dispatch():
    X, y = _data("bin")
    X3, y3 = _data("multi")
    Xr, yr = _data("reg")
    assert isinstance(family_for(LogisticRegression().fit(X, y)), BinaryLogisticFamily)
    assert isinstance(family_for(LogisticRegression().fit(X3, y3)), MultinomialLogisticFamily)
    assert isinstance(family_for(LinearSVC().fit(X3, y3)), LinearSVCFamily)
    assert isinstance(family_for(RidgeCV().fit(Xr, yr)), SquaredLossFamily)

    class MyRidge(Ridge):  # subclasses are accepted
        pass

    assert isinstance(family_for(MyRidge().fit(Xr, yr)), SquaredLossFamily)
