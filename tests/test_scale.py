"""Memory-bounded paths: top-k, chunked and float32 explain, self-influence,
memory-mapped training data."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer


def _digits(classes):
    data = load_digits()
    mask = np.isin(data.target, classes)
    X = StandardScaler().fit_transform(data.data[mask])
    return X, data.target[mask]


def _check_top(influence, top, k):
    helpful = np.argsort(-influence, axis=1, kind="stable")[:, :k]
    harmful = np.argsort(influence, axis=1, kind="stable")[:, :k]
    np.testing.assert_allclose(top.helpful_values,
                               np.take_along_axis(influence, helpful, axis=1), rtol=1e-12)
    np.testing.assert_allclose(top.harmful_values,
                               np.take_along_axis(influence, harmful, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(top.helpful_indices, helpful)
    np.testing.assert_array_equal(top.harmful_indices, harmful)


@pytest.mark.parametrize("model, classes", [
    (LogisticRegression(max_iter=1000), [1, 7]),
    (LogisticRegression(max_iter=1000, class_weight="balanced"), [0, 1, 2]),
    (LinearSVC(dual=False, tol=1e-8, max_iter=10_000), [0, 1, 2]),
])
def test_top_influencers_equal_the_top_of_explain(model, classes):
    X, y = _digits(classes)
    X_train, y_train, X_test, y_test = X[:-20], y[:-20], X[-20:], y[-20:]
    model.fit(X_train, y_train)
    explainer = InfluenceExplainer(model, gradient_tol=1.0).fit(X_train, y_train)
    influence = explainer.explain(X_test, y_test)
    for chunk_size in (None, 3):
        top = explainer.top_influencers(X_test, y_test, k=7, chunk_size=chunk_size)
        _check_top(influence, top, 7)


def test_top_influencers_on_a_long_training_set():
    """Past 32,768 rows the selection filters by a sampled threshold."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + rng.standard_t(3, size=40_000)
    model = Ridge(alpha=1.0).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    X_test, y_test = rng.normal(size=(6, 4)), rng.normal(size=6)
    influence = explainer.explain(X_test, y_test)
    _check_top(influence, explainer.top_influencers(X_test, y_test, k=12), 12)
    # prediction influence (no labels) too, in float32
    top = explainer.top_influencers(X_test, k=5, dtype=np.float32)
    assert top.helpful_values.dtype == np.float32
    reference = explainer.explain(X_test)
    np.testing.assert_allclose(top.helpful_values,
                               -np.sort(-reference, axis=1)[:, :5], rtol=1e-4)


def test_top_influencers_validates_k():
    X, y = _digits([1, 7])
    explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        explainer.top_influencers(X[:2], y[:2], k=0)
    top = explainer.top_influencers(X[:2], y[:2], k=10_000)
    assert top.helpful_indices.shape == (2, len(y))


def test_chunked_and_float32_explain():
    X, y = _digits([0, 1, 2])
    explainer = InfluenceExplainer(LogisticRegression(max_iter=1000).fit(X, y)).fit(X, y)
    full = explainer.explain(X[:30], y[:30])
    np.testing.assert_allclose(explainer.explain(X[:30], y[:30], chunk_size=4), full,
                               rtol=1e-12, atol=1e-18)
    single = explainer.explain(X[:30], y[:30], dtype=np.float32)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, full, rtol=0, atol=1e-5 * np.abs(full).max())
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        explainer.explain(X[:3], y[:3], dtype=np.int64)


def test_self_influence_against_brute_force():
    """grad l_i^T H^{-1} grad f_i with the Hessian and the gradients formed
    explicitly in numpy (binary logistic with liblinear's penalised intercept)."""
    X, y = _digits([3, 8])
    X = X[:, :12]
    C, scaling = 0.5, 2.0
    model = LogisticRegression(C=C, solver="liblinear", intercept_scaling=scaling,
                               tol=1e-10).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    Xt = np.hstack([X, np.ones((len(y), 1))])
    theta = np.append(model.coef_.ravel(), model.intercept_)
    p = 1 / (1 + np.exp(-Xt @ theta))
    t = (y == model.classes_[1]).astype(float)
    penalty = np.append(np.ones(X.shape[1]), 1 / scaling**2)
    H = C * (Xt * (p * (1 - p))[:, None]).T @ Xt + np.diag(penalty)
    G = (p - t)[:, None] * Xt  # unweighted loss gradients, one row each
    expected = np.einsum("ij,ij->i", G @ np.linalg.inv(H), C * G)
    np.testing.assert_allclose(explainer.self_influence(), expected, rtol=1e-8)


def test_memory_mapped_training_matrix(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    y = (X[:, 0] + rng.normal(size=500) > 0).astype(int)
    path = tmp_path / "X.dat"
    mapped = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mapped[:] = X
    mapped.flush()
    mapped = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    model = LogisticRegression().fit(X, y)
    explainer = InfluenceExplainer(model).fit(mapped, y)
    assert np.shares_memory(explainer.problem_.X, mapped)  # never copied
    reference = InfluenceExplainer(model).fit(X, y)
    np.testing.assert_allclose(explainer.explain(X[:5], y[:5]),
                               reference.explain(X[:5], y[:5]), rtol=1e-12)
    np.testing.assert_array_equal(explainer.top_influencers(X[:5], y[:5]).helpful_indices,
                                  reference.top_influencers(X[:5], y[:5]).helpful_indices)


def _long_logistic(n=30_000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0).astype(int)
    model = LogisticRegression(C=1.0).fit(X, y)
    return InfluenceExplainer(model).fit(X, y), rng.normal(size=(40, d)), \
        rng.integers(0, 2, size=40)


def test_streamed_top_k_skips_tiles_and_stays_exact():
    """Most rows of a well-fitted logistic model have small residuals: the
    Cauchy-Schwarz bound skips most tiles, and the result is still the top of
    explain, whatever the number of threads."""
    from skinfluence._influence import influence_directions, stream_top_k

    explainer, X_test, y_test = _long_logistic()
    fitted = explainer.influence_
    influence = explainer.explain(X_test, y_test)
    _check_top(influence, explainer.top_influencers(X_test, y_test, k=8), 8)
    Y, Z = fitted.test_targets(X_test, y_test)
    U = fitted.solver.solve(fitted.problem.row_gradients(X_test,
                                                         fitted.test_gradient(Y, Z)))
    A = influence_directions(U, None)
    tops = [stream_top_k(fitted.family, A, fitted.problem.X, fitted.removal_residuals,
                         None, 8, n_threads=threads) for threads in (1, 2)]
    assert tops[0].computed < 0.6 * influence.size  # the bound pays here
    for largest in (True, False):
        np.testing.assert_array_equal(tops[0].indices[largest], tops[1].indices[largest])
        np.testing.assert_array_equal(tops[0].values[largest], tops[1].values[largest])


def test_a_wrong_bound_is_caught(monkeypatch):
    """The check can fail: with wrong gradient norms (small where they are
    large) the bound skips tiles that hold top entries, and the comparison
    with explain fails."""
    import skinfluence._influence as algebra

    explainer, X_test, y_test = _long_logistic()
    influence = explainer.explain(X_test, y_test)
    true_norms = algebra.removal_gradient_norms
    monkeypatch.setattr(algebra, "removal_gradient_norms",
                        lambda *args: 1e-3 / (true_norms(*args) + 1e-300))
    top = explainer.top_influencers(X_test, y_test, k=8)
    with pytest.raises(AssertionError):
        _check_top(influence, top, 8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, d, m", [(9_500, 230, 40), (100_000, 10, 420)])
def test_blocked_passes_against_brute_force(n, d, m, dtype):
    """The passes over blocks of rows against the Hessian, its inverse and
    the gradients formed in numpy. Wide (230 columns): the Hessian's rank-k
    updates run in order over five blocks of 2,048 rows, the last one short,
    and the contraction on scipy's BLAS over five (float64) or three
    (float32) blocks; narrow (10 columns, 420 test rows): the contraction
    runs in two threads over three (float64) or two (float32) blocks of
    removal gradients."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (X[:, :5].sum(axis=1) + rng.normal(size=n) > 0).astype(int)
    C = 0.05
    model = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    Xt = np.hstack([X, np.ones((n, 1))])
    theta = np.append(model.coef_.ravel(), model.intercept_)
    p = 1 / (1 + np.exp(-Xt @ theta))
    H = C * (Xt * (p * (1 - p))[:, None]).T @ Xt + np.diag(np.append(np.ones(d), 0.0))
    X_test, y_test = X[:m] + 0.1, y[:m]
    Xs = np.hstack([X_test, np.ones((m, 1))])
    G_test = (1 / (1 + np.exp(-Xs @ theta)) - y_test)[:, None] * Xs
    G_train = C * (p - y)[:, None] * Xt
    expected = G_test @ np.linalg.solve(H, G_train.T)
    got = explainer.explain(X_test, y_test, dtype=dtype)
    assert got.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol * np.abs(expected).max())


def test_explain_is_one_chunk_of_test_rows_whatever_the_working_memory(monkeypatch):
    """The influence matrix is the result, not a temporary: explain writes it
    in one chunk of test rows (a second chunk repeats the pass over the
    training rows), while the per-target path, which holds temporaries of that
    size, still follows scikit-learn's working_memory."""
    import sklearn

    import skinfluence._fitted as fitted_module

    rng = np.random.default_rng(0)
    n = 20_000
    X, X_test = rng.normal(size=(n, 5)), rng.normal(size=(40, 5))
    y = X @ rng.normal(size=5) + rng.normal(size=n)
    Y = np.column_stack([y, -2.0 * y + rng.normal(size=n)])
    calls = []
    original = fitted_module.first_order_block

    def counting(*args, **kwargs):
        calls.append(args[-2].shape[0])  # the chunk of test rows
        return original(*args, **kwargs)

    monkeypatch.setattr(fitted_module, "first_order_block", counting)
    # a row of influence is 160 KB: 4 MiB of temporaries would hold 26 of them,
    # and the 40 rows' small temporaries in one chunk
    explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
    with sklearn.config_context(working_memory=4):
        influence = explainer.explain(X_test, rng.normal(size=40))
    assert calls == [40]
    assert influence.shape == (40, n)
    calls.clear()
    multi = InfluenceExplainer(Ridge().fit(X, Y)).fit(X, Y)
    with sklearn.config_context(working_memory=4):
        multi.explain(X_test)  # one block per target, chunked by working memory
    assert len(calls) > 2 and max(calls) < 40
