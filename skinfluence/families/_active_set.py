"""What L1 (and elastic-net) families share: the smooth problem on the active set.

An objective with an L1 part,

.. math::

    F(\\theta) = \\sum_i \\sum_k c_{ik}\\, \\ell_k(y_i, z_i)
                 + \\tfrac12 \\theta^\\top \\operatorname{diag}(p)\\, \\theta
                 + \\sum_j \\lambda_j |\\theta_j|,

is not differentiable where a coefficient is zero, but with the *support*
``A = {j : theta_j != 0}`` and its signs ``sigma`` fixed it is smooth: the L1
part is the linear term ``lambda_A^T (sigma_A * theta_A)``, the inactive
coordinates stay at zero. The influence of a row is then the smooth influence
of this reduced problem; it is exact (for squared loss) as long as removing the
row does not change the support, which the KKT conditions tell:

* on ``A``: ``grad_j + lambda_j sigma_j = 0`` and the sign of ``theta_j`` kept;
* off ``A``: ``|grad_j| <= lambda_j`` (``grad`` the gradient of the smooth part).

:class:`ActiveSetProblem` is the bound reduced problem in the full parameter
layout: gradients and every product are zero on the inactive coordinates and
its Hessian is the identity there, so solvers, leverages and Newton steps see
the reduced problem without a change of layout.
"""


import numpy as np
import scipy.sparse as sp

from ._base import BoundProblem

__all__ = ["ActiveSetProblem", "ActiveSetMixin"]


class ActiveSetProblem(BoundProblem):
    """The family's objective with its support fixed (see the module docstring)."""

    def __init__(self, family, X, y, sample_weight=None, theta=None):
        super().__init__(family, X, y, sample_weight, theta)
        self.active = family.active_parameters()
        self._inactive = ~self.active

    def _mask(self, out):
        out[self._inactive] = 0.0
        return out

    def smooth_gradient(self):
        """Gradient of the smooth part at every coordinate (inactive ones too)."""
        return (BoundProblem.rows_to_parameters(self, self.residuals)
                + np.where(self.active, self.penalty * self.theta, 0.0))

    def rows_to_parameters(self, R, X=None):
        return self._mask(super().rows_to_parameters(R, X))

    def gradient(self):  # the one-pass statistics are not masked
        return self._mask(super().gradient())

    def gradient_and_scale(self):
        gradient, scale = super().gradient_and_scale()
        return self._mask(gradient.copy()), self._mask(scale.copy())

    def row_gradients(self, X, R):
        return self._mask(super().row_gradients(X, R))

    def parameters_to_rows(self, V, X=None):
        V = np.asarray(V, dtype=float) * self.active[:, None]
        return super().parameters_to_rows(V, X)

    def hessian(self):
        H = super().hessian()
        H[self._inactive] = 0.0
        H[:, self._inactive] = 0.0
        idx = np.flatnonzero(self._inactive)
        H[idx, idx] = 1.0
        return H

    def hvp(self, v, rows=None):
        v = np.asarray(v, dtype=float)
        mask = self.active if v.ndim == 1 else self.active[:, None]
        out = super().hvp(v * mask, rows)
        out[self._inactive] = v[self._inactive]
        return out

    def hessian_diagonal(self):
        out = super().hessian_diagonal()
        out[self._inactive] = 1.0
        return out

    def hessian_factor(self):
        J = super().hessian_factor()  # columns: the parameters
        if sp.issparse(J):
            return sp.csr_matrix(J @ sp.diags(self.active.astype(float)))
        return J * self.active


class ActiveSetMixin:
    """L1 bookkeeping of a family.

    The family defines :meth:`l1_strength` (``lambda_j`` per parameter) and
    :meth:`l2_penalty` (the quadratic penalty's diagonal before masking) and
    calls :meth:`fix_support` once its coefficients are set. The support and
    the signs stay fixed when the family is bound at other parameters, so the
    bound problem is the smooth reduced one; :meth:`with_support` moves them.
    """

    exact_engine = "active_set"
    #: Newton on the reduced problem keeps the support: not a subset refit
    subset_engines = ("refit",)
    #: the reduced objective's Hessian changes with the data weights after a
    #: removal (normalisation), so a one-step formula is not exact
    quadratic = False

    def l1_strength(self):
        raise NotImplementedError

    def l2_penalty(self):
        raise NotImplementedError

    def fix_support(self, theta=None):
        """Take the support and signs from ``theta`` (the coefficients when None):
        nonzero coordinates, and the unpenalised ones (a free intercept)."""
        theta = self.theta if theta is None else np.asarray(theta, dtype=float)
        self.support = (theta != 0) | (self.l1_strength() == 0)
        self.signs = np.sign(theta) * self.support
        return self

    def active_parameters(self):
        return self.support

    def row_gradients(self, X, R):
        """Row gradients restricted to the support (the reduced problem's)."""
        out = super().row_gradients(X, R)
        out[~self.support] = 0.0
        return out

    def penalty_diagonal(self):
        p = np.array(self.l2_penalty(), dtype=float)
        p[~self.support] = 1.0  # the identity on the frozen zeros
        return p

    def linear_penalty(self):
        return self.l1_strength() * self.signs

    def with_support(self, theta, support=None, signs=None):
        """A copy at ``theta`` whose support and signs are those of ``theta``
        (or the given ones)."""
        other = self.with_theta(theta)
        other.fix_support(theta)
        if support is not None:
            other.support, other.signs = support.copy(), signs * support
        return other

    def bind(self, X, y, sample_weight=None, theta=None):
        return ActiveSetProblem(self, X, y, sample_weight, theta)

    def stationarity_gradient(self, problem):
        """The smallest subgradient of the full objective: ``grad + lambda sigma``
        on the support, the distance of ``grad`` to ``[-lambda, lambda]`` off it."""
        grad = problem.smooth_gradient()
        lam = self.l1_strength()
        on = grad + lam * self.signs
        off = np.sign(grad) * np.maximum(np.abs(grad) - lam, 0.0)
        return np.where(self.support, on, off)
