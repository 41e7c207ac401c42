"""How far fitted coefficients are from the optimum of their objective.

Measured in the units that matter for influence: one training row's
leave-one-out step. With ``g`` the objective's gradient at the fitted
coefficients and ``H`` its Hessian, the Newton decrement
``lambda = sqrt(g^T H^{-1} g)`` is the distance to the optimum in the norm of
``H`` (affine-invariant, so rescaling a feature does not hide it), and row
``i``'s first-order removal step ``H^{-1} g_i`` has length
``sqrt(g_i^T H^{-1} g_i)`` in the same norm. Their ratio (to the root mean
square over rows, since rows beyond a margin have no step at all) says how
many typical removals away from the optimum the fit stopped.
"""

import numpy as np

from .._result import Result
from .._influence import leverage_blocks

__all__ = ["optimality_gap"]


def optimality_gap(fitted, max_rows=1000):
    """Distance of the fitted coefficients to the optimum, in LOO steps.

    Parameters
    ----------
    fitted : FittedInfluence
    max_rows : int, default=1000
        Training rows (evenly spaced) whose LOO steps are averaged.

    Returns
    -------
    gap : Bunch
        ``newton_decrement`` (``sqrt(g^T H^{-1} g)`` at the estimator's own
        coefficients), ``loo_step`` (root mean square of
        ``sqrt(g_i^T H^{-1} g_i)`` over the rows) and ``ratio`` (the first
        over the second).

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import SGDClassifier
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.evaluation import optimality_gap
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> sgd = SGDClassifier(loss="log_loss", alpha=0.01, random_state=0).fit(X, y)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # it warns: far from the optimum
    ...     explainer = InfluenceExplainer(sgd).fit(X, y)
    >>> bool(optimality_gap(explainer.influence_).ratio > 1)
    True
    >>> polished = InfluenceExplainer(sgd, polish=True).fit(X, y)
    >>> bool(polished.problem_.relative_gradient_norm() < 1e-10)
    True
    """
    problem, solver = fitted.problem, fitted.solver
    g = fitted.fitted_gradient
    decrement = float(np.sqrt(max(g @ solver.solve(g), 0.0)))
    n = problem.n_samples
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).astype(np.intp))
    M = leverage_blocks(problem, solver, rows)  # (rows, K, K)
    R = fitted.removal_residuals[rows]
    squares = np.clip(np.einsum("nk,nkl,nl->n", R, M, R), 0.0, None)
    step = float(np.sqrt(squares.mean()))
    ratio = decrement / step if step > 0 else np.inf
    return Result(newton_decrement=decrement, loo_step=step, ratio=ratio)
