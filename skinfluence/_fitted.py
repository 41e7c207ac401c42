"""The influence machinery of one fitted model.

:class:`FittedInfluence` binds a family's objective to the training data at
the fitted coefficients, factorises its Hessian (through a solver) and keeps
the gradient each training row takes away with it. The explainer validates
input and delegates here; the applications and the evaluation tools receive
this object and prepared arrays, never the explainer.
"""

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
from .exact import exact_loo, newton_loo, newton_minimize, refit_loo
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
    removal_residuals : ndarray of shape (n_samples, n_outputs)
        ``r_i``: the gradient row ``i`` takes away is ``r_i (x) x~_i``
        (including the change of its own class weight).
    class_shift : tuple or None
        ``(vectors, delta)`` of the class re-balancing of a refit
        (``class_weight="balanced"``), or None.
    """

    def __init__(self, family, X, y, sample_weight=None, *, estimator=None,
                 solver="direct", damping=0.0, tol=1e-8, max_iter=None,
                 solver_params=None, random_state=None, smoothing_resolve=True):
        weights_given = sample_weight is not None
        sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                         else np.asarray(sample_weight, dtype=float))
        problem = family.bind(X, y, sample_weight)
        self.relative_gradient_norm = problem.relative_gradient_norm(subgradient=True)
        # support-vector families: the exact optimum of the true loss and its
        # dual (its active-set solves are dense in the columns: not for text-size
        # feature spaces, where loo(method="exact") computes it on request)
        self.exact_solution = (
            family.exact_solution(X, y, sample_weight)
            if hasattr(family, "exact_solution") and family.n_columns <= 4096 else None)
        if smoothing_resolve and family.smoothed:
            theta, _ = newton_minimize(family, X, y, sample_weight)
            family = family.with_theta(theta)
            problem = family.bind(X, y, sample_weight)
        self.solver = make_solver(
            solver, damping=damping, pinv_rtol=family.pinv_rtol, tol=tol,
            max_iter=max_iter, random_state=random_state, **(solver_params or {}),
        ).fit(problem)
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
        if self.exact_solution is not None and family.smoothed:
            # removing a row whose multiplier is 0 leaves the exact optimum
            # unchanged: its own gradient term is exactly 0, not the smoothed one
            self.removal_residuals = np.where(self.exact_solution.support,
                                              self.removal_residuals, 0.0)
        self.family = family
        self.problem = problem
        self.estimator = estimator
        self.sample_weight = sample_weight if weights_given else None
        self._leverage_blocks = None
        self._self_influence = None
        self._X_train32 = None

    @property
    def support(self):
        """``(n_samples, n_outputs)``: rows whose exact dual multiplier is not 0
        (support-vector families), or None."""
        return None if self.exact_solution is None else self.exact_solution.support

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
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
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
    def first_order_blocks(self, X, Q, *, chunk_size=None, dtype=np.float64, out=None,
                           residuals=None):
        """Yield ``(rows, block)`` of first-order influence, chunk by chunk
        (written into ``out[rows]`` when ``out`` is given); ``residuals``
        replaces the removal residuals (the linearised Newton step)."""
        problem = self.problem
        X_train = self.training_matrix(dtype)
        n_train, K = problem.n_samples, self.family.n_outputs
        per_row = np.dtype(dtype).itemsize * n_train * (1 if K == 1 else 2)
        # and the d-sized float64 columns: test gradient, solution and the
        # iterative solvers' working vectors (about 8 per column for cg)
        per_row += 8 * 8 * problem.n_parameters
        for rows in self.chunks(X.shape[0], per_row, chunk_size):
            yield rows, first_order_block(
                problem, self.solver,
                self.removal_residuals if residuals is None else residuals,
                self.class_shift,
                X[rows], Q[rows], X_train=X_train,
                out=None if out is None else out[rows])

    def explain(self, X, y=None, *, method="first_order", chunk_size=None,
                dtype=np.float64):
        """Influence of every training row on every row of prepared ``X``.

        ``method`` is "first_order" or "newton" (validated by the caller). For
        a smoothed loss (the hinge) "newton" is the leverage-corrected step
        ``H^-1 g_i / (1 - h_ii)`` with the test loss linearised: the true
        hinge has no curvature to evaluate it at the moved parameters.
        """
        family, problem = self.family, self.problem
        Y, Z = self.test_targets(X, y)
        n_train, n_test, K = problem.n_samples, X.shape[0], family.n_outputs
        if method == "first_order" or family.smoothed:
            residuals = None
            if method == "newton":
                residuals = newton_rho(problem.curvature, self.removal_residuals,
                                       self.leverage())
            Q = self.test_gradient(Y, Z)
            influence = np.empty((n_test, n_train), dtype=dtype)
            for _ in self.first_order_blocks(X, Q, chunk_size=chunk_size, dtype=dtype,
                                             out=influence, residuals=residuals):
                pass
            return influence

        influence = np.empty((n_test, n_train))
        rho = newton_rho(problem.curvature, self.removal_residuals, self.leverage())
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
    def loo(self, X, y=None, *, method="refit", rows=None, n_jobs=None, verbose=0):
        """Actual change of each test quantity when each row of ``rows`` is
        removed: by refits of the estimator ("refit"), by Newton on the
        family ("newton") or by the family's exact engine ("exact")."""
        problem = self.problem
        if method == "newton" and self.family.smoothed:
            raise ValueError(
                "method='newton' minimises the smoothed objective, whose leave-one-out "
                "is not the hinge's; use method='exact' (the exact decremental path) "
                "or method='refit'.")
        labels = self.test_labels(X, y)
        rows = self.train_rows(rows)
        if method == "refit":
            return refit_loo(self.estimator, problem.X, problem.y, self.sample_weight,
                             X, labels, rows, n_jobs=n_jobs, verbose=verbose)
        if method == "exact":
            return exact_loo(self.family, problem.X, problem.y, problem.sample_weight,
                             self.solver, X, labels, rows, n_jobs=n_jobs,
                             verbose=verbose)
        return newton_loo(self.family, problem.X, problem.y, problem.sample_weight,
                          self.solver, X, labels, rows, n_jobs=n_jobs, verbose=verbose)
