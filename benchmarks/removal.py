"""Removal curves on a 10%-flipped-label task: does removing the rows a score
calls harmful help, measured by retraining?

Each task splits the data 50/25/25 into training, validation and test rows
and flips the labels of 10% of the training rows. The scores are computed on
the clean validation rows: for logistic regression the validation influence
(``InfluenceExplainer.validation_influence``), for a gradient-boosted model
the downsampling estimate summed over the validation rows
(``subsample_influence(...).influence.sum(0)``, 200 models of half the rows).
``removal_curve`` then removes the lowest-scoring (most harmful) rows, refits
and measures the mean log-loss on the held-out test rows, against 20 random
removals of the same size (mean and standard deviation); "flipped" is the
share of flipped rows among those removed; "all flipped" removes exactly the
flipped rows. Logistic regression refits by Newton's method on its objective
(``engine="newton"``) and, for the timing side by side, by scikit-learn
refits (``engine="refit"``).

Run: ``python benchmarks/removal.py`` (about a minute on 2 cores).
"""

import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, removal_curve, subsample_influence

FRACTIONS = (0.0, 0.05, 0.1, 0.2)


def task(X, y, seed=0):
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.5, random_state=seed, stratify=y)
    X_val, X_test, y_val, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val, X_test = (scaler.transform(A) for A in (X_train, X_val, X_test))
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y_train), dtype=bool)
    flipped[rng.choice(len(y_train), round(0.1 * len(y_train)), replace=False)] = True
    classes = np.unique(y_train)
    y_noisy = y_train.copy()
    y_noisy[flipped] = np.where(y_train[flipped] == classes[0], classes[1], classes[0])
    return X_train, y_noisy, flipped, X_val, y_val, X_test, y_test


def report(name, curve, flipped, seconds, oracle):
    at = list(curve.fractions).index(0.1)
    removed = curve.order[: curve.n_removed[at]]
    print(f"{name}: test log-loss, all rows {curve.full:.4f}; all flipped rows "
          f"removed {oracle:.4f}; {curve.engine} engine, {seconds:.2f} s")
    print("  removed   by score   random (mean +- sd)")
    for f, t, m, s in zip(curve.fractions, curve.targeted, curve.random_mean,
                          curve.random_std):
        print(f"  {100 * f:5.0f}%    {t:8.4f}   {m:.4f} +- {s:.4f}")
    gap = (curve.random_mean[at] - curve.targeted[at]) / curve.random_std[at]
    print(f"  top 10%: {flipped[removed].mean():.2f} of the removed rows were "
          f"flipped; below random by {gap:.1f} sd")


def oracle_loss(estimator, X, y, flipped, X_test, y_test):
    from sklearn.metrics import log_loss

    model = estimator.fit(X[~flipped], y[~flipped])
    return log_loss(y_test, model.predict_proba(X_test))


def main():
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    digits = (data.data[mask][:, data.data[mask].std(axis=0) > 0], data.target[mask])
    cancer = load_breast_cancer(return_X_y=True)
    for name, (X, y) in (("digits 1 vs 7", digits), ("breast cancer", cancer)):
        X_train, y_noisy, flipped, X_val, y_val, X_test, y_test = task(X, y)
        print(f"\n== {name}: n_train={len(y_noisy)}, n_val={len(y_val)}, "
              f"n_test={len(y_test)}, {flipped.sum()} flipped")
        model = LogisticRegression(C=0.1, max_iter=5000).fit(X_train, y_noisy)
        scores = InfluenceExplainer(model).fit(X_train, y_noisy).validation_influence(
            X_val, y_val)
        oracle = oracle_loss(LogisticRegression(C=0.1, max_iter=5000), X_train,
                             y_noisy, flipped, X_test, y_test)
        times, curves = {"newton": [], "refit": []}, {}
        for engine in ("newton", "refit") * 2:  # best of two runs each
            start = time.perf_counter()
            curves[engine] = removal_curve(model, X_train, y_noisy, X_test, y_test,
                                           scores, fractions=FRACTIONS, n_random=20,
                                           random_state=0, engine=engine)
            times[engine].append(time.perf_counter() - start)
        newton, refit = min(times["newton"]), min(times["refit"])
        report("LogisticRegression(C=0.1), validation influence", curves["newton"],
               flipped, newton, oracle)
        gap = np.abs(curves["newton"].random - curves["refit"].random).max()
        print(f"  refit engine (scikit-learn refits): {refit:.2f} s, "
              f"{refit / newton:.1f}x the Newton engine; largest difference "
              f"{gap:.1e}")

        boosting = HistGradientBoostingClassifier(max_iter=50, random_state=0)
        start = time.perf_counter()
        down = subsample_influence(boosting, X_train, y_noisy, X_val, y_val,
                                   n_models=200, random_state=0)
        scores = down.influence.sum(axis=0)
        curve = removal_curve(boosting, X_train, y_noisy, X_test, y_test, scores,
                              fractions=FRACTIONS, n_random=20, random_state=0)
        seconds = time.perf_counter() - start
        oracle = oracle_loss(HistGradientBoostingClassifier(max_iter=50, random_state=0),
                             X_train, y_noisy, flipped, X_test, y_test)
        report("HistGradientBoostingClassifier(max_iter=50), downsampling (200 models)",
               curve, flipped, seconds, oracle)


if __name__ == "__main__":
    main()
