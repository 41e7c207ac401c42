"""The retraining estimators on models without a family.

Exact leave-one-out by ``loo_refit`` against brute-force scikit-learn refits of
clones with the same seeds (per-row log-loss by ``sklearn.metrics.log_loss``,
or the squared error), every training row removed; and ``n_jobs=1`` against
``n_jobs=2`` on the loky backend for ``loo_refit`` and ``subsample_influence``.

Run: ``python benchmarks/any_model.py`` (a few seconds).
"""

import numpy as np
from joblib import parallel_config
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.metrics import log_loss
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence import loo_refit, subsample_influence


def log_loss_rows(model, X, y):
    P = model.predict_proba(X)
    return np.array([log_loss([t], [p], labels=[0, 1]) for t, p in zip(y, P)])


def squared_error(model, X, y):
    return (model.predict(X) - y) ** 2


def brute_force(estimator, X, y, X_test, y_test, measure):
    with threadpool_limits(1):
        base = measure(clone(estimator).fit(X, y), X_test, y_test)
        out = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            out.append(measure(clone(estimator).fit(X[keep], y[keep]), X_test, y_test)
                       - base)
    return np.array(out).T


def main():
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.RandomState(0).permutation(len(y))
    X = StandardScaler().fit_transform(X)
    cancer = X[rows[:50]], y[rows[:50]], X[rows[50:58]], y[rows[50:58]]
    X, y = load_diabetes(return_X_y=True)
    diabetes = X[:40], y[:40], X[40:46], y[40:46]
    cases = [
        (HistGradientBoostingClassifier(max_iter=10, min_samples_leaf=5,
                                        random_state=0), cancer, log_loss_rows),
        (RandomForestRegressor(n_estimators=5, random_state=0), diabetes,
         squared_error),
        (KNeighborsClassifier(n_neighbors=3), cancer, log_loss_rows),
    ]
    for estimator, (X, y, X_test, y_test), measure in cases:
        ours = loo_refit(estimator, X, y, X_test, y_test)
        truth = brute_force(estimator, X, y, X_test, y_test, measure)
        one = subsample_influence(estimator, X, y, X_test, y_test, n_models=20,
                                  random_state=0, n_jobs=1).influence
        with parallel_config(backend="loky"):
            two_loo = loo_refit(estimator, X, y, X_test, y_test, n_jobs=2)
            two = subsample_influence(estimator, X, y, X_test, y_test, n_models=20,
                                      random_state=0, n_jobs=2).influence
        print(f"{type(estimator).__name__:31s} {len(y)} rows x {len(y_test)} test "
              f"rows: max |loo_refit - brute force| = "
              f"{np.abs(ours - truth).max():.1e} (largest effect "
              f"{np.abs(truth).max():.2e}); n_jobs=1 == n_jobs=2 (loky): "
              f"loo_refit {np.array_equal(ours, two_loo)}, subsample_influence "
              f"{np.array_equal(one, two)}")


if __name__ == "__main__":
    main()
