"""Applications of influence: data cleaning, groups, parameters, diagnostics.

The functions here take a fitted :class:`~skinfluence.InfluenceExplainer` and
reuse its problem (``X``, residuals, curvatures), its factorised Hessian
(``solver_``) and its removal terms; the explainer's methods are thin wrappers.

Notation as in :mod:`skinfluence._influence`: ``g_i = r_i (x) x~_i`` the
gradient of training row ``i``'s objective term, ``H`` the Hessian of the
training objective, ``D_i`` the curvature of row ``i`` with respect to its
linear predictor, ``Theta`` the ``(K, P)`` coefficients (intercept last).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from ._influence import newton_rho
from ._loo import _newton_block, refit_loo
from ._newton import newton_minimize

__all__ = [
    "validation_influence",
    "loo_self_loss",
    "rank_suspicious",
    "group_influence",
    "refit_groups",
    "parameter_influence",
    "prediction_influence",
    "regression_diagnostics",
    "perturbation_influence",
]

# memory budget of one working block (bytes)
_BLOCK_BYTES = 256 * 2**20


def _chunks(n, per_row_bytes):
    step = max(1, _BLOCK_BYTES // max(int(per_row_bytes), 1))
    return [slice(s, min(s + step, n)) for s in range(0, n, step)]


# ------------------------------------------------------------ validation
def validation_influence(explainer, X, y):
    """``sum_j influence[j, i]`` over the rows of ``X`` with ONE solve.

    ``u = H^{-1} sum_j grad L_j``; the value of row ``i`` is ``r_i . (U x~_i)``
    minus the class re-balancing term ``(u^T G) delta_i``. O(n d) after the
    solve, never the ``(n_val, n_train)`` matrix.
    """
    problem, family = explainer.problem_, explainer.family_
    X = explainer._prepare_X(X, family)
    Y, Z = explainer._test_targets(X, y)
    Q = family.prediction_gradient(Z) if Y is None else family.loss_gradient(Y, Z)
    total = problem.rows_to_parameters(Q, X)  # sum_j grad L_j, (d,)
    u = explainer.solver_.solve(total)
    T = problem.parameters_to_rows(u[:, None])[:, :, 0]  # (n, K)
    values = np.einsum("nk,nk->n", explainer._removal_residuals, T)
    if explainer._class_shift is not None:
        vectors, delta = explainer._class_shift
        values -= delta @ (u @ vectors)
    return values


# ------------------------------------------------------------ self LOO
def loo_self_loss(explainer, method="newton_step", n_jobs=None):
    """Change of each training row's own loss when it is left out.

    ``"newton_step"``: one Newton step with the leave-one-out Hessian, the
    diagonal of ``explain(X_train, y_train, method="newton")`` in O(n K^2)
    from the cached leverage blocks (exact for squared loss: the PRESS
    residual). ``"exact"``: every leave-one-out optimum by the Newton engine
    of :meth:`~skinfluence.InfluenceExplainer.loo` (``method="newton"``),
    but each row's loss is evaluated only at its own optimum, O(n d) per
    row and optimum instead of the ``n x n`` matrix.
    """
    problem, family = explainer.problem_, explainer.family_
    Y, Z = problem.Y, problem.Z
    base = family.loss(Y, Z)
    n = problem.n_samples
    if method == "newton_step":
        M = explainer._leverage()
        rho = newton_rho(problem.curvature, explainer._removal_residuals, M)
        dZ = np.einsum("nkl,nl->nk", M, rho)
        if explainer._class_shift is not None:
            vectors, delta = explainer._class_shift
            T = problem.parameters_to_rows(explainer.solver_.solve(vectors))
            dZ -= np.einsum("nka,na->nk", T, delta)
        return family.loss(Y, Z + dZ) - base
    if method != "exact":
        raise ValueError(f"method must be 'newton_step' or 'exact'; got {method!r}.")
    if family.quadratic:
        return loo_self_loss(explainer, "newton_step")
    X, y, sw = problem.X, problem.y, problem.sample_weight
    theta, _ = newton_minimize(family, X, y, sw, tol=1e-10)
    full = family.bind(X, y, sw, theta)
    base = family.loss(full.Y, full.Z)
    blocks = [np.arange(s, min(s + 64, n)) for s in range(0, n, 64)]
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_self_loss_block)(full, explainer.solver_, rows) for rows in blocks)
    return np.concatenate(parts) - base


def _self_loss_block(problem, solver, rows):
    with threadpool_limits(1):
        thetas = _newton_block(problem, solver, rows, 1e-10, 50)  # (d, b)
    family = problem.family
    Xr = problem.X[rows]
    K, P = family.n_outputs, family.n_columns
    Theta = thetas.reshape(K, P, len(rows))
    Z = np.empty((len(rows), K))
    for k in range(K):
        W = Theta[k, : family.n_features]  # (p, b)
        Z[:, k] = (Xr.multiply(W.T).sum(axis=1).A1 if sp.issparse(Xr)
                   else np.einsum("bp,pb->b", Xr, W))
        if family.fit_intercept:
            Z[:, k] += Theta[k, -1]
    return family.loss(problem.Y[rows], Z)


_SUSPICION = ("self_influence", "loo_self", "validation", "loss")


def rank_suspicious(explainer, method="self_influence", X_val=None, y_val=None,
                    n_jobs=None):
    """Suspicion scores (higher = more suspicious) and the ranking."""
    problem, family = explainer.problem_, explainer.family_
    if method not in _SUSPICION:
        raise ValueError(f"method must be one of {_SUSPICION}; got {method!r}.")
    if method == "validation":
        if X_val is None or y_val is None:
            raise ValueError(
                "method='validation' needs a clean validation set: pass X_val and "
                "y_val (rows not used for training).")
        scores = -validation_influence(explainer, X_val, y_val)
    elif X_val is not None or y_val is not None:
        raise ValueError(f"X_val and y_val are only used by method='validation'; "
                         f"got method={method!r}.")
    elif method == "self_influence":
        scores = explainer.self_influence()
    elif method == "loo_self":
        scores = loo_self_loss(explainer, "newton_step")
    else:  # "loss"
        scores = family.loss(problem.Y, problem.Z)
    # stable: ties keep the training order
    order = np.argsort(-scores, kind="stable")
    return Bunch(ranking=order, scores=scores, method=method)


# ------------------------------------------------------------ groups
def _group_index(groups, n):
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
        XtA = problem.X.T @ A
        out[k, : fam.n_features] = XtA.toarray() if sp.issparse(XtA) else XtA
        if fam.fit_intercept:
            out[k, -1] = np.bincount(cols, weights=R_members[:, k], minlength=G)
    return out.reshape(fam.n_parameters, G)


def _group_removal(explainer, members, exact):
    """Removal gradients ``g_S`` (d, G): ``theta_{-S} - theta ~ H^{-1} g_S``.

    ``exact=False`` sums the members' own removal gradients (first order,
    additive); ``exact=True`` recomputes the class weights without the whole
    group, as a refit does.
    """
    problem, family = explainer.problem_, explainer.family_
    rows = np.concatenate(members)
    shift = explainer._class_shift
    if shift is None:
        return _group_gradients(problem, explainer._removal_residuals[rows], members)
    vectors, delta = shift
    if not exact:
        R = explainer._removal_residuals[rows]
        D = np.stack([delta[g].sum(axis=0) for g in members])  # (G, n_classes)
        return _group_gradients(problem, R, members) - vectors @ D.T
    # exact re-balancing: class weights recomputed without the group
    labels = family.class_index(problem.y)
    sw = problem.sample_weight
    n_classes = len(family.classes)
    totals = np.bincount(labels, weights=sw, minlength=n_classes)
    cw = totals.sum() / (n_classes * totals)
    gradient = family.training_loss_gradient(problem.Y, problem.Z)
    R_parts, D = [], np.zeros((len(members), n_classes))
    for position, g in enumerate(members):
        new_totals = totals - np.bincount(labels[g], weights=sw[g], minlength=n_classes)
        if np.all(new_totals > 0):
            D[position] = (new_totals.sum() / (n_classes * new_totals)) - cw
        c_new = family.row_weights_from_class_weights(labels[g], sw[g], cw + D[position])
        R_parts.append(c_new * gradient[g])
    return _group_gradients(problem, np.concatenate(R_parts), members) - vectors @ D.T


def _curvature_factor(curvature, K):
    """``L_i`` with ``D_i = L_i L_i^T``, shape (n, K, K)."""
    if curvature.ndim == 2:
        return np.sqrt(np.clip(curvature, 0, None))[:, :, None] * np.eye(K)
    vals, vecs = np.linalg.eigh(curvature)
    return vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]


def group_steps(explainer, members, method):
    """Parameter change of each group removal, (d, n_groups)."""
    problem, family, solver = explainer.problem_, explainer.family_, explainer.solver_
    g = _group_removal(explainer, members, exact=(method == "newton"))
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


def group_influence(explainer, X, y, groups, method="first_order", n_jobs=None):
    """(n_test, n_groups) estimated change of each test quantity per group
    removal, and the group labels."""
    if method not in ("first_order", "newton", "refit"):
        raise ValueError(
            f"method must be 'first_order', 'newton' or 'refit'; got {method!r}.")
    problem, family = explainer.problem_, explainer.family_
    members, labels = _group_index(groups, problem.n_samples)
    X = explainer._prepare_X(X, family)
    if method == "refit":
        y_labels = explainer._test_labels(X, y, family.decision(X))
        return refit_groups(explainer._final_estimator, problem.X, problem.y,
                            explainer._sample_weight, X, y_labels, members,
                            n_jobs=n_jobs), labels
    Y, Z = explainer._test_targets(X, y)
    U = group_steps(explainer, members, method)  # (d, G)
    dZ = problem.parameters_to_rows(U, X)  # (m, K, G)
    if method == "first_order":
        Q = family.prediction_gradient(Z) if Y is None else family.loss_gradient(Y, Z)
        return np.einsum("mk,mkg->mg", Q, dZ), labels
    if Y is None:
        return dZ[:, 0, :], labels
    m, K, G = dZ.shape
    moved = family.loss(np.repeat(Y, G, axis=0),
                        (Z[:, :, None] + dZ).transpose(0, 2, 1).reshape(m * G, K))
    return moved.reshape(m, G) - family.loss(Y, Z)[:, None], labels


def refit_groups(estimator, X, y, sample_weight, X_test, y_test, groups, *,
                 n_jobs=None, verbose=0):
    """Actual change of the test quantity when each group of rows is removed.

    Refits a :func:`~skinfluence.tight_clone` of ``estimator`` without each
    group through the leave-one-out refit engine (warm-started from the full
    solution where supported); the baseline is a full-data refit with the same
    settings. ``groups`` is a list of integer index arrays. Returns
    (n_test, n_groups).
    """
    return refit_loo(estimator, X, y, sample_weight, X_test, y_test,
                     [np.asarray(g) for g in groups], n_jobs=n_jobs, verbose=verbose)


# ------------------------------------------------------------ parameters
def _rows(explainer, rows):
    return explainer._train_rows(rows)


def parameter_influence(explainer, rows=None, method="first_order"):
    """Per-row parameter change ``theta_{-i} - theta``, (n_rows, n_parameters)."""
    if method not in ("first_order", "newton"):
        raise ValueError(f"method must be 'first_order' or 'newton'; got {method!r}.")
    problem, solver = explainer.problem_, explainer.solver_
    rows = _rows(explainer, rows)
    d = problem.n_parameters
    R = explainer._removal_residuals[rows]
    if method == "newton":
        R = newton_rho(problem.curvature[rows], R, explainer._leverage()[rows])
    out = np.empty((len(rows), d))
    shift = explainer._class_shift
    if shift is not None:
        shift_steps = solver.solve(shift[0]).reshape(d, -1)  # H^{-1} G_a
    # working memory per row: the gradient and its solve, 2 * 8 * d bytes
    for block in _chunks(len(rows), 16 * d):
        idx = rows[block]
        U = solver.solve(problem.row_gradients(problem.X[idx], R[block]))
        if U.ndim == 1:
            U = U[:, None]
        if shift is not None:
            U = U - shift_steps @ shift[1][idx].T
        out[block] = U.T
    return out


def prediction_influence(explainer, X, method="first_order"):
    """Change of the decision function of each test row per removal."""
    if method not in ("first_order", "newton"):
        raise ValueError(f"method must be 'first_order' or 'newton'; got {method!r}.")
    problem, family, solver = explainer.problem_, explainer.family_, explainer.solver_
    X = explainer._prepare_X(X, family)
    n, m, K = problem.n_samples, X.shape[0], family.n_outputs
    R = explainer._removal_residuals
    if method == "newton":
        R = newton_rho(problem.curvature, R, explainer._leverage())
    shift = explainer._class_shift
    out = np.empty((m, n, K))
    for rows in _chunks(m, 8 * n * K * 2):
        Xr = X[rows]
        for k in range(K):
            E = np.zeros((Xr.shape[0], K))
            E[:, k] = 1.0
            U = solver.solve(problem.row_gradients(Xr, E))
            if U.ndim == 1:
                U = U[:, None]
            T = problem.parameters_to_rows(U)  # (n, K, mr)
            out[rows, :, k] = np.einsum("nl,nlm->mn", R, T)
            if shift is not None:
                vectors, delta = shift
                out[rows, :, k] -= (U.T @ vectors) @ delta.T
    return out[:, :, 0] if K == 1 else out


# ------------------------------------------------------------ diagnostics
def regression_diagnostics(explainer):
    """Classical OLS / ridge influence diagnostics (Cook & Weisberg)."""
    from .families.squared import SquaredLossFamily

    problem, family, solver = explainer.problem_, explainer.family_, explainer.solver_
    if not isinstance(family, SquaredLossFamily):
        raise ValueError(
            "regression_diagnostics needs a LinearRegression, Ridge or RidgeCV; "
            f"got the {type(family).__name__} family. For classifiers use "
            "self_influence(), parameter_influence() or explain().")
    n = problem.n_samples
    s = problem.sample_weight
    h = problem.curvature[:, 0] * explainer._leverage()[:, 0, 0]  # s_i x~^T A^-1 x~
    e = problem.y - problem.Z[:, 0]
    ew = np.sqrt(s) * e  # whitened residuals
    if family.pinv_rtol is None and family.alpha == 0.0:
        p = family.n_parameters
    else:  # effective number of parameters: the trace of the hat matrix
        p = float(h.sum())
    df = n - p
    sse = float(ew @ ew)
    sigma2 = sse / df
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2_loo = (sse - ew**2 / (1.0 - h)) / (df - 1.0)
        internal = ew / np.sqrt(sigma2 * (1.0 - h))
        external = ew / np.sqrt(sigma2_loo * (1.0 - h))
        cooks = internal**2 / p * h / (1.0 - h)
        dffits = external * np.sqrt(h / (1.0 - h))
    # exact leave-one-out parameter change (one Newton step is exact here)
    dfbeta = -parameter_influence(explainer, None, method="newton")
    # (X~^T S X~ + alpha)^{-1} = 2 H^{-1}; its diagonal
    d = family.n_parameters
    inv_diag = 2.0 * np.einsum("ii->i", np.atleast_2d(solver.solve(np.eye(d))))
    dfbetas = dfbeta / np.sqrt(sigma2_loo[:, None] * inv_diag[None, :])
    return Bunch(leverage=h, residuals=e, resid_studentized_internal=internal,
                 resid_studentized_external=external, cooks_distance=cooks,
                 dffits=dffits, dfbeta=dfbeta, dfbetas=dfbetas, sigma2=sigma2,
                 sigma2_loo=sigma2_loo, n_parameters=p)


# ------------------------------------------------------------ perturbation
def perturbation_influence(explainer, X, y, rows=None):
    """``d L(z_j; theta*) / d x_i`` for each test row and training row,
    (n_test, n_rows, n_features)."""
    problem, family, solver = explainer.problem_, explainer.family_, explainer.solver_
    X = explainer._prepare_X(X, family)
    Y, Z = explainer._test_targets(X, y)
    Q = family.prediction_gradient(Z) if Y is None else family.loss_gradient(Y, Z)
    rows = _rows(explainer, rows)
    X_train = problem.X[rows]
    r = problem.residuals[rows]  # (nr, K): derivative of f_i w.r.t. z_i
    D = problem.curvature[rows]  # (nr, K) or (nr, K, K)
    K, P, p = family.n_outputs, family.n_columns, family.n_features
    W = family.coef  # (K, p)
    m, nr = X.shape[0], len(rows)
    out = np.empty((m, nr, p))
    for block in _chunks(m, 8 * nr * (p + 2 * K)):
        U = solver.solve(problem.row_gradients(X[block], Q[block]))  # (d, mb)
        if U.ndim == 1:
            U = U[:, None]
        T = problem.parameters_to_rows(U, X_train)  # (nr, K, mb): x~_i^T U_k
        DT = (D[:, :, None] * T if D.ndim == 2
              else np.einsum("ikl,ikm->ilm", D, T))  # (nr, K, mb): D_i^T t_i
        Uw = U.reshape(K, P, -1)[:, :p]  # (K, p, mb)
        out[block] = -(np.einsum("ilm,lq->miq", DT, W)
                       + np.einsum("ik,kqm->miq", r, Uw))
    return out
