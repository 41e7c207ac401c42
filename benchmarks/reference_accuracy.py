"""Accuracy against R and NIST: least-squares diagnostics and exact logistic LOO.

Reads the reference files of ``tests/data`` (NIST StRD data and certified
values; R's ``lm``/``glm`` diagnostics and leave-one-out refits, made by
``tests/data/make_r_references.R``) and prints, per data set and quantity,
the largest error relative to the largest reference value (per column for
matrices). Also runs the same least-squares diagnostics with the Cholesky
factorisation forced, to show what the QR switch buys.

Run: ``python benchmarks/reference_accuracy.py`` (a few seconds).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from skinfluence import InfluenceExplainer

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def normwise(a, b):
    a, b = np.atleast_2d(np.asarray(a, float).T).T, np.atleast_2d(np.asarray(b, float).T).T
    return float(np.max(np.abs(a - b).max(axis=0) / np.abs(b).max(axis=0)))


def intercept_last(M, intercept=True):
    M = np.atleast_2d(M)
    return np.column_stack([M[:, 1:], M[:, :1]]) if intercept else M


def columns(ref, prefix):
    return ref[[c for c in ref.columns if c.startswith(prefix)]].to_numpy()


def load(name):
    if name in ("wls", "ols", "ridge", "ridge_weighted"):
        d = pd.read_csv(DATA / "wls.csv")
        w = d.w.to_numpy() if name in ("wls", "ridge_weighted") else None
        return d[["x1", "x2", "x3"]].to_numpy(), d.y.to_numpy(), w, True
    d = pd.read_csv(DATA / "nist" / f"{name}.csv")
    X = d.drop(columns="y").to_numpy(dtype=float)
    if name == "pontius":
        X = np.column_stack([X, X**2])
        X = X / X.std(axis=0)  # raw units: rank 1 to scikit-learn's lstsq
    return X, d.y.to_numpy(dtype=float), None, not name.startswith("noint")


def least_squares(name, form="auto"):
    X, y, w, intercept = load(name)
    model = (Ridge(alpha=1.5) if name.startswith("ridge")
             else LinearRegression(fit_intercept=intercept)).fit(X, y, sample_weight=w)
    explainer = InfluenceExplainer(model, solver_params={"form": form}).fit(
        X, y, sample_weight=w)
    diag = explainer.regression_diagnostics()
    ref = pd.read_csv(DATA / "r" / f"{name}.csv")
    errors = {"hat": normwise(diag.leverage, ref.hat)}
    if not name.startswith("ridge"):
        errors.update({
            "rstandard": normwise(diag.resid_studentized_internal, ref.rstandard),
            "rstudent": normwise(diag.resid_studentized_external, ref.rstudent),
            "cooks": normwise(diag.cooks_distance, ref.cooks),
            "dffits": normwise(diag.dffits, ref.dffits),
            "covratio": normwise(diag.covratio, ref.covratio),
            "dfbetas": normwise(diag.dfbetas,
                                intercept_last(columns(ref, "dfbetas_"), intercept)),
        })
        if name != "pontius":
            errors["dfbeta"] = normwise(diag.dfbeta,
                                        intercept_last(columns(ref, "dfbeta_"), intercept))
    if name != "pontius":  # R's refits are in raw units
        loo = explainer.family_.theta + explainer.parameter_influence(method="newton")
        errors["loo_coef"] = normwise(loo, intercept_last(columns(ref, "loo_"),
                                                          intercept))
    certified = json.loads((DATA / "nist" / "certified.json").read_text()).get(name)
    if certified is not None and name != "pontius":
        errors["cert_coef"] = normwise(
            diag.params[None, :],
            intercept_last(np.array(certified["coefficients"]), intercept))
        errors["cert_se"] = normwise(
            diag.params_stderr[None, :],
            intercept_last(np.array(certified["stderr"]), intercept))
        errors["cert_rsd"] = abs(np.sqrt(diag.sigma2) / certified["residual_sd"] - 1)
    return explainer.solver_.diagnostics_["form"], errors


def logistic(name, method):
    d = pd.read_csv(DATA / "binomial.csv")
    X, y = d.iloc[:, 1:6].to_numpy(), d.y.to_numpy()
    w = d.w.to_numpy() if name.endswith("weighted") else None
    ref = pd.read_csv(DATA / "r" / f"{name}.csv")
    coef = pd.read_csv(DATA / "r" / f"{name}_coef.csv").to_numpy()[0]
    loo = columns(ref, "loo_")

    def loss(theta, Xt, yt):
        z = Xt @ theta[1:] + theta[0]
        return np.logaddexp(0.0, z) - yt * z

    X_test, y_test = X[:20], y[:20]
    truth = np.array([loss(t, X_test, y_test) for t in loo]).T - \
        loss(coef, X_test, y_test)[:, None]
    model = LogisticRegression(C=np.inf).fit(X, y, sample_weight=w)
    explainer = InfluenceExplainer(model).fit(X, y, sample_weight=w)
    ours = explainer.loo(X_test, y_test, method=method)
    return (np.abs(ours - truth).max() / np.abs(truth).max(),
            int(np.count_nonzero((ours == 0) & (truth != 0))),
            float(np.mean(explainer.loo_info_.n_iter)))


def main():
    warnings.simplefilter("ignore")
    names = ["longley", "norris", "pontius", "noint1", "noint2", "wls", "ols",
             "ridge", "ridge_weighted"]
    print("## Least squares vs R (lm, influence.measures, LOO refits) and NIST")
    print("largest error / largest reference value; pontius on standardised columns")
    for name in names:
        form, errors = least_squares(name)
        listed = "  ".join(f"{k} {v:.1e}" for k, v in errors.items())
        print(f"{name:15s} [{form:7s}] max {max(errors.values()):.1e}   {listed}")
    print("\nThe same with Cholesky of the normal equations forced (form='primal'):")
    for name in ("longley", "pontius"):
        _, errors = least_squares(name, form="primal")
        print(f"{name:15s} max {max(errors.values()):.1e}")
    print("\n## Logistic regression (C=inf) exact LOO vs R glm refits (epsilon=1e-14)")
    print("20 test rows x 150 removals; error / largest effect; zeros where R is not")
    for name in ("binomial", "binomial_weighted"):
        for method in ("exact", "refit"):
            error, zeros, n_iter = logistic(name, method)
            print(f"{name:18s} {method:6s} {error:.1e}  exact zeros {zeros}  "
                  f"mean iterations {n_iter:.1f}")


if __name__ == "__main__":
    main()
