"""InfluenceExplainer: influence of training rows on test predictions."""

import warnings
from copy import deepcopy
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._newton import newton_minimize
from .families import family_for
from .solvers import DirectSolver

__all__ = ["InfluenceExplainer"]

# memory budget of one block of the (n_train, n_outputs, n_test) contraction
_BLOCK_BYTES = 256 * 2**20


def _unfreeze(estimator):
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


def _is_fitted(estimator):
    try:
        check_is_fitted(_unfreeze(estimator))
    except NotFittedError:
        return False
    return True


def _split_pipeline(estimator):
    """Return ``(transform, final)``: the preprocessing callable and the model."""
    estimator = _unfreeze(estimator)
    if isinstance(estimator, Pipeline):
        final = _unfreeze(estimator.steps[-1][1])
        if len(estimator.steps) == 1:
            return None, final
        return estimator[:-1].transform, final
    return None, estimator


def _estimator_has(attr):
    def check(self):
        return hasattr(self.estimator_ if hasattr(self, "estimator_") else
                       self.estimator, attr)
    return check


class InfluenceExplainer(MetaEstimatorMixin, BaseEstimator):
    """Influence of each training row on each test prediction of a linear model.

    For training row ``i`` and test row ``j`` the influence is the predicted
    change of the test loss when row ``i`` is removed and the model refitted
    (Koh & Liang, 2017):

    .. math::

        \\mathcal{I}_{ji} = \\nabla_\\theta L(z_j)^\\top H^{-1} \\nabla_\\theta f_i
        \\approx L(z_j; \\theta_{-i}) - L(z_j; \\theta),

    where ``f_i`` is row ``i``'s term of the objective the estimator minimised
    (with its sample weight, class weight and ``C``), ``H`` that objective's
    Hessian and ``L`` the unweighted per-sample loss. Positive values mean row
    ``i`` helps prediction ``j`` (removing it would raise the loss); negative,
    that it hurts. Units are those of the loss, for one removal.

    Gradients and Hessians are closed form per model family: squared error
    (LinearRegression, Ridge, RidgeCV), log-loss (LogisticRegression,
    LogisticRegressionCV, binary or multinomial) and (squared) hinge
    (LinearSVC, one-vs-rest; ``loss="hinge"`` is smoothed with temperature
    ``smoothing`` in the training objective).

    With ``class_weight="balanced"`` a refit without a row recomputes the class
    weights, which moves the optimum about as much as the removal itself; the
    influence includes that re-balancing term.

    Parameters
    ----------
    estimator : estimator object
        A LinearRegression, Ridge, RidgeCV, LogisticRegression,
        LogisticRegressionCV or LinearSVC, alone or as the last step of a
        Pipeline, fitted or not. A fitted estimator (or a ``FrozenEstimator``) is
        used as it is and never refitted or modified; an unfitted one is cloned
        and fitted in :meth:`fit`.
    solver : {"direct"}, default="direct"
        How to apply the inverse Hessian. "direct" factorises it (Cholesky), in
        the primal ``d x d`` or the dual ``n x n`` form, whichever is smaller.
    smoothing : float, default=0.03
        Temperature ``t`` of the smoothed hinge
        ``t log(1 + exp((1 - m) / t))`` used for ``LinearSVC(loss="hinge")``.
        Ignored by the other families. The default is the value that agreed
        best with hinge-loss leave-one-out refits in
        ``benchmarks/hinge_smoothing.py``.
    smoothing_resolve : bool, default=True
        For a smoothed loss, compute the influence at the minimiser of the
        smoothed objective (found by Newton's method from the fitted
        coefficients) instead of at the fitted coefficients themselves, where
        support vectors sit exactly on the margin. The estimator is untouched.
    damping : float, default=0.0
        Added to the diagonal of the Hessian. Use a small positive value when the
        Hessian is singular (no penalty, collinear features).
    gradient_tol : float, default=0.05
        :meth:`fit` measures the relative gradient norm of the objective at the
        fitted coefficients and warns when it exceeds ``gradient_tol``: the
        estimator then does not look fitted on the data passed to ``fit``.
        Measured: scikit-learn's solvers at their default ``tol`` leave 2e-4 to
        2e-2; the model fitted on other rows (permuted or half of them) gives
        0.07 to 1.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator (the very object passed in when it was fitted).
    family_ : LinearFamily
        The loss family of the final model.
    solver_ : DirectSolver
        The factorised Hessian; ``solver_.diagnostics_`` describes it.
    relative_gradient_norm_ : float
        ``||grad F|| / (sum_i |grad f_i| + ||penalty gradient||)`` at the fitted
        coefficients; about the solver tolerance for a converged fit.
    n_features_in_ : int
        Number of features seen by :meth:`fit` (before any Pipeline step).
    classes_ : ndarray
        Class labels (classifiers only).

    References
    ----------
    .. [1] P. W. Koh and P. Liang. "Understanding Black-box Predictions via
       Influence Functions". ICML 2017.
    .. [2] R. D. Cook and S. Weisberg. "Residuals and Influence in Regression".
       Chapman and Hall, 1982.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
    >>> explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
    >>> influence = explainer.explain(X[400:403], y[400:403])
    >>> influence.shape
    (3, 400)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "solver": [StrOptions({"direct"})],
        "smoothing": [Interval(Real, 0, None, closed="neither")],
        "damping": [Interval(Real, 0, None, closed="left")],
        "smoothing_resolve": ["boolean"],
        "gradient_tol": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, estimator, *, solver="direct", smoothing=0.03,
                 smoothing_resolve=True, damping=0.0, gradient_tol=0.05):
        self.estimator = estimator
        self.solver = solver
        self.smoothing = smoothing
        self.smoothing_resolve = smoothing_resolve
        self.damping = damping
        self.gradient_tol = gradient_tol

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = deepcopy(inner.classifier_tags)
        tags.regressor_tags = deepcopy(inner.regressor_tags)
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Read the fitted model and factorise the Hessian of its objective.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            The training data the estimator was (or will be) fitted on.
        y : array-like of shape (n_samples,)
            Training targets.
        sample_weight : array-like of shape (n_samples,), default=None
            The sample weights of the fit. They scale each row's term of the
            objective (a weight of 0 is the same as deleting the row).

        Returns
        -------
        self : InfluenceExplainer
        """
        if y is None:
            raise ValueError(
                f"This {type(self).__name__} estimator requires y to be passed, "
                "but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        estimator = self.estimator
        if not _is_fitted(estimator):
            estimator = clone(estimator)
            fit_params = {}
            if sample_weight is not None:
                key = "sample_weight"
                if isinstance(estimator, Pipeline):
                    key = f"{estimator.steps[-1][0]}__sample_weight"
                fit_params[key] = sample_weight
            estimator.fit(X, y, **fit_params)
        self.estimator_ = estimator
        if hasattr(estimator, "feature_names_in_"):
            self.feature_names_in_ = estimator.feature_names_in_
            validate_data(self, X, skip_check_array=True, reset=False)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._transform, final = _split_pipeline(estimator)
        family = family_for(final, smoothing=self.smoothing)

        X_train = self._prepare_X(X, family, reset=True)
        if y.shape[0] != X_train.shape[0]:
            raise ValueError(
                f"X has {X_train.shape[0]} rows but y has {y.shape[0]}; pass the "
                "targets of the same training rows."
            )
        if family.is_classifier is False and not np.all(np.isfinite(y.astype(float))):
            raise ValueError("y contains NaN or infinity.")
        sample_weight = _check_sample_weight(sample_weight, X_train)
        problem = family.bind(X_train, y, sample_weight)
        self.relative_gradient_norm_ = problem.relative_gradient_norm(subgradient=True)
        if self.smoothing_resolve and family.smoothed:
            theta, _ = newton_minimize(family, X_train, y, sample_weight)
            family = family.with_theta(theta)
            problem = family.bind(X_train, y, sample_weight)

        if self.relative_gradient_norm_ > self.gradient_tol:
            warnings.warn(
                f"The estimator does not look fitted on this data: the relative "
                f"gradient norm of its objective at the fitted coefficients is "
                f"{self.relative_gradient_norm_:.2g} > gradient_tol="
                f"{self.gradient_tol:g}. Pass fit the same X, y and sample_weight "
                "the estimator was fitted on, or refit the estimator with a "
                "smaller tol; influence is computed at the fitted coefficients.",
                UserWarning,
                stacklevel=3,
            )

        self.solver_ = DirectSolver(
            damping=self.damping, pinv_rtol=family.pinv_rtol
        ).fit(problem)

        # the gradient of the objective lost with each row, and the re-balancing
        # of class weights a refit would apply
        removal = family.removal_terms(y, sample_weight, problem.Y, problem.Z)
        if removal is None:
            self._removal_residuals = problem.residuals
            self._class_shift = None
        else:
            row_scale, delta, class_residuals = removal
            self._removal_residuals = problem.residuals * row_scale
            vectors = np.stack([problem.rows_to_parameters(r) for r in class_residuals])
            self._class_shift = (vectors.T, delta)
        self.family_ = family
        self.problem_ = problem
        return self

    def _prepare_X(self, X, family, reset=False):
        if not reset and hasattr(self, "feature_names_in_"):
            validate_data(self, X, skip_check_array=True, reset=False)
        if self._transform is not None:
            X = self._transform(X)
        X = check_array(
            X, accept_sparse=("csr", "csc"), dtype=np.float64,
            ensure_all_finite=True, input_name="X",
        )
        if X.shape[1] != family.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with "
                f"{family.n_features} features."
            )
        if sp.issparse(X):
            X = X.tocsr()
        if reset:
            self.n_features_in_ = getattr(self.estimator_, "n_features_in_", X.shape[1])
        return X

    # -------------------------------------------------------------- explain
    def explain(self, X, y=None):
        """Influence of every training row on the loss of every row of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
            Test rows.
        y : array-like of shape (n_test,), default=None
            Their true targets. When None, a classifier explains the loss at its
            own predicted class (positive = the training row supports the
            prediction) and a regressor explains the prediction itself: the change
            of ``predict`` when the row is removed, in target units.

        Returns
        -------
        influence : ndarray of shape (n_test, n_train)
            ``influence[j, i]`` is the predicted change of test row ``j``'s loss
            (or prediction) if training row ``i`` were removed and the model
            refitted.
        """
        check_is_fitted(self)
        family, problem = self.family_, self.problem_
        X = self._prepare_X(X, family)
        Z = family.decision(X)
        if y is None:
            if family.is_classifier:
                labels = family.classes[np.argmax(Z, axis=1) if Z.shape[1] > 1
                                        else (Z[:, 0] > 0).astype(int)]
                Q = family.loss_gradient(family.encode_target(labels), Z)
            else:
                Q = family.prediction_gradient(Z)
        else:
            y = np.asarray(y)
            if y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"X has {X.shape[0]} rows but y has {y.shape[0]}."
                )
            Q = family.loss_gradient(family.encode_target(y), Z)

        n_train, n_test = problem.n_samples, X.shape[0]
        chunk = max(1, _BLOCK_BYTES // (8 * n_train * family.n_outputs))
        influence = np.empty((n_test, n_train))
        for start in range(0, n_test, chunk):
            rows = slice(start, min(start + chunk, n_test))
            influence[rows] = self._explain_block(X[rows], Q[rows])
        return influence

    def _explain_block(self, X, Q):
        """``grad L_j^T H^{-1} grad f_i`` for a block of test rows."""
        problem = self.problem_
        V = problem.row_gradients(X, Q)
        U = self.solver_.solve(V)
        T = problem.parameters_to_rows(U)  # (n_train, K, m)
        block = np.einsum("nk,nkm->mn", self._removal_residuals, T)
        if self._class_shift is not None:
            vectors, delta = self._class_shift
            block -= (U.T @ vectors) @ delta.T
        return block

    # ---------------------------------------------------------- delegation
    @property
    def classes_(self):
        return self.estimator_.classes_

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y, sample_weight=None):
        """Score of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.score(X, y, sample_weight=sample_weight)
