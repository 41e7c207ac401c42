"""Kernel ridge regression: KernelRidge with any kernel, including precomputed.

KernelRidge solves, in its dual coefficients ``beta`` over the ``n`` training
rows,

.. math::

    \\min_\\beta \\sum_i s_i (y_i - K_i \\beta)^2 + \\alpha\\, \\beta^\\top K \\beta,
    \\qquad (S K + \\alpha I)\\, \\beta = S y,

and predicts ``f(x) = k(x, X) beta``. With the eigendecomposition
``K = U diag(lambda) U^T`` the *empirical kernel map*
``phi(x) = k(x, X) U diag(lambda)^{-1/2}`` gives training features
``F = U diag(lambda)^{1/2}`` with ``F F^T = K``, and the model is exactly a
ridge regression without intercept on them, with coefficients
``w = F^T beta``:

.. math::

    F(w) = \\sum_i s_i (y_i - \\phi(x_i)^\\top w)^2 + \\alpha \\lVert w \\rVert^2 .

Every prediction only involves ``k(x, X)``, which lies in the span of ``K``
for a positive semi-definite kernel, so this is the same model, not an
approximation; a refit without row ``i`` is the same ridge regression without
row ``i`` (its Gram is ``K`` without row and column ``i``). Its leave-one-out
closed form is the kernel hat matrix's: the change of ``f(x)`` is
``-k(x, X) (S K + alpha I)^{-1} e_i s_i r_i / (1 - h_ii)``,
``h = K (S K + alpha I)^{-1} S``.

The Hessian lives in the ``rank(K) <= n`` dimensional feature space; building
the map costs one ``n x n`` eigendecomposition (O(n^3) time, O(n^2) memory),
refused above :data:`MAX_KERNEL_SAMPLES` rows. Eigenvalues below
``n * eps * lambda_max`` are rounding noise and are dropped; a kernel matrix
with clearly negative eigenvalues is not positive semi-definite and is refused.
A linear kernel needs no map: it is a ridge regression on ``X`` itself.
"""

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import pairwise_kernels

from .multi_output import MultiOutputSquaredFamily

#: the most training rows whose n x n kernel matrix is factorised (8 * n^2 bytes
#: per copy: 0.8 GB at 10 000 rows)
MAX_KERNEL_SAMPLES = 10_000

#: negative eigenvalues below this multiple of the largest one mean the kernel
#: is not positive semi-definite (rounding leaves about n * 1e-16)
INDEFINITE_RTOL = 1e-8


def kernel_matrix(estimator, X, Y=None):
    """``k(X, Y)`` as the fitted KernelRidge computes it."""
    if callable(estimator.kernel):
        params = estimator.kernel_params or {}
    else:
        params = {"gamma": estimator.gamma, "degree": estimator.degree,
                  "coef0": estimator.coef0}
    return pairwise_kernels(X, Y, metric=estimator.kernel, filter_params=True, **params)


class KernelRidgeFamily(MultiOutputSquaredFamily):
    """Squared error of a kernel ridge regression on its empirical kernel map.

    Parameters
    ----------
    coef : ndarray of shape (n_targets, n_components)
        ``w = F^T beta`` per target.
    alpha : float or ndarray of shape (n_targets,)
    kernel_map : callable or None
        Maps the estimator's inputs (the rows of ``X``, or their kernel
        against the training rows for ``kernel="precomputed"``) to the
        features; None for the linear kernel (the inputs are the features).
    n_inputs : int
        Columns of the estimator's input.
    estimator : KernelRidge
        Its parameters define the model refitted for the truth.
    """

    supported = (KernelRidge,)

    def __init__(self, coef, alpha, kernel_map, n_inputs, estimator):
        super().__init__(coef, np.zeros(np.atleast_2d(coef).shape[0]), alpha,
                         fit_intercept=False)
        self.kernel_map = kernel_map
        self._n_inputs = int(n_inputs)
        self.estimator = estimator

    @classmethod
    def from_estimator(cls, estimator, **_):
        X_fit = estimator.X_fit_
        beta = np.asarray(estimator.dual_coef_, dtype=float)
        beta = beta[:, None] if beta.ndim == 1 else beta
        n = X_fit.shape[0]
        alpha = np.ravel(np.asarray(estimator.alpha, dtype=float))
        if estimator.kernel == "linear":  # ridge without intercept on X: w = X^T beta
            coef = np.asarray((X_fit.T @ beta).T)
            return cls(coef, alpha, None, X_fit.shape[1], estimator)
        if n > MAX_KERNEL_SAMPLES:
            raise ValueError(
                f"KernelRidge was fitted on {n} rows: its influence needs the "
                f"eigendecomposition of the {n} x {n} kernel matrix "
                f"({8 * n * n / 2**30:.1f} GiB per copy, O(n^3) time), above "
                f"MAX_KERNEL_SAMPLES={MAX_KERNEL_SAMPLES}. Approximate the kernel "
                "with a feature map and a linear model, which skinfluence explains "
                "in O(n d^2): make_pipeline(Nystroem(kernel=..., n_components=500), "
                "Ridge(alpha=...)) from sklearn.kernel_approximation, or fit on a "
                "subsample.")
        K = (X_fit if estimator.kernel == "precomputed"
             else kernel_matrix(estimator, X_fit))
        K = np.asarray(K.toarray() if sp.issparse(K) else K, dtype=float)
        if K.shape != (n, n):
            raise ValueError(f"A precomputed kernel must be square; got {K.shape}.")
        values, vectors = la.eigh(0.5 * (K + K.T))
        top = max(values[-1], 0.0)
        if top == 0.0 or values[0] < -INDEFINITE_RTOL * top:
            raise ValueError(
                f"The kernel matrix is not positive semi-definite (eigenvalues from "
                f"{values[0]:.3g} to {values[-1]:.3g}), so KernelRidge is not a "
                "ridge regression in a feature space and its influence is "
                "undefined here. Use a positive semi-definite kernel (rbf, "
                "laplacian, polynomial with coef0 >= 0, linear, cosine, chi2).")
        keep = values > n * np.finfo(float).eps * top
        vectors, values = vectors[:, keep], values[keep]
        features = vectors * np.sqrt(values)  # F, with F F^T = K
        to_features = vectors / np.sqrt(values)  # phi(x) = k(x, X) U diag(lambda)^-1/2
        coef = (features.T @ beta).T
        precomputed = estimator.kernel == "precomputed"

        def kernel_map(X):
            rows = X if precomputed else kernel_matrix(estimator, X, X_fit)
            rows = rows.toarray() if sp.issparse(rows) else np.asarray(rows, dtype=float)
            return rows @ to_features

        return cls(coef, alpha, kernel_map, n if precomputed else X_fit.shape[1],
                   estimator)

    @property
    def subset_engines(self):
        """None with a kernel map: it is built from the training rows, so a
        refit on a subset has parameters in another basis."""
        return ("newton", "refit") if self.kernel_map is None else ()

    @property
    def n_inputs(self):
        return self._n_inputs

    def design(self, X):
        return X if self.kernel_map is None else self.kernel_map(X)

    def refit_estimator(self, estimator):
        """KernelRidge with a linear kernel on the features: on the training
        features without row ``i`` its Gram is ``K`` without row and column
        ``i``, so its refits are KernelRidge's own refits."""
        if self.kernel_map is None:
            return estimator
        return KernelRidge(alpha=estimator.alpha, kernel="linear")
