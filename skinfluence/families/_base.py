"""Shared machinery that lifts a per-sample loss to coefficient space.

Every family describes one objective of the form

.. math::

    F(\\theta) = \\sum_i \\sum_k c_{ik}\\, \\ell_k(y_i, z_i)
                 + \\tfrac12 \\theta^\\top \\operatorname{diag}(p)\\, \\theta,
    \\qquad z_i = \\Theta \\tilde x_i,

where ``Theta`` has shape ``(n_outputs, n_features + fit_intercept)``, the
intercept is stored in the last column, ``tilde x_i = [x_i, 1]``, ``c_ik`` is the
row's weight in output ``k`` (sample weight, class weight and ``C``) and ``p`` is
the diagonal of the penalty's Hessian. The flat parameter vector is
``theta = Theta.ravel()`` (output-major).

A family implements the loss on the linear predictor (value, first and second
derivative); :class:`LinearFamily` turns these into gradients, Hessians and
Hessian-vector products without ever forming the ``n x d`` matrix of per-sample
gradients: the gradient of row ``i`` is ``r_i tilde x_i^T`` with
``r_i = c_i * dloss/dz``, so every contraction works on ``X`` and ``r``.
"""

import copy
from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from .._rows import is_dask, map_rows, sum_rows
from .._threads import narrow_product

__all__ = ["LinearFamily", "BoundProblem", "safe_dot", "target_column"]

#: bytes of training rows processed together while they are in cache
BLOCK_BYTES = 2**22
#: from this many columns the Hessian's rank-k updates run in order with the
#: BLAS's own threads, over blocks of IN_ORDER_ROWS rows (see _statistics)
IN_ORDER_COLUMNS = 64
IN_ORDER_ROWS = 2048
#: Hessians of at most this many multiply-adds (rows x columns x parameters x
#: outputs, the full-output case) are one product on the whole of dense X
#: (see :func:`_small_hessian`)
SMALL_HESSIAN = 2**22


def safe_dot(X, A):
    """``X @ A`` for dense, sparse or dask ``X``, returning a dense array."""
    if is_dask(X) or (not sp.issparse(X) and X.shape[0] * X.shape[1] > 2**21):
        return map_rows(partial(_dot, A=A), X, block_bytes=8 * BLOCK_BYTES)
    return _dot(X, A)


def target_column(y):
    """A single-output regressor's targets as a float column (n, 1)."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"y must be one-dimensional for a single-output regressor; got "
            f"shape {y.shape}.")
    return y[:, None]


def _dot(X, A):
    if sp.issparse(X) or sp.issparse(A):
        out = X @ A
        return np.asarray(out.toarray() if sp.issparse(out) else out)
    with narrow_product(X.size, 1 if A.ndim == 1 else A.shape[1]):
        return np.asarray(X @ A)


class LinearFamily:
    """Base class of a loss family on a linear model.

    Subclasses set, in their ``from_estimator`` constructor, the fitted
    coefficients ``coef`` of shape ``(n_outputs, n_features)``, ``intercept`` of
    shape ``(n_outputs,)`` (zeros when ``fit_intercept`` is False), and implement
    :meth:`encode_target`, :meth:`loss`, :meth:`loss_gradient`,
    :meth:`loss_hessian`, :meth:`row_weights` and :meth:`penalty_diagonal`.

    Attributes
    ----------
    coef : ndarray of shape (n_outputs, n_features)
    intercept : ndarray of shape (n_outputs,)
    fit_intercept : bool
    is_classifier : bool
    full_output_hessian : bool
        True when the loss couples the outputs (softmax), so that
        :meth:`loss_hessian` returns ``(n, K, K)`` blocks; otherwise it returns
        the ``(n, K)`` diagonal.
    """

    is_classifier = False
    full_output_hessian = False
    #: True when the training loss is a smoothed version of the test loss.
    smoothed = False
    #: True when the objective is quadratic in the parameters.
    quadratic = False
    #: Name of the exact leave-one-out engine in :data:`skinfluence.exact.ENGINES`
    #: (``loo(method="exact")``), or None when the family has none.
    exact_engine = "newton"
    #: Relative eigenvalue cut-off of a pseudo-inverse, or None to require an
    #: invertible Hessian.
    pinv_rtol = None
    #: Engines of :class:`skinfluence.estimators.SubsetEngine` that reproduce a
    #: refit on a subset of rows: Newton on the objective over the inputs, and
    #: refits whose parameters share this family's layout.
    subset_engines = ("newton", "refit")

    # ------------------------------------------------------------------ layout
    @property
    def n_outputs(self):
        return self.coef.shape[0]

    @property
    def n_features(self):
        return self.coef.shape[1]

    @property
    def n_columns(self):
        """Number of columns of ``tilde X`` (features plus the intercept)."""
        return self.n_features + int(self.fit_intercept)

    @property
    def n_parameters(self):
        return self.n_outputs * self.n_columns

    @property
    def theta(self):
        """Flat fitted parameter vector ``Theta.ravel()``."""
        if self.fit_intercept:
            return np.hstack([self.coef, self.intercept[:, None]]).ravel()
        return self.coef.ravel().copy()

    def with_theta(self, theta):
        """A copy of the family at other parameters (the estimator is untouched)."""
        other = copy.copy(self)
        coef, intercept = self.split_theta(theta)
        other.coef, other.intercept = coef.copy(), intercept.copy()
        return other

    def split_theta(self, theta):
        """Return ``(coef, intercept)`` from a flat parameter vector."""
        Theta = np.asarray(theta, dtype=float).reshape(self.n_outputs, self.n_columns)
        if self.fit_intercept:
            return Theta[:, :-1], Theta[:, -1]
        return Theta, np.zeros(self.n_outputs)

    def decision(self, X, theta=None):
        """Linear predictor ``Z = X coef^T + intercept`` of shape (n, n_outputs)."""
        coef, intercept = (
            (self.coef, self.intercept) if theta is None else self.split_theta(theta)
        )
        Z = safe_dot(X, coef.T) + intercept
        # NaN or infinity anywhere in a row makes its linear predictor
        # non-finite: the first pass over the rows is the check of X
        if not np.isfinite(Z).all() and np.isfinite(coef).all():
            bad = np.flatnonzero(~np.isfinite(Z).all(axis=1))
            raise ValueError(
                f"Input X contains NaN or infinity in rows {bad[:10].tolist()}"
                f"{' ...' if bad.size > 10 else ''}. Drop or impute those rows.")
        return Z

    def test_quantity(self, X, y=None, theta=None):
        """The explained quantity of each row of ``X`` at parameters ``theta``.

        The unweighted test loss at targets ``y``, or, when ``y`` is None, the
        model's prediction (:meth:`predicted`; one column per target for a
        regressor with several targets).
        """
        Z = self.decision(X, theta)
        if y is None:
            return Z if Z.shape[1] > 1 and not self.is_classifier else self.predicted(Z)
        return self.loss(self.encode_target(y), Z)

    # ------------------------------------------------------------ predictions
    #: An object with ``inverse(t)`` and ``derivative(t)`` (of the inverse)
    #: mapping predictions of the fitted space back to the user's targets
    #: (TransformedTargetRegressor), or None.
    target_transform = None

    def mean(self, Z):
        """The estimator's prediction from the linear predictor (its inverse
        link): the first decision value unless a family says otherwise."""
        return Z[:, 0]

    def predicted(self, Z):
        """What ``predict`` returns: :meth:`mean`, mapped back through
        ``target_transform`` when there is one. Shape (n,)."""
        mean = self.mean(Z)
        if self.target_transform is None:
            return mean
        return self.target_transform.inverse(mean)

    def predicted_gradient(self, Z):
        """Derivative of :meth:`predicted` with respect to ``Z``, shape (n, K):
        :meth:`prediction_gradient` times the target transform's derivative
        (chain rule)."""
        gradient = self.prediction_gradient(Z)
        if self.target_transform is None:
            return gradient
        return gradient * self.target_transform.derivative(self.mean(Z))[:, None]

    def with_target_transform(self, target_transform):
        """A copy whose predictions go through ``target_transform``."""
        other = copy.copy(self)
        other.target_transform = target_transform
        return other

    # ------------------------------------------------------ input and refits
    @property
    def n_inputs(self):
        """Columns of the input the estimator takes (before :meth:`design`)."""
        return self.n_features

    def design(self, X):
        """The design matrix of the linear model for estimator inputs ``X``.

        The identity for linear models; a kernel model maps its inputs to
        the features of its kernel here.
        """
        return X

    def refit_estimator(self, estimator):
        """The estimator whose refits on :meth:`design` matrices are the truth.

        The fitted estimator itself for linear models.
        """
        return estimator

    def removal_weights(self, y, sample_weight, rows):
        """Row weights ``c_ik`` of the objective a refit without ``rows`` minimises.

        Those rows get weight 0; class weights and normalisations are
        recomputed from the remaining rows as a refit would.
        """
        weight = np.array(sample_weight, dtype=float)
        weight[rows] = 0.0
        return self.row_weights(y, weight)

    def linear_penalty(self):
        """Gradient of a penalty term linear in ``theta``, shape (n_parameters,),
        or None.

        An L1 norm restricted to the coefficients it keeps nonzero, with their
        signs fixed, is linear: ``lambda * sign(w_j) * w_j``.
        """
        return None

    # ------------------------------------------------------- family interface
    def encode_target(self, y):
        """Encode ``y`` into the array the loss methods take."""
        raise NotImplementedError

    def output_losses(self, Y, Z):
        """Test loss of each row in each output, unweighted, shape (n, K).

        Losses that couple the outputs (softmax) return shape (n, 1).
        """
        raise NotImplementedError

    def loss(self, Y, Z):
        """Per-sample test loss, unweighted and without penalty, shape (n,)."""
        return self.output_losses(Y, Z).sum(axis=1)

    def loss_gradient(self, Y, Z):
        """Derivative of :meth:`loss` with respect to ``Z``, shape (n, K)."""
        raise NotImplementedError

    def loss_hessian(self, Y, Z):
        """Second derivative of the training loss w.r.t. ``Z``: (n, K) or (n, K, K)."""
        raise NotImplementedError

    def training_output_losses(self, Y, Z):
        """Losses entering the training objective; differ from the test loss
        only for smoothed losses."""
        return self.output_losses(Y, Z)

    def training_loss_gradient(self, Y, Z):
        """Derivative of :meth:`training_output_losses` with respect to ``Z``."""
        return self.loss_gradient(Y, Z)

    def training_derivatives(self, Y, Z):
        """``(training_loss_gradient, loss_hessian)`` at ``Z``; families whose
        two derivatives share work (a sigmoid) compute them together."""
        return self.training_loss_gradient(Y, Z), self.loss_hessian(Y, Z)

    def training_gradient_change(self, Y, Z, dZ):
        """``training_loss_gradient(Y, Z + dZ) - training_loss_gradient(Y, Z)``.

        Families override it with a form free of cancellation, so that a
        leave-one-out gradient can be computed as a sum of changes whose
        rounding error is proportional to the change, not to the gradient
        terms themselves.
        """
        return self.training_loss_gradient(Y, Z + dZ) - self.training_loss_gradient(Y, Z)

    def row_weights(self, y, sample_weight):
        """Weights ``c_ik`` of each row in each output's objective.

        Shape (n, K), or (n, 1) for losses that couple the outputs.
        """
        raise NotImplementedError

    def penalty_diagonal(self):
        """Diagonal of the penalty's Hessian, shape (n_parameters,)."""
        raise NotImplementedError

    def stationarity_gradient(self, problem):
        """Gradient used to judge whether the parameters are optimal.

        None for smooth losses (the objective's gradient is used); non-smooth
        losses return their smallest subgradient.
        """
        return None

    def null_space(self):
        """Orthonormal basis ``(n_parameters, r)`` of directions that leave the
        objective unchanged, or None. Gradients are orthogonal to it."""
        return None

    def prediction_gradient(self, Z):
        """Derivative of :meth:`mean` with respect to ``Z``, shape (n, K)."""
        raise NotImplementedError

    def sole_members(self, y, sample_weight):
        """Rows whose removal leaves a class without rows (classifiers): a
        refit could not predict that class. Boolean mask of shape (n,)."""
        return np.zeros(len(y), dtype=bool)

    def removal_shift(self, problem):
        """Parts of each row's removal gradient that are not ``r_i (x) x~_i``.

        Returns None or ``(vectors, delta)``: ``vectors`` (n_parameters, G)
        and ``delta`` (n, G); the refit without row ``i`` moves the parameters
        by about ``H^{-1} (g_i - vectors @ delta[i])``. Used when the objective
        is normalised by the number (or total weight) of rows, so that a row
        takes a share of the penalty with it, and for a profiled scale.
        """
        return None

    def hessian_correction(self, problem):
        """A low-rank term of the Hessian: None or ``(B, c)`` with ``B``
        (n_parameters, r) and ``c`` (r,), the Hessian being
        ``tilde X^T D tilde X + diag(p) + B diag(c) B^T`` (a profiled
        parameter's Schur complement). A family with one has no Hessian factor.
        """
        return None

    def removal_terms(self, y, sample_weight, Y, Z):
        """Corrections for refits that change other rows' weights.

        Returns ``(row_scale, class_index, class_vectors)`` or None. ``row_scale``
        (n, K) multiplies each row's own gradient, ``class_vectors``
        (n_groups, n_parameters) is subtracted from the removal gradient of every
        row ``i`` with ``class_index[i]`` equal to its index.
        """
        return None

    def row_gradients(self, X, R):
        """Gradients ``R_i (x) tilde x_i`` of a block of rows as columns:
        (n_parameters, n). Only ever called on blocks of rows."""
        X = X.compute() if is_dask(X) else X
        n = X.shape[0]
        out = np.empty((self.n_outputs, self.n_columns, n))
        for k in range(self.n_outputs):
            if sp.issparse(X):
                out[k, : self.n_features] = (sp.diags(R[:, k]) @ X).T.toarray()
            else:
                out[k, : self.n_features] = (R[:, k, None] * X).T
            if self.fit_intercept:
                out[k, -1] = R[:, k]
        return out.reshape(self.n_parameters, n)

    # --------------------------------------------------------------- binding
    def bind(self, X, y, sample_weight=None, theta=None):
        """Return the objective evaluated on data ``(X, y, sample_weight)``."""
        return BoundProblem(self, X, y, sample_weight, theta)


class BoundProblem:
    """The family's objective on fixed training data, at parameters ``theta``.

    Holds the linear predictor ``Z``, the residuals ``R = c * dloss/dZ`` and the
    curvatures ``D = c * d2loss/dZ2``, and exposes the gradient, Hessian,
    Hessian-vector product and a square-root factor of the Hessian. These
    are what the solvers need; the solvers never see an estimator.
    """

    def __init__(self, family, X, y, sample_weight=None, theta=None):
        self.family = family
        self.X = X
        self.y = np.asarray(y)
        n = X.shape[0]
        self.sample_weight = (
            np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        )
        self.theta = family.theta if theta is None else np.asarray(theta, float)
        self.Y = family.encode_target(self.y)
        self.Z = family.decision(X, self.theta)
        self.weights = family.row_weights(self.y, self.sample_weight)
        self._derivatives()
        self.penalty = family.penalty_diagonal()
        self.linear = family.linear_penalty()
        self.correction = family.hessian_correction(self)

    def _derivatives(self):
        """Residuals and curvatures of every row at the linear predictor ``Z``."""
        family = self.family
        gradient, curvature = family.training_derivatives(self.Y, self.Z)
        self.residuals = self.weights * gradient
        if family.full_output_hessian:
            self.curvature = self.weights[:, :, None] * curvature
        else:
            self.curvature = self.weights * curvature
        self._statistics = self._gradient_scale = None

    def moved(self, step):
        """The objective at ``theta - step`` on the same rows: the linear
        predictor moved by one pass over ``X`` (targets and weights reused)."""
        other = copy.copy(self)
        other.theta = self.theta - step
        other.Z = self.Z - self.parameters_to_rows(step[:, None])[:, :, 0]
        other._derivatives()
        other.correction = other.family.hessian_correction(other)
        return other

    @property
    def factorable(self):
        """True when ``J^T J`` (:meth:`hessian_factor`) plus the penalty is the
        Hessian: every curvature non-negative and no low-rank correction."""
        if self.correction is not None:
            return False
        if self.family.full_output_hessian:
            return True  # softmax blocks are semidefinite
        return bool(np.all(self.curvature >= 0))

    @property
    def n_parameters(self):
        return self.family.n_parameters

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def distributed_rows(self):
        """Whether the rows are a dask array (passes run as dask tasks)."""
        return is_dask(self.X)

    @property
    def n_factor_rows(self):
        """Rows of :meth:`hessian_factor`: one per sample and output."""
        return self.X.shape[0] * self.family.n_outputs

    def null_space(self):
        return self.family.null_space()

    def intercept_columns(self):
        """Parameter indices of the intercepts (one per output), or empty.

        A factorisation that orthogonalises against these columns first works
        on centred data, which keeps full accuracy when the features have large
        means.
        """
        fam = self.family
        if not fam.fit_intercept:
            return np.empty(0, dtype=np.intp)
        return np.arange(fam.n_outputs) * fam.n_columns + fam.n_features

    # ------------------------------------------------------- contractions
    def rows_to_parameters(self, R, X=None):
        """``sum_i R_i tilde x_i^T`` flattened: ``(n, K)`` -> ``(n_parameters,)``.

        With ``R`` of shape ``(n, K, m)`` the result is ``(n_parameters, m)``.
        """
        X = self.X if X is None else X
        R = np.asarray(R, dtype=float)
        single = R.ndim == 2
        out = sum_rows(partial(_rows_to_parameters, self.family), X,
                       R[:, :, None] if single else R)
        return out[:, 0] if single else out

    def row_gradients(self, X, R):
        """Per-row gradients ``R_i tilde x_i^T`` as columns: (n_parameters, n).

        Used for a block of test rows; never called on the training set.
        """
        return self.family.row_gradients(X, R)

    def parameters_to_rows(self, V, X=None):
        """``tilde x_i^T V_k`` for each row and output.

        ``V`` of shape ``(n_parameters, m)`` gives ``(n, K, m)``.
        """
        X = self.X if X is None else X
        V = np.asarray(V, dtype=float)
        return map_rows(partial(_parameters_to_rows, self.family, V), X,
                        block_bytes=8 * BLOCK_BYTES)

    # ------------------------------------------------------- objective
    def objective(self):
        fam = self.family
        data = np.sum(self.weights * fam.training_output_losses(self.Y, self.Z))
        value = data + 0.5 * np.sum(self.penalty * self.theta**2)
        return value if self.linear is None else value + self.linear @ self.theta

    def penalty_gradient(self, theta=None):
        """Gradient of the penalty at ``theta`` (the bound parameters when None);
        ``theta`` may be a block of columns (d, m)."""
        theta = self.theta if theta is None else theta
        p, linear = self.penalty, self.linear
        if theta.ndim == 2:
            p = p[:, None]
            linear = None if linear is None else linear[:, None]
        return p * theta if linear is None else p * theta + linear

    def gradient(self):
        if self._statistics is not None:
            data = self._statistics[0]
        elif self._gradient_scale is not None:
            data = self._gradient_scale[0]
        else:
            data = self.rows_to_parameters(self.residuals)
        return data + self.penalty_gradient()

    def gradient_and_scale(self):
        """``(sum_i g_i, sum_i |g_i|)``: the data gradient and its absolute
        scale, in one pass over ``X``; cached."""
        if self._gradient_scale is None:
            self._gradient_scale = sum_rows(
                partial(_gradient_scale, self.family), self.X, self.residuals)
        return self._gradient_scale

    def statistics(self):
        """The data gradient and the data Hessian ``X~^T D X~`` (a list of
        output blocks, upper triangles of the diagonal ones), both from ONE
        pass over ``X``; cached."""
        if self._statistics is None:
            self._statistics = sum_rows(partial(_statistics, self.family), self.X,
                                        self.residuals, self.curvature)
        return self._statistics

    def relative_gradient_norm(self, subgradient=False):
        """``||grad F|| / (sum_i ||grad f_i||_abs + ||p theta||)``: about 0 at an optimum.

        With ``subgradient=True`` a non-smooth loss is judged by its smallest
        subgradient rather than by the gradient of its smoothed version.
        """
        data_gradient, scale = self.gradient_and_scale()
        grad = self.family.stationarity_gradient(self) if subgradient else None
        penalty_gradient = self.penalty_gradient()
        if grad is None:
            grad = data_gradient + penalty_gradient
        denom = np.linalg.norm(scale) + np.linalg.norm(penalty_gradient)
        return float(np.linalg.norm(grad) / max(denom, np.finfo(float).tiny))

    def hessian(self):
        """Dense Hessian ``tilde X^T D tilde X + diag(p)``."""
        fam = self.family
        K, P = fam.n_outputs, fam.n_columns
        if (self._statistics is None and isinstance(self.X, np.ndarray)
                and self.X.shape[0] * P * fam.n_parameters * K <= SMALL_HESSIAN):
            H = _small_hessian(fam, self.X, self.curvature)
        else:
            H = self._hessian_from_statistics()
        H[np.diag_indices_from(H)] += self.penalty
        if self.correction is not None:
            B, c = self.correction
            H += (B * c) @ B.T
        return H

    def _hessian_from_statistics(self):
        fam = self.family
        K, P = fam.n_outputs, fam.n_columns
        grams = self.statistics()[1]
        if K == 1:  # the mirrored block is the Hessian
            H = np.ascontiguousarray(_mirrored(grams[0]))
        else:
            H = np.zeros((K, P, K, P))
            for (k, l), block in zip(_output_pairs(fam), grams):
                H[k, :, l, :] = _mirrored(block) if k == l else block
                if l != k:
                    H[l, :, k, :] = block.T
            H = H.reshape(fam.n_parameters, fam.n_parameters)
        return H

    def hvp(self, v, rows=None):
        """Hessian-vector product without forming the Hessian; ``v`` (d,) or (d, m).

        Costs one pass over ``X`` (O(nnz) for sparse ``X``) per column of ``v``.

        Parameters
        ----------
        v : ndarray of shape (d,) or (d, m)
        rows : array-like of int, default=None
            Use only these training rows, rescaled by ``n / len(rows)``: an
            unbiased stochastic estimate of ``H v`` when the rows are drawn
            uniformly (the penalty term is exact). None uses every row.
        """
        v = np.asarray(v, dtype=float)
        one = v.ndim == 1
        V = v[:, None] if one else v
        if rows is None:
            X, curvature, scale = self.X, self.curvature, 1.0
        else:
            rows = np.asarray(rows, dtype=np.intp)
            X, curvature = self.X[rows], self.curvature[rows]
            scale = self.n_samples / max(len(rows), 1)
        out = sum_rows(partial(_hessian_product, self.family, V), X, curvature)
        if scale != 1.0:
            out *= scale
        out += self.penalty[:, None] * V
        if self.correction is not None:
            B, c = self.correction
            out += B @ (c[:, None] * (B.T @ V))
        return out[:, 0] if one else out

    def hessian_diagonal(self):
        """Diagonal of the Hessian without forming it, shape (n_parameters,).

        ``sum_i D_i[k, k] x_ij^2 + p`` (column sums of ``D`` for the intercept);
        O(nnz) for sparse ``X``, which is never densified.
        """
        fam = self.family
        if fam.full_output_hessian:
            idx = np.arange(fam.n_outputs)
            dk = self.curvature[:, idx, idx]  # (n, K)
        else:
            dk = self.curvature
        out = sum_rows(partial(_hessian_diagonal, fam), self.X, dk)
        out = out.ravel() + self.penalty
        if self.correction is not None:
            B, c = self.correction
            out += (B**2) @ c
        return out

    def _factor_roots(self):
        """``L_i`` with ``D_i = L_i L_i^T``: (n, K, K)."""
        K = self.family.n_outputs
        if self.family.full_output_hessian:
            # D_i = L_i L_i^T by an eigendecomposition (D_i is only semidefinite)
            vals, vecs = np.linalg.eigh(self.curvature)
            return vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]
        L = np.zeros((self.n_samples, K, K))
        idx = np.arange(K)
        L[:, idx, idx] = np.sqrt(np.clip(self.curvature, 0, None))
        return L

    def _lazy_factor(self):
        """:meth:`hessian_factor` of dask rows, lazy and in the same row order
        (output-major): one block of rows per column of ``L_i``."""
        import dask.array as da

        from .._rows import lazy_map_rows

        L = self._factor_roots()
        width = self.family.n_parameters
        blocks = [lazy_map_rows(partial(_factor_rows, self.family), self.X,
                                np.ascontiguousarray(L[:, :, col]), width=width)
                  for col in range(self.family.n_outputs)]
        return blocks[0] if len(blocks) == 1 else da.concatenate(blocks)

    def hessian_factor(self):
        """A matrix ``J`` with ``J^T J = tilde X^T D tilde X``.

        Rows are ``sqrt(D_i) tilde x_i`` (one per row and output, ``L_i^T``
        Kronecker ``tilde x_i`` for the softmax with ``D_i = L_i L_i^T``). Sparse
        when ``X`` is sparse. Only exists when :attr:`factorable`.
        """
        if not self.factorable:
            raise ValueError(
                "The Hessian has negative row curvatures or a low-rank correction, "
                "so it has no factor J^T J; factorise the dense Hessian instead "
                "(the primal form).")
        fam = self.family
        X = self.X
        n, K = X.shape[0], fam.n_outputs
        if is_dask(X):
            return self._lazy_factor()
        Xt = X
        if fam.fit_intercept:
            ones = np.ones((n, 1))
            Xt = sp.hstack([X, ones], format="csr") if sp.issparse(X) else np.hstack([X, ones])
        if fam.full_output_hessian:
            # D_i = L_i L_i^T by an eigendecomposition (D_i is only semidefinite)
            vals, vecs = np.linalg.eigh(self.curvature)
            L = vecs * np.sqrt(np.clip(vals, 0, None))[:, None, :]  # (n, K, K)
        else:
            L = np.zeros((n, K, K))
            idx = np.arange(K)
            L[:, idx, idx] = np.sqrt(np.clip(self.curvature, 0, None))
        blocks = []
        for col in range(K):  # one block of n rows per column of L_i
            row_blocks = []
            for k in range(K):
                scale = L[:, k, col]
                if sp.issparse(Xt):
                    row_blocks.append(sp.diags(scale) @ Xt)
                else:
                    row_blocks.append(scale[:, None] * Xt)
            if sp.issparse(Xt):
                blocks.append(sp.hstack(row_blocks, format="csr"))
            else:
                blocks.append(np.hstack(row_blocks))
        if K == 1:
            return blocks[0]
        return sp.vstack(blocks, format="csr") if sp.issparse(Xt) else np.vstack(blocks)


# ---------------------------------------------------------------- row blocks
# Module-level block functions of the passes over X: they see one block of
# rows (numpy or sparse) and its slices of the per-row arrays, so the same code
# runs on a whole matrix, on cache-sized blocks and on dask chunks.

def _rows_to_parameters(family, X, R, out=None):
    """``sum_i R_i (x) x~_i`` for ``R`` of shape (n, K, m): (n_parameters, m)."""
    K, P, p, m = family.n_outputs, family.n_columns, family.n_features, R.shape[2]
    result = np.empty((K, P, m))
    for k in range(K):
        result[k, :p] = _dot(X.T, R[:, k, :])
        if family.fit_intercept:
            result[k, -1] = R[:, k, :].sum(axis=0)
    result = result.reshape(K * P, m)
    if out is None:
        return result
    out += result
    return out


def _parameters_to_rows(family, V, X):
    """``x~_i^T V_k`` of each row and output: (n, K, m) for ``V`` (d, m)."""
    K, P, p = family.n_outputs, family.n_columns, family.n_features
    m = V.shape[1]
    V = V.reshape(K, P, m)
    out = np.empty((X.shape[0], K, m))
    for k in range(K):
        out[:, k, :] = _dot(X, V[k, :p])
        if family.fit_intercept:
            out[:, k, :] += V[k, -1]
    return out


def _gradient_scale_block(family, X, R, out=None):
    gradient = _rows_to_parameters(family, X, R[:, :, None])[:, 0]
    scale = _rows_to_parameters(family, abs(X), np.abs(R)[:, :, None])[:, 0]
    if out is None:
        return gradient, scale
    out[0][...] += gradient
    out[1][...] += scale
    return out


def _gradient_scale(family, X, R):
    """Data gradient and absolute scale, block by block while rows are in cache."""
    return sum_rows(partial(_gradient_scale_block, family), X, R,
                    block_bytes=8 * BLOCK_BYTES, accumulates=True)


def _output_pairs(family):
    """Output pairs ``(k, l)``, ``k <= l``, with a Hessian block."""
    K = family.n_outputs
    if family.full_output_hessian:
        return [(k, l) for k in range(K) for l in range(k, K)]
    return [(k, k) for k in range(K)]


def _statistics_block(family, X, R, D, out=None):
    """Data gradient and Hessian blocks of one block of rows, accumulated.

    The gradient of output ``k`` rides in the symmetric rank-k update of its
    diagonal Hessian block as one more column, ``r_k / sqrt(D_kk)``:
    ``S^T c = X~^T r_k`` (:func:`_add_gram_and_gradient`).
    """
    q = family.n_columns
    if out is None:
        out = [np.zeros((q + (k == l), q + (k == l)), order="F")
               for k, l in _output_pairs(family)]
    for i, (k, l) in enumerate(_output_pairs(family)):
        d = D[:, k, l] if family.full_output_hessian else D[:, k]
        if k == l:
            out[i] = _add_gram_and_gradient(X, d, R[:, k], family.fit_intercept, out[i])
        else:
            _add_weighted_gram(X, d, family.fit_intercept, out[i], symmetric=False)
    return out


def _small_hessian(family, X, D):
    """``X~^T D X~`` of a small dense problem as ONE product, ``X~^T [x~_i D_i]``,
    symmetrised: the blocked rank-k updates of :func:`_statistics` (one per
    pair of outputs) took 0.31 against 0.11 ms on the 124 rows of three-class
    wine (multinomial), 0.17 against 0.11 ms on 398 rows of 30 features."""
    K, P = family.n_outputs, family.n_columns
    n = X.shape[0]
    Xt = np.hstack([X, np.ones((n, 1))]) if family.fit_intercept else X
    if family.full_output_hessian:  # D (n, K, K): every pair of outputs
        T = Xt[:, :, None] * D.reshape(n, 1, K * K)
        H = (Xt.T @ T.reshape(n, -1)).reshape(P, P, K, K).transpose(2, 0, 3, 1)
    else:  # D (n, K): one block per output
        G = (Xt.T @ (Xt[:, :, None] * D[:, None, :]).reshape(n, -1)).reshape(P, P, K)
        H = np.zeros((K, P, K, P))
        for k in range(K):
            H[k, :, k, :] = G[:, :, k]
    H = H.reshape(K * P, K * P)
    return 0.5 * (H + H.T)


def _mirrored(upper):
    """The symmetric matrix whose upper triangle was summed into ``upper``."""
    full = upper + upper.T
    full.flat[:: full.shape[0] + 1] *= 0.5
    return full


def _statistics(family, X, R, D):
    """Data gradient and Hessian blocks in one pass over cache-sized blocks of
    rows; the gradient columns are read off the diagonal Gram blocks."""
    q = family.n_columns
    # from about 64 columns one rank-k update at a time with the BLAS's own
    # threads beats two Python threads of one BLAS thread each (they share
    # the caches and each adds its own copy of the Gram matrix), and blocks
    # of about 2,048 rows beat 4 MiB ones: at n = 10,000 4.9 against 7.5 ms
    # (d = 100), 14.4 against 16.8 ms (d = 200); at n = 30,000, d = 1,000 483
    # against 762 ms (554 ms in order over 4 MiB blocks)
    in_order = q >= IN_ORDER_COLUMNS
    block = (IN_ORDER_ROWS * 8 * max(X.shape[1], 1) if in_order
             else max(BLOCK_BYTES, 256 * 8 * q))
    grams = sum_rows(partial(_statistics_block, family), X, R, D, block_bytes=block,
                     accumulates=True, in_order=in_order)
    gradient = np.zeros((family.n_outputs, q))
    out = []
    for G, (k, l) in zip(grams, _output_pairs(family)):
        if k == l:
            gradient[k] = G[:q, q]
            G = G[:q, :q]
        out.append(G)
    return gradient.ravel(), out


def _factor_rows(family, X, L):
    """Factor rows ``[L_i1 x~_i, ..., L_iK x~_i]`` of a block (one column of L)."""
    Xt = np.hstack([X, np.ones((X.shape[0], 1))]) if family.fit_intercept else X
    return np.hstack([L[:, k, None] * Xt for k in range(family.n_outputs)])


def _hessian_product(family, V, X, D):
    """``sum_i (D_i U_i) (x) x~_i`` with ``U_i = x~_i^T V``: one block's H V."""
    U = _parameters_to_rows(family, V, X)  # (n, K, m)
    if family.full_output_hessian:
        DU = np.einsum("ikl,ilm->ikm", D, U)
    else:
        DU = D[:, :, None] * U
    return _rows_to_parameters(family, X, DU)


def _hessian_diagonal(family, X, dk):
    out = np.empty((family.n_outputs, family.n_columns))
    p = family.n_features
    if sp.issparse(X):
        X2 = sp.csr_matrix(X.multiply(X))
        out[:, :p] = _dot(X2.T, dk).T
    else:
        out[:, :p] = np.einsum("ij,ij,ik->kj", X, X, dk)
    if family.fit_intercept:
        out[:, -1] = dk.sum(axis=0)
    return out


def _add_gram_and_gradient(X, d, r, fit_intercept, G):
    """``G[:q, :q] += tilde X^T diag(d) tilde X`` and ``G[:q, q] += tilde X^T r``
    for a Fortran-ordered ``G`` of size ``q + 1`` (upper triangle).

    One symmetric rank-k update of ``[sqrt(d) X, sqrt(d), r / sqrt(d)]``: the
    gradient costs one more column of the same product instead of another
    pass over the rows. Rows with ``d = 0`` (a zero weight, a flat part of the
    loss) add their gradient by a product of their own.
    """
    p = X.shape[1]
    q = p + int(fit_intercept)
    if sp.issparse(X) or not np.all(d >= 0):
        _add_weighted_gram(X, d, fit_intercept, G[:q, :q])
        G[:p, q] += _dot(X.T, r)
        if fit_intercept:
            G[p, q] += r.sum()
        return G
    root = np.sqrt(d)
    positive = root > 0
    S = np.empty((X.shape[0], q + 1))
    np.multiply(X, root[:, None], out=S[:, :p])
    if fit_intercept:
        S[:, p] = root
    np.divide(r, root, out=S[:, q], where=positive)
    flat = np.flatnonzero(~positive)
    if flat.size:
        S[flat, q] = 0.0
        G[:p, q] += _dot(X[flat].T, r[flat])
        if fit_intercept:
            G[p, q] += r[flat].sum()
    # S.T is Fortran-ordered, so syrk reads S without a copy (upper part)
    return blas.dsyrk(1.0, S.T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)


def _add_weighted_gram(X, d, fit_intercept, G, symmetric=True):
    """``G += tilde X^T diag(d) tilde X`` with ``tilde X = [X, 1]``.

    Dense ``X`` with non-negative weights: a symmetric rank-k update
    (``syrk``, half the flops of a general product) of ``[sqrt(d) X,
    sqrt(d)]`` into the upper triangle of the Fortran-ordered ``G``; the
    caller symmetrises. Otherwise (sparse ``X``, signed weights) a general
    product, added in place (``G`` may be a view): its upper triangle for a
    diagonal block (``symmetric``), the whole block otherwise.
    """
    n, p = X.shape
    if sp.issparse(X) or not symmetric or not np.all(d >= 0):
        DX = sp.diags(d) @ X if sp.issparse(X) else X * d[:, None]
        block = _dot(X.T, DX)
        G[:p, :p] += np.triu(block) if symmetric else block
        if fit_intercept:
            col = np.asarray(DX.sum(axis=0)).ravel()
            G[:p, p] += col
            if not symmetric:
                G[p, :p] += col
            G[p, p] += d.sum()
        return G
    q = p + int(fit_intercept)
    root = np.sqrt(d)
    S = np.empty((n, q))
    np.multiply(X, root[:, None], out=S[:, :p])
    if fit_intercept:
        S[:, p] = root
    # S.T is Fortran-ordered, so syrk reads S without a copy (upper part)
    return blas.dsyrk(1.0, S.T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)
