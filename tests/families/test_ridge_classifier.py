"""RidgeClassifier and RidgeClassifierCV against independent truths: stationarity
at scikit-learn's fit, scikit-learn's own label binarisation and sample
reweighting, finite differences, brute-force leave-one-out refits written out
here, and the leave-one-out errors RidgeClassifierCV stores."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from conftest import digits
from skinfluence import InfluenceExplainer
from skinfluence.families import RidgeClassifierFamily, family_for


@pytest.fixture(autouse=True)
def _single_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module", params=[[1, 7], [0, 1, 2]], ids=["binary", "3-class"])
def data(request):
    X_train, X_test, y_train, y_test = digits(request.param)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y_train))
    sw[:2] = 0.0  # rows of weight 0 still count in "balanced"
    return X_train, X_test, y_train, y_test, sw


def class_weights(classes):
    return [None, {classes[0]: 3.0, classes[-1]: 0.5}, "balanced"]


CW_IDS = ["no-cw", "cw-dict", "balanced"]


def brute_force_loo(model, X, y, sw, X_test, y_test, rows):
    """Change of the squared +-1 loss of each test row when each training row of
    ``rows`` is removed, by refits of clones."""
    binarizer = LabelBinarizer(neg_label=-1, pos_label=1).fit(y)
    Y_test = binarizer.transform(y_test)

    def loss(m):
        return ((Y_test - m.decision_function(X_test).reshape(len(y_test), -1)) ** 2
                ).sum(axis=1)

    base = loss(clone(model).fit(X, y, sample_weight=sw))
    out = []
    for i in rows:
        keep = np.arange(len(y)) != i
        out.append(loss(clone(model).fit(X[keep], y[keep], sample_weight=sw[keep]))
                   - base)
    return np.array(out).T


@pytest.mark.parametrize("cw_index", range(3), ids=CW_IDS)
@pytest.mark.parametrize("cv", [False, True], ids=["RidgeClassifier", "RidgeClassifierCV"])
def test_sklearn_fit_is_stationary_point(data, cw_index, cv):
    X, _, y, _, sw = data
    cw = class_weights(np.unique(y))[cw_index]
    model = (RidgeClassifierCV(alphas=[1.0, 10.0, 100.0], class_weight=cw) if cv
             else RidgeClassifier(alpha=10.0, class_weight=cw))
    model.fit(X, y, sample_weight=sw)
    family = family_for(model)
    assert isinstance(family, RidgeClassifierFamily)
    assert family.bind(X, y, sw).relative_gradient_norm() < 1e-10
    np.testing.assert_allclose(family.decision(X),
                               model.decision_function(X).reshape(len(y), -1),
                               rtol=1e-12, atol=1e-12)
    # the targets are scikit-learn's +-1 binarisation, the weights its reweighting
    np.testing.assert_array_equal(
        family.encode_target(y), LabelBinarizer(neg_label=-1, pos_label=1).fit_transform(y))
    expected = sw * (1.0 if cw is None else compute_sample_weight(cw, y))
    np.testing.assert_allclose(family.row_weights(y, sw), np.repeat(
        expected[:, None], family.n_outputs, axis=1), rtol=1e-12)


def test_ignoring_the_class_weights_is_not_a_stationary_point(data):
    X, _, y, _, sw = data
    model = RidgeClassifier(alpha=10.0, class_weight="balanced").fit(X, y, sample_weight=sw)
    family = family_for(model)
    family.class_weight = None
    assert family.bind(X, y, sw).relative_gradient_norm() > 1e-6


def test_sparse_input():
    X, _, y, _ = digits([0, 1, 2])
    X = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    model = RidgeClassifier(alpha=10.0, solver="sparse_cg", tol=1e-14).fit(X, y)
    assert family_for(model).bind(X, y).relative_gradient_norm() < 1e-8


def test_derivatives_match_finite_differences(data):
    X, _, y, _, sw = data
    model = RidgeClassifier(alpha=10.0, class_weight="balanced").fit(X, y, sample_weight=sw)
    family = family_for(model)
    theta = family.theta + 0.1 * np.random.default_rng(1).normal(size=family.n_parameters)
    problem = family.bind(X, y, sw, theta)
    eps = 1e-6
    cols_g, cols_h = [], []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        plus, minus = family.bind(X, y, sw, theta + e), family.bind(X, y, sw, theta - e)
        cols_g.append((plus.objective() - minus.objective()) / (2 * eps))
        cols_h.append((plus.gradient() - minus.gradient()) / (2 * eps))
    grad, H = problem.gradient(), problem.hessian()
    np.testing.assert_allclose(grad, cols_g, rtol=1e-6, atol=1e-6 * np.abs(grad).max())
    np.testing.assert_allclose(H, np.array(cols_h).T, rtol=1e-6, atol=1e-6 * np.abs(H).max())


def test_balanced_removal_terms_and_weights_are_those_of_the_refit(data):
    """The refit without row i weighs the other rows by
    ``sw * compute_sample_weight("balanced", y_without_i)``."""
    X, _, y, _, sw = data
    model = RidgeClassifier(alpha=10.0, class_weight="balanced").fit(X, y, sample_weight=sw)
    family = family_for(model)
    problem = family.bind(X, y, sw)
    row_scale, delta, class_residuals = family.removal_terms(y, sw, problem.Y, problem.Z)
    G = np.stack([problem.rows_to_parameters(r) for r in class_residuals], axis=1)
    removal = problem.row_gradients(X, problem.residuals * row_scale) - G @ delta.T
    for i in [0, 5, 17, 42]:  # row 0 has sample weight 0 but still counts
        keep = np.arange(len(y)) != i
        expected = sw[keep] * compute_sample_weight("balanced", y[keep])
        weights = family.removal_weights(y, sw, i)
        assert weights[i].max() == 0.0
        np.testing.assert_allclose(weights[keep, 0], expected, rtol=1e-12)
        refit = family.bind(X[keep], y[keep], sw[keep], theta=problem.theta)
        np.testing.assert_allclose(refit.gradient() - problem.gradient(), -removal[:, i],
                                   rtol=1e-9, atol=1e-9 * np.abs(removal).max())


@pytest.mark.parametrize("cw_index", range(3), ids=CW_IDS)
def test_explain_and_exact_loo_against_brute_force_refits(data, cw_index):
    X, X_test, y, y_test, sw = data
    cw = class_weights(np.unique(y))[cw_index]
    model = RidgeClassifier(alpha=10.0, class_weight=cw).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    X_test, y_test = X_test[:4], y_test[:4]
    rows = np.r_[0, 1, np.arange(2, len(y), 5)]  # rows 0 and 1 have weight 0
    truth = brute_force_loo(model, X, y, sw, X_test, y_test, rows)
    scale = np.abs(truth).max()
    for method, tol in [("exact", 1e-10), ("refit", 1e-10), ("newton", 1e-7)]:
        np.testing.assert_allclose(
            explainer.loo(X_test, y_test, method=method, train_indices=rows), truth,
            rtol=0, atol=tol * scale)
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    if cw != "balanced":  # squared loss: one Newton step is exact
        np.testing.assert_allclose(newton, truth, rtol=0, atol=1e-10 * scale)
    else:  # the re-balancing enters linearly
        assert np.corrcoef(newton.ravel(), truth.ravel())[0, 1] > 0.9999
    first = explainer.explain(X_test, y_test)[:, rows]
    assert np.corrcoef(first.ravel(), truth.ravel())[0, 1] > 0.95
    # without labels: the loss at the predicted class
    predicted = model.predict(X_test)
    np.testing.assert_allclose(explainer.explain(X_test, method="newton"),
                               explainer.explain(X_test, predicted, method="newton"))


def test_decision_function_influence_against_refits(data):
    X, X_test, y, _, sw = data
    model = RidgeClassifier(alpha=10.0).fit(X, y, sample_weight=sw)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
    shift = explainer.prediction_influence(X_test[:3], method="newton")
    base = model.decision_function(X_test[:3])
    for i in [3, 30]:
        keep = np.arange(len(y)) != i
        refit = clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
        np.testing.assert_allclose(shift[:, i], refit.decision_function(X_test[:3]) - base,
                                   rtol=0, atol=1e-10 * np.abs(base).max())


@pytest.mark.parametrize("cw", [None, "dict"])
def test_exact_loo_reproduces_ridgeclassifiercv_stored_loo_errors(data, cw):
    """RidgeClassifierCV (cv=None) stores ``s_i cw_i (Y_ik - z_{-i,k})^2``."""
    X, _, y, _, sw = data
    sw = sw + 0.5  # RidgeClassifierCV's GCV needs positive weights
    cw = None if cw is None else class_weights(np.unique(y))[1]
    alphas = [1.0, 10.0]
    cv = RidgeClassifierCV(alphas=alphas, class_weight=cw, store_cv_results=True).fit(
        X, y, sample_weight=sw)
    explainer = InfluenceExplainer(cv).fit(X, y, sample_weight=sw)
    family = explainer.family_
    shift = explainer.prediction_influence(X, method="newton").reshape(len(y), len(y), -1)
    loo_decision = family.decision(X) + np.einsum("iik->ik", shift)
    weights = family.row_weights(y, sw)
    errors = weights * (family.encode_target(y) - loo_decision) ** 2
    stored = cv.cv_results_[..., alphas.index(cv.alpha_)].reshape(errors.shape)
    np.testing.assert_allclose(errors, stored, rtol=0, atol=1e-10 * np.abs(stored).max())


def test_errors_name_the_fix():
    X, _, y, _ = digits([0, 1, 2])
    multilabel = np.column_stack([y == 0, y == 1]).astype(int)
    with pytest.raises(ValueError, match="multilabel"):
        family_for(RidgeClassifier().fit(X, multilabel))
    with pytest.raises(ValueError, match="positive=True"):
        family_for(RidgeClassifier(positive=True, solver="lbfgs").fit(X, y))
    explainer = InfluenceExplainer(RidgeClassifier().fit(X, y)).fit(X, y)
    with pytest.raises(ValueError, match="not fitted on"):
        explainer.explain(X[:2], np.array([0, 9]))
