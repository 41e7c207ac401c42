"""Influence on a functional: one number of the model's outputs on a set.

A functional ``F`` maps the decision values ``Z`` of the evaluation rows
(shape ``(n_eval, n_outputs)``) to one number: the mean validation loss, a
smoothed accuracy or AUC, the loss of the worst group, a fairness gap. Its
change when training row ``i`` is removed is, to first order in the
parameters,

.. math::

    F(\\theta_{-i}) - F(\\theta) \\approx \\nabla_\\theta F^\\top \\Delta_i,
    \\qquad \\nabla_\\theta F = \\sum_j \\frac{\\partial F}{\\partial z_j}
    \\otimes \\tilde x_j,

with ``Delta_i`` the parameter step of the removal: ``H^{-1} g_i`` at first
order, ``H^{-1} (rho_i (x) x~_i)`` with the leave-one-out Hessian (the
leverage-corrected step, :func:`~skinfluence._influence.newton_rho`) for
"newton". Both need ONE solve ``u = H^{-1} grad F``, then ``O(n d)``: the
value of row ``i`` is ``rho_i . (U x~_i)``; the ``(n_eval, n_train)`` matrix
is never formed (nor by the optional second-order term below). "exact"
evaluates ``F`` at every exact leave-one-out optimum (Newton's method on the
family's objective), for checking.

Built-in functionals (``T`` = ``temperature``; for a binary classifier
``s_j = sigmoid(z_j / T)`` is a smoothed indicator of predicting the positive
class ``classes_[1]``: with ``T = 1`` it is exactly logistic regression's
predicted probability, as ``T -> 0`` it becomes the hard prediction; for a
regressor ``s_j`` is the prediction itself):

``"mean_loss"``
    Mean test loss of the rows (``validation_influence / n_eval``; without
    targets, as :meth:`~skinfluence.InfluenceExplainer.explain`).
``"accuracy"``
    Smooth surrogate: the mean of ``softmax(Z / T)`` at the true class
    (binary: ``sigmoid(+-z / T)``), the mean predicted probability of the
    true class for logistic regression at ``T = 1``.
``"roc_auc"``
    Smooth pairwise surrogate: the mean of ``sigmoid((z_p - z_n) / T)`` over
    all (positive, negative) pairs (binary only; memory ``n_pos x n_neg``).
``"worst_group_loss"``
    The largest mean loss of the ``groups``; its gradient is that of the
    worst group (valid while that group stays the worst).
``"demographic_parity"``, ``"equal_opportunity"``, ``"fpr_gap"``
    Signed gaps between the two values of ``groups``, larger label minus
    smaller: of the mean ``s_j`` over all rows (the positive rate), over the
    rows whose label is positive (true positive rate) and over the negatives
    (false positive rate).

A callable ``functional(Z, y, groups)`` returning ``(value, gradient)``, with
``gradient`` of the shape of ``Z``, works the same way; it may return a third
element, the second derivatives of the functional in each row's outputs
(shape of ``Z``, or ``(n_eval, K, K)``), for the second-order term.

"newton" can add the functional's curvature along each step,
``1/2 Delta_i^T H_F Delta_i`` with ``H_F`` its Hessian in the parameters
(for functionals that are sums over rows; not the AUC's pairs): two block
solves of ``d`` columns and ``O(n d^2)``. By default (``second_order="auto"``)
whenever the functional has it, up to 2000 parameters. Removals whose Newton
step is long in the Hessian's norm (``||Delta_i||_H > exact_above``, 0.5 by
default) are computed at their exact optimum instead: there no expansion
around the fit holds. Measured against exact leave-one-out
(``benchmarks/functionals.py``, logistic regression on breast cancer, C=1,
where one row moves validation logits by up to 5 and 10 of 398 rows have a
long step): mean loss 1.0000 by default, 0.9794 with the one-step estimate
everywhere; smoothed accuracy 0.9997 with the curvature term, 0.9984 without.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax

from ..exact import newton_optima, polish_optimum
from .groups import group_index, group_steps

__all__ = ["FUNCTIONALS", "GAPS", "Functional", "functional_influence",
           "functional_of", "gap_weights"]

#: built-in functionals by name
FUNCTIONALS = ("mean_loss", "accuracy", "roc_auc", "worst_group_loss",
               "demographic_parity", "equal_opportunity", "fpr_gap")

#: the fairness gaps among them
GAPS = ("demographic_parity", "equal_opportunity", "fpr_gap")


class Functional:
    """A scalar functional of the decision values ``Z`` (n_eval, n_outputs).

    ``F(Z)`` returns ``(value, dF/dZ)``; :meth:`curvature` the second
    derivatives ``d2F/dz_j2`` of each row, (n_eval, K) or (n_eval, K, K), or
    None when the functional does not provide them (the rows must not
    interact: no pairs); ``second_order="auto"`` adds the term when they
    exist. ``convex`` marks the losses.
    """

    def __init__(self, value_and_gradient, curvature=None, *, convex=False):
        self._value_and_gradient = value_and_gradient
        self._curvature = curvature
        #: the losses (convex in the decision values)
        self.convex = convex

    def __call__(self, Z):
        return self._value_and_gradient(Z)

    @property
    def has_curvature(self):
        return self._curvature is not None

    def curvature(self, Z):
        return None if self._curvature is None else self._curvature(Z)


def _soft_prediction(family, Z, temperature):
    """``s = sigmoid(z / T)`` (binary classifier) or the prediction, and its
    first and second derivatives (None for a regressor's)."""
    if not family.is_classifier:
        return Z[:, 0], np.ones(Z.shape[0]), None
    if Z.shape[1] != 1:
        raise ValueError(
            "Fairness gaps need a binary classifier or a regressor; this model "
            f"has {Z.shape[1]} outputs. Pass a callable functional(Z, y, groups) "
            "for a multiclass gap.")
    s = expit(Z[:, 0] / temperature)
    ds = s * (1.0 - s) / temperature
    return s, ds, ds * (1.0 - 2.0 * s) / temperature


def _two_groups(groups, n):
    """Boolean masks of the smaller and the larger of the two group values."""
    if groups is None:
        raise ValueError("This functional needs groups: one group label per "
                         "evaluation row, with exactly two distinct values.")
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one label per evaluation row, shape "
                         f"({n},); got {groups.shape}.")
    values = np.unique(groups)
    if values.size != 2:
        raise ValueError(f"A gap needs exactly two group values; got {values.size}: "
                         f"{values.tolist()[:10]}.")
    return groups == values[0], groups == values[1]


def _positive(family, labels):
    if labels is None:
        raise ValueError("This functional needs y_eval, the true labels.")
    if not family.is_classifier or len(family.classes) != 2:
        raise ValueError("This functional needs a binary classifier.")
    return family.class_index(labels) == 1


def functional_of(family, functional, y=None, groups=None, *, temperature=1.0,
                  targets=None):
    """The functional as a :class:`Functional` of the decision values of the
    evaluation rows, with its labels ``y`` and groups bound.

    ``targets`` are the labels the losses are taken at (``y``, or a
    classifier's own predictions when ``y`` is None; None for a regressor's
    prediction).
    """
    if callable(functional):
        def user(Z):
            value, gradient, *_ = functional(Z, y, groups)
            gradient = np.asarray(gradient, dtype=float)
            if gradient.size != Z.size:
                raise ValueError(
                    f"The functional's gradient must have the shape of Z {Z.shape} "
                    f"(one value per evaluation row and output); got "
                    f"{gradient.shape}.")
            return float(value), gradient.reshape(Z.shape)

        def user_curvature(Z):
            result = functional(Z, y, groups)
            if len(result) < 3:
                return None
            curvature = np.asarray(result[2], dtype=float)
            n, K = Z.shape
            if curvature.shape not in ((n, K), (n, K, K)) and curvature.size != n * K:
                raise ValueError(
                    f"The functional's curvature must have shape {(n, K)} (or "
                    f"{(n, K, K)}); got {curvature.shape}.")
            return curvature.reshape(n, K) if curvature.size == n * K else curvature
        return Functional(user, user_curvature, convex=True)
    if functional not in FUNCTIONALS:
        raise ValueError(f"functional must be one of {FUNCTIONALS} or a callable "
                         f"functional(Z, y, groups); got {functional!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature!r}.")
    T = float(temperature)
    if functional in ("mean_loss", "worst_group_loss"):
        return _loss_functional(family, functional, targets, groups)
    if functional == "accuracy":
        return _accuracy(family, y, T)
    if functional == "roc_auc":
        return _roc_auc(family, y, T)
    return _gap(family, functional, y, groups, T)


def _loss_functional(family, functional, targets, groups):
    # the targets explain() uses: a classifier without labels is explained at
    # its own prediction, a regressor without targets by its prediction
    Y = None if targets is None else family.encode_target(targets)

    def losses(Z):
        if Y is None:
            return Z[:, 0], family.prediction_gradient(Z)
        return family.loss(Y, Z), family.loss_gradient(Y, Z)

    def curvature(Z):
        # the test loss's own curvature; a smoothed training loss has another
        return family.loss_hessian(Y, Z)

    exact_curvature = Y is not None and not family.smoothed
    if functional == "mean_loss":
        def mean_loss(Z):
            loss, gradient = losses(Z)
            return float(loss.mean()), gradient / Z.shape[0]
        return Functional(mean_loss, (lambda Z: curvature(Z) / Z.shape[0])
                          if exact_curvature else None, convex=True)

    if groups is None:
        raise ValueError("worst_group_loss needs groups: one group label per "
                         "evaluation row.")
    labels = np.asarray(groups)

    def worst(Z):
        if labels.shape != (Z.shape[0],):
            raise ValueError(f"groups must have shape ({Z.shape[0]},); got "
                             f"{labels.shape}.")
        loss, gradient = losses(Z)
        _, inverse = np.unique(labels, return_inverse=True)
        means = np.bincount(inverse, weights=loss) / np.bincount(inverse)
        members = inverse == int(np.argmax(means))
        return means, members, loss, gradient

    def worst_group_loss(Z):
        means, members, _, gradient = worst(Z)
        out = np.zeros_like(gradient)
        out[members] = gradient[members] / members.sum()
        return float(means.max()), out

    def worst_curvature(Z):
        _, members, _, _ = worst(Z)
        C = curvature(Z)
        C[~members] = 0.0
        return C / members.sum()

    return Functional(worst_group_loss, worst_curvature if exact_curvature else None,
                      convex=True)


def _accuracy(family, y, T):
    if not family.is_classifier:
        raise ValueError("functional='accuracy' needs a classifier.")
    if y is None:
        raise ValueError("functional='accuracy' needs y_eval.")
    index = family.class_index(y)
    sign = np.where(index == 1, 1.0, -1.0)

    def binary(Z):
        s = expit(sign * Z[:, 0] / T)
        return s, s * (1 - s) / T

    def accuracy(Z):
        n = Z.shape[0]
        if Z.shape[1] == 1:
            s, ds = binary(Z)
            return float(s.mean()), (sign * ds / n)[:, None]
        P = softmax(Z / T, axis=1)
        p = P[np.arange(n), index]
        gradient = -p[:, None] * P
        gradient[np.arange(n), index] += p
        return float(p.mean()), gradient / T / n

    def curvature(Z):
        n, K = Z.shape
        if K == 1:
            s, ds = binary(Z)
            return (ds * (1 - 2 * s) / T / n)[:, None]
        P = softmax(Z / T, axis=1)
        p = P[np.arange(n), index]
        E = np.eye(K)[index] - P  # e_c - p
        C = E[:, :, None] * E[:, None, :] - (np.einsum("nk,kl->nkl", P, np.eye(K))
                                             - P[:, :, None] * P[:, None, :])
        return p[:, None, None] * C / (T**2 * n)

    return Functional(accuracy, curvature)


def _roc_auc(family, y, T):
    positive = _positive(family, y)
    if positive.all() or not positive.any():
        raise ValueError("functional='roc_auc' needs positive and negative rows.")

    def roc_auc(Z):
        z = Z[:, 0] / T
        S = expit(z[positive][:, None] - z[~positive][None, :])
        W = S * (1 - S) / (T * S.size)
        gradient = np.zeros(Z.shape[0])
        gradient[positive] = W.sum(axis=1)
        gradient[~positive] = -W.sum(axis=0)
        return float(S.mean()), gradient[:, None]

    return Functional(roc_auc)  # the pairs couple the rows: no row curvature


def gap_weights(functional, groups, positive=None):
    """Weights ``w`` (n_eval,) with ``gap = w @ s``: the mean of ``s`` over the
    rows of the larger group value minus that over the smaller, restricted to
    the positive rows (``"equal_opportunity"``) or the negative ones
    (``"fpr_gap"``; ``positive`` a boolean array of the labels)."""
    low, high = _two_groups(groups, np.shape(groups)[0] if groups is not None else 0)
    if functional != "demographic_parity":
        if positive is None:
            raise ValueError("This functional needs y_eval, the true labels.")
        rows = positive if functional == "equal_opportunity" else ~positive
        low, high = low & rows, high & rows
        if not low.any() or not high.any():
            which = "positive" if functional == "equal_opportunity" else "negative"
            raise ValueError(f"functional={functional!r} needs {which} rows in both "
                             "groups.")
    w = np.zeros(low.shape[0])
    w[high], w[low] = 1.0 / high.sum(), -1.0 / low.sum()
    return w


def _gap(family, functional, y, groups, T):
    if functional != "demographic_parity" and not family.is_classifier:
        raise ValueError(f"functional={functional!r} needs a binary classifier.")
    positive = None if functional == "demographic_parity" else _positive(family, y)

    def weights(n):
        if groups is not None and np.shape(groups)[0] != n:
            raise ValueError(f"groups must have one label per evaluation row, "
                             f"shape ({n},); got {np.shape(groups)}.")
        return gap_weights(functional, groups, positive)

    def gap(Z):
        s, ds, _ = _soft_prediction(family, Z, T)
        w = weights(Z.shape[0])
        return float(w @ s), (w * ds)[:, None]

    def curvature(Z):
        _, _, d2s = _soft_prediction(family, Z, T)
        return (weights(Z.shape[0]) * d2s)[:, None]

    return Functional(gap, curvature if family.is_classifier else None)


#: ``second_order="auto"`` adds the curvature term up to this many parameters
SECOND_ORDER_MAX_PARAMETERS = 2000


#: local norm of a one-step leave-one-out move above which functional_influence
#: computes the row exactly (a Newton step's quadratic model is trusted below)
EXACT_ABOVE = 0.5


def functional_influence(fitted, X, functional, y=None, groups=None, *,
                         method="newton", temperature=1.0, second_order="auto",
                         train_groups=None, n_jobs=None, exact_above=EXACT_ABOVE):
    """Change of ``functional`` on prepared ``X`` when each training row (or
    each group of ``train_groups``) is removed: (n_train,) or (n_groups,).

    With ``method="newton"``, rows whose Newton step is long in the
    Hessian's norm (``||Delta_i||_H > exact_above``: outside the region where
    the log-loss's quadratic model holds, by generalised self-concordance)
    are computed at their exact leave-one-out optimum instead."""
    if method not in ("newton", "first_order", "exact"):
        raise ValueError(
            f"method must be 'newton', 'first_order' or 'exact'; got {method!r}.")
    if second_order not in ("auto", True, False):
        raise ValueError(f"second_order must be 'auto', True or False; got "
                         f"{second_order!r}.")
    problem, family = fitted.problem, fitted.family
    if groups is not None and np.shape(groups)[0] != X.shape[0]:
        raise ValueError(f"groups must have one label per evaluation row "
                         f"({X.shape[0]}); got {np.shape(groups)[0]}.")
    targets = fitted.test_labels(X, y)
    if y is not None:
        y = targets
    F = functional_of(family, functional, y, groups, temperature=temperature,
                      targets=targets)
    members = None
    if train_groups is not None:
        members, _ = group_index(train_groups, problem.n_samples)
    if method == "exact":
        return _exact(fitted, X, F, members, n_jobs)
    Z = family.decision(X)
    _, gradient = F(Z)
    total = problem.rows_to_parameters(gradient, X)  # grad_theta F, (d,)
    if second_order == "auto":
        second_order = (F.has_curvature
                        and problem.n_parameters <= SECOND_ORDER_MAX_PARAMETERS)
    curvature = F.curvature(Z) if method == "newton" and second_order else None
    H_F = None if curvature is None else _output_hessian(family, X, curvature)
    if members is not None:
        # one Newton step with the group-removed Hessian (Woodbury) per group
        steps = group_steps(fitted, members,
                            "newton" if method == "newton" else "first_order")
        values = steps.T @ total
        if H_F is not None:
            values += 0.5 * np.einsum("dg,de,eg->g", steps, H_F, steps)
        if (method == "newton" and exact_above is not None
                and family.exact_engine == "newton" and not family.quadratic):
            norms = np.sqrt(np.abs(np.einsum("dg,dg->g", steps, problem.hvp(steps))))
            far = np.flatnonzero(norms > exact_above)
            if far.size:
                values[far] = _exact(fitted, X, F, [members[g] for g in far], n_jobs)
        return values
    u = fitted.solver.solve(total)
    T = problem.parameters_to_rows(u[:, None])[:, :, 0]  # (n, K)
    R = fitted.newton_rho() if method == "newton" else fitted.removal_residuals
    values = np.einsum("nk,nk->n", R, T)
    far = np.empty(0, dtype=np.intp)
    if (method == "newton" and exact_above is not None
            and family.exact_engine == "newton" and not family.quadratic):
        far = far_steps(fitted, exact_above)
    if fitted.class_shift is not None:
        vectors, delta = fitted.class_shift
        values -= delta @ (u @ vectors)
    if H_F is not None:
        # the functional's curvature along each step Delta_i = H^{-1} v_i:
        # 1/2 v_i^T A v_i with A = H^{-1} H_F H^{-1} (two block solves)
        A = fitted.solver.solve(fitted.solver.solve(H_F).T)
        values += 0.5 * _step_quadratic(problem, 0.5 * (A + A.T), R,
                                        fitted.class_shift)
    if far.size:
        values[far] = _exact(fitted, X, F, None, n_jobs, rows=far)
    return values


def far_steps(fitted, threshold):
    """Training rows whose one-step leave-one-out move ``Delta_i`` has local
    norm ``||Delta_i||_H = sqrt(rho_i^T M_i rho_i)`` above ``threshold``."""
    rho, M = fitted.newton_rho(), fitted.leverage()
    with np.errstate(invalid="ignore"):
        norms = np.sqrt(np.abs(np.einsum("nk,nkl,nl->n", rho, M, rho)))
    return np.flatnonzero(norms > threshold)


def _tilde_rows(family, X, rows):
    """Dense ``[x_i, 1]`` of a block of rows."""
    block = X[rows]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    if family.fit_intercept:
        block = np.hstack([block, np.ones((block.shape[0], 1))])
    return block


def _row_blocks(n, columns):
    step = max(1, 2**22 // max(columns, 1))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _output_hessian(family, X, C):
    """``sum_j C_j[k, l] (e_k (x) x~_j)(e_l (x) x~_j)^T`` over the evaluation
    rows: the functional's Hessian in the parameters (d, d)."""
    K, P = family.n_outputs, family.n_columns
    if C.ndim == 2:
        C = C[:, :, None] * np.eye(K)
    H = np.zeros((K, P, K, P))
    for rows in _row_blocks(X.shape[0], P):
        Xt = _tilde_rows(family, X, rows)
        for k in range(K):
            for l in range(K):
                H[k, :, l, :] += (Xt * C[rows, k, l, None]).T @ Xt
    return H.reshape(family.n_parameters, family.n_parameters)


def _step_quadratic(problem, A, R, class_shift):
    """``v_i^T A v_i`` for every training row, ``v_i = R_i (x) x~_i - V delta_i``
    (the removal gradient), in blocks of rows: (n,)."""
    family = problem.family
    K, P = family.n_outputs, family.n_columns
    A4 = A.reshape(K, P, K, P)
    out = np.empty(problem.n_samples)
    for rows in _row_blocks(problem.n_samples, P):
        Xt = _tilde_rows(family, problem.X, rows)
        q = np.zeros(Xt.shape[0])
        for k in range(K):
            for l in range(K):
                q += R[rows, k] * R[rows, l] * np.einsum(
                    "rp,rp->r", Xt @ A4[k, :, l, :], Xt)
        out[rows] = q
    if class_shift is not None:
        vectors, delta = class_shift
        AV = A @ vectors
        out -= 2 * np.einsum("nk,nkc,nc->n", R, problem.parameters_to_rows(AV), delta)
        out += np.einsum("nc,cd,nd->n", delta, vectors.T @ AV, delta)
    return out


def _exact(fitted, X, F, members, n_jobs, rows=None):
    """``F`` at every exact leave-one-out (or leave-group-out) optimum (of
    the training ``rows`` only, when given)."""
    problem, family = fitted.problem, fitted.family
    Xt, yt, sw = problem.X, problem.y, problem.sample_weight
    theta, polished = polish_optimum(family, Xt, yt, sw, solver=fitted.solver)
    full = family.bind(Xt, yt, sw, theta)
    base = F(family.decision(X, theta))[0]
    floor = 2.0 * polished.decrement  # the rounding floor at the full optimum
    if members is not None:
        out = np.empty(len(members))
        for position, rows in enumerate(members):
            keep = np.ones(problem.n_samples, dtype=bool)
            keep[rows] = False
            theta_g, _ = polish_optimum(family, Xt[keep], yt[keep], sw[keep], theta)
            out[position] = F(family.decision(X, theta_g))[0]
        return out - base
    rows = np.arange(problem.n_samples) if rows is None else np.asarray(rows)
    thetas, _ = newton_optima(full, fitted.solver, rows, floor=floor, n_jobs=n_jobs)
    return np.array([F(family.decision(X, theta))[0] for theta in thetas.T]) - base
