"""The influence machinery of one fitted model.

:class:`FittedInfluence` binds a family's objective to the training data at
the fitted coefficients, factorises its Hessian (through a solver) and keeps
the gradient each training row takes away with it. The explainer validates
input and delegates here; the applications and the evaluation tools receive
this object and prepared arrays, never the explainer.
"""

import warnings
from functools import partial

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import check_array

from ._result import Result
from ._influence import (
    contract,
    contraction_bytes_per_test_row,
    first_order_block,
    influence_directions,
    leverage_blocks,
    newton_rho,
    newton_step_influence,
    output_directions,
    output_shift_block,
    self_influence_values,
    shifted_residuals,
    stream_top_k,
    top_k_indices,
)
from ._fitcheck import check_fit
from ._progress import Progress
from ._rows import as_1d, is_dask, map_row_blocks, row_slices
from .exact import LOO_TOL, certified_loo, exact_loo, newton_loo, refit_loo
from .exact import polish as polish_family
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
    polish : bool, default=False
        Move to the exact minimiser of the objective by Newton's method from
        the fitted coefficients (the estimator is untouched) and explain that
        optimum instead of the fitted coefficients.

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
    fitted_gradient : ndarray of shape (n_parameters,)
        The objective's gradient at the estimator's own coefficients.
    removal_residuals : ndarray of shape (n_samples, n_outputs)
        ``r_i``: the gradient row ``i`` takes away is ``r_i (x) x~_i``
        (including the change of its own class weight).
    class_shift : tuple or None
        ``(vectors, delta)``: the removal-gradient directions shared by all
        rows, the class re-balancing of a refit (``class_weight="balanced"``)
        first, then the family's :meth:`~LinearFamily.removal_shift` (a
        row's share of the penalty, a profiled scale); or None.
    n_class_columns : int
        How many leading columns of ``class_shift`` are class re-balancing.
    polished : bool
        Whether the parameters were moved to the exact optimum.
    """

    def __init__(self, family, X, y, sample_weight=None, *, estimator=None,
                 solver="direct", damping=0.0, tol=1e-8, max_iter=None,
                 solver_params=None, random_state=None, smoothing_resolve=True,
                 gradient_tol=0.05, polish=False):
        weights_given = sample_weight is not None
        sample_weight = (np.ones(X.shape[0]) if sample_weight is None
                         else np.asarray(sample_weight, dtype=float))
        problem = family.bind(X, y, sample_weight)
        self._relative_gradient_norm = None
        if family.smoothed:  # judged at the estimator's own coefficients
            self._relative_gradient_norm = problem.relative_gradient_norm(
                subgradient=True)
        self._fitted_problem = problem  # at the estimator's own coefficients
        if is_dask(X) and family.smoothed and hasattr(family, "exact_solution"):
            raise ValueError(
                f"The hinge loss of this {type(estimator).__name__} is explained at the "
                "exact dual optimum, whose support vectors need every training row in "
                "memory; the rows are a dask array. Pass numpy or sparse rows, or use "
                "the squared hinge (loss='squared_hinge', or "
                "'squared_epsilon_insensitive'), which runs on dask.")
        # support-vector families: the exact optimum of the true loss and its
        # dual (its active-set solves are dense in the columns: not for text-size
        # feature spaces, where loo(method="exact") computes it on request)
        self.exact_solution = (
            family.exact_solution(X, y, sample_weight)
            if hasattr(family, "exact_solution") and family.n_columns <= 4096
            and not is_dask(X) else None)
        self.polished = bool(polish or (smoothing_resolve and family.smoothed))
        if self.polished:
            family = polish_family(family, X, y, sample_weight)
            problem = family.bind(X, y, sample_weight)
        self.solver = make_solver(
            solver, damping=damping, pinv_rtol=family.pinv_rtol, tol=tol,
            max_iter=max_iter, random_state=random_state, **(solver_params or {}),
        ).fit(problem)
        if family.smoothed:
            # a smoothed loss is judged by the true loss's smallest subgradient
            self.fit_report = Result(gap=np.nan, decrement=np.nan, separated=False,
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
            # every class's gradient total in one pass: (n_parameters, n_classes)
            vectors = problem.rows_to_parameters(np.moveaxis(class_residuals, 0, 2))
            self.class_shift = (vectors, delta)
        self.n_class_columns = 0 if self.class_shift is None else delta.shape[1]
        shift = family.removal_shift(problem)
        if shift is not None:
            if self.class_shift is not None:
                shift = tuple(np.hstack(pair) for pair in zip(self.class_shift, shift))
            self.class_shift = shift
        if self.exact_solution is not None and family.smoothed:
            # removing a row whose multiplier is 0 leaves the exact optimum
            # unchanged: its own gradient term is exactly 0, not the smoothed one
            self.removal_residuals = np.where(self.exact_solution.support,
                                              self.removal_residuals, 0.0)
        self.family = family
        self.problem = problem
        # what a refit on the design matrix fits (the estimator, for linear models)
        self.estimator = None if estimator is None else family.refit_estimator(estimator)
        self.sample_weight = sample_weight if weights_given else None
        self._leverage_blocks = None
        self._newton_rho = None
        self._self_influence = None

    @property
    def support(self):
        """``(n_samples, n_outputs)``: rows whose exact dual multiplier is not 0
        (support-vector families), or None."""
        return None if self.exact_solution is None else self.exact_solution.support

    @property
    def n_samples(self):
        return self.problem.n_samples

    @property
    def fitted_gradient(self):
        """The objective's gradient at the estimator's own coefficients
        (computed when first asked for: one pass over the rows)."""
        return self._fitted_problem.gradient()

    @property
    def relative_gradient_norm(self):
        """At the estimator's own coefficients; computed when first asked for
        (one pass over the rows: it needs ``sum_i |g_i|``)."""
        if self._relative_gradient_norm is None:
            self._relative_gradient_norm = self._fitted_problem.relative_gradient_norm(
                subgradient=True)
        return self._relative_gradient_norm

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
        y = (np.asarray(y) if not family.is_classifier and family.n_outputs > 1
             else as_1d(y))
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
            return self.family.predicted_gradient(Z)
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
            shown = rows.ravel()[:3].tolist()
            raise ValueError(
                f"train_indices must be a 1-d array of integer positions (as in "
                f"DataFrame.iloc); got {shown}{' ...' if rows.size > 3 else ''}. For "
                "index labels pass X.index.get_indexer(labels).")
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

    def newton_rho(self):
        """``rho_i`` of every training row's Newton step with the leave-one-out
        Hessian, including the re-weighting shift (cached)."""
        if self._newton_rho is None:
            problem = self.problem
            residuals = shifted_residuals(problem, self.solver, self.removal_residuals,
                                          self.class_shift)
            # each step solves for g_i - g0 from the fit's residual gradient g0,
            # so the estimate refers to the exact optima, as loo() does
            D = problem.curvature
            if not self.family.smoothed:  # the hinge's smoothed fit is re-solved
                shift = problem.parameters_to_rows(self._baseline_correction())[:, :, 0]
                residuals = residuals - (D * shift if D.ndim == 2
                                         else np.einsum("nkl,nl->nk", D, shift))
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = newton_rho(D, residuals, self.leverage())
            rho[self.interpolated_rows()] = 0.0  # refitted in explain()
            self._newton_rho = rho
        return self._newton_rho

    def _baseline_correction(self):
        """``H^{-1} g0`` as a column: the Newton step from the parameters used to
        the exact optimum, ``g0`` the objective's gradient there (cached)."""
        if getattr(self, "_correction", None) is None:
            self._correction = self.solver.solve(self.problem.gradient())[:, None]
        return self._correction

    @staticmethod
    def chunks(n_test, per_row_bytes, chunk_size=None, verbose=0):
        """Slices of test rows whose temporaries fit scikit-learn's
        ``working_memory`` (or ``chunk_size`` rows each); with ``verbose``
        at least ten chunks, so that progress can be reported."""
        if chunk_size is None:
            budget = get_config()["working_memory"] * 2**20
            chunk_size = max(1, int(budget // max(per_row_bytes, 1)))
            if verbose:
                chunk_size = min(chunk_size, max(1, -(-n_test // 10)))
        return [slice(start, min(start + chunk_size, n_test))
                for start in range(0, n_test, chunk_size)]

    # ------------------------------------------------------------ explain
    def first_order_blocks(self, X, Q, *, chunk_size=None, dtype=np.float64, out=None,
                           residuals=None, verbose=0):
        """Yield ``(rows, block)`` of first-order influence, chunk by chunk
        (written into ``out[rows]`` when ``out`` is given); ``residuals``
        replaces the removal residuals (the linearised Newton step)."""
        problem = self.problem
        dtype = _check_dtype(dtype)
        n_train = problem.n_samples
        # a block of influence rows, unless it is written into ``out`` (then one
        # chunk is usual: a second one repeats the pass over the training rows,
        # 1.22 against 0.96 s at n = 1,000,000, d = 100, 200 test rows)
        directions = problem.n_parameters + (
            0 if self.class_shift is None else self.class_shift[1].shape[1])
        per_row = dtype.itemsize * n_train if out is None else \
            contraction_bytes_per_test_row(n_train, directions, dtype.itemsize)
        # and the d-sized float64 columns: test gradient, solution and the
        # iterative solvers' working vectors (about 8 per column for cg)
        per_row += 8 * 8 * problem.n_parameters
        progress = Progress(X.shape[0], "explain", verbose, unit="test rows")
        for rows in self.chunks(X.shape[0], per_row, chunk_size, verbose):
            yield rows, first_order_block(
                problem, self.solver,
                self.removal_residuals if residuals is None else residuals,
                self.class_shift, X[rows], Q[rows], dtype=dtype,
                out=None if out is None else out[rows])
            progress.update(rows.stop - rows.start)

    def explain(self, X, y=None, *, method="first_order", chunk_size=None,
                dtype=np.float64, verbose=0):
        """Influence of every training row on every row of prepared ``X``.

        ``method`` is "first_order" or "newton" (validated by the caller). For
        a smoothed loss (the hinge) "newton" is the leverage-corrected step
        ``H^-1 g_i / (1 - h_ii)`` with the test loss linearised: the true
        hinge has no curvature to evaluate it at the moved parameters. With
        dask training rows the result is a lazy dask array.
        """
        family, problem = self.family, self.problem
        if is_dask(problem.X):
            return self._lazy_explain(X, y, method, chunk_size, dtype)
        X = _in_memory(X)
        Y, Z = self.test_targets(X, y)
        n_train, n_test, K = problem.n_samples, X.shape[0], family.n_outputs
        if Y is None and K > 1:
            return self._explain_targets(X, method, chunk_size, dtype)
        if method == "first_order" or family.smoothed:
            # the smoothed hinge: its leverage-corrected step, the test loss
            # linearised (the true hinge has no curvature to move along)
            residuals = self.newton_rho() if method == "newton" else None
            Q = self.test_gradient(Y, Z)
            influence = np.empty((n_test, n_train), dtype=_check_dtype(dtype))
            for _ in self.first_order_blocks(X, Q, chunk_size=chunk_size, dtype=dtype,
                                             out=influence, residuals=residuals,
                                             verbose=verbose):
                pass
            return self._refit_interpolated(X, y, influence)

        influence = np.empty((n_test, n_train))
        # the baseline moves to the exact optimum, -H^{-1} g0 (the steps in
        # newton_rho() start from the fit's residual gradient g0 too)
        Z = Z - problem.parameters_to_rows(self._baseline_correction(), X)[:, :, 0]
        rho = self.newton_rho()
        delta = None if self.class_shift is None else self.class_shift[1]
        progress = Progress(n_test, "explain (newton)", verbose, unit="test rows")
        for rows in self.chunks(n_test, 8 * n_train * K * 3, chunk_size, verbose):
            directions = output_directions(problem, self.solver, self.class_shift,
                                           X[rows])
            influence[rows] = newton_step_influence(
                family, directions, None if Y is None else Y[rows], Z[rows],
                problem.X, rho, delta)
            progress.update(rows.stop - rows.start)
        return self._refit_interpolated(X, y, influence)

    def _lazy_explain(self, X, y, method, chunk_size, dtype):
        """explain on dask training rows: a lazy ``(n_test, n_train)`` dask
        array, one task per (test chunk, training chunk)."""
        import dask.array as da

        family, problem = self.family, self.problem
        dtype = _check_dtype(dtype) if method == "first_order" else np.dtype(float)
        test_chunks = tuple(X.chunks[0]) if is_dask(X) else None
        X = _in_memory(X)
        Y, Z = self.test_targets(X, y)
        if Y is None and family.n_outputs > 1:
            raise ValueError(
                "explain without y on a regressor with several targets returns one "
                "slice per target, which dask training rows do not support; pass y "
                "(the squared error summed over the targets) or numpy rows.")
        if self.interpolated_rows().size:
            raise ValueError(
                "The model interpolates training rows (leverage 1), whose influence "
                "is undefined and needs leave-one-out refits on in-memory data. "
                "Use a penalised model (Ridge) or pass the training rows as numpy.")
        if test_chunks is None:
            largest = max(X_chunk.stop - X_chunk.start for X_chunk in row_slices(problem.X))
            rows = self.chunks(X.shape[0], dtype.itemsize * largest * 3, chunk_size)
        else:
            bounds = np.cumsum((0,) + test_chunks)
            rows = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        delta = None if self.class_shift is None else self.class_shift[1]
        if method == "first_order" or family.smoothed:
            # the smoothed hinge's "newton": first order with the step's rho
            R = self.newton_rho() if method == "newton" else self.removal_residuals
            Q = self.test_gradient(Y, Z)
            U = self.solver.solve(problem.row_gradients(X, Q))
            A = influence_directions(U, self.class_shift, dtype)
            tiles = [map_row_blocks(partial(_first_order_tile, family, A[r]),
                                    problem.X, R, delta)
                     for r in rows]
        else:
            Z = Z - problem.parameters_to_rows(self._baseline_correction(), X)[:, :, 0]
            rho = self.newton_rho()
            tiles = []
            for r in rows:
                directions = output_directions(problem, self.solver, self.class_shift,
                                               X[r])
                tiles.append(map_row_blocks(
                    partial(newton_step_influence, family, directions,
                            None if Y is None else Y[r], Z[r]),
                    problem.X, rho, delta))
        train = [b.stop - b.start for b in row_slices(problem.X)]
        return da.block([[da.from_delayed(tile, shape=(r.stop - r.start, size),
                                          dtype=dtype)
                          for tile, size in zip(row_tiles, train)]
                         for r, row_tiles in zip(rows, tiles)])

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

    def _explain_targets(self, X, method, chunk_size, dtype):
        """Change of each target's prediction, (n_test, n_train, n_targets)."""
        problem, K = self.problem, self.family.n_outputs
        n_train, n_test = problem.n_samples, X.shape[0]
        if method == "first_order":
            influence = np.empty((n_test, n_train, K), dtype=dtype)
            for k in range(K):
                Q = np.zeros((n_test, K))
                Q[:, k] = 1.0
                for rows, block in self.first_order_blocks(X, Q, chunk_size=chunk_size,
                                                           dtype=dtype):
                    influence[rows, :, k] = block
            return influence
        influence = np.empty((n_test, n_train, K))
        rho = self.newton_rho()
        for rows in self.chunks(n_test, 8 * n_train * K * 3, chunk_size):
            influence[rows] = output_shift_block(problem, self.solver, rho,
                                                 self.class_shift, X[rows])
        return influence

    def top_influencers(self, X, y=None, *, k=10, chunk_size=None, dtype=np.float64,
                        verbose=0):
        """The ``k`` most helpful and most harmful training rows per test row.

        The selection runs inside the blocked product (:func:`stream_top_k`):
        no ``(n_test, n_train)`` block is ever held. On dask training rows
        each chunk keeps its own top and the tops are tree-merged.
        """
        problem = self.problem
        dtype = _check_dtype(dtype)
        n_train = self.n_samples
        k = min(int(k), n_train)
        X = _in_memory(X)
        Y, Z = self.test_targets(X, y)
        Q = self.test_gradient(Y, Z)
        n_test = X.shape[0]
        result = Result(
            helpful_indices=np.empty((n_test, k), dtype=np.intp),
            helpful_values=np.empty((n_test, k), dtype=dtype),
            harmful_indices=np.empty((n_test, k), dtype=np.intp),
            harmful_values=np.empty((n_test, k), dtype=dtype),
        )
        if 8 * k > n_train and not is_dask(problem.X):  # most of each row: sort it
            self._top_by_sorting(X, Q, k, chunk_size, dtype, result, verbose)
            return result
        delta = None if self.class_shift is None else self.class_shift[1]
        # the test side of the product: (m, q) floats per test row
        per_row = 8 * 8 * problem.n_parameters
        progress = Progress(n_test, "top_influencers", verbose, unit="test rows")
        for rows in self.chunks(n_test, per_row, chunk_size, verbose):
            U = self.solver.solve(problem.row_gradients(X[rows], Q[rows]))
            A = influence_directions(U, self.class_shift, dtype)
            if is_dask(problem.X):
                top = _dask_top_k(self.family, A, problem.X, self.removal_residuals,
                                  delta, k)
            else:
                top = stream_top_k(self.family, A, problem.X, self.removal_residuals,
                                   delta, k)
            for side, largest in (("helpful", True), ("harmful", False)):
                result[f"{side}_indices"][rows] = top.indices[largest]
                result[f"{side}_values"][rows] = top.values[largest]
            progress.update(rows.stop - rows.start)
        return result

    def _top_by_sorting(self, X, Q, k, chunk_size, dtype, result, verbose=0):
        """Top-k of explain blocks by partition and sort (``k`` large)."""
        per_row = (dtype.itemsize + 2) * self.n_samples * 2
        if chunk_size is None:
            budget = get_config()["working_memory"] * 2**20
            chunk_size = max(1, int(budget // per_row))
            if verbose:
                chunk_size = min(chunk_size, max(1, -(-X.shape[0] // 10)))
        for rows, block in self.first_order_blocks(X, Q, chunk_size=chunk_size,
                                                   dtype=dtype, verbose=verbose):
            for side, idx in zip(("harmful", "helpful"), top_k_indices(block, k)):
                result[f"{side}_indices"][rows] = idx
                result[f"{side}_values"][rows] = np.take_along_axis(block, idx, axis=1)

    def direction_influence(self, vector):
        """``v^T H^{-1} g_i`` for every training row ``i``: the first-order
        change, when row ``i`` is removed, of any smooth function of the
        parameters whose gradient at the fit is ``vector`` (n_parameters,).

        One solve and one pass over the training rows (numpy result also for
        dask rows); includes the class re-balancing term. Validation
        influence, functionals and rankings are built on it.
        """
        problem = self.problem
        u = self.solver.solve(np.asarray(vector, dtype=float))
        T = problem.parameters_to_rows(u[:, None])[:, :, 0]  # (n, K)
        values = np.einsum("nk,nk->n", self.removal_residuals, T)
        if self.class_shift is not None:
            vectors, delta = self.class_shift
            values -= delta @ (u @ vectors)
        return values

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
        if method == "newton" and self.family.smoothed:
            instead = ("method='exact' (the exact decremental path) or method='refit'"
                       if self.family.exact_engine == "hinge_path" else "method='refit'")
            raise ValueError(
                "method='newton' minimises the smoothed objective, whose leave-one-out "
                f"is not the hinge's; use {instead}.")
        if is_dask(problem.X):
            raise TypeError(
                "loo() refits the model without each row, which needs the training "
                "rows in memory; they are a dask array. Compute a subset first, for "
                "example InfluenceExplainer(model).fit(X[rows].compute(), y[rows]), "
                "or use explain / top_influencers, which run on dask.")
        labels = self.test_labels(X, y)
        explicit_rows, rows = rows, self.train_rows(rows)
        out = None  # (n_test, n_rows) or, for several targets, (..., n_targets)
        n_iter = np.zeros(rows.size, dtype=int)
        converged = np.ones(rows.size, dtype=bool)
        sole = self.family.sole_members(problem.y, problem.sample_weight)[rows]
        if sole.any():
            classes = self.family.classes[self.family.class_index(problem.y[rows[sole]])]
            listed = ", ".join(f"{r} (class {c.item() if hasattr(c, 'item') else c!r})"
                               if not isinstance(c, str) else f"{r} (class {c!r})"
                               for r, c in zip(rows[sole][:10], classes[:10]))
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
                return_info=True, family=self.family,
                warn_long=method == "refit" and explicit_rows is None)
            out = _place(out, values, refit_rows)
            n_iter[refit_rows], converged[refit_rows] = info.n_iter, info.converged
        if engine_rows.any():
            engine = exact_loo if method == "exact" else newton_loo
            notice = None if explicit_rows is not None else (
                "Pass train_indices (a sample of rows) for less, n_jobs for more "
                "workers; verbose=1 shows progress.")
            values, info = engine(
                self.family, problem.X, problem.y, problem.sample_weight, self.solver,
                X, labels, rows[engine_rows], n_jobs=n_jobs, verbose=verbose,
                tol=LOO_TOL if tol is None else tol, return_info=True, notice=notice)
            out = _place(out, values, engine_rows)
            n_iter[engine_rows], converged[engine_rows] = info.n_iter, info.converged
        if out is None:  # every row undefined
            out = np.full((X.shape[0], rows.size), np.nan)
        self.loo_info = Result(method=method, rows=rows, n_iter=n_iter,
                              converged=converged, undefined=sole,
                              refitted=refit_rows)
        return out

    def loo_interval(self, X, y=None, *, rows=None, removals=None, refine=True,
                     max_refine=None, n_jobs=None, verbose=0):
        """Certified intervals containing the exact effect of removing each
        training row of ``rows`` (or each index array of ``removals``) on each
        test quantity: :func:`~skinfluence.exact.certified.certified_loo`."""
        problem = self.problem
        if is_dask(problem.X):
            raise TypeError(
                "loo_interval() refits the model without each row, which needs the "
                "training rows in memory; they are a dask array. Compute a subset "
                "first, or use explain / top_influencers, which run on dask.")
        labels = self.test_labels(X, y)
        if removals is None:
            removals = [np.array([row]) for row in self.train_rows(rows)]
        return certified_loo(
            self.family, problem.X, problem.y, problem.sample_weight, X, labels,
            removals, solver=self.solver, leverage=self.leverage, refine=refine,
            max_refine=max_refine, n_jobs=n_jobs, verbose=verbose,
            cache=self.__dict__.setdefault("_certificate_cache", {}))


def _place(out, values, columns):
    """Write ``values`` into the ``columns`` of ``out`` (NaN elsewhere),
    allocating ``out`` like ``values`` the first time."""
    if out is None:
        shape = (values.shape[0], columns.size) + values.shape[2:]
        out = np.full(shape, np.nan)
    out[:, columns] = values
    return out

def _in_memory(X):
    """Test rows held by a dask array, computed and validated like numpy."""
    if not is_dask(X):
        return X
    return check_array(X.compute(), dtype=np.float64, input_name="X")


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32; got {dtype}.")
    return dtype


def _first_order_tile(family, A, X, R, delta):
    """One (test chunk, training chunk) tile of first-order influence."""
    return contract(family, A, X, R, delta)


def _chunk_top_k(family, A, k, X, R, delta, offset):
    return stream_top_k(family, A, X, R, delta, k, offset=offset, n_threads=1)


def _merge_tops(*tops):
    top = tops[0]
    for other in tops[1:]:
        top.absorb(other)
    return top


def _dask_top_k(family, A, X, R, delta, k):
    """Running tops of every training chunk, tree-merged (numpy result)."""
    import dask

    from ._rows import SPLIT_EVERY

    offsets = [(b.start,) for b in row_slices(X)]
    parts = map_row_blocks(partial(_chunk_top_k, family, A, k), X, R, delta,
                           per_block=offsets)
    merge = dask.delayed(_merge_tops, pure=False)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + SPLIT_EVERY])
                 for i in range(0, len(parts), SPLIT_EVERY)]
    return dask.compute(parts[0])[0]
