"""Does the fit check predict how far off the influence is?

For fits stopped short of their optimum (default or low ``max_iter``,
features scaled by 1e8, raw pixel values), prints the explainer's ``fit_gap_``
(the predicted relative change of the removal gradients and curvatures in one
Newton step), the old relative gradient norm, and the measured change of
``explain()`` when the fit is replaced by its exact optimum (polished by
Newton's method): the largest change over the largest value, and Pearson
with exact leave-one-out for both. Whether ``fit`` warned is the last column.

Run: ``python benchmarks/fit_check.py`` (a few seconds).
"""

import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence._fitcheck import FitWarning
from skinfluence.exact import polish_optimum
from skinfluence.families import family_for


def pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def case(label, model, X, y, X_test, y_test):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
        explainer = InfluenceExplainer(model).fit(X, y)
        warned = any(issubclass(w.category, FitWarning) for w in caught)
        estimate = explainer.explain(X_test, y_test)
        loo = explainer.loo(X_test, y_test, method="exact")
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    X_final = model[:-1].transform(X) if hasattr(model, "steps") else X
    theta, _ = polish_optimum(family_for(final), X_final, y)
    final.coef_, final.intercept_ = (a.copy() for a in family_for(final).split_theta(theta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = InfluenceExplainer(model).fit(X, y).explain(X_test, y_test)
    change = np.abs(estimate - exact).max() / np.abs(exact).max()
    print(f"| {label} | {explainer.fit_gap_:.3g} | {explainer.relative_gradient_norm_:.2g} "
          f"| {change:.3g} | {change / max(explainer.fit_gap_, 1e-300):.2g} "
          f"| {pearson(estimate, loo):.3f} | {pearson(exact, loo):.3f} | "
          f"{'yes' if warned else 'no'} |")


def main():
    print("| fit | fit_gap_ | relative gradient norm | change of explain | ratio "
          "| Pearson vs LOO, as fitted | at the optimum | warned |")
    print("|---|---|---|---|---|---|---|---|")
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, flip_y=0.15, random_state=0)
    tr, te = slice(0, 250), slice(250, 300)
    case("synthetic, lbfgs defaults", LogisticRegression(), X[tr], y[tr], X[te], y[te])
    case("synthetic x 1e8, lbfgs defaults", LogisticRegression(), X[tr] * 1e8, y[tr],
         X[te] * 1e8, y[te])
    shifted = X.copy()
    shifted[:, 0] += 50.0
    for max_iter in (15, 30):
        case(f"synthetic, column + 50, max_iter={max_iter}",
             LogisticRegression(max_iter=max_iter), shifted[tr], y[tr], shifted[te],
             y[te])
    data = load_digits()
    mask = np.isin(data.target, [1, 7])
    Xd, yd = data.data[mask], data.target[mask]
    case("digits 1 vs 7 raw pixels, lbfgs defaults", LogisticRegression(), Xd[:250],
         yd[:250], Xd[250:], yd[250:])
    Xd = Xd[:, Xd.std(axis=0) > 0]
    Xd = (Xd - Xd.mean(0)) / Xd.std(0)
    for max_iter in (3, 5, 8):
        case(f"digits 1 vs 7 standardised, max_iter={max_iter}",
             LogisticRegression(max_iter=max_iter), Xd[:250], yd[:250], Xd[250:],
             yd[250:])
    Xb, yb = load_breast_cancer(return_X_y=True)
    case("breast cancer, StandardScaler + lbfgs defaults",
         make_pipeline(StandardScaler(), LogisticRegression()), Xb[:400], yb[:400],
         Xb[400:420], yb[400:420])


if __name__ == "__main__":
    main()
