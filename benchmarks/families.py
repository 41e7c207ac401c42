"""Model families against brute-force refits, one function per estimator.

For each estimator, on a dataset that ships with scikit-learn, the script
prints:

* ``grad``: the relative gradient norm of the family's objective at
  scikit-learn's fit (at a tight solver tolerance; for L1 models the smallest
  subgradient, i.e. the KKT conditions);
* ``r first`` / ``r newton``: Pearson correlation of ``explain`` (first order
  and ``method="newton"``) with brute-force leave-one-out refits of
  scikit-learn clones (written out here, independent of the package; a CV
  estimator is refitted with the hyper-parameters it chose);
* ``exact err``: ``max |loo(method="exact") - refits| / max |refits|``;
* the times of ``loo(method="exact")`` and of the refits (one thread).

Then the leave-one-out errors RidgeCV stores (``store_cv_results=True``,
several targets, with and without sample weights, one alpha per target)
against ``loo(method="exact")``, and for the L1 models the share of rows
whose removal changes the support, the accuracy of the active-set influence
on the other rows, whether ``support_changes`` flags the right rows, and the
exact engine on all rows.

Run: ``python benchmarks/families.py``
"""

import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_linnerud
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
)
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence.exact import active_set_loo_parameters

TIGHT_CD = dict(tol=1e-14, max_iter=1_000_000)


# --------------------------------------------------------------------- data
def standardised(X_train, X_test):
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def diabetes(n_test=20):
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test = standardised(X[:-n_test], X[-n_test:])
    return X_train, X_test, y[:-n_test], y[-n_test:]


def diabetes_targets(n_test=20):
    """Three real targets: disease progression, s5 and bmi (rescaled)."""
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, 100 * X[:, 8], 50 * X[:, 2]])
    X = np.delete(X, [8, 2], axis=1)
    X_train, X_test = standardised(X[:-n_test], X[-n_test:])
    return X_train, X_test, Y[:-n_test], Y[-n_test:]


def digits(classes, n_train=None):
    data = load_digits()
    mask = np.isin(data.target, classes)
    X, y = data.data[mask], data.target[mask]
    X = X[:, X.std(axis=0) > 0]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    X_train, X_test = standardised(X_train, X_test)
    if n_train is not None:
        X_train, y_train = X_train[:n_train], y_train[:n_train]
    return X_train, X_test[:10], y_train, y_test[:10]


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)
    X_train, X_test = standardised(X_train, X_test)
    return X_train, X_test[:10], y_train, y_test[:10]


def weights(n, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, n)


# ------------------------------------------------------------- test losses
def squared_error(model, X, y):
    return ((np.asarray(y, float).reshape(len(X), -1)
             - model.predict(X).reshape(len(X), -1)) ** 2).sum(axis=1)


def ridge_classifier_loss(model, X, y):
    Y = LabelBinarizer(neg_label=-1, pos_label=1).fit(model.classes_).transform(y)
    return ((Y - model.decision_function(X).reshape(len(X), -1)) ** 2).sum(axis=1)


def log_loss_rows(model, X, y):
    proba = model.predict_proba(X)
    return -np.log(proba[np.arange(len(y)), np.searchsorted(model.classes_, y)])


def brute_force(model, X, y, sw, X_test, y_test, loss, rows, precomputed=False):
    """Refits of clones without each row of ``rows``: (n_test, len(rows))."""
    fit_params = (lambda keep: {}) if sw is None else (
        lambda keep: {"sample_weight": sw[keep]})
    everything = np.ones(len(y), dtype=bool)
    full = clone(model).fit(X, y, **fit_params(everything))
    base = loss(full, X_test, y_test)
    out = []
    for i in rows:
        keep = everything.copy()
        keep[i] = False
        X_keep = X[np.ix_(keep, keep)] if precomputed else X[keep]
        refit = clone(model).fit(X_keep, y[keep], **fit_params(keep))
        out.append(loss(refit, X_test[:, keep] if precomputed else X_test, y_test) - base)
    return np.array(out).T


# ---------------------------------------------------------------- reports
ROWS = []


def pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def compare(name, data, model, truth_model, loss, *, sw=None, rows=None,
            precomputed=False, targets=True):
    """Fit, explain and compare with brute-force refits; print one row."""
    X, X_test, y, y_test = data
    rows = np.arange(len(y)) if rows is None else rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = clone(model).fit(X, y, sample_weight=sw)
        explainer = InfluenceExplainer(model).fit(X, y, sample_weight=sw)
        start = time.perf_counter()
        truth = brute_force(truth_model(model), X, y, sw, X_test, y_test, loss, rows,
                            precomputed)
        t_refit = time.perf_counter() - start
    start = time.perf_counter()
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    t_exact = time.perf_counter() - start
    first = explainer.explain(X_test, y_test)[:, rows]
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    scale = np.abs(truth).max()
    row = dict(name=name, n=len(y), grad=explainer.relative_gradient_norm_,
               r_first=pearson(first, truth), r_newton=pearson(newton, truth),
               exact=np.abs(exact - truth).max() / scale, t_exact=t_exact,
               t_refit=t_refit, rows=len(rows))
    ROWS.append(row)
    print(f"| {name} | {row['n']} ({row['rows']}) | {row['grad']:.1e} | "
          f"{row['r_first']:.4f} | {row['r_newton']:.6f} | {row['exact']:.1e} | "
          f"{t_exact:.3f} | {t_refit:.2f} |", flush=True)
    return explainer, truth, rows


def same(model):
    return model


def ridge_of(model):
    return Ridge(alpha=model.alpha_, fit_intercept=model.fit_intercept)


# ------------------------------------------------------- one per estimator
def linear_regression_multi():
    compare("LinearRegression, 3 targets, diabetes", diabetes_targets(),
            LinearRegression(), same, squared_error)


def ridge_multi():
    data = diabetes_targets()
    compare("Ridge, 3 targets, alpha per target, sw", data,
            Ridge(alpha=[0.1, 10.0, 1000.0]), same, squared_error,
            sw=weights(len(data[2])))
    X, Y = load_linnerud(return_X_y=True)
    X_train, X_test = standardised(X[:15], X[15:])
    compare("Ridge, linnerud (3 targets)", (X_train, X_test, Y[:15], Y[15:]),
            Ridge(alpha=1.0), same, squared_error)


def ridgecv_multi():
    compare("RidgeCV, alpha_per_target", diabetes_targets(),
            RidgeCV(alphas=[1e-3, 1e-2, 0.1, 1.0], alpha_per_target=True), ridge_of,
            squared_error)


def ridgecv_stored_loo():
    """RidgeCV(store_cv_results=True) stores s_i (y_ik - yhat_{-i,k})^2."""
    X, _, Y, _ = diabetes_targets()
    print("\nRidgeCV stored leave-one-out errors, 3 targets (max |ours - stored| / "
          "max |stored|, over every alpha):\n")
    print("| gcv_mode | n | sample weights | alpha_per_target | error |")
    print("|---|---|---|---|---|")
    alphas = [1e-3, 1e-2, 0.1, 1.0]
    for mode in ("svd", "eigen"):
        for n in (len(Y), 8):
            for sw in (None, weights(n)):
                for per_target in (False, True):
                    cv = RidgeCV(alphas=alphas, alpha_per_target=per_target,
                                 store_cv_results=True, gcv_mode=mode).fit(
                        X[:n], Y[:n], sample_weight=sw)
                    worst = 0.0
                    for position, alpha in enumerate(alphas):
                        ridge = Ridge(alpha=alpha).fit(X[:n], Y[:n], sample_weight=sw)
                        explainer = InfluenceExplainer(ridge).fit(X[:n], Y[:n],
                                                                  sample_weight=sw)
                        own = np.einsum("iik->ik", explainer.loo(X[:n], method="exact"))
                        errors = (1.0 if sw is None else sw[:, None]) * (
                            Y[:n] - ridge.predict(X[:n]) - own) ** 2
                        stored = cv.cv_results_[:, :, position]
                        worst = max(worst, np.abs(errors - stored).max()
                                    / np.abs(stored).max())
                    print(f"| {mode} | {n} | {'yes' if sw is not None else 'no'} | "
                          f"{per_target} | {worst:.1e} |")
    print()


def ridge_classifier():
    for classes in ([1, 7], [0, 1, 2]):
        data = digits(classes)
        for cw in (None, "balanced"):
            compare(f"RidgeClassifier, digits {classes}, class_weight={cw}, sw", data,
                    RidgeClassifier(alpha=10.0, class_weight=cw), same,
                    ridge_classifier_loss, sw=weights(len(data[2])))
    compare("RidgeClassifier, breast cancer", breast_cancer(),
            RidgeClassifier(alpha=1.0), same, ridge_classifier_loss)


def ridge_classifier_cv():
    compare("RidgeClassifierCV, digits [0, 1, 2], balanced", digits([0, 1, 2]),
            RidgeClassifierCV(alphas=[1.0, 10.0, 100.0], class_weight="balanced"),
            lambda m: RidgeClassifier(alpha=m.alpha_, class_weight="balanced"),
            ridge_classifier_loss)


def kernel_ridge():
    data = diabetes()
    sw = weights(len(data[2]))
    for model in (KernelRidge(alpha=1.0, kernel="rbf", gamma=0.1),
                  KernelRidge(alpha=1e-3, kernel="rbf", gamma=0.05),
                  KernelRidge(alpha=0.1, kernel="polynomial", degree=2, coef0=1, gamma=0.1),
                  KernelRidge(alpha=1.0, kernel="laplacian", gamma=0.05)):
        compare(f"KernelRidge {model.kernel}, alpha={model.alpha}, diabetes, sw", data,
                model, same, squared_error, sw=sw)
    X, X_test, y, y_test = data
    gram = (rbf_kernel(X, gamma=0.1), rbf_kernel(X_test, X, gamma=0.1), y, y_test)
    compare("KernelRidge precomputed rbf, diabetes, sw", gram,
            KernelRidge(alpha=1.0, kernel="precomputed"), same, squared_error, sw=sw,
            precomputed=True)


def l1_report(name, explainer, truth, rows, data, sw):
    """Support changes: share, active-set accuracy on the others, the detector."""
    X, X_test, y, y_test = data
    _, _, changed, _ = active_set_loo_parameters(explainer.family_, X, y, sw, rows)
    flagged = explainer.support_changes(rows).changed
    newton = explainer.explain(X_test, y_test, method="newton")[:, rows]
    first = explainer.explain(X_test, y_test)[:, rows]
    exact = explainer.loo(X_test, y_test, method="exact", train_indices=rows)
    scale = np.abs(truth).max()
    kept = ~changed
    L1_ROWS.append(
        f"| {name} | {int(explainer.family_.support.sum())}/"
        f"{explainer.family_.n_parameters} | {changed.mean():.3f} | "
        f"{np.mean(flagged == changed):.3f} | "
        f"{np.abs(newton - truth)[:, kept].max() / scale:.1e} | "
        f"{pearson(newton[:, kept], truth[:, kept]):.6f} | "
        f"{pearson(first[:, kept], truth[:, kept]):.4f} | "
        f"{np.abs(newton - truth)[:, changed].max() / scale if changed.any() else 0:.1e} | "
        f"{np.abs(exact - truth).max() / scale:.1e} |")


L1_ROWS = []


def lasso():
    data = diabetes()
    sw = weights(len(data[2]))
    for alpha in (0.3, 1.0, 5.0):
        name = f"Lasso alpha={alpha}, diabetes, sw"
        explainer, truth, rows = compare(name, data, Lasso(alpha=alpha, **TIGHT_CD), same,
                                         squared_error, sw=sw)
        l1_report(name, explainer, truth, rows, data, sw)


def elastic_net():
    data = diabetes()
    name = "ElasticNet alpha=0.5, l1_ratio=0.5, diabetes"
    explainer, truth, rows = compare(name, data,
                                     ElasticNet(alpha=0.5, l1_ratio=0.5, **TIGHT_CD),
                                     same, squared_error)
    l1_report(name, explainer, truth, rows, data, None)


def lasso_cv():
    data = diabetes()
    name = "LassoCV (5-fold), diabetes"
    explainer, truth, rows = compare(
        name, data, LassoCV(cv=5, **TIGHT_CD),
        lambda m: Lasso(alpha=m.alpha_, **TIGHT_CD), squared_error)
    l1_report(name, explainer, truth, rows, data, None)


def elastic_net_cv():
    data = diabetes()
    name = "ElasticNetCV (5-fold, l1_ratio .2/.5/.9), diabetes"
    explainer, truth, rows = compare(
        name, data, ElasticNetCV(l1_ratio=[0.2, 0.5, 0.9], cv=5, **TIGHT_CD),
        lambda m: ElasticNet(alpha=m.alpha_, l1_ratio=m.l1_ratio_, **TIGHT_CD),
        squared_error)
    l1_report(name, explainer, truth, rows, data, None)


def logistic_l1():
    tight = dict(tol=1e-12, max_iter=1_000_000)
    data = breast_cancer()
    rows = np.arange(0, len(data[2]), 4)
    for name, model in [
        ("LogisticRegression L1 liblinear C=0.1, breast cancer",
         LogisticRegression(C=0.1, l1_ratio=1.0, solver="liblinear", tol=1e-10,
                            max_iter=100_000, random_state=0)),
        ("LogisticRegression enet saga C=0.1, l1_ratio=0.5, breast cancer",
         LogisticRegression(C=0.1, l1_ratio=0.5, solver="saga", tol=1e-10,
                            max_iter=100_000, random_state=0)),
    ]:
        explainer, truth, rows_used = compare(
            name, data, model, lambda m: clone(m).set_params(**tight), log_loss_rows,
            rows=rows)
        l1_report(name, explainer, truth, rows_used, data, None)
    data = digits([0, 1, 2], n_train=150)
    name = "LogisticRegression enet saga, 3 classes, digits [0, 1, 2]"
    explainer, truth, rows_used = compare(
        name, data, LogisticRegression(C=0.1, l1_ratio=0.5, solver="saga", tol=1e-10,
                                       max_iter=100_000, random_state=0),
        lambda m: clone(m).set_params(**tight), log_loss_rows,
        rows=np.arange(0, 150, 5))
    l1_report(name, explainer, truth, rows_used, data, None)


def kkt_of_refits_and_engine():
    """Largest KKT residual (relative smallest subgradient) of the leave-one-out
    optima: the exact engine's and scikit-learn's refits at tol=1e-12."""
    from skinfluence.families import family_for

    X, _, y, _ = breast_cancer()
    model = LogisticRegression(C=0.1, l1_ratio=1.0, solver="liblinear", tol=1e-10,
                               max_iter=100_000, random_state=0).fit(X, y)
    rows = np.arange(0, 40, 4)
    _, thetas, _, family = active_set_loo_parameters(family_for(model), X, y, None, rows)
    worst_engine = worst_refit = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for position, i in enumerate(rows):
            keep = np.arange(len(y)) != i
            refit = clone(model).set_params(tol=1e-12, max_iter=1_000_000).fit(
                X[keep], y[keep])
            worst_refit = max(worst_refit, family_for(refit).bind(
                X[keep], y[keep]).relative_gradient_norm(subgradient=True))
            theta = thetas[:, position]
            worst_engine = max(worst_engine, family.with_support(theta).bind(
                X[keep], y[keep], None, theta).relative_gradient_norm(subgradient=True))
    print(f"\nL1 liblinear, breast cancer, {len(rows)} leave-one-out problems: largest "
          f"KKT residual of the exact engine {worst_engine:.1e}, of liblinear refits at "
          f"tol=1e-12 {worst_refit:.1e}\n")


ESTIMATORS = [
    linear_regression_multi, ridge_multi, ridgecv_multi, ridge_classifier,
    ridge_classifier_cv, kernel_ridge, lasso, elastic_net, lasso_cv, elastic_net_cv,
    logistic_l1,
]


def main():
    print("| estimator, data | n (rows removed) | grad | r first | r newton | exact err "
          "| exact (s) | refits (s) |")
    print("|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for function in ESTIMATORS:
            function()
        ridgecv_stored_loo()
        kkt_of_refits_and_engine()
    print("L1 models: support changes (`changed`: share of removed rows whose exact "
          "leave-one-out support differs; `flags`: share where `support_changes` agrees; "
          "errors relative to the largest effect):\n")
    print("| estimator, data | support | changed | flags | newton err, kept | "
          "r newton, kept | r first, kept | newton err, changed | exact err, all |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in L1_ROWS:
        print(line)


if __name__ == "__main__":
    main()
