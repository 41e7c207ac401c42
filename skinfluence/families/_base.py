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

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

__all__ = ["LinearFamily", "BoundProblem", "safe_dot"]


def safe_dot(X, A):
    """``X @ A`` for dense or sparse ``X``, returning a dense array."""
    out = X @ A
    return np.asarray(out.toarray() if sp.issparse(out) else out)


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
        return safe_dot(X, coef.T) + intercept

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
        self.residuals = self.weights * family.training_loss_gradient(self.Y, self.Z)
        curvature = family.loss_hessian(self.Y, self.Z)
        if family.full_output_hessian:
            self.curvature = self.weights[:, :, None] * curvature
        else:
            self.curvature = self.weights * curvature
        self.penalty = family.penalty_diagonal()
        self.linear = family.linear_penalty()
        self.correction = family.hessian_correction(self)

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
        fam = self.family
        R = np.asarray(R, dtype=float)
        K = fam.n_outputs
        single = R.ndim == 2
        if single:
            R = R[:, :, None]
        m = R.shape[2]
        out = np.empty((K, fam.n_columns, m))
        for k in range(K):
            out[k, : fam.n_features] = safe_dot(X.T, R[:, k, :])
            if fam.fit_intercept:
                out[k, -1] = R[:, k, :].sum(axis=0)
        out = out.reshape(fam.n_parameters, m)
        return out[:, 0] if single else out

    def row_gradients(self, X, R):
        """Per-row gradients ``R_i tilde x_i^T`` as columns: (n_parameters, n).

        Used for a block of test rows; never called on the training set.
        """
        fam = self.family
        n = X.shape[0]
        out = np.empty((fam.n_outputs, fam.n_columns, n))
        for k in range(fam.n_outputs):
            if sp.issparse(X):
                out[k, : fam.n_features] = (sp.diags(R[:, k]) @ X).T.toarray()
            else:
                out[k, : fam.n_features] = (R[:, k, None] * X).T
            if fam.fit_intercept:
                out[k, -1] = R[:, k]
        return out.reshape(fam.n_parameters, n)

    def parameters_to_rows(self, V, X=None):
        """``tilde x_i^T V_k`` for each row and output.

        ``V`` of shape ``(n_parameters, m)`` gives ``(n, K, m)``.
        """
        X = self.X if X is None else X
        fam = self.family
        V = np.asarray(V, dtype=float)
        m = V.shape[1]
        V = V.reshape(fam.n_outputs, fam.n_columns, m)
        out = np.empty((X.shape[0], fam.n_outputs, m))
        for k in range(fam.n_outputs):
            out[:, k, :] = safe_dot(X, V[k, : fam.n_features])
            if fam.fit_intercept:
                out[:, k, :] += V[k, -1]
        return out

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
        return self.rows_to_parameters(self.residuals) + self.penalty_gradient()

    def relative_gradient_norm(self, subgradient=False):
        """``||grad F|| / (sum_i ||grad f_i||_abs + ||p theta||)``: about 0 at an optimum.

        With ``subgradient=True`` a non-smooth loss is judged by its smallest
        subgradient rather than by the gradient of its smoothed version.
        """
        R = np.abs(self.residuals)
        if sp.issparse(self.X):
            scale = self.rows_to_parameters(R, abs(self.X))
            data_gradient = self.rows_to_parameters(self.residuals)
        else:  # block by block while the rows are in cache; |X| never copied whole
            scale = data_gradient = 0.0
            for rows in _row_blocks(*self.X.shape, bytes_per_block=2**25):
                block = self.X[rows]
                data_gradient = data_gradient + self.rows_to_parameters(
                    self.residuals[rows], block)
                scale = scale + self.rows_to_parameters(R[rows], np.abs(block))
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
        H = np.zeros((K, P, K, P))
        for k in range(K):
            for l in range(k, K):
                if fam.full_output_hessian:
                    d = self.curvature[:, k, l]
                elif k == l:
                    d = self.curvature[:, k]
                else:
                    continue
                block = _weighted_gram(self.X, d, fam.fit_intercept)
                H[k, :, l, :] = block
                if l != k:
                    H[l, :, k, :] = block.T
        H = H.reshape(fam.n_parameters, fam.n_parameters)
        H[np.diag_indices_from(H)] += self.penalty
        if self.correction is not None:
            B, c = self.correction
            H += (B * c) @ B.T
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
        U = self.parameters_to_rows(V, X)  # (n, K, m)
        if self.family.full_output_hessian:
            DU = np.einsum("ikl,ilm->ikm", curvature, U)
        else:
            DU = curvature[:, :, None] * U
        out = self.rows_to_parameters(DU, X)
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
        X = self.X
        if fam.full_output_hessian:
            idx = np.arange(fam.n_outputs)
            dk = self.curvature[:, idx, idx]  # (n, K)
        else:
            dk = self.curvature
        out = np.empty((fam.n_outputs, fam.n_columns))
        if sp.issparse(X):
            X2 = sp.csr_matrix(X.multiply(X))
            out[:, : fam.n_features] = safe_dot(X2.T, dk).T
        else:
            out[:, : fam.n_features] = np.einsum("ij,ij,ik->kj", X, X, dk)
        if fam.fit_intercept:
            out[:, -1] = dk.sum(axis=0)
        out = out.ravel() + self.penalty
        if self.correction is not None:
            B, c = self.correction
            out += (B**2) @ c
        return out

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


def _row_blocks(n, p, bytes_per_block=2**22):
    """Slices of about ``bytes_per_block`` bytes of an ``(n, p)`` float matrix."""
    step = max(1, bytes_per_block // (8 * max(p, 1)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _weighted_gram(X, d, fit_intercept):
    """``tilde X^T diag(d) tilde X`` with ``tilde X = [X, 1]``.

    Dense ``X`` with non-negative weights is processed in blocks of rows (no
    ``n x d`` temporary) by symmetric rank-k updates (``syrk``, half the flops
    of a general product) of ``[sqrt(d) X, sqrt(d)]``.
    """
    n, p = X.shape
    q = p + int(fit_intercept)
    if sp.issparse(X) or not np.all(d >= 0):
        DX = sp.diags(d) @ X if sp.issparse(X) else X * d[:, None]
        G = X.T @ DX
        G = np.asarray(G.toarray() if sp.issparse(G) else G)
        if not fit_intercept:
            return G
        col = np.asarray(DX.sum(axis=0)).ravel()
        out = np.empty((q, q))
        out[:p, :p] = G
        out[:p, p] = out[p, :p] = col
        out[p, p] = d.sum()
        return out
    G = np.zeros((q, q), order="F")
    for rows in _row_blocks(n, q):
        root = np.sqrt(d[rows])
        S = np.empty((root.size, q))
        np.multiply(X[rows], root[:, None], out=S[:, :p])
        if fit_intercept:
            S[:, p] = root
        # S.T is Fortran-ordered, so syrk reads S without a copy (upper part)
        G = blas.dsyrk(1.0, S.T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)
    return np.triu(G) + np.triu(G, 1).T
