"""Is the fitted model at the optimum the influence formulas assume?

Influence and leave-one-out are derivatives and differences at the optimum
of the objective the estimator minimised. :func:`check_fit` takes one Newton
step from the fitted coefficients, ``theta_1 = theta - H^{-1} g``, and
measures how much it would move what the influence is made of: each row's
removal gradient ``r_i`` and curvature ``D_i``,

.. math::

    \\text{gap} = \\max\\left(\\frac{\\lVert r(\\theta_1) - r(\\theta)\\rVert}
    {\\lVert r(\\theta)\\rVert},\\;
    \\frac{\\lVert D(\\theta_1) - D(\\theta)\\rVert}{\\lVert D(\\theta)\\rVert}\\right),

the predicted relative change of the influence itself. The Newton step is
affine invariant and both quantities live on the linear predictor, so the gap
does not change when features or the objective are rescaled (a relative
gradient norm does: with features scaled by 1e8 it reads 5e-9 while the
intercept is far from optimal). It also reports the Newton decrement
``lambda = sqrt(g^T H^{-1} g)``, the distance to the optimum in the Hessian's
norm.

The same pass names the other reasons the numbers could mislead: separable
classes (no finite optimum without a penalty), rows the model interpolates
(leverage 1), a rank-truncated least-squares fit and an ill-conditioned
Hessian.
"""

import numpy as np
from sklearn.utils import Bunch

__all__ = ["check_fit", "FitWarning"]

class FitWarning(UserWarning):
    """The fitted model is not where the influence formulas assume it is.

    Raised by :meth:`InfluenceExplainer.fit` when the estimator's
    coefficients are not at the optimum of its objective on the data passed
    (fitted on other rows, stopped early, or a kept-rank least squares), with
    the size of the gap and the fix. Silence it like any warning once the cause
    is understood.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import FitWarning, InfluenceExplainer
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = Ridge().fit(X[:200], y[:200])        # fitted on other rows
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     explainer = InfluenceExplainer(model).fit(X[200:], y[200:])
    >>> [type(w.message).__name__ for w in caught]
    ['FitWarning']
    >>> warnings.filterwarnings("ignore", category=FitWarning)  # once understood
    """


def _norm(x):
    # not np.linalg.norm: its BLAS dot runs multi-threaded on long vectors and
    # leaves numpy's BLAS threads spinning on the cores that the passes over
    # the rows, one BLAS thread per Python thread, need next (explain after a
    # fresh fit ran 1.6x slower at n = 100,000, d = 100)
    flat = np.ravel(x)
    return float(np.sqrt(np.einsum("i,i->", flat, flat)))


def _relative_change(new, old):
    scale = _norm(old)
    change = _norm(new - old)
    if scale == 0:
        return 0.0 if change == 0 else np.inf
    return float(change / scale)


def _separated(family, problem):
    """Whether the fitted model puts every training row on its correct side."""
    if not family.is_classifier or family.smoothed:
        return False
    labels = family.class_index(problem.y)
    Z = problem.Z
    if Z.shape[1] == 1:
        correct = (Z[:, 0] > 0) == (labels == 1)
    else:
        correct = np.argmax(Z, axis=1) == labels
    correct |= problem.sample_weight <= 0  # rows of weight 0 do not count
    return bool(correct.all())


def _stopped_early(estimator):
    n_iter = getattr(estimator, "n_iter_", None)
    max_iter = getattr(estimator, "max_iter", None)
    if n_iter is None or max_iter is None:
        return False
    return bool(np.max(n_iter) >= max_iter)


def check_fit(family, problem, solver, estimator=None, *, gradient_tol=0.05):
    """Measure the fit and list what could make its influence misleading.

    Parameters
    ----------
    family : LinearFamily
    problem : BoundProblem
        The objective at the fitted coefficients.
    solver : fitted solver
        Holds the factorised Hessian at the same point.
    estimator : estimator, default=None
        The final fitted estimator (for ``max_iter``, ``tol``, ``rank_``).
    gradient_tol : float, default=0.05
        Largest accepted gap.

    Returns
    -------
    report : Bunch
        ``gap`` (the predicted relative change of the influence, NaN when not
        measured), ``decrement``, ``separated`` (bool) and
        ``messages``: a list of
        ``(kind, text)`` with kind in {"separable", "not_converged",
        "interpolation", "rank", "conditioning"}; "no_optimum" is an error.
    """
    messages = []
    name = type(estimator).__name__ if estimator is not None else "The estimator"
    separated = _separated(family, problem)
    coefficient_penalty = problem.penalty.reshape(family.n_outputs, family.n_columns)
    penalised = bool(np.any(coefficient_penalty[:, : family.n_features] > 0))
    if separated and not np.any(problem.penalty > 0):
        messages.append(("no_optimum", (
            f"{name} has no penalty (C=np.inf) and every training row is on its "
            "correct side of the fitted boundary: the classes are separable, so "
            "the objective has no finite optimum (the coefficients grow without "
            "bound) and influence is undefined. Use a finite C (for example C=1.0).")))
    decrement = gap = np.nan
    gradient = problem.gradient()
    step = None
    if not getattr(solver, "stochastic", False):
        try:
            step = solver.solve(gradient)
        except (ArithmeticError, ValueError):  # a solver that fails says so
            step = None                        # when it is used
    if not family.smoothed and step is not None:
        decrement = float(np.sqrt(max(gradient @ step, 0.0)))
        moved = problem.moved(step)
        gap = max(_relative_change(moved.residuals, problem.residuals),
                  _relative_change(moved.curvature, problem.curvature))
    interpolates = (family.quadratic and not penalised
                    and problem.n_samples <= family.n_parameters)
    if gap > gradient_tol and not interpolates:  # residuals are rounding there
        causes = []
        if _stopped_early(estimator):
            causes.append(f"it stopped at max_iter={estimator.max_iter} (raise "
                          "max_iter, or scale the features)")
        if separated:
            causes.append(
                "it separates the training classes (every row on its correct "
                "side), where only the penalty keeps the optimum finite "
                f"(C={getattr(family, 'C', np.nan):g}): the coefficients are large "
                "and solvers converge slowly (use a smaller C"
                + (f", or a tol below {estimator.tol:g}" if hasattr(estimator, "tol")
                   and not _stopped_early(estimator) else "") + ")")
        if not causes:
            causes.append(
                "it was fitted on other data (pass fit the same X, y and "
                "sample_weight) or stopped early (lower its tol"
                + (f", now {estimator.tol:g}" if hasattr(estimator, "tol") else "")
                + ", or raise max_iter)")
        messages.append(("separable" if separated else "not_converged", (
            f"{name} does not look fitted on this data: one Newton step from its "
            "coefficients would change the removal gradients and curvatures that "
            f"influence is made of by {gap:.2g} (relative; Newton decrement "
            f"{decrement:.2g}); influence values are typically off by one to five "
            f"times that. Likely {'; and '.join(causes)}. loo(method='exact') and "
            "'refit' use the exact optimum; explain() linearises at the fitted "
            "coefficients.")))
    if interpolates:
        messages.append(("interpolation", (
            f"{name} has {family.n_parameters} parameters for {problem.n_samples} "
            "rows and no penalty: it interpolates the training data (leverage 1), "
            "where influence is undefined. explain() and loo() refit those rows; "
            "a penalised model (Ridge) has finite influence everywhere.")))
    rank = getattr(estimator, "rank_", None)
    if family.quadratic and family.pinv_rtol is not None and rank is not None:
        singular = np.asarray(getattr(estimator, "singular_", []), dtype=float)
        listed = ", ".join(f"{v:.3g}" for v in singular[:6])
        messages.append(("rank", (
            f"{name} kept rank {rank} of {family.n_features} directions of the "
            f"centred features (its lstsq drops singular values below "
            f"tol={getattr(estimator, 'tol', 0):g} times the largest; singular values "
            f"{listed}). Influence keeps the dropped directions fixed while each "
            "refit truncates its own data, so explain() approximates refits; "
            "loo(method='exact') refits. If the features have very different "
            "scales, standardise them (StandardScaler) or use Ridge.")))
    condition = getattr(solver, "diagnostics_", {}).get("condition")
    if condition is not None and np.isfinite(condition):
        form = solver.diagnostics_.get("form")
        error = (np.sqrt(condition) if form in ("qr", "pseudo-inverse") else condition) \
            * np.finfo(float).eps
        if error > 1e-6:
            messages.append(("conditioning", (
                f"The Hessian is ill-conditioned (condition number {condition:.2g}, "
                f"{form} factorisation): influence values may carry relative errors "
                f"up to about {error:.0e}. Standardise the features or add a "
                "penalty. damping=delta adds delta to the Hessian's diagonal: the "
                "numbers then describe a slightly more penalised model, shrunk "
                "along every direction whose curvature is below delta.")))
    return Bunch(gap=gap, decrement=decrement, separated=separated,
                 messages=messages)
