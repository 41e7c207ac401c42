"""The influence machinery of one fitted model.

:class:`FittedInfluence` binds a family's objective to the training data at
the fitted coefficients, factorises its Hessian (through a solver) and keeps
the gradient each training row takes away with it. The explainer validates
input and delegates here; the applications and the evaluation tools receive
this object and prepared arrays, never the explainer.
"""

import warnings

import numpy as np
from sklearn import get_config
from sklearn.utils import Bunch
from sklearn.utils.validation import column_or_1d

from ._influence import (
    first_order_block,
    leverage_blocks,
    newton_rho,
    output_shift_block,
    self_influence_values,
    top_k_indices,
)
from ._fitcheck import check_fit
from .exact import (LOO_TOL, certified_loo, exact_loo, newton_loo, newton_minimize,
                    refit_loo)
from .solvers import make_solver

__all__ = ["FittedInfluence"]


class FittedInfluence:
    """Objective, factorised Hessian and removal gradients of a fitted model.

    Parameters
    ----------
    family : LinearFamily
        The loss family read from the fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training rows as the final model sees them (after any preprocessing).
    y : ndarray of shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,) or None
    estimator : estimator, default=None
        The final fitted estimator; refits clone it.
    solver, damping, tol, max_iter, solver_params, random_state
        As in :class:`~skinfluence.InfluenceExplainer`.
    smoothing_resolve : bool, default=True
        For a smoothed loss, move to the minimiser of the smoothed objective.

    Attributes
    ----------
    family : LinearFamily
    problem : BoundProblem
        The objective on ``(X, y, sample_weight)`` at the parameters used.
    solver : DirectSolver, ConjugateGradientSolver or LissaSolver
        Fitted on ``problem``.
    relative_gradient_norm : float
        At the estimator's own coefficients (before any re-solve).
    fit_report : Bunch
        :func:`~skinfluence._fitcheck.check_fit` at the fitted coefficients:
        the predicted relative change of the influence in one Newton step
        (``gap``), the Newton decrement and the messages the explainer turns
        into warnings.
    removal_residuals : ndarray of shape (n_samples, n_outputs)
        ``r_i``: the gradient row ``i`` takes away is ``r_i (x) x~_i``
        (including the change of its own class weight).
    class_shift : tuple or None
        ``(vectors, delta)`` of the class re-balancing of a refit
        (``class_weight="balanced"``), or None.
    """

    def __init__(self, family, X, y, sample_weight=None, *, estimator=None,
                 solver="direct", damping=0.0, tol=1e-8, max_iter=None,
                 solver_params=None, random_state=None, smoothing_resolve=True,
                 gradient_tol=0.05):
        weights_given = sample_weight is not None
        sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                         else np.asarray(sample_weight, dtype=float))
        problem = family.bind(X, y, sample_weight)
        self.relative_gradient_norm = problem.relative_gradient_norm(subgradient=True)
        if smoothing_resolve and family.smoothed:
            theta, _ = newton_minimize(family, X, y, sample_weight)
            family = family.with_theta(theta)
            problem = family.bind(X, y, sample_weight)
        self.solver = make_solver(
            solver, damping=damping, pinv_rtol=family.pinv_rtol, tol=tol,
            max_iter=max_iter, random_state=random_state, **(solver_params or {}),
        ).fit(problem)
        if family.smoothed:
            # a smoothed loss is judged by the true loss's smallest subgradient
            self.fit_report = Bunch(gap=np.nan, decrement=np.nan, separated=False,
                                    messages=[])
            if self.relative_gradient_norm > gradient_tol:
                self.fit_report.messages.append(("not_converged", (
                    "The estimator does not look fitted on this data: the relative "
                    "(sub)gradient norm of its objective at the fitted coefficients "
                    f"is {self.relative_gradient_norm:.2g} > gradient_tol="
                    f"{gradient_tol:g}. Pass fit the same X, y and sample_weight the "
                    "estimator was fitted on, or refit it with a smaller tol.")))
        else:
            self.fit_report = check_fit(family, problem, self.solver, estimator,
                                        gradient_tol=gradient_tol)
        # the gradient of the objective lost with each row, and the re-balancing
        # of class weights a refit would apply
        removal = family.removal_terms(y, sample_weight, problem.Y, problem.Z)
        if removal is None:
            self.removal_residuals = problem.residuals
            self.class_shift = None
        else:
            row_scale, delta, class_residuals = removal
            self.removal_residuals = problem.residuals * row_scale
            vectors = np.stack([problem.rows_to_parameters(r) for r in class_residuals])
            self.class_shift = (vectors.T, delta)
        self.family = family
        self.problem = problem
        self.estimator = estimator
        self.sample_weight = sample_weight if weights_given else None
        self._leverage_blocks = None
        self._self_influence = None
        self._X_train32 = None

    @property
    def n_samples(self):
        return self.problem.n_samples

    # ------------------------------------------------------------ test rows
    def test_labels(self, X, y, Z=None):
        """Targets of the test rows; None explains a regressor's prediction.

        Without labels a classifier is explained at its own predicted class.
        """
        family = self.family
        if y is None:
            if not family.is_classifier:
                return None
            Z = family.decision(X) if Z is None else Z
            return family.classes[np.argmax(Z, axis=1) if Z.shape[1] > 1
                                  else (Z[:, 0] > 0).astype(int)]
        y = column_or_1d(y)
        if X is not None and y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
        if family.is_classifier:
            family.class_index(y)  # unseen labels raise, naming them
        else:
            values = np.asarray(y, dtype=float)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise ValueError(
                    f"y contains NaN or infinity at test rows {bad[:10].tolist()}"
                    f"{' ...' if bad.size > 10 else ''}: their loss is undefined. "
                    "Drop those rows or fix their targets.")
        return y

    def test_targets(self, X, y):
        """Encoded test targets (None for a regressor's prediction) and ``Z``."""
        Z = self.family.decision(X)
        labels = self.test_labels(X, y, Z)
        return (None if labels is None else self.family.encode_target(labels)), Z

    def test_gradient(self, Y, Z):
        """Derivative of the explained quantity with respect to ``Z``: (m, K)."""
        if Y is None:
            return self.family.prediction_gradient(Z)
        return self.family.loss_gradient(Y, Z)

    def train_rows(self, train_indices):
        """Training rows as integer positions (all when None)."""
        n = self.n_samples
        if train_indices is None:
            return np.arange(n)
        rows = np.asarray(train_indices)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(f"A boolean train_indices needs {n} entries.")
            return np.flatnonzero(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError("train_indices must be a 1-d array of integer positions.")
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise ValueError(f"train_indices must lie in [0, {n}); got "
                             f"{rows.min()}..{rows.max()}.")
        return rows % n

    # ------------------------------------------------------------ caches
    def leverage(self):
        """Leverage blocks of the training rows, computed once and cached."""
        if self._leverage_blocks is None:
            self._leverage_blocks = leverage_blocks(self.problem, self.solver)
        return self._leverage_blocks

    def training_matrix(self, dtype):
        """The training matrix in ``dtype`` (None for float64; a float32 copy
        is made once)."""
        dtype = np.dtype(dtype)
        if dtype == np.float64:
            return None
        if dtype != np.float32:
            raise ValueError(f"dtype must be float64 or float32; got {dtype}.")
        if self._X_train32 is None:
            self._X_train32 = self.problem.X.astype(np.float32)
        return self._X_train32

    @staticmethod
    def chunks(n_test, per_row_bytes, chunk_size=None):
        """Slices of test rows whose temporaries fit scikit-learn's
        ``working_memory`` (or ``chunk_size`` rows each)."""
        if chunk_size is None:
            budget = get_config()["working_memory"] * 2**20
            chunk_size = max(1, int(budget // max(per_row_bytes, 1)))
        return [slice(start, min(start + chunk_size, n_test))
                for start in range(0, n_test, chunk_size)]

    # ------------------------------------------------------------ explain
    def first_order_blocks(self, X, Q, *, chunk_size=None, dtype=np.float64, out=None):
        """Yield ``(rows, block)`` of first-order influence, chunk by chunk
        (written into ``out[rows]`` when ``out`` is given)."""
        problem = self.problem
        X_train = self.training_matrix(dtype)
        n_train, K = problem.n_samples, self.family.n_outputs
        per_row = np.dtype(dtype).itemsize * n_train * (1 if K == 1 else 2)
        # and the d-sized float64 columns: test gradient, solution and the
        # iterative solvers' working vectors (about 8 per column for cg)
        per_row += 8 * 8 * problem.n_parameters
        for rows in self.chunks(X.shape[0], per_row, chunk_size):
            yield rows, first_order_block(
                problem, self.solver, self.removal_residuals, self.class_shift,
                X[rows], Q[rows], X_train=X_train,
                out=None if out is None else out[rows])

    def explain(self, X, y=None, *, method="first_order", chunk_size=None,
                dtype=np.float64):
        """Influence of every training row on every row of prepared ``X``.

        ``method`` is "first_order" or "newton" (validated by the caller).
        """
        family, problem = self.family, self.problem
        Y, Z = self.test_targets(X, y)
        n_train, n_test, K = problem.n_samples, X.shape[0], family.n_outputs
        if method == "first_order":
            Q = self.test_gradient(Y, Z)
            influence = np.empty((n_test, n_train), dtype=dtype)
            for _ in self.first_order_blocks(X, Q, chunk_size=chunk_size, dtype=dtype,
                                             out=influence):
                pass
            return self._refit_interpolated(X, y, influence)

        influence = np.empty((n_test, n_train))
        # both steps start from the fit's residual gradient g0: the baseline
        # moves by -H^{-1} g0 and each leave-one-out step solves for
        # g_i - g0, so the estimate refers to the exact optima, as loo() does
        correction = self.solver.solve(problem.gradient())[:, None]
        shift = problem.parameters_to_rows(correction)[:, :, 0]
        D = problem.curvature
        D_shift = D * shift if D.ndim == 2 else np.einsum("nkl,nl->nk", D, shift)
        Z = Z - problem.parameters_to_rows(correction, X)[:, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = newton_rho(D, self.removal_residuals - D_shift, self.leverage())
        rho[self.interpolated_rows()] = 0.0
        for rows in self.chunks(n_test, 8 * n_train * K * 3, chunk_size):
            dZ = output_shift_block(problem, self.solver, rho, self.class_shift,
                                    X[rows])
            if Y is None:
                influence[rows] = dZ[:, :, 0]
                continue
            Zr, Yr = Z[rows], Y[rows]
            m = Zr.shape[0]
            moved = family.loss(np.repeat(Yr, n_train, axis=0),
                                (Zr[:, None, :] + dZ).reshape(m * n_train, K))
            influence[rows] = moved.reshape(m, n_train) - family.loss(Yr, Zr)[:, None]
        return self._refit_interpolated(X, y, influence)

    def interpolated_rows(self):
        """Training rows the model interpolates (leverage 1), cached.

        Only possible when no penalty acts on the coefficients (LinearRegression,
        ``C=np.inf``); influence is undefined there, so :meth:`explain` fills
        their columns with leave-one-out refits.
        """
        if getattr(self, "_interpolated", None) is None:
            fam = self.family
            penalty = self.problem.penalty.reshape(fam.n_outputs, fam.n_columns)
            if np.any(penalty[:, : fam.n_features] > 0) or self.estimator is None:
                self._interpolated = np.empty(0, dtype=np.intp)
            else:
                rows = np.arange(self.n_samples)
                self.leverage()
                self._interpolated = rows[self.unit_leverage(rows)]
        return self._interpolated

    def _refit_interpolated(self, X, y, influence):
        """Replace the columns of interpolated rows by leave-one-out refits."""
        rows = self.interpolated_rows()
        if rows.size == 0:
            return influence
        labels = self.test_labels(X, y)
        influence[:, rows] = refit_loo(self.estimator, self.problem.X, self.problem.y,
                                       self.sample_weight, X, labels, rows)
        warnings.warn(
            f"The model interpolates training row(s) {rows[:10].tolist()}"
            f"{' ...' if rows.size > 10 else ''} (leverage 1), where influence is "
            "undefined: their columns are exact leave-one-out refits.",
            UserWarning, stacklevel=4)
        return influence

    def top_influencers(self, X, y=None, *, k=10, chunk_size=None, dtype=np.float64):
        """The ``k`` most helpful and most harmful training rows per test row."""
        n_train = self.n_samples
        k = min(int(k), n_train)
        Y, Z = self.test_targets(X, y)
        Q = self.test_gradient(Y, Z)
        n_test = X.shape[0]
        result = Bunch(
            helpful_indices=np.empty((n_test, k), dtype=np.intp),
            helpful_values=np.empty((n_test, k), dtype=dtype),
            harmful_indices=np.empty((n_test, k), dtype=np.intp),
            harmful_values=np.empty((n_test, k), dtype=dtype),
        )
        # temporaries per test row: the block, a comparison mask, partitions
        per_row = (np.dtype(dtype).itemsize + 2) * n_train * 2
        if chunk_size is None:
            budget = get_config()["working_memory"] * 2**20
            chunk_size = max(1, int(budget // per_row))
        for rows, block in self.first_order_blocks(X, Q, chunk_size=chunk_size,
                                                   dtype=dtype):
            for side, idx in zip(("harmful", "helpful"), top_k_indices(block, k)):
                result[f"{side}_indices"][rows] = idx
                result[f"{side}_values"][rows] = np.take_along_axis(block, idx, axis=1)
        return result

    def self_influence(self):
        """``grad l_i^T H^{-1} grad f_i`` of every training row (cached)."""
        if self._self_influence is None:
            self._self_influence = self_influence_values(
                self.problem, self.solver, self.leverage(), self.removal_residuals,
                self.class_shift)
        return self._self_influence.copy()

    # ------------------------------------------------------------ exact
    def unit_leverage(self, rows):
        """Which of ``rows`` the model interpolates (leverage 1 up to 1e-8):
        removing one changes the fit in a direction the Hessian cannot see, so
        influence and the Newton engine are undefined there."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return np.zeros(0, dtype=bool)
        M = leverage_blocks(self.problem, self.solver, rows) if \
            self._leverage_blocks is None else self._leverage_blocks[rows]
        D = self.problem.curvature[rows]
        K = self.family.n_outputs
        DM = D[:, :, None] * M if D.ndim == 2 else D @ M
        with np.errstate(invalid="ignore"):
            gap = np.linalg.det(np.eye(K)[None] - DM)
        return ~(gap > 1e-8)

    def loo(self, X, y=None, *, method="refit", rows=None, n_jobs=None, verbose=0,
            tol=None):
        """Actual change of each test quantity when each row of ``rows`` is
        removed: by refits of the estimator ("refit"), by Newton on the
        family ("newton") or by the family's exact engine ("exact").

        Rows whose removal leaves a class without rows get NaN (a refit could
        not predict that class), with a warning naming them; rows the model
        interpolates are refitted whatever the method. ``tol``: the Newton
        engines' relative decrement (default
        :data:`~skinfluence.exact.LOO_TOL`), the refits' solver tolerance
        (default 1e-10). Per-row ``n_iter`` and ``converged`` are kept in
        ``loo_info``.
        """
        problem = self.problem
        labels = self.test_labels(X, y)
        rows = self.train_rows(rows)
        out = np.full((X.shape[0], rows.size), np.nan)
        n_iter = np.zeros(rows.size, dtype=int)
        converged = np.ones(rows.size, dtype=bool)
        sole = self.family.sole_members(problem.y, problem.sample_weight)[rows]
        if sole.any():
            classes = self.family.classes[self.family.class_index(problem.y[rows[sole]])]
            listed = ", ".join(f"{r} (class {c!r})" for r, c in
                               zip(rows[sole][:10], classes[:10]))
            warnings.warn(
                f"Removing training row(s) {listed} leaves a class without rows: a "
                "refit could not predict that class, so these leave-one-out "
                "effects are undefined and returned as NaN.", UserWarning,
                stacklevel=3)
        refit_rows = ~sole
        if method != "refit" and self.estimator is not None and not self.family.smoothed:
            refit_rows &= self.unit_leverage(rows)
        elif method != "refit":
            refit_rows[:] = False
        engine_rows = ~sole & ~refit_rows
        if refit_rows.any():
            values, info = refit_loo(
                self.estimator, problem.X, problem.y, self.sample_weight, X, labels,
                rows[refit_rows], n_jobs=n_jobs, verbose=verbose,
                tol=1e-10 if tol is None or method != "refit" else tol,
                return_info=True)
            out[:, refit_rows] = values
            n_iter[refit_rows], converged[refit_rows] = info.n_iter, info.converged
        if engine_rows.any():
            engine = exact_loo if method == "exact" else newton_loo
            values, info = engine(
                self.family, problem.X, problem.y, problem.sample_weight, self.solver,
                X, labels, rows[engine_rows], n_jobs=n_jobs, verbose=verbose,
                tol=LOO_TOL if tol is None else tol, return_info=True)
            out[:, engine_rows] = values
            n_iter[engine_rows], converged[engine_rows] = info.n_iter, info.converged
        self.loo_info = Bunch(method=method, rows=rows, n_iter=n_iter,
                              converged=converged, undefined=sole,
                              refitted=refit_rows)
        return out

    def loo_interval(self, X, y=None, *, rows=None, removals=None, refine=True,
                     max_refine=None, n_jobs=None):
        """Certified intervals containing the exact effect of removing each
        training row of ``rows`` (or each index array of ``removals``) on each
        test quantity: :func:`~skinfluence.exact.certified.certified_loo`."""
        problem = self.problem
        labels = self.test_labels(X, y)
        if removals is None:
            removals = [np.array([row]) for row in self.train_rows(rows)]
        return certified_loo(
            self.family, problem.X, problem.y, problem.sample_weight, X, labels,
            removals, solver=self.solver, leverage=self.leverage, refine=refine,
            max_refine=max_refine, n_jobs=n_jobs,
            cache=self.__dict__.setdefault("_certificate_cache", {}))
