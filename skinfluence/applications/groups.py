"""Groups: the effect of removing whole groups of training rows at once.

A data source, a labeller, a day. "first_order" adds the members'
influences; "newton" takes one Newton step with the group-removed Hessian
(Woodbury, exact for squared loss); "refit" refits clones without each group.
"""

import numpy as np
import scipy.sparse as sp

from .._rows import sum_rows
from ..exact import refit_loo

__all__ = ["group_index", "group_influence", "group_steps", "refit_groups"]


def group_index(groups, n):
    """Groups as a list of integer index arrays, and their labels."""
    if isinstance(groups, (list, tuple)) and (
            len(groups) == 0 or np.ndim(groups[0]) == 1 or len(groups) != n):
        members = [np.asarray(g) for g in groups]
        labels = np.arange(len(members))
    else:
        values = np.asarray(groups)
        if values.shape != (n,):
            raise ValueError(
                f"groups must be one label per training row (shape ({n},)) or a "
                f"list of index arrays; got shape {values.shape}.")
        labels, inverse = np.unique(values, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    out = []
    for g in members:
        if g.dtype == bool:
            if g.shape != (n,):
                raise ValueError(f"A boolean group needs {n} entries.")
            g = np.flatnonzero(g)
        if g.ndim != 1 or (g.size and not np.issubdtype(g.dtype, np.integer)):
            raise ValueError("Each group must be a 1-d array of integer positions.")
        if g.size and (g.min() < -n or g.max() >= n):
            raise ValueError(f"Group indices must lie in [0, {n}).")
        g = np.unique(g % n)
        if g.size == 0:
            raise ValueError("Empty group: every group needs at least one row.")
        out.append(g)
    return out, labels


def _group_gradients(problem, R_members, members):
    """``sum_{i in S} R_i (x) x~_i`` per group, as columns (d, n_groups)."""
    fam = problem.family
    n, G = problem.n_samples, len(members)
    lengths = np.array([len(g) for g in members])
    rows = np.concatenate(members)
    cols = np.repeat(np.arange(G), lengths)
    out = np.empty((fam.n_outputs, fam.n_columns, G))
    for k in range(fam.n_outputs):
        A = sp.csr_matrix((R_members[:, k], (rows, cols)), shape=(n, G))
        # one pass over the row blocks (dask chunks too): X_b^T A_b per block
        out[k, : fam.n_features] = sum_rows(_gram_with_members, problem.X, A)
        if fam.fit_intercept:
            out[k, -1] = np.bincount(cols, weights=R_members[:, k], minlength=G)
    return out.reshape(fam.n_parameters, G)


def _gram_with_members(X, A):
    """``X^T A`` of a block of rows and its slice of the (sparse) group map."""
    XtA = (A.T @ X).T
    return np.asarray(XtA.toarray() if sp.issparse(XtA) else XtA)


def _group_removal(fitted, members, exact):
    """Removal gradients ``g_S`` (d, G): ``theta_{-S} - theta ~ H^{-1} g_S``.

    ``exact=False`` sums the members' own removal gradients (first order,
    additive); ``exact=True`` recomputes the class weights without the whole
    group, as a refit does.
    """
    problem, family = fitted.problem, fitted.family
    rows = np.concatenate(members)
    shift = fitted.class_shift
    if shift is None:
        return _group_gradients(problem, fitted.removal_residuals[rows], members)
    vectors, delta = shift
    n_class = fitted.n_class_columns  # the rest (a penalty share) is additive
    # a normalisation's shift is additive; only class weights are re-balanced
    if not exact or n_class == 0 or not family.is_classifier:
        R = fitted.removal_residuals[rows]
        D = np.stack([delta[g].sum(axis=0) for g in members])  # (G, n_columns)
        return _group_gradients(problem, R, members) - vectors @ D.T
    additive = np.stack([delta[g, n_class:].sum(axis=0) for g in members])
    extra = vectors[:, n_class:] @ additive.T
    vectors = vectors[:, :n_class]
    # exact re-balancing: class weights recomputed without the group
    labels = family.class_index(problem.y)
    sw = problem.sample_weight
    counts = family.balance_counts(sw)  # sample weights, or rows (RidgeClassifier)
    n_classes = len(family.classes)
    totals = np.bincount(labels, weights=counts, minlength=n_classes)
    cw = totals.sum() / (n_classes * totals)
    gradient = family.training_loss_gradient(problem.Y, problem.Z)
    R_parts, D = [], np.zeros((len(members), n_classes))
    for position, g in enumerate(members):
        new_totals = totals - np.bincount(labels[g], weights=counts[g], minlength=n_classes)
        if np.all(new_totals > 0):
            D[position] = (new_totals.sum() / (n_classes * new_totals)) - cw
        # all rows, then the members: weights may be normalised by the row count
        c_new = family.row_weights_from_class_weights(
            labels, problem.sample_weight, cw + D[position])[g]
        R_parts.append(c_new * gradient[g])
    return (_group_gradients(problem, np.concatenate(R_parts), members) - vectors @ D.T
            - extra)


def _curvature_factor(curvature, K):
    """``L_i`` with ``D_i = L_i L_i^T``, shape (n, K, K)."""
    if curvature.ndim == 2:
        return np.sqrt(np.clip(curvature, 0, None))[:, :, None] * np.eye(K)
    vals, vecs = np.linalg.eigh(curvature)
    return vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]


def group_steps(fitted, members, method):
    """Parameter change of each group removal, (d, n_groups)."""
    problem, family, solver = fitted.problem, fitted.family, fitted.solver
    g = _group_removal(fitted, members, exact=(method == "newton"))
    U = solver.solve(g)
    if U.ndim == 1:
        U = U[:, None]
    if method == "first_order":
        return U
    # Woodbury: H_{-S}^{-1} = H^{-1} + H^{-1} W (I - W^T H^{-1} W)^{-1} W^T H^{-1}
    # with W the |S| K columns L_i[:, c] (x) x~_i of the group's curvature
    K = family.n_outputs
    for position, rows in enumerate(members):
        L = _curvature_factor(problem.curvature[rows], K)  # (s, K, K)
        s = len(rows)
        W = problem.row_gradients(problem.X[np.repeat(rows, K)],
                                  np.transpose(L, (0, 2, 1)).reshape(s * K, K))
        HW = solver.solve(W)
        if HW.ndim == 1:
            HW = HW[:, None]
        system = np.eye(s * K) - W.T @ HW
        rhs = W.T @ U[:, position]
        try:
            coef = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
        U[:, position] = U[:, position] + HW @ coef
    return U


def group_influence(fitted, X, y, groups, method="first_order", n_jobs=None):
    """(n_test, n_groups) estimated change of each test quantity per group
    removal (prepared ``X``), and the group labels."""
    if method not in ("first_order", "newton", "refit"):
        raise ValueError(
            f"method must be 'first_order', 'newton' or 'refit'; got {method!r}.")
    problem, family = fitted.problem, fitted.family
    members, labels = group_index(groups, problem.n_samples)
    if method == "refit":
        y_labels = fitted.test_labels(X, y, family.decision(X))
        return refit_groups(fitted.estimator, problem.X, problem.y,
                            fitted.sample_weight, X, y_labels, members,
                            n_jobs=n_jobs, family=family), labels
    Y, Z = fitted.test_targets(X, y)
    U = group_steps(fitted, members, method)  # (d, G)
    dZ = problem.parameters_to_rows(U, X)  # (m, K, G)
    if method == "first_order":
        Q = family.predicted_gradient(Z) if Y is None else family.loss_gradient(Y, Z)
        return np.einsum("mk,mkg->mg", Q, dZ), labels
    if Y is None:  # the prediction, one slice per target
        return (dZ[:, 0, :] if dZ.shape[1] == 1 else dZ.transpose(0, 2, 1)), labels
    m, K, G = dZ.shape
    if Y is None:
        moved = family.predicted((Z[:, :, None] + dZ).transpose(0, 2, 1).reshape(m * G, K))
        return moved.reshape(m, G) - family.predicted(Z)[:, None], labels
    moved = family.loss(np.repeat(Y, G, axis=0),
                        (Z[:, :, None] + dZ).transpose(0, 2, 1).reshape(m * G, K))
    return moved.reshape(m, G) - family.loss(Y, Z)[:, None], labels


def refit_groups(estimator, X, y, sample_weight, X_test, y_test, groups, *,
                 n_jobs=None, verbose=0, family=None):
    """Actual change of the test quantity when each group of rows is removed.

    Refits a :func:`~skinfluence.exact.tight_clone` of ``estimator`` without each
    group through the leave-one-out refit engine (warm-started from the full
    solution where supported); the baseline is a full-data refit with the same
    settings. ``groups`` is a list of integer index arrays. Returns
    (n_test, n_groups).
    """
    return refit_loo(estimator, X, y, sample_weight, X_test, y_test,
                     [np.asarray(g) for g in groups], n_jobs=n_jobs, verbose=verbose,
                     family=family)



