"""Exact hinge leave-one-out: the decremental path against cold liblinear refits.

For ``LinearSVC(loss="hinge")`` (fitted at its default ``tol``) this script
times, in one process on one BLAS thread, for the same training rows:

* ``path``: ``InfluenceExplainer.loo(method="exact")``, the decremental path
  from the exact optimum (recovered from the fitted coefficients by the
  explainer's ``fit``, timed separately as ``fit``);
* ``raw refits``: cold liblinear refits without each row, with the settings of
  ``loo(method="refit")`` (``tol=1e-10``, ``max_iter=100_000``,
  ``random_state=0``), not polished;
* ``certified refits``: ``loo(method="refit")``, those refits polished to the
  exact optimum and checked by their KKT conditions and duality gap;

and the agreement of the test-hinge changes: ``path vs certified`` and
``raw vs path``, as the largest absolute difference over the largest effect,
and how many raw refits stopped at ``max_iter`` (stalled). Data: iris versicolor
vs virginica (80 training rows), digits 1 vs 7 (288 rows, constant pixels
dropped) and ``make_classification(n + 200, 20, flip_y=0.1)`` (its two redundant
features make the rows collinear) with n = 300 and 2000; all standardised. Every
training row is removed in turn (the same rows for every method). The explainer
warns that the collinear models fitted at the default ``tol`` are far from their
exact optimum; the warning is silenced here.

Run: ``python benchmarks/hinge_path.py``
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.families import family_for


def datasets():
    iris = load_iris()
    mask = iris.target > 0
    X = StandardScaler().fit_transform(iris.data[mask])
    order = np.random.RandomState(0).permutation(mask.sum())
    for C in (0.1, 1.0, 10.0):
        yield "iris", C, X[order[:80]], iris.target[mask][order[:80]], \
            X[order[80:]], iris.target[mask][order[80:]]
    digits = load_digits()
    mask = np.isin(digits.target, [1, 7])
    X = digits.data[mask]
    X = StandardScaler().fit_transform(X[:, X.std(axis=0) > 0])
    y = digits.target[mask]
    order = np.random.RandomState(0).permutation(len(y))
    for C in (0.01, 1.0):
        yield "digits 1 vs 7", C, X[order[:288]], y[order[:288]], X[order[288:]], \
            y[order[288:]]
    for n in (300, 2000):
        X, y = make_classification(n + 200, 20, flip_y=0.1, random_state=0)
        X = StandardScaler().fit_transform(X)
        yield "collinear", 1.0, X[:n], y[:n], X[n:], y[n:]


def raw_refits(model, X, y, X_test, y_test, rows):
    """Cold liblinear refits without each row: effects, stalled count."""
    tight = dict(tol=1e-10, max_iter=100_000, random_state=0)
    full = LinearSVC(**{**model.get_params(), **tight}).fit(X, y)
    base = family_for(full).test_quantity(X_test, y_test)
    out, stalled = np.empty((len(y_test), len(rows))), 0
    for position, row in enumerate(rows):
        keep = np.arange(len(y)) != row
        refit = LinearSVC(**{**model.get_params(), **tight}).fit(X[keep], y[keep])
        stalled += int(np.max(refit.n_iter_) >= tight["max_iter"])
        out[:, position] = family_for(refit).test_quantity(X_test, y_test) - base
    return out, stalled


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.filterwarnings("ignore", message="This LinearSVC is not at the optimum")
    print(f"{'data':14s} {'C':>5s} {'n':>5s} {'rows':>5s} {'SV':>5s} {'fit':>6s} "
          f"{'path':>7s} {'raw refits':>10s} {'speed-up':>8s} {'certified':>9s} "
          f"{'speed-up':>8s} {'path-cert':>9s} {'raw-path':>9s} {'stalled':>7s}")
    with threadpool_limits(1):
        for name, C, X, y, X_test, y_test in datasets():
            model = LinearSVC(loss="hinge", C=C, random_state=0).fit(X, y)
            rows = np.arange(len(y))
            start = time.perf_counter()
            explainer = InfluenceExplainer(model, gradient_tol=1e3).fit(X, y)
            fit = time.perf_counter() - start
            n_support = int(explainer.influence_.support.any(axis=1)[rows].sum())

            start = time.perf_counter()
            path = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
            path_time = time.perf_counter() - start
            start = time.perf_counter()
            raw, stalled = raw_refits(model, X, y, X_test, y_test, rows)
            raw_time = time.perf_counter() - start
            start = time.perf_counter()
            certified = explainer.loo(X_test, y_test, method="refit", train_indices=rows)
            certified_time = time.perf_counter() - start

            scale = np.abs(certified).max()
            print(f"{name:14s} {C:5g} {len(y):5d} {len(rows):5d} {n_support:5d} "
                  f"{fit:6.3f} {path_time:7.3f} {raw_time:10.2f} "
                  f"{raw_time / path_time:7.0f}x {certified_time:9.2f} "
                  f"{certified_time / path_time:7.0f}x "
                  f"{np.abs(path - certified).max() / scale:9.1e} "
                  f"{np.abs(raw - path).max() / scale:9.1e} {stalled:7d}")
    print("\ntimes in seconds, one process, one BLAS thread; speed-ups are refits / path;"
          "\npath-cert and raw-path: largest difference / largest effect")


if __name__ == "__main__":
    main()
