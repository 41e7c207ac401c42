"""The retraining estimators on models without a family, against brute-force
refits of scikit-learn clones with the same seeds, written out by hand here."""

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from skinfluence import banzhaf, loo_refit, subsample_influence, tmc_shapley
from skinfluence.estimators.subsets import top_k_overlap


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.RandomState(0)
    rows = rng.permutation(len(y))
    X = StandardScaler().fit_transform(X)
    return X[rows[:50]], y[rows[:50]], X[rows[50:58]], y[rows[50:58]]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:40], y[:40], X[40:46], y[40:46]


def _log_loss_rows(model, X, y, classes):
    """Per-row log-loss, probabilities clipped to machine epsilon like
    sklearn.metrics.log_loss (checked on the first row)."""
    P = model.predict_proba(X)
    rows = -np.log(np.clip(P[np.arange(len(y)), np.searchsorted(classes, y)],
                           np.finfo(float).eps, 1.0))
    assert rows[0] == pytest.approx(log_loss(y[:1], P[:1], labels=classes))
    return rows


@pytest.fixture(autouse=True)
def one_thread():
    """Brute-force refits here on one OpenMP/BLAS thread (boosting on a busy
    2-core machine is otherwise 20x slower)."""
    with threadpool_limits(1):
        yield


def _brute_loo(estimator, X, y, X_test, y_test, rows, measure):
    base = measure(clone(estimator).fit(X, y), X_test, y_test)
    out = []
    for i in rows:
        keep = np.arange(len(y)) != i
        out.append(measure(clone(estimator).fit(X[keep], y[keep]), X_test, y_test) - base)
    return np.array(out).T


def _squared(model, X, y):
    return (model.predict(X) - y) ** 2


CASES = {
    "hist_gradient_boosting": (
        lambda: HistGradientBoostingClassifier(max_iter=10, min_samples_leaf=5,
                                               random_state=0), "cancer"),
    "random_forest": (lambda: RandomForestRegressor(n_estimators=5, random_state=0),
                      "diabetes"),
    "k_neighbors": (lambda: KNeighborsClassifier(n_neighbors=3), "cancer"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loo_refit_equals_brute_force(name, request):
    make, data = CASES[name]
    X, y, X_test, y_test = request.getfixturevalue(data)
    est = make()
    rows = np.arange(0, 50 if data == "cancer" else 40, 4)
    got = loo_refit(est, X, y, X_test, y_test, train_indices=rows)
    measure = ((lambda m, A, b: _log_loss_rows(m, A, b, [0, 1])) if data == "cancer"
               else _squared)
    truth = _brute_loo(est, X, y, X_test, y_test, rows, measure)
    assert got.shape == (len(y_test), len(rows))
    assert np.abs(truth).max() > 1e-3  # the removals do move the models
    np.testing.assert_allclose(got, truth, rtol=0, atol=1e-10 * np.abs(truth).max())


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("backend", ["threading", pytest.param("loky",
                                                                marks=pytest.mark.slow)])
def test_n_jobs_does_not_change_the_numbers(name, backend, request):
    make, data = CASES[name]
    X, y, X_test, y_test = request.getfixturevalue(data)
    a = subsample_influence(make(), X, y, X_test, y_test, n_models=16,
                            random_state=0, n_jobs=1)
    b_loo = loo_refit(make(), X, y, X_test, y_test, train_indices=range(6), n_jobs=1)
    with parallel_config(backend=backend):
        b = subsample_influence(make(), X, y, X_test, y_test, n_models=16,
                                random_state=0, n_jobs=2)
        c_loo = loo_refit(make(), X, y, X_test, y_test, train_indices=range(6),
                          n_jobs=2)
    np.testing.assert_array_equal(a.influence, b.influence)
    np.testing.assert_array_equal(b_loo, c_loo)


def test_subsample_influence_equals_hand_computed_means(cancer):
    X, y, X_test, y_test = cancer
    est = HistGradientBoostingClassifier(max_iter=10, min_samples_leaf=5,
                                         random_state=0)
    res = subsample_influence(est, X, y, X_test, y_test, n_models=16, random_state=3)
    models = [clone(est).fit(X[m], y[m]) for m in res.masks]
    test = np.array([_log_loss_rows(f, X_test, y_test, [0, 1]) for f in models])
    train = np.array([_log_loss_rows(f, X, y, [0, 1]) for f in models])
    correct = np.array([f.predict(X) == y for f in models], dtype=float)
    M = res.masks
    for i in (0, 7, 30):
        inside, outside = M[:, i], ~M[:, i]
        np.testing.assert_allclose(
            res.influence[:, i], test[outside].mean(0) - test[inside].mean(0),
            atol=1e-12)
        np.testing.assert_allclose(
            res.self_influence[i], train[outside, i].mean() - train[inside, i].mean(),
            atol=1e-12)
        np.testing.assert_allclose(
            res.memorization[i], correct[inside, i].mean() - correct[outside, i].mean(),
            atol=1e-12)


def test_banzhaf_equals_hand_computed_means(diabetes):
    X, y, X_val, y_val = diabetes
    est = KNeighborsRegressor(n_neighbors=2)
    res = banzhaf(est, X[:12], y[:12], X_val, y_val, n_samples=40, random_state=0)
    U = []
    for m in res.masks:
        if m.sum() >= 2:
            U.append(-(clone(est).fit(X[:12][m], y[:12][m]).predict(X_val) - y_val) ** 2)
        else:  # too few rows for two neighbours: the null model, the mean target
            U.append(-(y[:12].mean() - y_val) ** 2)
    U = np.array(U)
    M = res.masks
    truth = np.array([U[M[:, i]].mean(0) - U[~M[:, i]].mean(0) for i in range(12)]).T
    np.testing.assert_allclose(res.test_values, truth, atol=1e-9)


def test_tmc_shapley_efficiency_and_enumeration():
    """Without truncation the values sum to U(all) - U(null) exactly; against
    the Shapley values enumerated over every subset of 5 rows."""
    from itertools import combinations
    from math import factorial

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=5)
    X_val, y_val = rng.normal(size=(4, 2)), rng.normal(size=4)
    est = KNeighborsRegressor(n_neighbors=1)

    def U(S):
        if not S:
            return -np.mean((y.mean() - y_val) ** 2)
        S = list(S)
        return -np.mean((clone(est).fit(X[S], y[S]).predict(X_val) - y_val) ** 2)

    values = {frozenset(S): U(S) for r in range(6) for S in combinations(range(5), r)}
    exact = np.zeros(5)
    for i in range(5):
        for S, u in values.items():
            if i not in S:
                w = factorial(len(S)) * factorial(4 - len(S)) / factorial(5)
                exact[i] += w * (values[S | {i}] - u)
    res = tmc_shapley(est, X, y, X_val, y_val, n_permutations=200, truncation_tol=0,
                      random_state=0)
    np.testing.assert_allclose(res.data_values.sum(), exact.sum(), rtol=1e-10)
    assert np.all(np.abs(res.data_values - exact) < 4 * res.stderr + 1e-12)


class _SeedOnly(RegressorMixin, BaseEstimator):
    """Predicts one normal draw of its random_state, whatever the data."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        self.value_ = check_random_state(self.random_state).normal()
        return self

    def predict(self, X):
        return np.full(len(X), self.value_)


def test_fixed_seeds_exclude_training_noise_and_vary_includes_it(diabetes):
    X, y, X_test, y_test = diabetes
    fixed = loo_refit(_SeedOnly(), X, y, X_test, None, random_state=0)
    np.testing.assert_array_equal(fixed, 0.0)  # one seed: only the data differs
    vary = loo_refit(_SeedOnly(), X, y, X_test, None, random_state=0,
                     refit_seeds="vary")
    assert np.unique(vary[0]).size == len(y)  # an own seed per refit
    with parallel_config(backend="threading"):
        again = loo_refit(_SeedOnly(), X, y, X_test, None, random_state=0,
                          refit_seeds="vary", n_jobs=2)
    np.testing.assert_array_equal(vary, again)
    seen = []

    def record(est, X, y):
        seen.append(est.value_)
        return 0.0

    loo_refit(_SeedOnly(random_state=7), X, y, X_test, y_test, train_indices=[0, 1],
              scoring=record)
    # an integer seed of the estimator is kept for every refit
    assert seen == [np.random.RandomState(7).normal()] * 3


def test_a_vanishing_class_gives_nan_and_names_the_row(cancer):
    X, y, X_test, y_test = cancer
    y = y.copy()
    y[5] = 2  # the only row of class 2
    with pytest.warns(UserWarning, match=r"1 of 3 refits without rows failed \(5\)"
                      r".*class 2 has no row left"):
        got = loo_refit(KNeighborsClassifier(3), X, y, X_test, y_test,
                        train_indices=[4, 5, 6])
    assert np.isnan(got[:, 1]).all() and np.isfinite(got[:, [0, 2]]).all()


def test_failed_subset_models_are_left_out_with_a_warning(diabetes):
    X, y, X_test, y_test = diabetes

    class Fragile(KNeighborsRegressor):
        def fit(self, X, y):
            if 0.5 < len(y) and abs(y.sum()) % 7 < 1:
                raise RuntimeError("this subset is cursed")
            return super().fit(X, y)

    with pytest.warns(UserWarning, match="subset models failed.*cursed.*left out"):
        res = subsample_influence(Fragile(n_neighbors=2), X, y, X_test, y_test,
                                  n_models=30, random_state=0)
    assert 0 < len(res.masks) < 30 and np.isfinite(res.influence).all()


def test_pipeline_is_refitted_whole(cancer):
    X, y, X_test, y_test = cancer
    X = X * 10.0 + 3.0  # the scaler matters
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3))
    got = loo_refit(pipe, X, y, X_test, y_test, train_indices=[0, 1, 2])
    truth = _brute_loo(pipe, X, y, X_test, y_test, [0, 1, 2],
                       lambda m, A, b: _log_loss_rows(m, A, b, [0, 1]))
    np.testing.assert_allclose(got, truth, atol=1e-12)
    # a linear final step is refitted at tight tolerance
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5))
    tight = make_pipeline(StandardScaler(), LogisticRegression(
        C=0.5, solver="newton-cholesky", tol=1e-12, max_iter=1000))
    got = loo_refit(pipe, X, y, X_test, y_test, train_indices=[0, 1, 2])
    truth = _brute_loo(tight, X, y, X_test, y_test, [0, 1, 2],
                       lambda m, A, b: _log_loss_rows(m, A, b, [0, 1]))
    np.testing.assert_allclose(got, truth, atol=1e-6 * np.abs(truth).max())


def test_dataframe_pipeline_with_categories():
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"colour": rng.choice(["red", "blue"], 30),
                          "size": rng.normal(size=30)})
    y = (frame["size"] + (frame["colour"] == "red") > 0.5).astype(int).to_numpy()
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["colour"]),
                                                 remainder="passthrough"),
                         KNeighborsClassifier(3))
    got = loo_refit(pipe, frame, y, frame.iloc[:4], y[:4], train_indices=[0, 1])
    base = _log_loss_rows(clone(pipe).fit(frame, y), frame.iloc[:4], y[:4], [0, 1])
    for column, i in enumerate([0, 1]):
        keep = np.arange(30) != i
        refit = clone(pipe).fit(frame.iloc[keep], y[keep])
        np.testing.assert_allclose(
            got[:, column],
            _log_loss_rows(refit, frame.iloc[:4], y[:4], [0, 1]) - base, atol=1e-12)


def test_scoring_for_a_classifier_without_predict_proba(cancer):
    X, y, X_test, y_test = cancer
    with pytest.raises(ValueError, match="no predict_proba.*pass scoring"):
        loo_refit(SVC(), X, y, X_test, y_test)
    got = loo_refit(SVC(), X, y, X_test, y_test, train_indices=[0, 1, 2],
                    scoring="accuracy")
    truth = _brute_loo(SVC(), X, y, X_test, y_test, [0, 1, 2],
                       lambda m, A, b: -accuracy_score(b, m.predict(A)))
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got[0], truth, atol=1e-12)


def test_bad_input_names_the_fix(cancer):
    X, y, X_test, y_test = cancer
    with pytest.raises(ValueError, match="does not take sample_weight"):
        subsample_influence(KNeighborsClassifier(), X, y, X_test, y_test,
                            sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="engine='newton' is not available"):
        banzhaf(KNeighborsClassifier(), X, y, X_test, y_test, engine="newton")
    with pytest.raises(ValueError, match="refit_seeds must be"):
        loo_refit(KNeighborsClassifier(), X, y, X_test, y_test, refit_seeds="random")
    with pytest.raises(ValueError, match="either utility or scoring"):
        banzhaf(KNeighborsClassifier(), X, y, X_test, y_test, utility="accuracy",
                scoring="accuracy")
    with pytest.raises(ValueError, match="n_repeats must be at least 1"):
        banzhaf(KNeighborsClassifier(), X, y, X_test, y_test, n_repeats=0)


def test_progress_is_printed_when_verbose(cancer, capsys):
    X, y, X_test, y_test = cancer
    loo_refit(KNeighborsClassifier(), X, y, X_test, y_test, verbose=1)
    err = capsys.readouterr().err
    assert "[skinfluence] leave-one-out refits: 50/50 refits" in err
    assert "s left" in err


def test_repeats_report_an_honest_spread(diabetes):
    """The spread of independent repeats agrees with the within-run standard
    errors, and the top-k overlap is the share of common rows."""
    X, y, X_val, y_val = diabetes
    res = banzhaf(KNeighborsRegressor(n_neighbors=3), X[:20], y[:20], X_val, y_val,
                  n_samples=64, n_repeats=6, random_state=0)
    assert res.repeat_values.shape == (6, 20) and res.n_repeats == 6
    ratio = np.median(res.repeat_stderr / res.stderr)
    assert 0.6 < ratio < 1.6, ratio
    assert 0 <= res.harmful_overlap <= 1 and 0 <= res.helpful_overlap <= 1
    pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)]
    manual = np.mean([len(set(np.argsort(-res.repeat_values[a])[:10])
                          & set(np.argsort(-res.repeat_values[b])[:10])) / 10
                      for a, b in pairs])
    assert res.helpful_overlap == pytest.approx(manual)


def test_top_k_overlap():
    a = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    b = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    assert top_k_overlap(a, b, 2) == 0.5
    assert top_k_overlap(a, b, 2, largest=False) == 0.5
    assert top_k_overlap(a, a, 3) == 1.0


def test_no_rows_and_bad_rows(cancer):
    X, y, X_test, y_test = cancer
    assert loo_refit(KNeighborsClassifier(), X, y, X_test, y_test,
                     train_indices=[]).shape == (len(y_test), 0)
    with pytest.raises(ValueError, match=r"integer positions in \[0, 50\)"):
        loo_refit(KNeighborsClassifier(), X, y, X_test, y_test, train_indices=[50])
