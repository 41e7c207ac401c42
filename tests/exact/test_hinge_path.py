"""Exact hinge (and epsilon-insensitive) leave-one-out against an independent solve.

The truth is written here from scratch, without skinfluence: liblinear refits
each leave-one-out problem (scikit-learn, ``tol=1e-10``); the margins of its
solution name the rows at a bound and on the margin; the exact optimum on those
sets is one min-norm least-squares solve, its multipliers a bounded
least-squares fit (``scipy.optimize.lsq_linear``), and the result is accepted
only if every KKT condition holds to 1e-10 (it is then the unique optimum: the
objective is strongly convex). ``loo(method="exact")`` must agree with it to
1e-10 of the largest effect.
"""

import pickle
import warnings
from itertools import combinations

import numpy as np
import pytest
import scipy.sparse as sp
from joblib import parallel_config
from scipy.optimize import lsq_linear, minimize
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils.class_weight import compute_class_weight

from conftest import digits
from skinfluence import InfluenceExplainer

EXACT = 1e-10  # of the largest effect


# ------------------------------------------------------------ the truth
def exact_box_solution(Z, target, lower, upper, starts, tol=1e-10):
    """Optimum of ``1/2 ||t||^2 + sum_j max_{l_j <= a_j <= u_j} a_j (target_j - z_j.t)``.

    From each start, the rows within a margin band are candidates for the
    margin (the nearest ones first, dropping the farthest while they cannot
    all sit on it), the others at the bound their slack points to; the first
    guess whose solve satisfies every KKT condition is the optimum (then any
    one or two candidates sent to their bound). A solve that misses is the next
    start, a few times. If all fail (starts far from
    the optimum), scipy's L-BFGS-B on the dual box QP gives a closer start and
    its multipliers a guess of the sets. Raises if nothing succeeds.
    """
    found = _from_starts(Z, target, lower, upper, list(starts), tol)
    if found is not None:
        return found

    def dual(alpha):
        theta = Z.T @ alpha
        return 0.5 * theta @ theta - target @ alpha, Z @ theta - target

    slack0 = target - Z @ starts[0]
    fit = minimize(dual, np.where(slack0 > 0, upper, lower), jac=True, method="L-BFGS-B",
                   bounds=list(zip(lower, upper)),
                   options={"maxiter": 100_000, "maxfun": 200_000, "ftol": 1e-16,
                            "gtol": 1e-14})
    theta_dual, span = Z.T @ fit.x, upper - lower
    inside = (fit.x > lower + 1e-7 * span) & (fit.x < upper - 1e-7 * span)
    theta, alpha, ok = _solve_sets(Z, target, lower, upper, target - Z @ theta_dual,
                                   np.flatnonzero(inside), tol)
    if ok:
        return theta, alpha
    found = _from_starts(Z, target, lower, upper, [theta_dual, theta], tol)
    if found is None:
        raise AssertionError("no start gave a KKT point: the truth could not be computed")
    return found


def _from_starts(Z, target, lower, upper, starts, tol):
    for attempt, theta0 in enumerate(starts):
        slack0 = target - Z @ theta0
        for band in (1e-9, 1e-7, 1e-5, 1e-3, 1e-2):
            near = np.flatnonzero((np.abs(slack0) <= band) & (upper > lower))
            near = near[np.argsort(np.abs(slack0[near]), kind="stable")]
            for size in range(near.size, max(-1, near.size - 16), -1):
                theta, alpha, ok = _solve_sets(Z, target, lower, upper, slack0,
                                               near[:size], tol)
                if ok:
                    return theta, alpha
            if attempt == 0 and near.size <= 2 * Z.shape[1]:
                # a bound row among the candidates, not the farthest: drop any one
                # or two of them
                for size in (1, 2):
                    for drop in combinations(range(near.size), size):
                        theta, alpha, ok = _solve_sets(Z, target, lower, upper, slack0,
                                                       np.delete(near, drop), tol)
                        if ok:
                            return theta, alpha
        if attempt < 12:
            starts.append(theta)  # the last solve's margins suggest better sets
    return None


def _solve_sets(Z, target, lower, upper, slack0, free_rows, tol):
    """The optimum if ``free_rows`` sit on the margin and the rest at a bound."""
    free = np.zeros(len(target), dtype=bool)
    free[free_rows] = True
    at_upper = ~free & (slack0 > 0)
    at_lower = ~free & ~at_upper
    alpha = np.where(at_upper, upper, lower).astype(float)
    alpha[free] = 0.0
    fixed = Z.T @ alpha
    # the free rows on their margins: min-norm move from the fixed part
    move = np.linalg.lstsq(Z[free], target[free] - Z[free] @ fixed, rcond=None)[0]
    theta = fixed + move
    if free.any():
        alpha[free] = lsq_linear(Z[free].T, move, bounds=(lower[free], upper[free]),
                                 method="bvls", tol=1e-15).x
    slack = target - Z @ theta
    box = upper > lower  # rows of zero width (zero weight) have no condition
    ok = (np.linalg.norm(Z.T @ alpha - theta) <= tol
          and np.all(np.abs(slack[free]) <= tol)
          and np.all(slack[at_upper & box] >= -tol)
          and np.all(slack[at_lower & box] <= tol))
    return theta, alpha, ok


def liblinear_starts(model, X, y, sample_weight):
    """liblinear solutions of the problem, per output, in liblinear's scaling."""
    starts = []
    for seed, tol in ((0, 1e-10), (1, 1e-10), (0, 1e-8)):
        fit = LinearSVC(**{**model.get_params(), "tol": tol, "max_iter": 100_000,
                           "random_state": seed}) if isinstance(model, LinearSVC) else \
            LinearSVR(**{**model.get_params(), "tol": tol, "max_iter": 100_000,
                         "random_state": seed})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit.fit(X, y, sample_weight=sample_weight)
        coef = np.atleast_2d(fit.coef_)
        if model.fit_intercept:
            coef = np.hstack([coef, np.ravel(fit.intercept_)[:, None] / model.intercept_scaling])
        starts.append(coef)
    return starts


def svc_problems(model, X, y, sample_weight):
    """``(Z, target, lower, upper)`` of each one-vs-rest problem, from DESIGN.md."""
    classes = np.unique(y)
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    cw = (np.ones(len(classes)) if model.class_weight is None else
          compute_class_weight(model.class_weight, classes=classes, y=y, sample_weight=sw))
    Xt = np.hstack([X, np.full((len(y), 1), model.intercept_scaling)]) \
        if model.fit_intercept else X
    label = np.searchsorted(classes, y)
    if len(classes) == 2:
        sign = np.where(label == 1, 1.0, -1.0)
        return [(sign[:, None] * Xt, np.ones(len(y)), np.zeros(len(y)),
                 model.C * sw * cw[label])]
    problems = []
    for k in range(len(classes)):
        sign = np.where(label == k, 1.0, -1.0)
        upper = model.C * sw * np.where(label == k, cw[k], 1.0)
        problems.append((sign[:, None] * Xt, np.ones(len(y)), np.zeros(len(y)), upper))
    return problems


def svr_problem(model, X, y, sample_weight):
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    Xt = np.hstack([X, np.full((len(y), 1), model.intercept_scaling)])
    u = model.C * sw
    if model.epsilon == 0:
        return [(Xt, y, -u, u)]
    return [(np.vstack([Xt, -Xt]), np.concatenate([y - model.epsilon, -y - model.epsilon]),
             np.zeros(2 * len(y)), np.concatenate([u, u]))]


def true_solution(model, X, y, sample_weight=None):
    """Exact parameters ``(n_outputs, n_columns)`` in liblinear's scaling."""
    problems = (svc_problems if isinstance(model, LinearSVC) else svr_problem)(
        model, X, y, sample_weight)
    starts = liblinear_starts(model, X, y, sample_weight)
    return np.array([exact_box_solution(*problem, [s[k] for s in starts])[0]
                     for k, problem in enumerate(problems)])


def model_losses(model, Theta, X, y):
    """The model's own per-sample loss (summed over one-vs-rest problems)."""
    Xt = np.hstack([X, np.full((len(y), 1), model.intercept_scaling)]) \
        if model.fit_intercept else X
    decision = Xt @ Theta.T
    if isinstance(model, LinearSVR):
        return np.maximum(0.0, np.abs(y - decision[:, 0]) - model.epsilon)
    classes = model.classes_
    label = np.searchsorted(classes, y)
    if len(classes) == 2:
        sign = np.where(label == 1, 1.0, -1.0)[:, None]
    else:
        sign = np.where(label[:, None] == np.arange(len(classes)), 1.0, -1.0)
    return np.maximum(0.0, 1.0 - sign * decision).sum(axis=1)


def true_loo(model, X, y, X_test, y_test, rows, sample_weight=None):
    """``L(z_j; theta_{-i}) - L(z_j; theta)`` by exact solves, (n_test, len(rows))."""
    base = model_losses(model, true_solution(model, X, y, sample_weight), X_test, y_test)
    out = np.empty((len(y_test), len(rows)))
    for position, row in enumerate(rows):
        keep = np.arange(len(y)) != row
        weight = None if sample_weight is None else sample_weight[keep]
        Theta = true_solution(model, X[keep], y[keep], weight)
        out[:, position] = model_losses(model, Theta, X_test, y_test) - base
    return out


def assert_exact(actual, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=EXACT * scale)


# ------------------------------------------------------------------ data
def iris_pair(n_train=80, seed=0):
    iris = load_iris()
    mask = iris.target > 0
    X = StandardScaler().fit_transform(iris.data[mask])
    y = iris.target[mask]
    order = np.random.RandomState(seed).permutation(len(y))
    train, test = order[:n_train], order[n_train:]
    return X[train], X[test], y[train], y[test]


def collinear(n=300):
    """make_classification's two redundant features: rank(Z) = 19 < 21 columns."""
    X, y = make_classification(n + 40, 20, flip_y=0.1, random_state=0)
    X = StandardScaler().fit_transform(X)
    return X[:n], X[n:], y[:n], y[n:]


def support_rows(explainer):
    return np.flatnonzero(explainer.influence_.support.any(axis=1))


def fitted(model, X, y, sample_weight=None):
    model.fit(X, y, sample_weight=sample_weight)
    return InfluenceExplainer(model).fit(X, y, sample_weight=sample_weight)


# ------------------------------------------------------------ agreement
@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_iris_versicolor_virginica(C):
    X, X_test, y, y_test = iris_pair()
    model = LinearSVC(loss="hinge", C=C, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    exact = explainer.loo(X_test, y_test, method="exact")
    support = support_rows(explainer)
    assert 0 < support.size < len(y)
    # not a support vector: exactly unchanged (and the truth agrees)
    others = np.setdiff1d(np.arange(len(y)), support)
    assert np.all(exact[:, others] == 0.0)
    rows = np.concatenate([support, others[:3]])
    expected = true_loo(model, X, y, X_test, y_test, rows)
    assert_exact(exact[:, rows], expected)


def test_digits_1_vs_7():
    X, X_test, y, y_test = digits([1, 7])
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    exact = explainer.loo(X_test[:20], y_test[:20], method="exact")
    support = support_rows(explainer)
    expected = true_loo(model, X, y, X_test[:20], y_test[:20], support)
    assert_exact(exact[:, support], expected)
    assert np.count_nonzero(np.any(exact != 0, axis=0)) <= support.size


def test_collinear_make_classification():
    """Rank-deficient margin sets: |V| can exceed rank(Z) along the path."""
    X, X_test, y, y_test = collinear()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    support = support_rows(explainer)
    rows = support[::4]
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    assert_exact(exact, true_loo(model, X, y, X_test, y_test, rows))


def test_multiclass_one_vs_rest_iris():
    iris = load_iris()
    X = StandardScaler().fit_transform(iris.data)
    order = np.random.RandomState(0).permutation(150)
    train, test = order[:120], order[120:]
    model = LinearSVC(loss="hinge", C=1.0, class_weight={0: 2.0, 2: 0.5},
                      random_state=0, max_iter=100_000)
    explainer = fitted(model, X[train], iris.target[train])
    exact = explainer.loo(X[test], iris.target[test], method="exact")
    assert explainer.influence_.support.shape == (120, 3)
    rows = np.arange(0, 120, 3)
    expected = true_loo(model, X[train], iris.target[train], X[test], iris.target[test],
                        rows)
    assert_exact(exact[:, rows], expected)


@pytest.mark.parametrize("class_weight", [{1: 3.0, 2: 0.5}, "balanced"])
def test_sample_and_class_weights(class_weight):
    X, X_test, y, y_test = iris_pair()
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    sw[:3] = 0.0  # a zero weight is a deleted row: its column is exactly 0
    model = LinearSVC(loss="hinge", C=1.0, class_weight=class_weight,
                      intercept_scaling=2.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y, sw)
    rows = np.arange(0, len(y), 2)
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    expected = true_loo(model, X, y, X_test, y_test, rows, sw)
    assert_exact(exact, expected)
    if class_weight == "balanced":
        # removing any row re-balances the classes, so no column is 0 for free
        assert np.all(np.any(exact[:, 2:] != 0, axis=0))
    else:
        assert np.all(exact[:, :2] == 0.0)


def test_no_intercept_and_squared_hinge_engines():
    X, X_test, y, y_test = iris_pair()
    model = LinearSVC(loss="hinge", C=1.0, fit_intercept=False, random_state=0,
                      max_iter=100_000)
    explainer = fitted(model, X, y)
    rows = support_rows(explainer)
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    assert_exact(exact, true_loo(model, X, y, X_test, y_test, rows))
    squared = fitted(LinearSVC(C=1.0, dual=False, tol=1e-10), X, y)
    assert squared.family_.exact_engine == "newton"


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_linear_svr(epsilon):
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    X, X_test, y, y_test = X[:120], X[400:410], y[:120], y[400:410]
    model = LinearSVR(epsilon=epsilon, C=0.5, random_state=0, tol=1e-8, max_iter=100_000)
    explainer = fitted(model, X, y)
    rows = np.arange(0, 120, 4)
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    assert_exact(exact, true_loo(model, X, y, X_test, y_test, rows))
    if epsilon > 0:  # rows inside the tube are not support vectors
        inside = np.flatnonzero(~explainer.influence_.support[:, 0])
        assert inside.size > 0
        assert np.all(explainer.loo(X_test, y_test, method="exact",
                                    train_indices=inside) == 0.0)


# ------------------------------------------------------- the refit truth
def test_refit_is_certified_where_liblinear_stalls():
    X, X_test, y, y_test = collinear()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    stalled = []
    for row in support_rows(explainer):
        keep = np.arange(len(y)) != row
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            raw = LinearSVC(loss="hinge", C=1.0, tol=1e-10, max_iter=100_000,
                            random_state=0).fit(X[keep], y[keep])
        if raw.n_iter_ >= 100_000:
            stalled.append(row)
    assert stalled, "liblinear converged everywhere: this test lost its point"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # right, so no warning
        refit = explainer.loo(X_test, y_test, method="refit", train_indices=stalled)
    expected = true_loo(model, X, y, X_test, y_test, stalled)
    assert_exact(refit, expected)
    assert_exact(explainer.loo(X_test, y_test, method="exact", train_indices=stalled),
                 expected)


def test_refit_warns_naming_the_rows_it_cannot_certify(monkeypatch):
    import skinfluence.families._svm_dual as dual

    X, X_test, y, y_test = iris_pair()
    explainer = fitted(LinearSVC(loss="hinge", C=1.0, max_iter=100_000), X, y)
    monkeypatch.setattr(dual, "CERTIFY_RTOL", -1.0)  # nothing can be certified
    with pytest.warns(ConvergenceWarning, match=r"without 2 of the removed rows: \[4, 7\]"):
        explainer.loo(X_test, y_test, method="refit", train_indices=[4, 7])
    with pytest.warns(ConvergenceWarning, match="could not be certified"):
        explainer.loo(X_test, y_test, method="exact", train_indices=support_rows(explainer))


def test_a_path_that_goes_wrong_is_finished_by_the_active_set(monkeypatch):
    import skinfluence.exact.hinge_path as hinge_path

    X, X_test, y, y_test = iris_pair()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    rows = support_rows(explainer)
    expected = true_loo(model, X, y, X_test, y_test, rows)
    follow = hinge_path.removal_paths

    def broken(problem, start, removals, **kw):
        ends = follow(problem, start, removals, **kw)
        for end, (new_lower, new_upper) in zip(ends, removals):
            end.alpha = np.clip(end.alpha * 0.9, new_lower, new_upper)  # off the optimum
        return ends

    monkeypatch.setattr(hinge_path, "removal_paths", broken)
    assert_exact(explainer.loo(X_test, y_test, method="exact", train_indices=rows),
                 expected)


def test_batched_paths_follow_the_single_path():
    """The lockstep batch and one path at a time take the same pieces."""
    import skinfluence.exact.hinge_path as hinge_path

    X, X_test, y, y_test = collinear(200)
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    solution = explainer.influence_.exact_solution
    problem, start = solution.problems[0], solution.solutions[0]
    removals = []
    for row in support_rows(explainer):
        upper = problem.upper.copy()
        upper[row] = 0.0
        removals.append((problem.lower, upper))
    batch = hinge_path.removal_paths(problem, start, removals, width=16)
    for (lower, upper), end in zip(removals, batch):
        single = hinge_path.removal_path(problem, start, lower, upper)
        assert end.n_pieces == single.n_pieces
        np.testing.assert_allclose(end.theta, single.theta, rtol=0, atol=1e-12)


# ------------------------------------------------------------ interface
def test_newton_points_to_exact():
    X, X_test, y, y_test = iris_pair()
    explainer = fitted(LinearSVC(loss="hinge", max_iter=100_000), X, y)
    with pytest.raises(ValueError, match="use method='exact'"):
        explainer.loo(X_test, y_test, method="newton")


def test_removing_the_last_row_of_a_class_is_nan_and_named():
    X, X_test, y, y_test = iris_pair()
    y = y.copy()
    y[y == 2] = 1
    y[0] = 2  # one row of class 2
    explainer = fitted(LinearSVC(loss="hinge", class_weight="balanced", random_state=0,
                                 max_iter=100_000), X, y)
    with pytest.warns(UserWarning, match=r"row\(s\) 0 \(class 2\).*NaN"):
        loo = explainer.loo(X_test, y_test, method="exact", train_indices=[0, 5])
    assert np.isnan(loo[:, 0]).all() and np.isfinite(loo[:, 1]).all()
    assert explainer.loo(X_test, y_test, method="exact", train_indices=[5]).shape == (
        len(y_test), 1)


def test_same_numbers_for_any_n_jobs_sparse_and_train_indices():
    X, X_test, y, y_test = collinear(150)
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    one = explainer.loo(X_test, y_test, method="exact", n_jobs=1)
    np.testing.assert_array_equal(one, explainer.loo(X_test, y_test, method="exact",
                                                     n_jobs=2))
    with parallel_config(backend="threading"):
        np.testing.assert_array_equal(
            one, explainer.loo(X_test, y_test, method="exact", n_jobs=2))
    mask = np.zeros(len(y), dtype=bool)
    mask[[3, 10, 50]] = True
    np.testing.assert_array_equal(
        one[:, mask], explainer.loo(X_test, y_test, method="exact", train_indices=mask))
    sparse = InfluenceExplainer(model).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.loo(sp.csr_matrix(X_test), y_test, method="exact"),
                               one, rtol=0, atol=1e-12 * np.abs(one).max())


def test_estimator_untouched_and_self_loss():
    X, X_test, y, y_test = iris_pair()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000).fit(X, y)
    before = pickle.dumps(model)
    explainer = InfluenceExplainer(model).fit(X, y)
    rows = support_rows(explainer)
    explainer.loo(X_test, y_test, method="exact")
    assert pickle.dumps(model) == before
    own = explainer.loo_self_loss(method="exact")
    expected = np.array([true_loo(model, X, y, X[[row]], y[[row]], [row])[0, 0]
                         for row in rows[:8]])
    assert_exact(own[rows[:8]], expected)
    assert np.all(own[np.setdiff1d(np.arange(len(y)), rows)] == 0.0)


# ------------------------------------------------------ exact solution
@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
def test_exact_solution_certificate_and_fit_warning():
    X, X_test, y, y_test = collinear()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000).fit(X, y)
    solution = InfluenceExplainer(model).fit(X, y).influence_.exact_solution
    # the duality gap, recomputed here from the dual coefficients
    Xt = np.hstack([X, np.ones((len(y), 1))])
    sign = np.where(y == model.classes_[1], 1.0, -1.0)
    dual = solution.dual_coef[:, 0]
    alpha = sign * dual
    theta = Xt.T @ dual
    primal = 0.5 * theta @ theta + np.sum(np.maximum(0, 1 - sign * (Xt @ theta)))
    assert np.all((alpha >= 0) & (alpha <= 1.0))
    assert primal - (alpha.sum() - 0.5 * theta @ theta) <= 1e-12 * primal
    np.testing.assert_allclose(theta, solution.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(theta, true_solution(model, X, y)[0], rtol=0, atol=1e-10)
    # a model stopped early is far from it, and fit says how far
    early = LinearSVC(loss="hinge", C=1.0, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        early.fit(X, y)
    with pytest.warns(UserWarning, match=r"not at the optimum of its objective: its "
                                         r"coefficients are [0-9.e-]+ \(relative\)"):
        InfluenceExplainer(early).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        InfluenceExplainer(model).fit(X, y)  # converged: no warning


@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
def test_squared_hinge_exact_solution_is_stationary():
    X, X_test, y, y_test = digits([1, 7])
    model = LinearSVC(C=0.5, class_weight={1: 2.0}).fit(X, y)  # default tol
    solution = InfluenceExplainer(model).fit(X, y).influence_.exact_solution
    Xt = np.hstack([X, np.ones((len(y), 1))])
    sign = np.where(y == model.classes_[1], 1.0, -1.0)
    weight = 0.5 * np.where(y == 1, 2.0, 1.0)
    theta = solution.theta  # intercept_scaling 1: liblinear's scaling
    slack = np.maximum(0.0, 1.0 - sign * (Xt @ theta))
    gradient = theta - Xt.T @ (2.0 * weight * slack * sign)
    # P is 1-strongly convex: ||theta - theta*|| <= ||grad P(theta)||
    assert np.linalg.norm(gradient) <= 1e-11 * np.linalg.norm(theta)
    assert solution.fitted_distance > 1e-9  # the default-tol fit itself was not


# ------------------------------------------------------------- explain
def test_explain_zero_columns_and_the_leverage_step():
    X, X_test, y, y_test = iris_pair()
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    support = explainer.influence_.support[:, 0]
    first = explainer.explain(X_test, y_test)
    newton = explainer.explain(X_test, y_test, method="newton")
    assert np.all(first[:, ~support] == 0.0) and np.all(newton[:, ~support] == 0.0)
    # the leverage-corrected step: each column divided by 1 - h_ii, with
    # h_ii = D_i x~_i^T H^-1 x~_i on the smoothed objective at its optimum
    t = explainer.smoothing
    Xt = np.hstack([X, np.ones((len(y), 1))])
    sign = np.where(y == model.classes_[1], 1.0, -1.0)
    theta = explainer.family_.theta
    s = 1.0 / (1.0 + np.exp(-(1.0 - sign * (Xt @ theta)) / t))
    D = model.C * s * (1 - s) / t
    H = Xt.T @ (D[:, None] * Xt) + np.eye(Xt.shape[1])
    h = D * np.einsum("ij,ij->i", Xt @ np.linalg.inv(H), Xt)
    np.testing.assert_allclose(newton[:, support], first[:, support] / (1 - h[support]),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_collinear_n2000():
    X, y = make_classification(2200, 20, flip_y=0.1, random_state=0)
    X = StandardScaler().fit_transform(X)
    X, X_test, y, y_test = X[:2000], X[2000:2050], y[:2000], y[2000:2050]
    model = LinearSVC(loss="hinge", C=1.0, random_state=0, max_iter=100_000)
    explainer = fitted(model, X, y)
    rows = support_rows(explainer)[::8]
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    assert_exact(exact, true_loo(model, X, y, X_test, y_test, rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refit = explainer.loo(X_test, y_test, method="refit", train_indices=rows[:10])
    assert_exact(refit, exact[:, :10])
