"""Representer points (Yeh et al., 2018) for L2-regularised linear models.

At a stationary point of ``F(theta) = sum_i c_i l(y_i, z_i) + 1/2 theta^T
diag(p) theta`` the gradient vanishes, so every penalised coordinate is a
weighted sum of the training rows:

.. math::

    \\theta_{kj} = -\\frac{1}{p_{kj}} \\sum_i r_{ik}\\, \\tilde x_{ij},
    \\qquad r_{ik} = c_{ik}\\, \\frac{\\partial l}{\\partial z_{ik}},

and the decision value of a test row splits into one term per training row,

.. math::

    z_{tk} = b^{\\text{free}}_k + \\sum_i \\alpha_{ik}\\, k(x_i, x_t), \\qquad
    \\alpha_{ik} = -r_{ik}, \\quad
    k(x_i, x_t) = \\sum_{j:\\, p_{kj} > 0} \\tilde x_{ij} \\tilde x_{tj} / p_{kj}.

A free (unpenalised) intercept, as in Ridge and LogisticRegression with the
lbfgs/newton solvers, is not a sum over rows and is reported apart;
liblinear (LinearSVC, ``LogisticRegression(solver="liblinear")``) penalises
its intercept, which then belongs to the kernel (with weight
``intercept_scaling**2``).
"""

import numpy as np
import scipy.sparse as sp

from .._result import Result
from ..exact import newton_minimize
from ..families import safe_dot

__all__ = ["representer_points", "representer_decomposition"]


def _tilde(X, fit_intercept):
    if not fit_intercept:
        return X
    ones = np.ones((X.shape[0], 1))
    return sp.hstack([X, ones], format="csr") if sp.issparse(X) else np.hstack([X, ones])


def representer_points(explainer, X, y=None, *, polish=True, tol=1e-12):
    """Split each test decision value into one contribution per training row.

    Parameters
    ----------
    explainer : InfluenceExplainer
        Fitted on the training data of an L2-regularised model
        (LogisticRegression, Ridge, LinearSVC and their CV variants).
    X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        Test rows (raw input: a Pipeline's transform is applied).
    y : array-like of shape (n_test,), default=None
        Test targets; when given, ``influence`` is returned as well.
    polish : bool, default=True
        Scikit-learn's coefficients are stationary only to the solver's
        tolerance, so the representer sum misses the decision value by a
        residual of that order. With ``polish=True`` Newton's method first
        drives the relative gradient norm of the model's own objective to
        ``tol`` and the *polished* model is explained (its coefficients differ
        from the estimator's by the solver error; ``theta`` holds them).
        With ``polish=False`` the fitted coefficients are explained and the
        gap is reported in ``residual``. For ``LinearSVC(loss="hinge")`` the
        polished model is the smoothed-hinge optimum the explainer uses.
    tol : float, default=1e-12
        Relative gradient norm targeted by the polish.

    Returns
    -------
    result : Bunch
        contributions : ndarray (n_test, n_train) or (n_test, n_train, K)
            ``alpha_ik k(x_i, x_t)``; a third axis over the decision outputs
            when there are several (multinomial classes, one-vs-rest problems).
        intercept : ndarray (n_outputs,)
            The free (unpenalised) intercept, zeros when the intercept is
            penalised or not fitted.
        decision : ndarray (n_test,) or (n_test, K)
            Decision values of the explained model.
        residual : ndarray like ``decision``
            ``decision - intercept - contributions.sum(axis=1)``: the
            stationarity error (about ``1e-14`` after polishing).
        alpha : ndarray (n_train, n_outputs)
            ``-r_ik``, the representer weights.
        influence : ndarray (n_test, n_train), only when ``y`` is given
            ``-sum_k dL_t/dz_tk * contributions[t, i, k]``: the change of the test
            loss if row ``i``'s contribution were removed, same sign as
            ``explain`` (positive: helps). This is the representer-point
            importance, not a refit.
        theta : ndarray (n_parameters,)
            The explained parameters.
        relative_gradient_norm : float
            Stationarity of ``theta``.

    References
    ----------
    C.-K. Yeh, J. S. Kim, I. E. H. Yen and P. Ravikumar, "Representer Point
    Selection for Explaining Deep Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skinfluence import InfluenceExplainer, representer_points
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    >>> model = Ridge(alpha=1.0).fit(X, y)
    >>> rep = representer_points(InfluenceExplainer(model).fit(X, y), X[:2])
    >>> rep.contributions.shape
    (2, 30)
    >>> total = rep.contributions.sum(axis=1) + rep.intercept
    >>> bool(np.allclose(total, model.predict(X[:2]), rtol=0, atol=1e-10))
    True
    """
    return explainer.representer_points(X, y, polish=polish, tol=tol)


def representer_decomposition(fitted, X_test, y=None, *, polish=True, tol=1e-12):
    """The representer decomposition of prepared test rows ``X_test``.

    ``fitted`` is a :class:`~skinfluence._fitted.FittedInfluence`; see
    :func:`representer_points` for the parameters and the result.
    """
    family, problem = fitted.family, fitted.problem
    K, P = family.n_outputs, family.n_columns
    p = family.penalty_diagonal().reshape(K, P)
    if np.all(p[:, : family.n_features] == 0):
        raise ValueError(
            "Representer points need an L2 penalty on the coefficients; this model "
            "has none (LinearRegression, or C=np.inf). Use Ridge or a finite C.")
    X_train, y_train, sw = problem.X, problem.y, problem.sample_weight
    theta = problem.theta
    if polish:
        theta, _ = newton_minimize(family, X_train, y_train, sw, theta, tol=tol,
                                   max_iter=50)
    fam = family.with_theta(theta)
    bound = fam.bind(X_train, y_train, sw, theta)
    R = bound.residuals  # (n, K)
    Theta = theta.reshape(K, P)
    penalised = p > 0
    free_intercept = np.zeros(K)
    if family.fit_intercept:
        free_intercept = np.where(penalised[:, -1], 0.0, Theta[:, -1])
    Xt_train = _tilde(X_train, family.fit_intercept)
    Xt_test = _tilde(X_test, family.fit_intercept)
    m, n = X_test.shape[0], X_train.shape[0]
    contributions = np.empty((m, n, K))
    kernel, previous = None, None
    for k in range(K):
        inv = np.where(penalised[k], 1.0 / np.where(penalised[k], p[k], 1.0), 0.0)
        if previous is None or not np.array_equal(inv, previous):
            scaled = (Xt_test.multiply(inv[None, :]).tocsr() if sp.issparse(Xt_test)
                      else Xt_test * inv)
            kernel = safe_dot(scaled, Xt_train.T)  # (m, n)
            previous = inv
        contributions[:, :, k] = kernel * -R[:, k]
    decision = fam.decision(X_test)
    residual = decision - free_intercept - contributions.sum(axis=1)
    out = Result(
        contributions=contributions[:, :, 0] if K == 1 else contributions,
        intercept=free_intercept,
        decision=decision[:, 0] if K == 1 else decision,
        residual=residual[:, 0] if K == 1 else residual,
        alpha=-R, theta=theta,
        relative_gradient_norm=bound.relative_gradient_norm(),
    )
    if y is not None:
        labels = fitted.test_labels(X_test, y, decision)
        Q = fam.loss_gradient(fam.encode_target(labels), decision)  # (m, K)
        out.influence = -np.einsum("mk,mnk->mn", Q, contributions)
    return out
