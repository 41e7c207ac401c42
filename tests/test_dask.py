"""dask arrays end to end: every method on dask training rows, on a two-worker
LocalCluster, equals the numpy path (itself checked against finite
differences, refits, R and statsmodels elsewhere) within 1e-10 of the largest
value; each chunk is read once per pass; explain stays lazy."""

import collections
import threading

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import (
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _close(actual, expected, tol=1e-10):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), np.finfo(float).tiny)
    assert np.abs(actual - expected).max() <= tol * scale, \
        np.abs(actual - expected).max() / scale


def _digits(classes, n_features=20):
    data = load_digits()
    mask = np.isin(data.target, classes)
    X = data.data[mask]
    X = X[:, X.std(axis=0) > 0][:, :n_features]
    return X, data.target[mask]


def _regression(n=600, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 3.0
    y = X @ rng.normal(size=d) + rng.standard_t(3, size=n)
    return X, y


# (name, model, data, fit keyword arguments); the models see standardised
# digits except the Pipeline, which standardises chunk by chunk
CASES = {
    "ridge": (Ridge(alpha=2.0), "regression", {}),
    "linear_weighted": (LinearRegression(), "regression", {"weights": True}),
    "binary_logistic": (LogisticRegression(C=0.5, max_iter=2000), [1, 7], {}),
    "multinomial_balanced": (
        LogisticRegression(C=0.5, max_iter=5000, class_weight="balanced"),
        [0, 1, 2], {}),
    "liblinear": (LogisticRegression(solver="liblinear", C=0.5, tol=1e-10),
                  [3, 8], {}),
    "squared_hinge": (LinearSVC(C=0.1, dual=False, tol=1e-10, max_iter=10_000),
                      [0, 1, 2], {}),
    "poisson": (PoissonRegressor(alpha=0.1, tol=1e-10, max_iter=1000), "counts", {}),
    "huber": (HuberRegressor(max_iter=1000, tol=1e-10), "regression", {}),
    "lasso": (Lasso(alpha=0.05, tol=1e-12), "regression", {}),
    "l1_logistic": (LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.5,
                                       tol=1e-10), [3, 8], {}),
    "ridge_classifier": (RidgeClassifier(alpha=1.0, class_weight="balanced"),
                         [0, 1, 2], {}),
    "sgd": (SGDClassifier(loss="log_loss", alpha=0.01, max_iter=5000, tol=1e-10,
                          random_state=0), [4, 9], {}),
    "pipeline": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                 [5, 6], {"raw": True}),
}


def _case(name):
    model, data, options = CASES[name]
    if data == "regression":
        X, y = _regression()
    elif data == "counts":
        X, _ = _regression()
        X = StandardScaler().fit_transform(X)
        y = np.random.default_rng(3).poisson(np.exp(0.3 * X[:, 0] - 0.2 * X[:, 1]))
    else:
        X, y = _digits(data)
        if not options.get("raw"):
            X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.5, 2.0, size=len(y)) if options.get("weights") else None
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    if weights is not None:
        weights = weights[order]
    train, test = slice(0, len(y) - 25), slice(len(y) - 25, None)
    fit_params = {}
    if weights is not None:
        key = "sample_weight" if not hasattr(model, "steps") else \
            f"{model.steps[-1][0]}__sample_weight"
        fit_params[key] = weights[train]
    model.fit(X[train], y[train], **fit_params)
    return model, X[train], y[train], None if weights is None else weights[train], \
        X[test], y[test]


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_method_equals_the_numpy_path(client, name):
    model, X, y, weights, X_test, y_test = _case(name)
    chunks = (len(y) + 2) // 3  # three chunks of rows, the last one shorter
    X_dask = da.from_array(X, chunks=(chunks, X.shape[1]))
    y_dask = da.from_array(y, chunks=chunks)
    local = InfluenceExplainer(model, gradient_tol=1.0).fit(X, y, sample_weight=weights)
    remote = InfluenceExplainer(model, gradient_tol=1.0).fit(
        X_dask, y_dask, sample_weight=weights)
    assert remote.problem_.X is not None and hasattr(remote.problem_.X, "dask")
    # dimensionless, down to rounding for least squares: relative or 1e-12
    for name in ("relative_gradient_norm_", "fit_gap_"):
        a, b = getattr(remote, name), getattr(local, name)
        assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-8 * abs(b) + 1e-12

    lazy = remote.explain(X_test, y_test)
    assert isinstance(lazy, da.Array)
    assert lazy.chunks[1] == X_dask.chunks[0]  # training chunks kept
    _close(lazy.compute(), local.explain(X_test, y_test))
    # dask test rows: the result is chunked like them too
    X_test_dask = da.from_array(X_test, chunks=(10, X.shape[1]))
    lazy = remote.explain(X_test_dask, y_test, method="newton")
    assert lazy.chunks == (X_test_dask.chunks[0], X_dask.chunks[0])
    _close(lazy.compute(), local.explain(X_test, y_test, method="newton"))

    for dtype in (np.float64, np.float32):
        top, expected = (explainer.top_influencers(X_test, y_test, k=6, dtype=dtype)
                         for explainer in (remote, local))
        for side in ("helpful", "harmful"):
            np.testing.assert_array_equal(top[f"{side}_indices"],
                                          expected[f"{side}_indices"])
            _close(top[f"{side}_values"], expected[f"{side}_values"],
                   1e-10 if dtype == np.float64 else 1e-6)

    _close(remote.self_influence(), local.self_influence())
    _close(remote.validation_influence(X_test, y_test),
           local.validation_influence(X_test, y_test))
    for method in ("self_influence", "loo_self", "loss"):
        _close(remote.rank_suspicious(method).scores,
               local.rank_suspicious(method).scores)
    _close(remote.rank_suspicious("validation", X_test, y_test).scores,
           local.rank_suspicious("validation", X_test, y_test).scores)
    # the hook functionals build on: v^T H^-1 g_i for any parameter gradient v
    vector = np.random.default_rng(2).normal(size=local.family_.n_parameters)
    _close(remote.influence_.direction_influence(vector),
           local.influence_.direction_influence(vector))
    # the applications built on those passes
    _close(remote.functional_influence(X_test, "mean_loss", y_test),
           local.functional_influence(X_test, "mean_loss", y_test))
    groups = np.arange(len(y)) % 7
    for method in ("first_order", "newton"):
        _close(remote.group_influence(X_test[:5], y_test[:5], groups=groups, method=method),
               local.group_influence(X_test[:5], y_test[:5], groups=groups, method=method))
    _close(remote.parameter_influence(), local.parameter_influence())


def test_the_true_hinge_is_refused_with_the_fix(client):
    """The hinge is explained at its exact dual optimum, which needs the rows in
    memory: on dask rows it is refused, naming what runs instead."""
    X, y = _digits([4, 9])
    X = StandardScaler().fit_transform(X)
    model = LinearSVC(C=0.1, loss="hinge", tol=1e-8, max_iter=100_000,
                      random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="squared hinge"):
        InfluenceExplainer(model).fit(da.from_array(X, chunks=(100, X.shape[1])), y)


def test_matches_explicit_formula(client):
    """Independent of the numpy path: Ridge influence from the Hessian and the
    per-row gradients formed explicitly."""
    X, y = _regression(n=300, d=4)
    model = Ridge(alpha=3.0).fit(X, y)
    X_dask = da.from_array(X, chunks=(70, 4))
    explainer = InfluenceExplainer(model).fit(X_dask, y)
    Xt = np.hstack([X, np.ones((len(y), 1))])
    H = 2 * Xt.T @ Xt + np.diag([6.0] * 4 + [0.0])
    residual = Xt @ np.append(model.coef_, model.intercept_) - y
    G_train = 2 * residual[:, None] * Xt
    X_test, y_test = X[:5] + 0.1, y[:5]
    residual_test = X_test @ model.coef_ + model.intercept_ - y_test
    G_test = 2 * residual_test[:, None] * np.hstack([X_test, np.ones((5, 1))])
    _close(explainer.explain(X_test, y_test).compute(),
           G_test @ np.linalg.solve(H, G_train.T), 1e-10)


def test_iterative_solver_on_dask(client):
    """cg only needs Hessian-vector products and the diagonal: both passes."""
    X, y = _regression(n=400, d=6)
    model = Ridge(alpha=1.0).fit(X, y)
    X_dask = da.from_array(X, chunks=(150, 6))
    local = InfluenceExplainer(model, solver="cg", tol=1e-12).fit(X, y)
    remote = InfluenceExplainer(model, solver="cg", tol=1e-12).fit(X_dask, y)
    _close(remote.explain(X[:4], y[:4]).compute(), local.explain(X[:4], y[:4]), 1e-9)


# ----------------------------------------------------------- passes over the data
_reads = collections.Counter()
_lock = threading.Lock()


def _load(X, index, rows):
    with _lock:
        _reads[index] += 1
    return X[rows]


def _counting_array(X, chunk):
    """A dask array whose chunks count how often they are loaded."""
    blocks = [da.from_delayed(dask.delayed(_load, pure=False)(X, i, slice(s, s + chunk)),
                              shape=(min(chunk, len(X) - s), X.shape[1]), dtype=X.dtype)
              for i, s in enumerate(range(0, len(X), chunk))]
    return da.concatenate(blocks)


def test_each_method_reads_each_chunk_once_per_pass(client):
    X, y = _digits([1, 7])
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(max_iter=2000).fit(X, y)
    X_dask = _counting_array(X, 90)
    n_chunks = len(X_dask.chunks[0])
    _reads.clear()
    explainer = InfluenceExplainer(model).fit(X_dask, y)
    # the linear predictor; gradient, |gradient| and Hessian together; the fit check
    assert dict(_reads) == {i: 3 for i in range(n_chunks)}
    for call in (lambda: explainer.explain(X[:7], y[:7]).compute(),
                 lambda: explainer.top_influencers(X[:7], y[:7], k=3),
                 lambda: explainer.self_influence(),
                 lambda: explainer.validation_influence(X[:7], y[:7])):
        _reads.clear()
        call()
        assert dict(_reads) == {i: 1 for i in range(n_chunks)}


def test_dask_errors_name_the_fix(client):
    X, y = _regression(n=200, d=3)
    X_dask = da.from_array(X, chunks=(50, 3))
    with pytest.raises(ValueError, match="cannot be fitted on a dask array"):
        InfluenceExplainer(Ridge()).fit(X_dask, y)
    model = Ridge().fit(X, y)
    bad = X.copy()
    bad[123, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in rows \[123\]"):
        InfluenceExplainer(model).fit(da.from_array(bad, chunks=(50, 3)), y)
    with pytest.raises(ValueError, match="X has 2 features"):
        InfluenceExplainer(model).fit(X_dask[:, :2], y)
    explainer = InfluenceExplainer(model).fit(X_dask, y)
    with pytest.raises(TypeError, match="needs the training rows in memory"):
        explainer.loo(X[:2], y[:2])
    bad_test = da.from_array(bad[120:125], chunks=(5, 3))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        explainer.top_influencers(bad_test, y[120:125])


def test_ill_conditioned_rows_take_the_tall_skinny_qr(client):
    """Above the Cholesky condition limit the factor is orthogonalised by
    dask's tall-skinny QR, chunk by chunk, as the numpy path does by
    Householder QR (condition 1e10 here: agreement to 1e-9)."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=600)
    X = np.column_stack([t, t + 1e-3 * rng.normal(size=600), rng.normal(size=600)]) + 50
    y = X @ [1.0, 2.0, 3.0] + rng.normal(size=600)
    model = LinearRegression().fit(X, y)
    local = InfluenceExplainer(model).fit(X, y)
    remote = InfluenceExplainer(model).fit(da.from_array(X, chunks=(150, 3)), y)
    assert local.solver_.diagnostics_["form"] == "qr"
    assert remote.solver_.diagnostics_["form"] == "qr"
    _close(remote.explain(X[:3], y[:3]).compute(), local.explain(X[:3], y[:3]), 1e-9)
    _close(remote.self_influence(), local.self_influence(), 1e-9)
