"""Influence on functionals against their exact leave-one-out change.

For logistic regression on digits 1 vs 7 and on breast cancer (standardised,
70/30 split), every built-in functional of the validation rows is estimated
by ``functional_influence`` (method "newton" at its default, the same
without computing the long steps exactly (``exact_above=None``, "1-step"),
with the second-order term forced on and off, and "first_order") and compared with
the functional
evaluated at every exact leave-one-out optimum (``method="exact"``: Newton's
method on the objective to a relative gradient norm of 1e-10), by Pearson
over the training rows, then the same for random groups of 10 training rows
removed together. The groups of the gaps are a stated stand-in for a
sensitive attribute: a pixel above its mean (digits), mean radius above its
mean (breast cancer). Times are for one call, side by side.

Run: ``python benchmarks/functionals.py`` (about a minute on 2 cores).
"""

import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import digits

from skinfluence import InfluenceExplainer
from skinfluence.applications import FUNCTIONALS


def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3,
                                                      random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


def pearson(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def main():
    tasks = {"digits 1 vs 7": (digits([1, 7]), 10),
             "breast cancer": (cancer(), 0)}
    print(f"{'data':14s} {'C':>4s} {'functional':19s} {'removal':9s} "
          f"{'newton':>7s} {'1-step':>7s} {'2nd on':>7s} {'2nd off':>7s} {'first':>7s}   "
          f"{'t newton':>8s} {'t exact':>8s}")
    for name, ((X, X_val, y, y_val), column) in tasks.items():
        groups = (X_val[:, column] > 0).astype(int)
        for C in (1.0, 0.1):
            model = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
            explainer = InfluenceExplainer(model).fit(X, y)
            train_groups = np.random.default_rng(0).permutation(len(y)) // 10
            for functional in FUNCTIONALS:
                for removal, tg in (("rows", None), ("groups10", train_groups)):
                    run = partial(explainer.functional_influence, X_val, functional,
                                  y_val, groups, train_groups=tg)
                    exact, t_exact = timed(partial(run, method="exact"))
                    newton, t_newton = timed(run)
                    one_step = run(exact_above=None)
                    on = run(second_order=True)
                    off = run(second_order=False)
                    first = run(method="first_order")
                    print(f"{name:14s} {C:4.1f} {functional:19s} {removal:9s} "
                          f"{pearson(newton, exact):7.4f} {pearson(one_step, exact):7.4f} "
                          f"{pearson(on, exact):7.4f} "
                          f"{pearson(off, exact):7.4f} {pearson(first, exact):7.4f}   "
                          f"{t_newton:8.3f} {t_exact:8.3f}")
            # the row with the largest exact effect on the mean loss, refitted
            effect = explainer.functional_influence(X_val, "mean_loss", y_val,
                                                    method="exact")
            i = int(np.argmax(np.abs(effect)))
            keep = np.arange(len(y)) != i
            tight = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12,
                                       max_iter=1000)
            shift = (clone(tight).fit(X[keep], y[keep]).decision_function(X_val)
                     - clone(tight).fit(X, y).decision_function(X_val))
            p_label = model.predict_proba(X[i : i + 1])[0, list(model.classes_).index(
                y[i])]
            print(f"  {name}, C={C}: the row with the largest exact effect on the "
                  f"mean loss (row {i}, label {y[i]}, predicted probability of its "
                  f"label {p_label:.3f}) moves validation logits by up to "
                  f"{np.abs(shift).max():.2f}")
        print(f"  ({name}: n_train={len(y)}, n_val={len(y_val)}, d={X.shape[1]})")


if __name__ == "__main__":
    main()
