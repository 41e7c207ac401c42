"""GLMs, HuberRegressor, SGD and wrapped models against brute-force refits.

For each estimator, on data that ships with scikit-learn or skinfluence:

* ``grad``: the relative gradient norm of the family's objective at
  scikit-learn's fit (tight solver tolerance; SGD at its default settings);
* Pearson of ``explain(method="newton")`` and of the first-order
  ``explain`` with brute-force refits (``loo(method="refit")``: scikit-learn
  refits of the estimator without each row), on the test loss and, for
  regressors, on ``predict``;
* ``exact``: the largest error of ``loo(method="exact")`` relative to the
  largest effect, against an independent truth: refits polished by Newton
  steps on scikit-learn's own objective code (``LinearModelLoss`` for the
  GLMs; ``_huber_loss_and_gradient`` with a finite-difference Hessian for
  HuberRegressor, whose own L-BFGS-B refits stop at a fixed relative function
  tolerance of about 2e-9), and for SGD the estimators with the same objective
  solved by Newton (``LogisticRegression(C=1/((n-1) alpha))``,
  ``Ridge(alpha=(n-1) alpha)``).

Data: diabetes (442 rows; its target, a disease-progression score, is a
positive integer, used as the count for Poisson and as the positive target for
gamma and inverse Gaussian), forest fires (517 rows; burned area in hectares,
half of it exactly 0: the compound Poisson-gamma case, Tweedie power 1.5),
breast cancer and wine (classification). Features standardised; the last 40
rows (30 for wine) are the test rows.

SGD: the objective's truth is its exact leave-one-out; refits of SGD itself
carry their own optimisation noise, whose size the optimality gap (Newton
decrement in units of one row's LOO step) predicts.

Run: ``python benchmarks/glm_families.py`` (about two minutes on 2 cores).
"""

import time
import warnings

import numpy as np
from scipy.stats import pearsonr
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    GammaRegressor,
    HuberRegressor,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    SGDClassifier,
    SGDRegressor,
    TweedieRegressor,
)
from sklearn.linear_model._huber import _huber_loss_and_gradient
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skinfluence import InfluenceExplainer
from skinfluence._fitted import FittedInfluence
from skinfluence.datasets import load_forestfires
from skinfluence.exact import newton_loo
from skinfluence.families import family_for

warnings.filterwarnings("ignore", message=".*did not converge.*")
warnings.filterwarnings("ignore", category=ConvergenceWarning)
N_TEST = 40


def split(X, y, n_test=N_TEST):
    X = StandardScaler().fit_transform(X)
    return X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]


def diabetes():
    return split(*load_diabetes(return_X_y=True))


def forestfires():
    data = load_forestfires(one_hot=True)
    return split(data.data.astype(float), data.target)


def pearson(a, b):
    return pearsonr(a.ravel(), b.ravel())[0]


def rel_error(a, truth):
    return np.abs(a - truth).max() / np.abs(truth).max()


# ------------------------------------------------------------ truths
def glm_truth(est, X, y, X_test, targets, family):
    """LOO by Newton on sklearn's LinearModelLoss (weights s / sum s)."""
    loss = LinearModelLoss(base_loss=est._base_loss, fit_intercept=True)

    def fit(X, y, theta):
        w = np.full(len(y), 1.0 / len(y))
        for _ in range(30):
            g, H = loss.gradient_hessian(theta, X, y, w, l2_reg_strength=est.alpha)[:2]
            theta = theta - np.linalg.solve(H, g)
        return theta

    theta = fit(X, y, np.r_[est.coef_, est.intercept_])
    return _loo_by(lambda keep: fit(X[keep], y[keep], theta), theta, len(y),
                   X_test, targets, family)


def huber_truth(est, X, y, X_test, targets, family):
    """Stationary points of sklearn's own Huber gradient (FD Hessian)."""
    def grad(params, keep):
        return _huber_loss_and_gradient(params, X[keep], y[keep], est.epsilon,
                                        est.alpha, np.ones(keep.sum()))[1]

    def fit(keep, params):
        for _ in range(10):
            g = grad(params, keep)
            if np.abs(g).max() < 1e-12:
                break
            H = np.array([(grad(params + e, keep) - grad(params - e, keep)) / 2e-6
                          for e in 1e-6 * np.eye(params.size)])
            params = params - np.linalg.solve((H + H.T) / 2, g)
        return params

    full = fit(np.ones(len(y), bool), np.r_[est.coef_, est.intercept_, est.scale_])
    return _loo_by(lambda keep: fit(keep, full)[:-1], full[:-1], len(y), X_test,
                   targets, family)


def logistic_truth(sgd, X, y, X_test, targets, family):
    n = len(y)

    def fit(keep):
        lr = LogisticRegression(C=1 / (keep.sum() * sgd.alpha), solver="newton-cholesky",
                                tol=1e-12).fit(X[keep], y[keep])
        return np.hstack([lr.coef_, lr.intercept_[:, None]]).ravel()

    return _loo_by(fit, fit(np.ones(n, bool)), n, X_test, targets, family)


def ridge_truth(sgd, X, y, X_test, targets, family):
    def fit(keep):
        ridge = Ridge(alpha=keep.sum() * sgd.alpha).fit(X[keep], y[keep])
        return np.r_[ridge.coef_, ridge.intercept_]

    return _loo_by(fit, fit(np.ones(len(y), bool)), len(y), X_test, targets, family)


def _loo_by(fit, theta, n, X_test, targets, family):
    base = family.test_quantity(X_test, targets, theta)
    out = np.empty((X_test.shape[0], n))
    for i in range(n):
        keep = np.arange(n) != i
        out[:, i] = family.test_quantity(X_test, targets, fit(keep)) - base
    return out


# ------------------------------------------------------------- reports
def report(name, explainer, X_test, y_test, truth=None, predict=True, rows=None,
           tight=False):
    """One line: grad, Pearson (Newton, first order) on loss and predict, exact.

    ``rows``: the training rows refitted (all when None). ``tight``: also the
    Newton engine at a relative gradient tolerance of 1e-13.
    """
    t0 = time.perf_counter()
    n = explainer.problem_.n_samples
    rows = np.arange(n) if rows is None else rows
    parts = [f"{name:44s} grad {explainer.relative_gradient_norm_:8.1e}"]
    for label, target in [("loss", y_test)] + ([("predict", None)] if predict else []):
        refit = explainer.loo(X_test, target, method="refit", train_indices=rows)
        newton = explainer.explain(X_test, target, method="newton")[:, rows]
        first = explainer.explain(X_test, target)[:, rows]
        parts.append(f"{label}: newton {pearson(newton, refit):.5f} "
                     f"first {pearson(first, refit):.5f}")
    if truth is not None:
        exact = explainer.loo(X_test, y_test, method="exact")
        reference = truth(explainer, X_test, y_test)
        parts.append(f"exact {rel_error(exact, reference):.1e}")
        if tight:
            problem = explainer.problem_
            exact = newton_loo(explainer.family_, problem.X, problem.y,
                               problem.sample_weight, explainer.solver_, X_test, y_test,
                               np.arange(n), tol=1e-13)
            parts.append(f"(tol=1e-13: {rel_error(exact, reference):.1e})")
    print("  ".join(parts) + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def glm_section():
    print("GLMs (newton-cholesky, tol=1e-12), diabetes unless named; Pearson with "
          "scikit-learn refits")
    X, y, X_test, y_test = diabetes()
    cases = [
        ("PoissonRegressor(alpha=0.01)", PoissonRegressor(alpha=0.01), diabetes),
        ("GammaRegressor(alpha=0.01)", GammaRegressor(alpha=0.01), diabetes),
        ("Tweedie(power=1.5) forest fires", TweedieRegressor(power=1.5, alpha=0.01),
         forestfires),
        ("Tweedie(power=3) inverse Gaussian", TweedieRegressor(power=3, alpha=0.01),
         diabetes),
        ("Tweedie(power=0) normal, identity", TweedieRegressor(power=0, alpha=0.01),
         diabetes),
        ("Tweedie(power=0, link=log)", TweedieRegressor(power=0, link="log",
                                                        alpha=0.01), diabetes),
        ("Tweedie(power=2, link=identity)", TweedieRegressor(power=2, link="identity",
                                                             alpha=0.01), diabetes),
    ]
    for name, est, data in cases:
        X, y, X_test, y_test = data()
        est.set_params(solver="newton-cholesky", tol=1e-12, max_iter=100).fit(X, y)
        explainer = InfluenceExplainer(est).fit(X, y)
        # scikit-learn's Newton solver needs many iterations for rows of negative
        # curvature (power 0, log link): refit every fourth row only
        rows = np.arange(0, len(y), 4) if "link=log" in name else None
        report(name, explainer, X_test, y_test, rows=rows, tight=True,
               truth=lambda ex, Xt, yt, est=est, X=X, y=y:
               glm_truth(est, X, y, Xt, yt, ex.family_))
    # the penalty share: without it, a refit's rescaling is missed
    X, y, X_test, y_test = diabetes()
    for alpha in (0.01, 1.0):
        est = GammaRegressor(alpha=alpha, solver="newton-cholesky", tol=1e-12).fit(X, y)
        explainer = InfluenceExplainer(est).fit(X, y)
        truth = explainer.loo(X_test, method="exact")
        with_share = explainer.explain(X_test, method="newton")
        explainer.influence_.class_shift = None
        without = explainer.explain(X_test, method="newton")
        print(f"  GammaRegressor(alpha={alpha}) predict, Newton vs exact: max error / "
              f"max effect {rel_error(with_share, truth):.1e} with the penalty share, "
              f"{rel_error(without, truth):.1e} without")


def huber_section():
    print("HuberRegressor(alpha=1.0, tol=1e-12), diabetes (target standardised): the "
          "scale profiled out vs held fixed")
    X, y, X_test, y_test = diabetes()
    y, y_test = (y - y.mean()) / y.std(), (y_test - y.mean()) / y.std()
    est = HuberRegressor(alpha=1.0, tol=1e-12, max_iter=100_000).fit(X, y)
    explainer = InfluenceExplainer(est).fit(X, y)
    report("HuberRegressor", explainer, X_test, y_test,
           truth=lambda ex, Xt, yt: huber_truth(est, X, y, Xt, yt, ex.family_))
    family = family_for(est)
    theta = np.r_[family.theta, est.scale_]
    value, gradient, _ = family.joint_parts(X, y, np.ones(len(y)), theta[:-1], theta[-1])
    print(f"  joint gradient (w, b, sigma) at sklearn's fit: max |g| {np.abs(gradient).max():.1e}"
          f" (objective {value:.1f})")
    exact = explainer.loo(X_test, method="exact")
    refit = explainer.loo(X_test, method="refit")
    print(f"  sklearn's refits vs exact LOO: max error / max effect {rel_error(refit, exact):.1e}")
    fixed_family = family_for(est)
    fixed_family.profile_scale = False
    fixed = FittedInfluence(fixed_family, X, y)
    for label, fitted in [("profiled scale", explainer.influence_), ("fixed scale", fixed)]:
        newton = fitted.explain(X_test, method="newton")
        first = fitted.explain(X_test)
        print(f"  {label:15s} predict vs exact LOO: Pearson newton {pearson(newton, exact):.5f} "
              f"first {pearson(first, exact):.5f}; mean |error| newton "
              f"{np.abs(newton - exact).mean():.2e} first {np.abs(first - exact).mean():.2e}")


def sgd_section():
    print("SGD (alpha=0.01, random_state=0); Pearson with the objective's exact LOO and "
          "with SGD refits")
    cancer = split(*load_breast_cancer(return_X_y=True))
    wine = split(*load_wine(return_X_y=True), n_test=30)
    X, y, X_test, y_test = diabetes()
    y, y_test = (y - y.mean()) / y.std(), (y_test - y.mean()) / y.std()
    regression = (X, y, X_test, y_test)
    cases = [
        ("SGDClassifier(log_loss) cancer", SGDClassifier(loss="log_loss"), cancer,
         logistic_truth),
        ("SGDClassifier(log_loss, 1000 epochs)", SGDClassifier(
            loss="log_loss", max_iter=1000, tol=None), cancer, logistic_truth),
        ("SGDClassifier(log_loss) wine (OvR)", SGDClassifier(loss="log_loss"), wine,
         None),
        ("SGDClassifier(modified_huber) cancer", SGDClassifier(loss="modified_huber"),
         cancer, None),
        ("SGDClassifier(squared_hinge) cancer", SGDClassifier(loss="squared_hinge"),
         cancer, None),
        ("SGDClassifier(squared_hinge, adaptive)", SGDClassifier(
            loss="squared_hinge", learning_rate="adaptive", eta0=0.01), cancer, None),
        # the hinge's truth here is the smoothed objective's Newton LOO
        ("SGDClassifier(hinge, smoothed) cancer", SGDClassifier(loss="hinge"), cancer,
         None),
        ("SGDRegressor(squared_error) diabetes", SGDRegressor(), regression, ridge_truth),
        ("SGDRegressor(huber) diabetes", SGDRegressor(loss="huber", epsilon=1.0),
         regression, None),
    ]
    for name, est, (X, y, X_test, y_test), truth in cases:
        t0 = time.perf_counter()
        est.set_params(alpha=0.01, random_state=0).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iterate = InfluenceExplainer(est).fit(X, y)
        polished = InfluenceExplainer(est, polish=True).fit(X, y)
        if not polished.family_.smoothed:
            exact = polished.loo(X_test, y_test, method="exact")
        else:  # the smoothed objective's own leave-one-out, by the Newton engine
            P = polished.problem_
            exact = newton_loo(polished.family_, P.X, P.y, P.sample_weight,
                               polished.solver_, X_test, y_test, np.arange(P.n_samples))
        refit = iterate.loo(X_test, y_test, method="refit")
        line = (f"{name:44s} grad {iterate.relative_gradient_norm_:8.1e} gap "
                f"{iterate.optimality_gap_.ratio:7.2f}  vs exact: iterate first "
                f"{pearson(iterate.explain(X_test, y_test), exact):.4f} polished newton "
                f"{pearson(polished.explain(X_test, y_test, method='newton'), exact):.5f} "
                f"first {pearson(polished.explain(X_test, y_test), exact):.5f}  SGD refits "
                f"vs exact {pearson(refit, exact):.4f}")
        if truth is not None:
            reference = truth(est, X, y, X_test, y_test, polished.family_)
            line += f"  exact {rel_error(exact, reference):.1e}"
        print(line + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def wrapper_section():
    print("Wrappers")
    X, y, X_test, y_test = diabetes()
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0, 10.0, 100.0]}, cv=5).fit(X, y)
    report(f"GridSearchCV(Ridge) -> alpha={search.best_params_['alpha']}",
           InfluenceExplainer(search).fit(X, y), X_test, y_test)
    X, y, X_test, y_test = forestfires()
    ttr = TransformedTargetRegressor(Ridge(alpha=10.0), func=np.log1p,
                                     inverse_func=np.expm1).fit(X, y)
    report("TransformedTarget(Ridge, log1p) forest fires",
           InfluenceExplainer(ttr).fit(X, y), X_test, y_test)


if __name__ == "__main__":
    with threadpool_limits(1):
        glm_section()
        huber_section()
        sgd_section()
        wrapper_section()
