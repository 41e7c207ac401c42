"""skinfluence against peer libraries, side by side in one process.

Needs a separate benchmark environment (never the package's dependencies;
pyDVL pins numpy < 2):

    python -m venv ../benchvenv
    ../benchvenv/bin/pip install torch==2.13.0          # the local CPU build
    ../benchvenv/bin/pip install "pydvl[influence]" statsmodels
    ../benchvenv/bin/pip install -e .
    ../benchvenv/bin/python benchmarks/peers.py

Peers and the quantities compared (ours / theirs for time, best of 3):

* statsmodels ``OLSInfluence`` (OLS): leverage, DFBETAS, Cook's distance,
  studentised residuals against ``explainer.regression_diagnostics()``;
* statsmodels ``GLMInfluence`` (unpenalised logistic GLM): its one-step
  leave-one-out parameters (``params_one - params``) against
  ``explainer.parameter_influence(method="newton")`` (the same one-step
  formula);
* pyDVL ``DirectInfluence`` and ``CgInfluence`` on the same logistic model
  wrapped in torch (``nn.Linear`` without bias, weights copied from
  scikit-learn, the mean-loss regularisation ``1 / (C n)`` matching
  scikit-learn's objective): pyDVL's ``mode="up"`` influence on that mean-loss
  objective is ``n`` times ours (``explain``: removal, sum form, measured
  sign), so it is divided by ``n`` before the agreement is measured. Both
  include building the Hessian; pyDVL's CG runs at its default tolerance.
"""

import os
import time
import warnings

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression

from skinfluence import InfluenceExplainer

warnings.simplefilter("ignore")


def best(function, repeat=3):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def row(peer, quantity, ours, theirs, agreement):
    print(f"| {peer} | {quantity} | {ours:.4f} | {theirs:.4f} | {ours / theirs:.3f} | "
          f"{agreement} |")


def statsmodels_ols(n=5000, d=20):
    import statsmodels.api as sm
    from statsmodels.stats.outliers_influence import OLSInfluence

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n)

    def theirs():
        result = sm.OLS(y, sm.add_constant(X)).fit()
        influence = OLSInfluence(result)
        return (influence.hat_matrix_diag, influence.dfbetas, influence.cooks_distance[0],
                influence.resid_studentized_external)

    def ours():
        model = LinearRegression().fit(X, y)
        diagnostics = InfluenceExplainer(model).fit(X, y).regression_diagnostics()
        return diagnostics

    t_theirs, (hat, dfbetas, cooks, student) = best(theirs)
    t_ours, diag = best(ours)
    # statsmodels puts the constant first, we put the intercept last
    dfbetas = np.column_stack([dfbetas[:, 1:], dfbetas[:, :1]])
    errors = [np.abs(a - b).max() / np.abs(b).max() for a, b in (
        (diag.leverage, hat), (diag.dfbetas, dfbetas), (diag.cooks_distance, cooks),
        (diag.resid_studentized_external, student))]
    row("statsmodels OLSInfluence", f"OLS diagnostics, n={n}, d={d}", t_ours, t_theirs,
        f"max rel. error {max(errors):.1e}")


def statsmodels_glm(n=5000, d=20):
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) / np.sqrt(d) + rng.logistic(size=n) > 0).astype(int)

    def theirs():
        result = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(
            tol=1e-12)
        return result.get_influence(observed=False).params_one - result.params

    def ours():
        model = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10).fit(X, y)
        return InfluenceExplainer(model).fit(X, y).parameter_influence(method="newton")

    t_theirs, step = best(theirs)
    t_ours, delta = best(ours)
    step = np.column_stack([step[:, 1:], step[:, :1]])  # intercept last
    r = np.corrcoef(delta.ravel(), step.ravel())[0, 1]
    error = np.abs(delta - step).max() / np.abs(step).max()
    row("statsmodels GLMInfluence", f"logistic one-step dfbeta, n={n}, d={d}", t_ours,
        t_theirs, f"max rel. error {error:.1e} (Pearson {r:.6f})")


def pydvl(n=2000, d=50, m=50):
    import torch
    from pydvl.influence.torch import CgInfluence, DirectInfluence
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) / np.sqrt(d) + rng.logistic(size=n) > 0).astype(int)
    X_test = rng.normal(size=(m, d))
    y_test = rng.integers(0, 2, size=m)
    C = 1.0
    model = LogisticRegression(C=C, fit_intercept=False, solver="newton-cholesky",
                               tol=1e-10).fit(X, y)

    def ours():
        return InfluenceExplainer(model).fit(X, y).explain(X_test, y_test)

    t_ours, influence = best(ours)

    net = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(model.coef_))

    def loss(output, target):
        return torch.nn.functional.binary_cross_entropy_with_logits(
            output.squeeze(-1), target)

    tensors = [torch.from_numpy(a) for a in (X, y.astype(float), X_test,
                                             y_test.astype(float))]
    loader = DataLoader(TensorDataset(tensors[0], tensors[1]), batch_size=n)
    regularization = 1.0 / (C * n)  # mean-loss form of 1/2 ||w||^2 / (C n)
    for name, make in (
        ("DirectInfluence", lambda: DirectInfluence(net, loss, regularization)),
        ("CgInfluence", lambda: CgInfluence(net, loss, regularization)),
    ):
        def theirs():
            fitted = make().fit(loader)
            return fitted.influences(tensors[2], tensors[3], tensors[0], tensors[1],
                                     mode="up").detach().numpy()

        t_theirs, up = best(theirs)
        rescaled = up / n
        error = np.abs(rescaled - influence).max() / np.abs(influence).max()
        r = np.corrcoef(rescaled.ravel(), influence.ravel())[0, 1]
        row(f"pyDVL {name}", f"logistic explain, n={n}, d={d}, m={m}", t_ours, t_theirs,
            f"max rel. error {error:.1e} (Pearson {r:.6f})")


def main():
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"{os.cpu_count()} cores")
    print("| peer | quantity | ours (s) | theirs (s) | time ratio ours/theirs | agreement |")
    print("|---|---|---|---|---|---|")
    statsmodels_ols()
    statsmodels_glm()
    try:
        pydvl()
    except ImportError as exc:
        print(f"| pyDVL | not installed: {exc} | | | | |")


if __name__ == "__main__":
    main()
