"""Every training-data attribution estimator on one harness.

For two tasks, digits 1 vs 7 (LogisticRegression) and diabetes (Ridge), with
10% of the training labels corrupted, prints for each estimator (influence
first order and Newton, representer points, downsampling, TMC-Shapley,
Banzhaf, and exact LOO itself as the reference): Pearson correlation with
exact LOO over all (test, train) pairs, Spearman correlation of the
per-training-row means, the linear datamodeling score over 50 random halves,
the flipped-label detection AUC and the wall time. Then the correlation of
downsampling with exact LOO as the number of models grows, and the time per
1,000 TMC-Shapley permutations on a 50-row problem.

Run: ``python benchmarks/estimators.py [--quick]``
"""

import os
import sys
import time

import numpy as np
from scipy.stats import pearsonr
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import evaluate_estimators, loo_refit, subsample_influence, tmc_shapley

QUICK = "--quick" in sys.argv
N_JOBS = os.cpu_count()


def digits():
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    X, y = data.data[mask], data.target[mask]
    X = X[:, X.std(axis=0) > 0]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2,
                                                        random_state=0)
    return X_train, y_train, X_test, y_test


def main():
    scale = 0.2 if QUICK else 1.0
    tasks = [
        ("digits 1 vs 7, LogisticRegression(C=0.1)", LogisticRegression(C=0.1), digits(),
         {"tmc_shapley": {"n_permutations": int(100 * scale)},
          "banzhaf": {"n_samples": int(1000 * scale)},
          "downsampling": {"n_models": int(1000 * scale)}}),
        ("diabetes, Ridge(alpha=0.01)", Ridge(alpha=0.01), diabetes(),
         {"tmc_shapley": {"n_permutations": int(300 * scale)},
          "banzhaf": {"n_samples": int(2000 * scale)},
          "downsampling": {"n_models": int(1000 * scale)}}),
    ]
    print(f"{os.cpu_count()} CPUs, n_jobs={N_JOBS}")
    for name, model, (X, y, X_test, y_test), params in tasks:
        print(f"\n## {name}: {X.shape[0]} training rows ({X.shape[1]} features), "
              f"{X_test.shape[0]} test rows, 10% of training labels corrupted")
        print(f"   settings: {params}")
        res = evaluate_estimators(model, X, y, X_test, y_test, params=params,
                                  n_jobs=N_JOBS, random_state=0)
        print(res.text)

    print("\n## downsampling vs exact LOO as the number of models K grows "
          "(Ridge, diabetes; refits)")
    X, y, X_test, y_test = diabetes()
    loo = loo_refit(Ridge(alpha=0.01), X, y, X_test, y_test)
    for k in (10, 30, 100, 300, 1000, 3000):
        k = max(int(k * scale), 10)
        start = time.perf_counter()
        est = subsample_influence(Ridge(alpha=0.01), X, y, X_test, y_test, n_models=k,
                                  random_state=0, n_jobs=N_JOBS).influence
        ok = np.isfinite(est).all(0)
        print(f"K={k:5d}  pearson with exact LOO {pearsonr(est[:, ok].ravel(), loo[:, ok].ravel())[0]:.3f}"
              f"  ({time.perf_counter() - start:.1f} s)")

    print("\n## TMC-Shapley on a 50-row problem (digits 1 vs 7, 50 validation rows)")
    X, y, X_test, y_test = digits()
    for seed in (0, 1):
        r = tmc_shapley(LogisticRegression(C=0.1), X[:50], y[:50], X_test[:50],
                        y_test[:50], n_permutations=int(500 * scale), random_state=seed,
                        n_jobs=N_JOBS)
        print(f"random_state={seed}: {r.seconds_per_1000_permutations:.1f} s per 1,000 "
              f"permutations, {r.n_fits} fits, prefix fraction "
              f"{r.mean_prefix_fraction:.2f}, median stderr / mean |value| "
              f"{r.relative_stderr:.2f}")
        if seed == 0:
            first = r
    z = (first.data_values - r.data_values) / np.hypot(first.stderr, r.stderr)
    print(f"seed 0 vs 1: max |difference| / combined stderr {np.abs(z).max():.2f}, "
          f"std of z {z.std():.2f}, pearson {np.corrcoef(first.data_values, r.data_values)[0, 1]:.3f}")


if __name__ == "__main__":
    main()
