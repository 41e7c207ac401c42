"""Demonstration: ``python -m skinfluence``.

Fits a logistic regression on the digits 1 vs 7 (shipped with scikit-learn),
explains a few test digits, prints their most helpful and most harmful training
rows, and checks the estimates against exact leave-one-out refits run in
parallel with joblib, and with the exact leave-one-out engine
(``loo(method="exact")``).
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from . import InfluenceExplainer, loo_refit


def _digits_1_vs_7(random_state=0):
    digits = load_digits()
    mask = np.isin(digits.target, [1, 7])
    X, y = digits.data[mask], digits.target[mask]
    X = X[:, X.std(axis=0) > 0]  # drop constant pixels
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=random_state, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skinfluence", description=__doc__)
    parser.add_argument("--n-test", type=int, default=3, help="test digits to explain")
    parser.add_argument("--top", type=int, default=5, help="rows listed per test digit")
    parser.add_argument("--n-jobs", type=int, default=-1, help="joblib workers for LOO")
    args = parser.parse_args(argv)

    X_train, X_test, y_train, y_test = _digits_1_vs_7()
    print(f"digits 1 vs 7: {X_train.shape[0]} training rows, {X_train.shape[1]} pixels")
    model = LogisticRegression(C=1.0, tol=1e-8, max_iter=1000).fit(X_train, y_train)

    start = time.perf_counter()
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    # the test digits the model is least sure about are the interesting ones
    margin = np.abs(model.decision_function(X_test))
    rows = np.argsort(margin)[: args.n_test]
    influence = explainer.explain(X_test[rows], y_test[rows])
    elapsed = time.perf_counter() - start
    print(f"influence of {X_train.shape[0]} rows on {len(rows)} test digits: "
          f"{elapsed * 1e3:.0f} ms\n")
    print("influence = predicted change of the test log-loss if the row is removed;")
    print("positive: the row helps the prediction, negative: it hurts it.\n")

    for j, row in enumerate(rows):
        proba = model.predict_proba(X_test[row : row + 1])[0, 1]
        loss = -np.log(proba if y_test[row] == 7 else 1 - proba)
        print(f"test digit {row}: true {y_test[row]}, P(7) = {proba:.2f}, "
              f"log-loss {loss:.3f}")
        order = np.argsort(influence[j])
        for title, idx in (("helpful", order[::-1][: args.top]),
                           ("harmful", order[: args.top])):
            listed = ", ".join(
                f"train {i} (a {y_train[i]}) {influence[j, i]:+.1e}" for i in idx
            )
            print(f"  most {title}: {listed}")
    print()

    start = time.perf_counter()
    exact = explainer.loo(X_test[rows], y_test[rows], method="exact")
    engine_time = time.perf_counter() - start
    start = time.perf_counter()
    refits = loo_refit(model, X_train, y_train, X_test[rows], y_test[rows],
                       n_jobs=args.n_jobs)
    refit_time = time.perf_counter() - start
    largest = np.abs(refits).max()
    print(f"exact leave-one-out of all {X_train.shape[0]} rows: Newton engine "
          f"{engine_time:.2f} s, {X_train.shape[0]} refits of the model "
          f"{refit_time:.1f} s (joblib, n_jobs={args.n_jobs});")
    print(f"  they agree to {np.abs(exact - refits).max() / largest:.0e} of the "
          f"largest effect ({largest:.1e})")
    for name, estimate in (("explain()", influence),
                           ("explain(method='newton')",
                            explainer.explain(X_test[rows], y_test[rows],
                                              method="newton"))):
        pearson = np.corrcoef(estimate.ravel(), exact.ravel())[0, 1]
        print(f"Pearson({name}, leave-one-out) = {pearson:.4f} over "
              f"{influence.size} (test, train) pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
