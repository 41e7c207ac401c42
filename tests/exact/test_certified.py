"""Certified leave-one-out intervals: every exact effect inside its interval.

The truth is computed independently of the bound: the exact Newton engine
(each leave-one-out optimum to a relative Newton decrement of 1e-12, within
6e-13 of R's glm refits) and refits of tight estimator clones. Each bound is
also broken on purpose once (a wrong constant), to show the coverage checks
can fail.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.exact import certified

# removals the bound cannot reach are infinite by design here, and warned about
# (tested in test_budget_limits_the_refined_removals)
pytestmark = pytest.mark.filterwarnings("ignore:No finite certified interval")

#: the truth is exact to about 1e-12 of the largest effect
REFERENCE_TOL = 1e-11


def classification(seed, n=60, p=4, n_classes=2, shift=0.8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=shift, size=(n_classes, p))
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    X = centres[y] + rng.normal(size=(n, p))
    X_test = rng.normal(size=(15, p)) + centres[np.arange(15) % n_classes]
    y_test = np.arange(15) % n_classes
    return X, y, X_test, y_test


def regression(seed, n=50, p=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 2.0
    y = X @ rng.normal(size=p) + rng.normal(size=n) + 5.0
    X_test = rng.normal(size=(12, p)) + 2.0
    return X, y, X_test, X_test @ rng.normal(size=p)


def coverage(result, truth):
    scale = np.nanmax(np.abs(truth))
    tol = REFERENCE_TOL * max(scale, 1e-300)
    inside = (result.lower - tol <= truth) & (truth <= result.upper + tol)
    return inside.mean()


def relative_widths(result, truth):
    big = np.abs(truth) >= certified.NEGLIGIBLE * np.abs(truth).max()
    return (result.upper - result.lower)[big] / np.abs(truth[big]), big


MODELS = {
    "logistic": lambda seed: LogisticRegression(C=1.0),
    "logistic_liblinear": lambda seed: LogisticRegression(
        C=1.0, solver="liblinear", intercept_scaling=2.0),
    "logistic_no_intercept": lambda seed: LogisticRegression(C=0.5, fit_intercept=False),
    "logistic_class_weight": lambda seed: LogisticRegression(
        C=2.0, class_weight={0: 3.0, 1: 0.5}),
    "logistic_balanced": lambda seed: LogisticRegression(C=1.0, class_weight="balanced"),
    "squared_hinge": lambda seed: LinearSVC(C=1.0, max_iter=100_000),
    "squared_hinge_balanced": lambda seed: LinearSVC(
        C=0.5, class_weight="balanced", max_iter=100_000),
}


def fitted(model, X, y, sample_weight=None):
    model.fit(X, y, sample_weight=sample_weight)
    return InfluenceExplainer(model).fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("refine", [False, True])
def test_binary_coverage_against_exact_newton(name, refine, record_property):
    for seed in range(3):
        X, y, X_test, y_test = classification(seed)
        weight = np.random.default_rng(seed).uniform(0.3, 3.0, len(y)) if seed else None
        explainer = fitted(MODELS[name](seed), X, y, weight)
        result = explainer.loo_interval(X_test, y_test, refine=refine)
        truth = explainer.loo(X_test, y_test, method="exact")
        assert coverage(result, truth) == 1.0, (name, seed)
        assert np.all(result.lower <= result.estimate)
        assert np.all(result.estimate <= result.upper)
        widths, _ = relative_widths(result, truth)
        record_property(f"median_relative_width_{seed}", float(np.median(widths)))


@pytest.mark.parametrize("model", [
    LogisticRegression(C=1.0),
    LogisticRegression(C=0.3, fit_intercept=False),
    LogisticRegression(C=1.0, class_weight="balanced"),
    LinearSVC(C=0.5, max_iter=100_000),
], ids=["multinomial", "multinomial_no_intercept", "multinomial_balanced", "ovr_hinge"])
@pytest.mark.parametrize("refine", [False, True])
def test_multiclass_coverage_against_exact_newton(model, refine):
    for seed in range(2):
        X, y, X_test, y_test = classification(seed, n=75, n_classes=3)
        explainer = fitted(model, X, y)
        result = explainer.loo_interval(X_test, y_test, refine=refine)
        truth = explainer.loo(X_test, y_test, method="exact")
        assert coverage(result, truth) == 1.0
        if refine:
            assert np.isfinite(result.upper - result.lower).all()


def test_multinomial_pair_constant_is_needed():
    """Without the class-pair spread in the self-concordance constant (a
    constant of 0: the Hessian assumed not to change), coverage fails."""
    X, y, X_test, y_test = classification(0, n=75, n_classes=3, shift=1.5)
    explainer = fitted(LogisticRegression(C=5.0), X, y)
    truth = explainer.loo(X_test, y_test, method="exact")
    assert coverage(explainer.loo_interval(X_test, y_test, refine=False), truth) == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certified, "SELF_CONCORDANCE", 0.0)
        broken = explainer.loo_interval(X_test, y_test, refine=False)
    assert coverage(broken, truth) < 0.99


def test_a_wrong_self_concordance_constant_breaks_coverage():
    X, y, X_test, y_test = classification(1, shift=1.2)
    explainer = fitted(LogisticRegression(C=10.0), X, y)
    truth = explainer.loo(X_test, y_test, method="exact")
    assert coverage(explainer.loo_interval(X_test, y_test, refine=False), truth) == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certified, "SELF_CONCORDANCE", 0.0)
        broken = explainer.loo_interval(X_test, y_test, refine=False)
    assert coverage(broken, truth) < 0.99


def test_a_wrong_kink_curvature_breaks_hinge_coverage():
    """The squared hinge's bound counts the rows that may cross the margin;
    pretending they cost no curvature (constant 0) misses effects."""
    X, y, X_test, y_test = classification(2, n=80, shift=0.6)
    explainer = fitted(LinearSVC(C=5.0, max_iter=100_000), X, y)
    truth = explainer.loo(X_test, y_test, method="exact")
    for refine in (False, True):
        honest = explainer.loo_interval(X_test, y_test, refine=refine)
        assert coverage(honest, truth) == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certified, "KINK_CURVATURE", 0.0)
        # the one-step intervals are wide: a few pairs fall out of them
        assert coverage(explainer.loo_interval(X_test, y_test, refine=False),
                        truth) < 1
        # the refined ones are narrow: many do
        broken = explainer.loo_interval(X_test, y_test)
    assert coverage(broken, truth) < 0.99


def test_wrong_rounding_allowance_is_not_what_carries_coverage():
    """With no rounding slack at all the logistic intervals still cover: the
    slack is an allowance for float64, not part of the bound."""
    X, y, X_test, y_test = classification(3)
    explainer = fitted(LogisticRegression(C=1.0), X, y)
    truth = explainer.loo(X_test, y_test, method="exact")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certified, "ROUNDING_SLACK", 0.0)
        result = explainer.loo_interval(X_test, y_test, refine=False)
    assert coverage(result, truth) == 1.0


def test_groups_against_refits():
    X, y, X_test, y_test = classification(4, n=60)
    groups = np.arange(60) % 6
    for model in (LogisticRegression(C=1.0, tol=1e-10),
                  LogisticRegression(C=1.0, class_weight="balanced", tol=1e-10),
                  LinearSVC(C=1.0, tol=1e-10, max_iter=100_000)):
        explainer = fitted(model, X, y)
        refit = explainer.group_influence(X_test, y_test, groups, method="refit")
        for refine in (False, True):
            result = explainer.loo_interval(X_test, y_test, groups=groups,
                                            refine=refine)
            assert result.estimate.shape == (15, 6)
            tol = 1e-8 * np.abs(refit).max()  # refits: tol=1e-10, then polished
            assert np.all((result.lower - tol <= refit) & (refit <= result.upper + tol))


def test_single_rows_against_refits():
    X, y, X_test, y_test = classification(5, n=50)
    rows = np.arange(0, 50, 5)
    for model in (LogisticRegression(C=1.0), LinearSVC(C=1.0, max_iter=100_000)):
        explainer = fitted(model, X, y)
        refit = explainer.loo(X_test, y_test, train_indices=rows)
        result = explainer.loo_interval(X_test, y_test, train_indices=rows)
        tol = 1e-8 * np.abs(refit).max()
        assert np.all((result.lower - tol <= refit) & (refit <= result.upper + tol))


@pytest.mark.parametrize("model", [Ridge(alpha=2.0), LinearRegression()],
                         ids=["ridge", "ols"])
def test_squared_loss_interval_has_width_zero_up_to_rounding(model):
    X, y, X_test, y_test = regression(0)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    explainer = fitted(model, X, y, weight)
    truth = explainer.loo(X_test, y_test, method="exact")  # closed form
    result = explainer.loo_interval(X_test, y_test, refine=False)
    assert coverage(result, truth) == 1.0
    scale = np.abs(truth).max()
    assert np.all(result.upper - result.lower <= 1e-8 * scale)
    np.testing.assert_allclose(result.estimate, truth, rtol=0, atol=1e-9 * scale)
    prediction = explainer.loo_interval(X_test, refine=False)  # change of predict
    exact = explainer.loo(X_test, method="exact")
    assert np.all((prediction.lower <= exact + 1e-10) & (exact - 1e-10 <= prediction.upper))


def test_refinement_makes_intervals_narrow_and_certifies_signs(record_property):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = X[:300], X[300:360], y[:300], y[300:360]
    explainer = fitted(LogisticRegression(C=1.0), X_train, y_train)
    truth = explainer.loo(X_test, y_test, method="exact")
    result = explainer.loo_interval(X_test, y_test)
    assert coverage(result, truth) == 1.0
    widths, big = relative_widths(result, truth)
    record_property("median_relative_width", float(np.median(widths)))
    assert np.median(widths) < 0.02
    assert result.certified_sign[big].mean() >= 0.99
    assert result.refined.any() and not result.refined.all()
    plain = explainer.loo_interval(X_test, y_test, refine=False)
    assert coverage(plain, truth) == 1.0
    assert np.median(relative_widths(plain, truth)[0]) > np.median(widths)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_unconverged_fit_is_carried_not_assumed_away():
    """A fit stopped far from its optimum: the intervals (without polishing)
    still contain the exact effects, are wider, and say why."""
    X, y, X_test, y_test = classification(6, n=80, p=6)
    model = LogisticRegression(C=1.0, tol=1e-1, max_iter=2).fit(X, y)
    with pytest.warns(Warning):
        explainer = InfluenceExplainer(model).fit(X, y)
    truth = explainer.loo(X_test, y_test, method="exact")
    plain = explainer.loo_interval(X_test, y_test, refine=False)
    polished = explainer.loo_interval(X_test, y_test)
    assert coverage(plain, truth) == 1.0 and coverage(polished, truth) == 1.0
    assert plain.fit_decrement > 1e-3 and not plain.polished
    assert np.median(plain.baseline_width) > 100 * np.median(polished.baseline_width)
    assert any("not at its optimum" in reason for reason in plain.reasons)


@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
def test_newton_explain_starts_from_the_residual_gradient():
    """explain(method='newton') corrects the baseline by one Newton step, so
    for squared loss fitted by an iterative solver at a loose tolerance it is
    the exact leave-one-out of the exact optimum (the closed form)."""
    X, y, X_test, y_test = regression(1, n=80)
    model = Ridge(alpha=1.0, solver="sag", tol=1e-1, random_state=0).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    exact = explainer.loo(X_test, y_test, method="exact")
    newton = explainer.explain(X_test, y_test, method="newton")
    np.testing.assert_allclose(newton, exact, rtol=0, atol=1e-8 * np.abs(exact).max())


def _uncorrected_newton(model, X, y, X_test, y_test):
    """The one-step Newton effect from the fitted coefficients as they are
    (the baseline not corrected), written out for binary log-loss."""
    Xt, Xt_test = np.hstack([X, np.ones((len(X), 1))]), np.hstack(
        [X_test, np.ones((len(X_test), 1))])
    theta = np.append(model.coef_.ravel(), model.intercept_)
    prob = 1 / (1 + np.exp(-Xt @ theta))
    D, r = model.C * prob * (1 - prob), model.C * (prob - y)
    H = Xt.T @ (D[:, None] * Xt) + np.diag(np.r_[np.ones(X.shape[1]), 0.0])
    Hx = np.linalg.solve(H, Xt.T)  # (d, n)
    steps = Hx * (r / (1 - D * np.einsum("nd,dn->n", Xt, Hx)))
    z = Xt_test @ theta

    def loss(z):
        return np.logaddexp(0, z) - y_test[:, None] * z
    moved = z[:, None] + Xt_test @ steps
    return loss(moved) - loss(z[:, None])


def test_newton_explain_of_an_unconverged_fit_refers_to_the_exact_optimum():
    """A fit stopped early: one Newton correction of the baseline brings the
    Newton estimate closer to the exact effects (of the exact optimum) than
    the step from the fitted coefficients as they are."""
    X, y, X_test, y_test = classification(14, n=80, p=5)
    loose = LogisticRegression(C=1.0, tol=1e-2).fit(X, y)
    with pytest.warns(Warning):
        explainer = InfluenceExplainer(loose).fit(X, y)
    exact = explainer.loo(X_test, y_test, method="refit")
    np.testing.assert_allclose(explainer.loo(X_test, y_test, method="exact"),
                               exact, rtol=0, atol=1e-9 * np.abs(exact).max())
    corrected = explainer.explain(X_test, y_test, method="newton")
    uncorrected = _uncorrected_newton(loose, X, y, X_test, y_test)
    assert np.median(np.abs(corrected - exact)) < 0.5 * np.median(
        np.abs(uncorrected - exact))


def test_squared_hinge_large_C_loo_is_finite():
    """Nearly separable breast cancer at C=100: the Newton engine's divergence
    detection and full-Newton fallback give finite effects, equal to refits."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:400], order[400:]
    model = LinearSVC(C=100.0, max_iter=100_000).fit(X[train], y[train])
    with pytest.warns(Warning):  # the default-tol fit is far from its optimum
        explainer = InfluenceExplainer(model).fit(X[train], y[train])
    for method in ("newton", "exact"):
        values = explainer.loo(X[test], y[test], method=method)
        assert np.all(np.isfinite(values)), method
    rows = np.array([7, 23, 65, 206, 330])  # among the hardest removals
    refit = explainer.loo(X[test][:20], y[test][:20], train_indices=rows)
    np.testing.assert_allclose(values[:20, rows], refit, rtol=0,
                               atol=1e-6 * np.abs(refit).max())
    result = explainer.loo_interval(X[test][:20], y[test][:20], train_indices=rows)
    assert np.all((result.lower <= values[:20, rows]) & (values[:20, rows] <= result.upper))


def _squared_hinge_terms(X, y, classes, C, sample_weight, intercept_scaling, theta):
    """Gradient and generalised Hessian blocks of liblinear's one-vs-rest
    squared-hinge objective, written out here: per output ``k``,
    ``sum_i C s_i max(0, 1 - y_ik z_ik)^2 + |w_k|^2 / 2 + b_k^2 / (2 is^2)``."""
    K = 1 if len(classes) == 2 else len(classes)
    signs = (np.where(y == classes[1], 1.0, -1.0)[:, None] if K == 1 else
             np.where(y[:, None] == classes[None, :], 1.0, -1.0))
    Xt = np.hstack([X, np.ones((len(y), 1))])
    penalty = np.ones(Xt.shape[1])
    penalty[-1] = 1.0 / intercept_scaling**2
    Theta = theta.reshape(K, -1)
    grads, hessians = [], []
    for k in range(K):
        slack = 1.0 - signs[:, k] * (Xt @ Theta[k])
        c = C * sample_weight * (slack > 0)
        grads.append(Xt.T @ (-2.0 * c * signs[:, k] * slack) + penalty * Theta[k])
        hessians.append(2.0 * (Xt.T * c) @ Xt + np.diag(penalty))
    return np.concatenate(grads), hessians


@pytest.mark.parametrize("n_classes, intercept_scaling", [(2, 1.0), (3, 2.0)])
def test_squared_hinge_minimiser_reaches_the_leave_out_optimum(n_classes,
                                                               intercept_scaling):
    """The squared hinge's own damped semismooth Newton (large C, a removed row,
    sample weights) stops where the objective's gradient, written out in the
    test, vanishes: the objective is 1-strongly convex in the penalised
    parameters, so the point is within that gradient norm (times is^2) of the
    exact optimum."""
    X, y, _, _ = classification(4, n=80, n_classes=n_classes, shift=2.0)
    weight = np.random.default_rng(4).uniform(0.5, 2.0, len(y))
    model = LinearSVC(C=100.0, intercept_scaling=intercept_scaling, max_iter=200)
    with pytest.warns(Warning):  # liblinear stops early at this C
        explainer = fitted(model, X, y, weight)
    family = explainer.family_
    weight[5] = 0.0
    theta, n_steps = certified._minimise(family, X, y, weight, family.theta)
    start, _ = _squared_hinge_terms(X, y, family.classes, 100.0, weight,
                                    intercept_scaling, family.theta)
    grad, _ = _squared_hinge_terms(X, y, family.classes, 100.0, weight,
                                   intercept_scaling, theta)
    assert n_steps > 2 and np.linalg.norm(start) > 1e-3
    assert np.linalg.norm(grad) <= 1e-9 * max(1.0, np.linalg.norm(start))


def test_semismooth_step_is_the_generalised_newton_step_at_the_candidate():
    """The Woodbury form of the semismooth step (removals with 1 to many
    margin crossings, solved in groups of padded systems) equals the step
    with the generalised Hessian at each candidate, built densely here."""
    X, y, X_test, y_test = classification(6, n=90, n_classes=3, shift=1.5)
    explainer = fitted(LinearSVC(C=5.0, tol=1e-10, max_iter=100_000), X, y)
    family = explainer.family_
    weight = np.ones(len(y))
    ref = certified._Reference(family, X, y, weight, family.theta, X_test,
                               family.encode_target(y_test))
    members = [np.array([i]) for i in range(0, 90, 7)] + [np.arange(10, 22)]
    batch = certified._removals(ref, members)
    # candidates well away from the reference, so that many margins cross
    scale = np.linspace(0.5, 8.0, len(members))
    delta = batch.newton_point(ref) * scale + 0.05 * np.random.default_rng(0).normal(
        size=(family.n_parameters, len(members)))
    U, grad, step, _ = certified._residual(ref, batch, delta)
    out = certified._semismooth_step(ref, batch, U, grad, step)
    crossings = []
    for j, g in enumerate(members):
        kept = weight.copy()
        kept[g] = 0.0
        theta = family.theta + delta[:, j]
        g_dense, blocks = _squared_hinge_terms(X, y, family.classes, 5.0, kept, 1.0, theta)
        np.testing.assert_allclose(grad[:, j], g_dense, rtol=0,
                                   atol=1e-10 * np.abs(g_dense).max())
        expected = np.concatenate([np.linalg.solve(H, part) for H, part in
                                   zip(blocks, np.split(g_dense, len(blocks)))])
        np.testing.assert_allclose(out[:, j], expected, rtol=0,
                                   atol=1e-9 * np.abs(expected).max())
        before = ref.problem.Y * ref.problem.Z < 1
        after = ref.problem.Y * (ref.problem.Z + U[:, :, j]) < 1
        crossings.append(int(((before != after) & (kept[:, None] > 0)).sum()))
    assert min(crossings) >= 1 and max(crossings) >= 8  # several padded sizes


def test_n_jobs_sparse_and_determinism():
    X, y, X_test, y_test = classification(8, n=70)
    explainer = fitted(LogisticRegression(C=1.0), X, y)
    one = explainer.loo_interval(X_test, y_test, n_jobs=1)
    two = explainer.loo_interval(X_test, y_test, n_jobs=2)
    for key in ("estimate", "lower", "upper"):
        np.testing.assert_array_equal(one[key], two[key])
    sparse = fitted(LogisticRegression(C=1.0), sp.csr_matrix(X), y)
    result = sparse.loo_interval(sp.csr_matrix(X_test), y_test)
    np.testing.assert_allclose(result.lower, one.lower, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.upper, one.upper, rtol=1e-9, atol=1e-12)


def test_without_labels_the_predicted_class_is_explained():
    X, y, X_test, _ = classification(9)
    explainer = fitted(LogisticRegression(C=1.0), X, y)
    result = explainer.loo_interval(X_test, train_indices=[0, 5, 9])
    truth = explainer.loo(X_test, method="exact", train_indices=[0, 5, 9])
    assert coverage(result, truth) == 1.0


def test_removing_a_class_gives_nan_with_a_warning():
    X, y, X_test, y_test = classification(10, n=40, n_classes=3)
    y = y.copy()
    y[y == 2] = 1
    y[0] = 2  # the only row of class 2
    explainer = fitted(LogisticRegression(C=1.0), X, y)
    with pytest.warns(UserWarning, match="leaves a class without rows"):
        result = explainer.loo_interval(X_test, np.where(y_test == 2, 1, y_test),
                                        train_indices=[0, 1, 2])
    assert result.undefined.tolist() == [True, False, False]
    assert np.isnan(result.estimate[:, 0]).all()
    assert np.isfinite(result.estimate[:, 1:]).all()


def test_budget_limits_the_refined_removals():
    X, y, X_test, y_test = classification(11, n=60, shift=1.5)
    explainer = fitted(LogisticRegression(C=10.0), X, y)
    with pytest.warns(UserWarning, match="No finite certified interval.*refine=True"):
        none = explainer.loo_interval(X_test, y_test, max_refine=0)
    assert not none.refined.any()
    some = explainer.loo_interval(X_test, y_test, max_refine=2)
    assert some.refined.sum() <= 2
    share = explainer.loo_interval(X_test, y_test, max_refine=0.05)
    assert share.refined.sum() <= 3


def test_trust_report_has_the_certified_sign_share():
    X, y, X_test, y_test = classification(12)
    explainer = fitted(LogisticRegression(C=1.0), X, y)
    report = explainer.trust_report(X_test, y_test, loo_method="newton",
                                    random_state=0)
    assert 0.0 <= report.certified_sign <= 1.0
    assert report.certified_sign == report.intervals.certified_sign.mean()
    hinge = fitted(LinearSVC(loss="hinge", C=1.0, max_iter=100_000), X, y)
    report = hinge.trust_report(X_test, y_test, loo_method="exact", random_state=0)
    assert report.certified_sign is None and report.intervals is None


def test_errors_name_the_problem():
    X, y, X_test, y_test = classification(13)
    hinge = fitted(LinearSVC(loss="hinge", C=1.0, max_iter=100_000), X, y)
    with pytest.raises(ValueError, match="No certified bound.*loss='hinge'"):
        hinge.loo_interval(X_test, y_test)
    explainer = fitted(LogisticRegression(), X, y)
    with pytest.raises(ValueError, match="not both"):
        explainer.loo_interval(X_test, y_test, train_indices=[0], groups=y)
    with pytest.raises(ValueError, match="max_refine must be"):
        explainer.loo_interval(X_test, y_test, max_refine=1.5)
    with pytest.raises(ValueError, match="max_refine must be"):
        explainer.loo_interval(X_test, y_test, max_refine=-1)
    with pytest.raises(TypeError, match="refine must be True or False"):
        explainer.loo_interval(X_test, y_test, refine="yes")
    rng = np.random.default_rng(0)
    X_rank = np.hstack([X, X[:, :1]])
    ols = LinearRegression().fit(X_rank, rng.normal(size=len(y)))
    deficient = InfluenceExplainer(ols)
    with pytest.warns(Warning):
        deficient.fit(X_rank, ols.predict(X_rank) + rng.normal(size=len(y)))
    with pytest.raises(ValueError, match="rank-deficient"):
        deficient.loo_interval(np.hstack([X_test, X_test[:, :1]]))


@pytest.mark.slow
@pytest.mark.parametrize("C", [0.1, 1.0, 10.0, 100.0])
def test_coverage_sweep(C):
    """Many problems, both intercept conventions, weights, groups."""
    for seed in range(12):
        for n_classes in (2, 3):
            X, y, X_test, y_test = classification(100 + seed, n=70,
                                                   n_classes=n_classes, shift=1.0)
            weight = np.random.default_rng(seed).uniform(0.2, 3.0, len(y))
            models = [LogisticRegression(C=C, max_iter=1000),
                      LogisticRegression(C=C, class_weight="balanced", max_iter=1000),
                      LinearSVC(C=C, max_iter=100_000)]
            if n_classes == 2:
                models.append(LogisticRegression(C=C, solver="liblinear"))
            for model in models:
                explainer = fitted(model, X, y, weight if seed % 2 else None)
                truth = explainer.loo(X_test, y_test, method="exact")
                for refine in (False, True):
                    result = explainer.loo_interval(X_test, y_test, refine=refine)
                    assert coverage(result, truth) == 1.0, (seed, model, refine)


@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
@pytest.mark.parametrize("model, n_classes", [
    (LogisticRegression(C=1.0), 2),
    (LogisticRegression(C=1.0, tol=1e-2), 2),  # stopped early: g0 is large
    (LogisticRegression(C=0.3, solver="liblinear"), 2),
    (LogisticRegression(C=1.0), 3),
    (LinearSVC(C=1.0, max_iter=100_000), 2),
], ids=["logistic", "logistic_loose", "liblinear", "multinomial", "squared_hinge"])
def test_newton_explain_is_the_centre_of_its_own_interval(model, n_classes):
    """Without refinement the interval is certified around the Newton point
    itself: ``explain(method='newton')`` is its estimate and lies inside, and
    the interval still covers the exact effect."""
    X, y, X_test, y_test = classification(4, n=70, n_classes=n_classes)
    explainer = fitted(model, X, y)
    newton = explainer.explain(X_test, y_test, method="newton")
    result = explainer.loo_interval(X_test, y_test, refine=False)
    scale = np.abs(newton).max()
    np.testing.assert_allclose(result.estimate, newton, rtol=0, atol=1e-12 * scale)
    assert np.all((result.lower <= newton) & (newton <= result.upper))
    assert coverage(result, explainer.loo(X_test, y_test, method="exact")) == 1


def test_log_loss_range_bound_contains_the_range_on_a_grid():
    """The one-evaluation bounds on the binary log-loss over a box of margins
    contain the loss at every point of the box (a fine grid, independent of
    the bound), and without the curvature term (a constant of 0) they miss:
    the check can fail."""
    rng = np.random.default_rng(0)
    m, b = 40, 30
    centre = rng.normal(scale=3.0, size=(m, 1, b))
    half = 10.0 ** rng.uniform(-4, 0.5, size=(m, 1, b))
    lo, hi = centre - half * rng.uniform(0, 1, size=half.shape), centre + half
    point = lo + (hi - lo) * rng.uniform(0, 1, size=half.shape)
    ref = type("Ref", (), {})()
    ref.Y_test = rng.integers(0, 2, size=(m, 1)).astype(float)
    X, y = rng.normal(size=(20, 2)), np.arange(20) % 2
    ref.family = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y).family_
    grid = lo[:, 0] + (hi - lo)[:, 0] * np.linspace(0, 1, 2001)[:, None, None]
    def log_loss(z, y):  # log(1 + exp(z)) - y z without cancellation
        return np.logaddexp(0, np.where(y > 0.5, -z, z))

    losses = log_loss(grid, ref.Y_test[None])

    def contained(bounds):
        _, low, high = bounds
        slack = 1e-12 * (1 + losses)
        return ((low[None] <= losses + slack) & (losses <= high[None] + slack)).all()

    bounds = certified._log_loss_bounds(ref, lo, hi, point)
    np.testing.assert_allclose(
        bounds[0], log_loss(point[:, 0], ref.Y_test), rtol=1e-13)
    assert contained(bounds)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(certified, "LOG_LOSS_CURVATURE", 0.0)
        assert not contained(certified._log_loss_bounds(ref, lo, hi, point))
