"""Exact leave-one-out engines, side by side in one run.

Prints, for the same test and training rows:

* ``loo(method="newton")`` vs ``loo(method="refit")`` (scikit-learn refits at
  tight tolerance), single process: time ratio and the largest difference
  relative to the largest effect; logistic regression on digits 1 vs 7, plain
  and class-weighted;
* Ridge on diabetes: closed-form (Sherman-Morrison) ``loo(method="newton")``
  and ``explain(method="newton")`` vs refits;
* ``loo(method="refit")`` with ``n_jobs=2`` vs ``n_jobs=1``;
* Pearson of ``explain`` (first order and Newton) against exact LOO on digit
  pairs.

Run: ``python benchmarks/loo.py``
"""

import os
import time

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


def digits(classes):
    data = load_digits()
    mask = np.isin(data.target, classes)
    X, y = data.data[mask], data.target[mask]
    X = X[:, X.std(axis=0) > 0]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def timed(function, repeat=3):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(name, explainer, X_test, y_test, repeat=3):
    t_newton, newton = timed(lambda: explainer.loo(X_test, y_test, method="newton",
                                                   n_jobs=1), repeat)
    t_refit, refit = timed(lambda: explainer.loo(X_test, y_test, method="refit",
                                                 n_jobs=1), 1)
    error = np.abs(newton - refit).max() / np.abs(refit).max()
    print(f"{name:34s} refit {t_refit:7.3f} s  newton {t_newton:7.4f} s  "
          f"speed-up {t_refit / t_newton:7.1f}x  max|diff|/max|effect| {error:.1e}")
    return refit


def main():
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"{os.cpu_count()} cores\n")
    print("== loo(method='newton') vs loo(method='refit'), single process ==")
    X_train, X_test, y_train, y_test = digits([1, 7])
    for label, weight in [("logistic digits 1 vs 7", None),
                          ("logistic, class_weight={1: 3}", {1: 3.0, 7: 1.0}),
                          ("logistic, class_weight='balanced'", "balanced")]:
        model = LogisticRegression(class_weight=weight).fit(X_train, y_train)
        explainer = InfluenceExplainer(model).fit(X_train, y_train)
        compare(label, explainer, X_test[:5], y_test[:5])

    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=1.0).fit(X[:400], y[:400])
    explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    refit = compare("ridge diabetes (closed form)", explainer, X[400:405], y[400:405],
                    repeat=20)
    t_explain, estimate = timed(lambda: explainer.explain(X[400:405], y[400:405],
                                                          method="newton"), 20)
    print(f"{'ridge explain(method=newton)':34s} {t_explain:.4f} s, max relative "
          f"error vs refits {np.abs(estimate - refit).max() / np.abs(refit).max():.1e}")

    print("\n== loo(method='refit'): n_jobs=2 vs n_jobs=1 ==")
    model = LogisticRegression().fit(X_train, y_train)
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    t1, one = timed(lambda: explainer.loo(X_test[:5], y_test[:5], n_jobs=1), 1)
    # the first call starts the worker processes; time the second
    t2, two = timed(lambda: explainer.loo(X_test[:5], y_test[:5], n_jobs=2), 2)
    print(f"n_jobs=1 {t1:.2f} s, n_jobs=2 {t2:.2f} s: speed-up {t1 / t2:.2f}x, "
          f"identical results: {np.array_equal(one, two)}")

    print("\n== Pearson(explain, exact LOO) over 5 test rows x all training rows ==")
    for pair in ([1, 7], [3, 8], [4, 9], [0, 1, 2]):
        X_train, X_test, y_train, y_test = digits(pair)
        model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X_train, y_train)
        explainer = InfluenceExplainer(model).fit(X_train, y_train)
        actual = explainer.loo(X_test[:5], y_test[:5], method="newton")
        first = explainer.explain(X_test[:5], y_test[:5])
        newton = explainer.explain(X_test[:5], y_test[:5], method="newton")
        print(f"digits {pair}: n={len(y_train)}  first order "
              f"{np.corrcoef(first.ravel(), actual.ravel())[0, 1]:.4f}  newton "
              f"{np.corrcoef(newton.ravel(), actual.ravel())[0, 1]:.4f}")


if __name__ == "__main__":
    main()
