"""Finding flipped labels: influence rankings against simple and external baselines.

Koh & Liang (2017, section 5.4) style: flip the labels of 10% of the training
rows, rank the training rows by suspicion, "check" the top 5/10/20/30% of the
ranking and count the share of flipped rows found (recall). Also: test accuracy
after fixing the flipped labels found in the top 10% and refitting (the
"fix, refit, measure" step of the workflow in
``InfluenceExplainer.rank_suspicious``).

Rankings compared (all on the model fitted to the noisy labels):

* ``self_influence``: ``explainer.self_influence()`` (first order);
* ``validation``: net harm on a clean validation set,
  ``-explainer.validation_influence(X_val, y_val)`` (one solve);
* ``loo_step``: ``explainer.loo_self_loss("newton_step")``, the diagonal of
  ``explain(method="newton")``: one Newton step with the leave-one-out Hessian,
  O(n K^2) from the leverage blocks;
* ``loo_exact``: ``explainer.loo_self_loss("exact")``, each row's own loss
  change at its exact leave-one-out optimum (the Newton engine of
  ``loo(method="newton")``, evaluated on the diagonal only);
* ``loss``: the training loss of each row (no influence at all);
* ``random``: a random order;
* ``cleanlab``: cleanlab's ``get_label_quality_scores`` (self-confidence, the
  score ``find_label_issues`` ranks by) on 5-fold out-of-sample probabilities
  of the same model; ``cleanlab_flagged`` reports how many rows
  ``find_label_issues`` flags and the recall of that set.

Datasets: digits 1 vs 7 (scikit-learn's copy, 64 pixels), a low-dimensional
synthetic set (make_classification, 10 features, 600 training rows) and a
high-dimensional one (250 features, 300 training rows: d close to n), the last
also with a weak penalty (C=100, nearly interpolating). Features are
standardised; LogisticRegression(C=1) unless said. Means over ``--seeds``
seeds. Times are per ranking on one BLAS thread; the influence rankings
include the explainer's fit (Hessian factorisation), cleanlab its 5-fold
cross-validation.

Set-up: cleanlab is not a dependency of skinfluence. Install it in a separate
benchmark environment, with skinfluence itself:

.. code-block:: bash

    python -m venv ../benchvenv
    ../benchvenv/bin/pip install cleanlab==2.9.0 scikit-learn numpy scipy
    ../benchvenv/bin/pip install --no-deps -e .
    ../benchvenv/bin/python benchmarks/mislabel.py --seeds 5

Without cleanlab the script runs and leaves its rows out.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer

try:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
except ImportError:  # pragma: no cover
    find_label_issues = None

FRACTIONS = (0.05, 0.10, 0.20, 0.30)


def dataset(name, seed):
    """Train (to be corrupted), clean validation and test splits, standardised."""
    if name == "digits 1 vs 7":
        data = load_digits()
        mask = np.isin(data.target, [1, 7])
        X, y = data.data[mask], (data.target[mask] == 7).astype(int)
        X = X[:, X.std(axis=0) > 0]
        n_train, n_val = 0.6, 0.2
    elif name == "low-dim (d=10)":
        X, y = make_classification(n_samples=1000, n_features=10, n_informative=6,
                                   n_redundant=2, class_sep=1.0, random_state=seed)
        n_train, n_val = 0.6, 0.2
    else:  # high-dimensional
        X, y = make_classification(n_samples=500, n_features=250, n_informative=20,
                                   n_redundant=0, class_sep=1.0, random_state=seed)
        n_train, n_val = 0.6, 0.2
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, train_size=n_train, random_state=seed, stratify=y)
    X_val, X_test, y_val, y_test = train_test_split(
        X_rest, y_rest, train_size=n_val / (1 - n_train), random_state=seed,
        stratify=y_rest)
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train), y_train, scaler.transform(X_val), y_val,
            scaler.transform(X_test), y_test)


def model(C=1.0):
    return LogisticRegression(C=C, max_iter=5000, tol=1e-8)


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def run(name, seed):
    C = 100.0 if "C=100" in name else 1.0
    X, y_clean, X_val, y_val, X_test, y_test = dataset(name, seed)
    rng = np.random.default_rng(seed)
    n = len(y_clean)
    flipped = rng.choice(n, n // 10, replace=False)
    y = y_clean.copy()
    y[flipped] = 1 - y[flipped]
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True

    fitted, fit_time = timed(lambda: model(C).fit(X, y))
    explainer, explainer_time = timed(lambda: InfluenceExplainer(fitted).fit(X, y))
    scores, times = {}, {}
    scores["self_influence"], times["self_influence"] = timed(explainer.self_influence)
    scores["validation"], times["validation"] = timed(
        lambda: -explainer.validation_influence(X_val, y_val))
    scores["loo_step"], times["loo_step"] = timed(
        lambda: explainer.loo_self_loss("newton_step"))
    scores["loo_exact"], times["loo_exact"] = timed(
        lambda: explainer.loo_self_loss("exact"))
    scores["loss"], times["loss"] = timed(
        lambda: explainer.rank_suspicious("loss").scores)
    scores["random"], times["random"] = rng.random(n), 0.0
    flagged = None
    if find_label_issues is not None:
        def clean():
            probs = cross_val_predict(model(C), X, y, cv=5, method="predict_proba")
            quality = get_label_quality_scores(y, probs)
            issues = find_label_issues(y, probs)
            return -quality, issues
        (scores["cleanlab"], flagged), times["cleanlab"] = timed(clean)
    for key in ("self_influence", "loo_step"):  # these include the leverage blocks
        times[key] += explainer_time
    times["validation"] += explainer_time
    times["loo_exact"] += explainer_time

    results = {}
    base_acc = fitted.score(X_test, y_test)
    for key, score in scores.items():
        order = np.argsort(-score, kind="stable")
        recall = [is_flipped[order[: int(round(f * n))]].sum() / len(flipped)
                  for f in FRACTIONS]
        # fix the flipped labels found in the top 10% and refit
        top = order[: int(round(0.1 * n))]
        y_fixed = y.copy()
        y_fixed[top] = y_clean[top]
        acc = model(C).fit(X, y_fixed).score(X_test, y_test)
        results[key] = (recall, times[key], acc)
    extra = {"base_acc": base_acc, "fit_time": fit_time, "n": n, "d": X.shape[1]}
    if flagged is not None:
        extra["flagged"] = (int(flagged.sum()), is_flipped[flagged].sum() / len(flipped))
    return results, extra


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print("| data | ranking | recall@5% | @10% | @20% | @30% | test acc after fixing top 10% | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("digits 1 vs 7", "low-dim (d=10)", "high-dim (d=250)",
                 "high-dim (d=250), C=100"):
        runs = []
        for seed in range(args.seeds):
            with threadpool_limits(1):
                runs.append(run(name, seed))
        extra = runs[0][1]
        label = f"{name}, n={extra['n']}, d={extra['d']}"
        base = np.mean([r[1]["base_acc"] for r in runs])
        for key in runs[0][0]:
            recall = np.mean([r[0][key][0] for r in runs], axis=0)
            t = np.mean([r[0][key][1] for r in runs])
            acc = np.mean([r[0][key][2] for r in runs])
            cells = " | ".join(f"{v:.2f}" for v in recall)
            print(f"| {label} | {key} | {cells} | {acc:.3f} (noisy {base:.3f}) | {t:.3f} |")
        if "flagged" in extra:
            count = np.mean([r[1]["flagged"][0] for r in runs])
            rec = np.mean([r[1]["flagged"][1] for r in runs])
            print(f"| {label} | cleanlab_flagged: find_label_issues flags {count:.0f} "
                  f"rows ({100 * count / extra['n']:.0f}%), recall {rec:.2f} | | | | | | |")


if __name__ == "__main__":
    main()
