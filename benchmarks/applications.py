"""Acceptance numbers of the cleaning and debugging tools.

Prints, each against an independent truth:

* validation_influence vs the column sums of explain (max relative error) and
  vs leave-one-out refits of the summed validation loss (Pearson);
* group_influence (newton and first order) vs group refits, random groups of
  10 rows: binary logistic on digits 1 vs 7 (Pearson) and Ridge (max relative
  error);
* regression_diagnostics vs statsmodels' OLSInfluence (max relative error);
* perturbation_influence vs central finite differences of refits.

Run: ``python benchmarks/applications.py`` (about a minute on 2 cores).
"""

import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.exact import tight_clone


def pearson(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def rel_err(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def digits():
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    X, y = data.data[mask], data.target[mask]
    X = X[:, X.std(axis=0) > 0]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def random_groups(n, size, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + size] for i in range(0, n - size + 1, size)]


def main():
    X, X_test, y, y_test = digits()
    model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    print(f"digits 1 vs 7: n_train={len(y)}, n_test={len(y_test)}, d={X.shape[1]}")

    start = time.perf_counter()
    net = explainer.validation_influence(X_test, y_test)
    t_net = time.perf_counter() - start
    start = time.perf_counter()
    sums = explainer.explain(X_test, y_test).sum(axis=0)
    t_sum = time.perf_counter() - start
    print(f"validation_influence vs explain column sums: max rel err "
          f"{rel_err(net, sums):.1e} ({t_net * 1e3:.1f} ms vs {t_sum * 1e3:.1f} ms)")
    actual = explainer.loo(X_test, y_test, method="refit").sum(axis=0)
    print(f"validation_influence vs LOO refits of the summed test loss: "
          f"Pearson {pearson(net, actual):.4f}")

    groups = random_groups(len(y), 10)
    newton = explainer.group_influence(X_test, y_test, groups, method="newton")
    first = explainer.group_influence(X_test, y_test, groups)
    truth = explainer.group_influence(X_test, y_test, groups, method="refit")
    print(f"group_influence, {len(groups)} random groups of 10, logistic: Pearson "
          f"newton {pearson(newton, truth):.4f}, first order "
          f"{pearson(first, truth):.4f}; max rel err newton "
          f"{rel_err(newton, truth):.3f}, first order {rel_err(first, truth):.3f}")

    Xd, yd = load_diabetes(return_X_y=True)
    ridge = Ridge(alpha=1.0).fit(Xd[:400], yd[:400])
    rex = InfluenceExplainer(ridge).fit(Xd[:400], yd[:400])
    groups = random_groups(400, 10)
    newton = rex.group_influence(Xd[400:], yd[400:], groups, method="newton")
    truth = rex.group_influence(Xd[400:], yd[400:], groups, method="refit")
    print(f"group_influence, Ridge on diabetes, 40 groups of 10: max rel err "
          f"{rel_err(newton, truth):.1e}")

    import statsmodels.api as sm
    from statsmodels.stats.outliers_influence import OLSInfluence

    ols = LinearRegression().fit(Xd, yd)
    diag = InfluenceExplainer(ols).fit(Xd, yd).regression_diagnostics()
    ref = OLSInfluence(sm.OLS(yd, np.column_stack([Xd, np.ones(len(yd))])).fit())
    worst = max(
        rel_err(diag[key], truth) for key, truth in [
            ("leverage", ref.hat_matrix_diag), ("dfbeta", ref.dfbeta),
            ("dfbetas", ref.dfbetas), ("cooks_distance", ref.cooks_distance[0]),
            ("resid_studentized_internal", ref.resid_studentized_internal),
            ("resid_studentized_external", ref.resid_studentized_external),
            ("dffits", ref.dffits[0])])
    print(f"regression_diagnostics vs statsmodels OLSInfluence (diabetes OLS): "
          f"max rel err {worst:.1e}")

    # perturbation: d test loss / d x_i against central differences of refits
    rows, tests, h = [0, 7, 50], [0, 1], 1e-4
    grad = explainer.perturbation_influence(X_test[tests], y_test[tests], rows=rows)
    est = tight_clone(model)
    fd = np.empty_like(grad)
    for a, row in enumerate(rows):
        for m in range(X.shape[1]):
            losses = []
            for sign in (1, -1):
                Xp = X.copy()
                Xp[row, m] += sign * h
                fitted = clone(est).fit(Xp, y)
                P = fitted.predict_proba(X_test[tests])
                losses.append(-np.log(P[np.arange(len(tests)),
                                        np.searchsorted(fitted.classes_, y_test[tests])]))
            fd[:, a, m] = (losses[0] - losses[1]) / (2 * h)
    print(f"perturbation_influence vs central differences (h={h:g}, logistic, "
          f"{len(rows)} rows x {X.shape[1]} features x {len(tests)} tests): max rel "
          f"err {rel_err(grad, fd):.1e}")


if __name__ == "__main__":
    main()
