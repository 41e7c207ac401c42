"""Influence on functionals against finite differences of the functional, against
the functional of scikit-learn refits, and against its exact leave-one-out
change."""

import tracemalloc

import numpy as np
import pytest
from conftest import digits
from scipy.stats import pearsonr
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.applications import FUNCTIONALS, functional_of

GROUPED = ("worst_group_loss", "demographic_parity", "equal_opportunity", "fpr_gap")


@pytest.fixture(scope="module")
def binary():
    X_train, X_val, y_train, y_val = digits([1, 7])
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=5000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    groups = (X_val[:, 10] > 0).astype(int)  # a pixel as the "sensitive" attribute
    return explainer, model, X_train, y_train, X_val, y_val, groups


def _cancer_split():
    """Breast cancer, 70/30 stratified, standardised on the training rows."""
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3,
                                                      random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


@pytest.fixture(scope="module")
def cancer():
    X_train, X_val, y_train, y_val = _cancer_split()
    # C=1, where one row moves validation logits by 5: test_long_steps_...
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=5000).fit(X_train, y_train)
    groups = (X_val[:, 0] > 0).astype(int)  # mean radius above average
    return InfluenceExplainer(model).fit(X_train, y_train), X_val, y_val, groups


@pytest.mark.parametrize("name", FUNCTIONALS)
def test_gradient_matches_finite_differences(binary, name):
    explainer, _, _, _, X_val, y_val, groups = binary
    F = functional_of(explainer.family_, name, y_val, groups, temperature=0.7,
                      targets=y_val)
    rng = np.random.default_rng(0)
    Z = explainer.family_.decision(X_val) + 0.3 * rng.normal(size=(len(y_val), 1))
    _, gradient = F(Z)
    assert gradient.shape == Z.shape
    h = 1e-6
    for j in rng.choice(len(y_val), 6, replace=False):
        up, down = Z.copy(), Z.copy()
        up[j, 0] += h
        down[j, 0] -= h
        numeric = (F(up)[0] - F(down)[0]) / (2 * h)
        assert numeric == pytest.approx(gradient[j, 0], rel=1e-5, abs=1e-9)


def test_multiclass_accuracy_gradient_matches_finite_differences():
    X_train, X_val, y_train, y_val = digits([0, 1, 2])
    model = LogisticRegression(C=0.1).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    F = functional_of(explainer.family_, "accuracy", y_val, temperature=2.0)
    Z = explainer.family_.decision(X_val)
    _, gradient = F(Z)
    h = 1e-6
    for j, k in [(0, 0), (3, 2), (10, 1)]:
        up, down = Z.copy(), Z.copy()
        up[j, k] += h
        down[j, k] -= h
        assert (F(up)[0] - F(down)[0]) / (2 * h) == pytest.approx(gradient[j, k],
                                                                rel=1e-5)


def test_values_are_the_stated_quantities(binary):
    _, model, _, _, X_val, y_val, groups = binary
    family = InfluenceExplainer(model).fit(*binary[2:4]).family_
    Z = family.decision(X_val)
    P = model.predict_proba(X_val)[:, 1]
    dp = functional_of(family, "demographic_parity", None, groups)(Z)[0]
    assert dp == pytest.approx(P[groups == 1].mean() - P[groups == 0].mean(), rel=1e-12)
    positive = y_val == model.classes_[1]
    eo = functional_of(family, "equal_opportunity", y_val, groups)(Z)[0]
    assert eo == pytest.approx(P[positive & (groups == 1)].mean()
                               - P[positive & (groups == 0)].mean(), rel=1e-12)
    fpr = functional_of(family, "fpr_gap", y_val, groups)(Z)[0]
    assert fpr == pytest.approx(P[~positive & (groups == 1)].mean()
                                - P[~positive & (groups == 0)].mean(), rel=1e-12)
    accuracy = functional_of(family, "accuracy", y_val)(Z)[0]
    assert accuracy == pytest.approx(np.where(positive, P, 1 - P).mean(), rel=1e-12)
    # the AUC surrogate tends to the AUC as the temperature goes to 0
    auc = functional_of(family, "roc_auc", y_val, temperature=1e-6)(Z)[0]
    assert auc == pytest.approx(roc_auc_score(y_val, Z[:, 0]), abs=1e-6)


def test_mean_loss_is_validation_influence_over_n(binary):
    explainer, *_, X_val, y_val, _ = binary
    ours = explainer.functional_influence(X_val, "mean_loss", y_val,
                                          method="first_order")
    net = explainer.validation_influence(X_val, y_val)
    np.testing.assert_allclose(ours * len(y_val), net, rtol=1e-10,
                               atol=1e-14 * np.abs(net).max())


@pytest.mark.parametrize("name", ["mean_loss", "demographic_parity"])
def test_exact_is_the_functional_of_sklearn_refits(binary, name):
    explainer, _, X_train, y_train, X_val, y_val, groups = binary
    exact = explainer.functional_influence(X_val, name, y_val, groups, method="exact")
    tight = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-12,
                               max_iter=1000)
    family = explainer.family_
    F = functional_of(family, name, y_val, groups, targets=y_val)

    def value(m):
        Z = m.decision_function(X_val)[:, None]
        return F(Z)[0]

    base = value(clone(tight).fit(X_train, y_train))
    for i in (0, 17, 90):
        keep = np.arange(len(y_train)) != i
        truth = value(clone(tight).fit(X_train[keep], y_train[keep])) - base
        assert exact[i] == pytest.approx(truth, rel=1e-5, abs=1e-7 * np.abs(exact).max())


def _pearson(explainer, X_val, y_val, groups, name, train_groups=None):
    kw = {"train_groups": train_groups}
    newton = explainer.functional_influence(X_val, name, y_val, groups, **kw)
    exact = explainer.functional_influence(X_val, name, y_val, groups,
                                           method="exact", **kw)
    return pearsonr(newton, exact)[0]


@pytest.mark.parametrize("name", ["mean_loss", "demographic_parity"])
def test_newton_tracks_exact_leave_one_out(binary, cancer, name):
    explainer, *_, X_val, y_val, groups = binary
    assert _pearson(explainer, X_val, y_val, groups, name) > 0.99
    explainer, X_val, y_val, groups = cancer
    assert _pearson(explainer, X_val, y_val, groups, name) > 0.99


@pytest.mark.parametrize("name", ["mean_loss", "demographic_parity"])
def test_newton_tracks_exact_groups_of_ten(binary, name):
    explainer, *_, X_val, y_val, groups = binary
    n = explainer.problem_.n_samples
    train_groups = np.random.default_rng(0).permutation(n) // 10
    result = explainer.functional_influence(X_val, name, y_val, groups,
                                            train_groups=train_groups)
    assert result.shape == (int(np.ceil(n / 10)),)
    assert _pearson(explainer, X_val, y_val, groups, name, train_groups) > 0.99


def test_long_steps_are_computed_exactly():
    """Breast cancer at C=1: one row's Newton step has local norm 1.6 and its
    one-step estimate of the mean loss is 40% short. Removals with a step
    longer than ``exact_above`` are computed at their exact optimum, which
    lifts the agreement above 0.99; without it the check fails."""
    from skinfluence.applications.functionals import far_steps

    X_train, X_val, y_train, y_val = _cancer_split()
    model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    groups = (X_val[:, 0] > 0).astype(int)
    far = far_steps(explainer.influence_, 0.5)
    assert 0 < far.size <= 0.05 * len(y_train)
    train_groups = np.random.default_rng(0).permutation(len(y_train)) // 10
    for name in ("mean_loss", "demographic_parity"):
        for removal in (None, train_groups):
            run = lambda **kw: np.asarray(explainer.functional_influence(  # noqa: E731
                X_val, name, y_val, groups, train_groups=removal, **kw))
            exact, newton, plain = run(method="exact"), run(), run(exact_above=None)
            assert pearsonr(newton, exact)[0] > 0.99
            if removal is None:
                np.testing.assert_allclose(newton[far], exact[far], rtol=0,
                                           atol=1e-10 * np.abs(exact).max())
                if name == "mean_loss":  # the one-step estimate alone misses
                    assert pearsonr(plain, exact)[0] < 0.99


def test_linear_functional_of_ridge_is_exact_by_newton():
    """For squared loss the leverage-corrected step is the exact leave-one-out
    step, so a functional linear in the predictions is exact."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=60)
    explainer = InfluenceExplainer(Ridge(alpha=2.0).fit(X, y)).fit(X, y)
    X_val = rng.normal(size=(20, 4))
    groups = np.arange(20) % 2
    newton = explainer.functional_influence(X_val, "demographic_parity",
                                            groups=groups)
    truth = []
    base = Ridge(alpha=2.0).fit(X, y).predict(X_val)
    base = base[groups == 1].mean() - base[groups == 0].mean()
    for i in range(60):
        keep = np.arange(60) != i
        p = Ridge(alpha=2.0).fit(X[keep], y[keep]).predict(X_val)
        truth.append(p[groups == 1].mean() - p[groups == 0].mean() - base)
    np.testing.assert_allclose(newton, truth, rtol=0, atol=1e-10 * np.abs(truth).max())
    first = explainer.functional_influence(X_val, "demographic_parity",
                                           groups=groups, method="first_order")
    assert np.abs(first - truth).max() > 1e-6 * np.abs(truth).max()  # it can fail


def test_quadratic_functional_of_ridge_is_exact_with_the_second_order_term():
    """The mean squared error is quadratic in the predictions: the exact step
    plus the curvature term is exact leave-one-out (and leave-group-out)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 0.5, -1.0] + rng.normal(size=50)
    X_val = rng.normal(size=(15, 3))
    y_val = X_val @ [1.0, 0.5, -1.0] + rng.normal(size=15)
    explainer = InfluenceExplainer(Ridge(alpha=1.0).fit(X, y)).fit(X, y)
    groups = [np.arange(g, g + 10) for g in range(0, 50, 10)]

    def mse(keep):
        return np.mean((Ridge(alpha=1.0).fit(X[keep], y[keep]).predict(X_val)
                        - y_val) ** 2)

    base = mse(np.ones(50, dtype=bool))
    rows = [mse(np.arange(50) != i) - base for i in range(50)]
    blocks = [mse(~np.isin(np.arange(50), g)) - base for g in groups]
    for truth, train_groups in ((rows, None), (blocks, groups)):
        ours = explainer.functional_influence(X_val, "mean_loss", y_val,
                                              train_groups=train_groups)
        np.testing.assert_allclose(ours, truth, rtol=0,
                                   atol=1e-10 * np.abs(truth).max())
        linear = explainer.functional_influence(X_val, "mean_loss", y_val,
                                                second_order=False,
                                                train_groups=train_groups)
        assert np.abs(linear - truth).max() > 1e-3 * np.abs(truth).max()


def test_balanced_class_weight_and_multiclass():
    X_train, X_val, y_train, y_val = digits([1, 7])
    keep = (y_train == 1) | (np.arange(len(y_train)) % 3 == 0)  # imbalanced
    X_train, y_train = X_train[keep], y_train[keep]
    model = LogisticRegression(C=0.1, class_weight="balanced", tol=1e-10,
                               max_iter=5000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    assert _pearson(explainer, X_val, y_val, None, "mean_loss") > 0.99
    X_train, X_val, y_train, y_val = digits([0, 1, 2])
    model = LogisticRegression(C=0.1, tol=1e-10, max_iter=5000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    assert _pearson(explainer, X_val, y_val, None, "accuracy") > 0.99


def test_user_callable(binary):
    explainer, *_, X_val, y_val, _ = binary
    family = explainer.family_

    def mean_loss(Z, y, groups):
        Y = family.encode_target(y)
        return family.loss(Y, Z).mean(), family.loss_gradient(Y, Z) / len(y)

    def with_curvature(Z, y, groups):
        Y = family.encode_target(y)
        return (*mean_loss(Z, y, groups), family.loss_hessian(Y, Z) / len(y))

    np.testing.assert_allclose(
        explainer.functional_influence(X_val, mean_loss, y_val),
        explainer.functional_influence(X_val, "mean_loss", y_val, second_order=False),
        rtol=1e-12)
    np.testing.assert_allclose(
        explainer.functional_influence(X_val, with_curvature, y_val),
        explainer.functional_influence(X_val, "mean_loss", y_val), rtol=1e-12)
    with pytest.raises(ValueError, match="gradient must have the shape of Z"):
        explainer.functional_influence(X_val, lambda Z, y, g: (0.0, np.ones(3)))


def test_worst_group_is_the_worst_groups_mean_loss(binary):
    explainer, *_, X_val, y_val, _ = binary
    groups = np.arange(len(y_val)) % 3
    worst = explainer.functional_influence(X_val, "worst_group_loss", y_val, groups)
    Z = explainer.family_.decision(X_val)
    loss = explainer.family_.loss(explainer.family_.encode_target(y_val), Z)
    g = np.argmax([loss[groups == v].mean() for v in range(3)])
    members = groups == g
    alone = explainer.functional_influence(X_val[members], "mean_loss", y_val[members])
    np.testing.assert_allclose(worst, alone, rtol=1e-12)


def test_never_the_eval_by_train_matrix():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 5))
    y = (X[:, 0] + rng.normal(size=20_000) > 0).astype(int)
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    X_val = rng.normal(size=(5_000, 5))
    groups = (X_val[:, 1] > 0).astype(int)
    explainer.functional_influence(X_val[:10], "demographic_parity", groups=groups[:10])
    tracemalloc.start()
    explainer.functional_influence(X_val, "demographic_parity", groups=groups)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.05 * 8 * 5_000 * 20_000, peak  # far below the 800 MB matrix


def test_bad_input_names_the_fix(binary):
    explainer, *_, X_val, y_val, groups = binary
    with pytest.raises(ValueError, match="functional must be one of"):
        explainer.functional_influence(X_val, "fairness", y_val)
    with pytest.raises(ValueError, match="needs groups"):
        explainer.functional_influence(X_val, "demographic_parity", y_val)
    with pytest.raises(ValueError, match="exactly two group values"):
        explainer.functional_influence(X_val, "demographic_parity", y_val,
                                       np.arange(len(y_val)) % 3)
    with pytest.raises(ValueError, match="one label per evaluation row"):
        explainer.functional_influence(X_val, "demographic_parity", y_val, groups[:-1])
    with pytest.raises(ValueError, match="needs y_eval"):
        explainer.functional_influence(X_val, "accuracy")
    with pytest.raises(ValueError, match="needs y_eval"):
        explainer.functional_influence(X_val, "equal_opportunity", None, groups)
    with pytest.raises(ValueError, match="temperature must be positive"):
        explainer.functional_influence(X_val, "accuracy", y_val, temperature=0)
    with pytest.raises(ValueError, match="method must be"):
        explainer.functional_influence(X_val, "accuracy", y_val, method="refit")
    with pytest.raises(ValueError, match="second_order must be"):
        explainer.functional_influence(X_val, "accuracy", y_val, second_order="yes")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = rng.normal(size=30)
    ridge = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
    with pytest.raises(ValueError, match="needs a classifier"):
        ridge.functional_influence(X, "accuracy", y)
    X_train, X_val3, y_train, y_val3 = digits([0, 1, 2])
    three = InfluenceExplainer(LogisticRegression().fit(X_train, y_train)).fit(
        X_train, y_train)
    with pytest.raises(ValueError, match="binary classifier or a regressor"):
        three.functional_influence(X_val3, "demographic_parity",
                                   groups=np.arange(len(y_val3)) % 2)


def test_sparse_training_and_evaluation_rows(binary):
    import scipy.sparse as sp

    _, model, X_train, y_train, X_val, y_val, groups = binary
    dense = InfluenceExplainer(model).fit(X_train, y_train)
    sparse = InfluenceExplainer(model).fit(sp.csr_matrix(X_train), y_train)
    for name in ("mean_loss", "demographic_parity"):
        np.testing.assert_allclose(
            sparse.functional_influence(sp.csr_matrix(X_val), name, y_val, groups),
            dense.functional_influence(X_val, name, y_val, groups), rtol=1e-8,
            atol=1e-14)


@pytest.mark.parametrize("classes, name, class_weight", [
    ([1, 7], "mean_loss", "balanced"),
    ([0, 1, 2], "accuracy", None),
    ([0, 1, 2], "mean_loss", "balanced"),
])
def test_second_order_term_is_the_quadratic_in_the_moved_outputs(classes, name,
                                                                 class_weight):
    """``grad F . dZ_i + 1/2 dZ_i^T F'' dZ_i`` with the Newton output shifts of
    prediction_influence, written out densely here."""
    X_train, X_val, y_train, y_val = digits(classes)
    model = LogisticRegression(C=0.1, class_weight=class_weight, tol=1e-10,
                               max_iter=5000).fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    F = functional_of(explainer.family_, name, y_val, targets=y_val)
    Z = explainer.family_.decision(X_val)
    _, G = F(Z)
    C = F.curvature(Z)
    dZ = explainer.prediction_influence(X_val, method="newton")
    if dZ.ndim == 2:
        dZ, C = dZ[:, :, None], C[:, :, None]
    elif C.ndim == 2:
        C = C[:, :, None] * np.eye(C.shape[1])
    expected = (np.einsum("jk,jik->i", G, dZ)
                + 0.5 * np.einsum("jik,jkl,jil->i", dZ, C, dZ))
    ours = explainer.functional_influence(X_val, name, y_val, second_order=True)
    np.testing.assert_allclose(ours, expected, rtol=1e-7,
                               atol=1e-9 * np.abs(expected).max())
