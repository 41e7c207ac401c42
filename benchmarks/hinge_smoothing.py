"""Choose the hinge smoothing: influence estimates vs the exact hinge leave-one-out.

For LinearSVC(loss="hinge") the training objective is smoothed to
``t log(1 + exp((1 - m) / t))``. This script reports Pearson(estimate, LOO) for
several ``t``, for

* the influence function, at scikit-learn's fitted coefficients
  (``smoothing_resolve=False``) and after re-solving the smoothed objective
  from them by Newton's method (``smoothing_resolve=True``, the default), and
* the leverage-corrected step ``explain(method="newton")`` (re-solved),

on iris versicolor vs virginica and digits 1 vs 7, three random splits each,
for the five test rows with the largest hinge loss (rows with zero hinge loss
have zero leave-one-out change). The LOO truth is ``loo(method="exact")``, the
decremental path from the exact hinge optimum; the script also checks it
against refits of the hinge-loss LinearSVC (``loo(method="refit")``, certified
by their duality gap) and prints both times.

Run: ``python benchmarks/hinge_smoothing.py``
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer

SMOOTHING = [0.001, 0.003, 0.01, 0.03, 0.1]
ESTIMATES = ("at sklearn coef", "re-solved", "newton step")


def datasets():
    iris = load_iris()
    mask = iris.target > 0
    yield "iris 2 vs 3", StandardScaler().fit_transform(iris.data[mask]), iris.target[mask], 80
    digits = load_digits()
    mask = np.isin(digits.target, [1, 7])
    X = digits.data[mask]
    yield "digits 1 vs 7", StandardScaler().fit_transform(X[:, X.std(0) > 0]), digits.target[mask], 300


def pearson(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def main():
    warnings.simplefilter("ignore")
    results = {}
    for name, X, y, n_train in datasets():
        for seed in range(3):
            order = np.random.RandomState(seed).permutation(len(y))
            train, test = order[:n_train], order[n_train:]
            model = LinearSVC(loss="hinge", tol=1e-10, max_iter=200_000).fit(X[train], y[train])
            margin = np.where(y[test] == model.classes_[1], 1, -1) * model.decision_function(X[test])
            test = test[np.argsort(margin)[:5]]
            explainer = InfluenceExplainer(model).fit(X[train], y[train])
            start = time.perf_counter()
            actual = explainer.loo(X[test], y[test], method="exact")
            exact_time = time.perf_counter() - start
            start = time.perf_counter()
            refit = explainer.loo(X[test], y[test], method="refit", n_jobs=-1)
            refit_time = time.perf_counter() - start
            for t in SMOOTHING:
                for resolve in (False, True):
                    explainer = InfluenceExplainer(model, smoothing=t, smoothing_resolve=resolve,
                                                   gradient_tol=1e3).fit(X[train], y[train])
                    influence = explainer.explain(X[test], y[test])
                    key = ESTIMATES[int(resolve)]
                    results.setdefault((name, t, key), []).append(pearson(influence, actual))
                newton = explainer.explain(X[test], y[test], method="newton")
                results.setdefault((name, t, ESTIMATES[2]), []).append(pearson(newton, actual))
            print(f"{name}, split {seed}: exact path {exact_time:.3f} s, refits (2 jobs) "
                  f"{refit_time:.2f} s, max |path - refits| / max effect "
                  f"{np.abs(actual - refit).max() / np.abs(refit).max():.1e}; "
                  f"{np.mean(np.abs(actual).max(0) > 0):.0%} of rows move a test loss")
    print()
    print(f"{'data':15s} {'t':>6s}  " + "  ".join(f"{e:>15s}" for e in ESTIMATES))
    for name, *_ in datasets():
        for t in SMOOTHING:
            print(f"{name:15s} {t:6g}  " + "  ".join(
                f"{np.mean(results[(name, t, e)]):15.3f}" for e in ESTIMATES))
    print("\nmean over both data sets")
    for t in SMOOTHING:
        means = [np.mean([np.mean(results[(n, t, e)]) for n, *_ in datasets()])
                 for e in ESTIMATES]
        print(f"t={t:6g}: " + ", ".join(f"{e} {v:.3f}" for e, v in zip(ESTIMATES, means)))


if __name__ == "__main__":
    main()
