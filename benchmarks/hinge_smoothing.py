"""Choose the hinge smoothing: influence vs hinge-loss leave-one-out refits.

For LinearSVC(loss="hinge") the training objective is smoothed to
``t log(1 + exp((1 - m) / t))``. This script reports Pearson(explain, LOO) for
several ``t``, with the influence computed

* at scikit-learn's fitted coefficients (``resolve=False``), and
* after re-solving the smoothed objective from them by Newton's method
  (``InfluenceExplainer(..., smoothing_resolve=True)``),

on iris versicolor vs virginica and digits 1 vs 7, three random splits each,
for the five test rows with the largest hinge loss (rows with zero hinge loss
have zero leave-one-out change). The LOO truth refits LinearSVC(loss="hinge")
at tol=1e-10 with the true hinge.

Run: ``python benchmarks/hinge_smoothing.py``
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer, loo_refit

SMOOTHING = [0.001, 0.003, 0.01, 0.03, 0.1]


def datasets():
    iris = load_iris()
    mask = iris.target > 0
    yield "iris 2 vs 3", StandardScaler().fit_transform(iris.data[mask]), iris.target[mask], 80
    digits = load_digits()
    mask = np.isin(digits.target, [1, 7])
    X = digits.data[mask]
    yield "digits 1 vs 7", StandardScaler().fit_transform(X[:, X.std(0) > 0]), digits.target[mask], 300


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
            start = time.perf_counter()
            actual = loo_refit(model, X[train], y[train], X[test], y[test], n_jobs=-1)
            loo_time = time.perf_counter() - start
            for t in SMOOTHING:
                for resolve in (False, True):
                    explainer = InfluenceExplainer(model, smoothing=t, smoothing_resolve=resolve,
                                                   gradient_tol=1e3)
                    influence = explainer.fit(X[train], y[train]).explain(X[test], y[test])
                    r = np.corrcoef(influence.ravel(), actual.ravel())[0, 1]
                    results.setdefault((name, t, resolve), []).append(r)
            print(f"{name}, split {seed}: LOO {loo_time:.1f} s, "
                  f"{np.mean(np.abs(actual).max(0) > 0):.0%} of rows move a test loss")
    print()
    print(f"{'data':15s} {'t':>6s}  {'at sklearn coef':>16s}  {'re-solved':>10s}")
    for name, *_ in datasets():
        for t in SMOOTHING:
            a = np.mean(results[(name, t, False)])
            b = np.mean(results[(name, t, True)])
            print(f"{name:15s} {t:6g}  {a:16.3f}  {b:10.3f}")
    print("\nmean over both data sets")
    for t in SMOOTHING:
        a = np.mean([np.mean(results[(n, t, False)]) for n, *_ in datasets()])
        b = np.mean([np.mean(results[(n, t, True)]) for n, *_ in datasets()])
        print(f"t={t:6g}: at sklearn coef {a:.3f}, re-solved {b:.3f}")


if __name__ == "__main__":
    main()
