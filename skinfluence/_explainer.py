"""InfluenceExplainer: influence of training rows on test predictions."""

import functools
import inspect
import warnings
from copy import deepcopy
from numbers import Integral, Real

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
    _num_features,
    _num_samples,
    check_array,
    check_is_fitted,
    validate_data,
)

from . import _labels, applications
from ._fitcheck import FitWarning
from ._fitted import FittedInfluence
from ._resolve import resolve, sample_weight_key
from ._rows import as_1d, is_dask
from ._threads import limit_small
from .estimators import representer_decomposition
from .evaluation import optimality_gap, trust_report
from .exact import refit_pipeline_loo
from .families import family_for

__all__ = ["InfluenceExplainer"]


def _is_fitted(estimator):
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _limit_small_threads(method):
    """Run ``method`` on one BLAS thread when the training problem is small."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if method.__name__ != "fit" and hasattr(self, "problem_"):
            try:
                n_test = _num_samples(X) if X is not None else 0
            except (TypeError, ValueError):
                n_test = 0
            size = (self.problem_.n_samples, self.family_.n_parameters, n_test)
        else:
            try:
                size = (_num_samples(X), _num_features(X))
            except (TypeError, ValueError):  # the method's own validation reports it
                size = (0, 0)
        with limit_small(*size):
            return method(self, X, *args, **kwargs)

    return wrapper


def _transform_block(block, transform):
    """The Pipeline's preprocessing of one chunk of rows (dense float64)."""
    out = transform(block)
    if sp.issparse(out):
        raise ValueError(
            "The Pipeline's preprocessing returns a sparse matrix, which a dask "
            "array cannot hold. Make it dense (for example "
            "OneHotEncoder(sparse_output=False)) or pass numpy/sparse data.")
    return np.asarray(out, dtype=np.float64)


def _plain_float_matrix(X, check_finite):
    """Whether ``X`` is a non-empty 2-D float64 ndarray (finite when asked),
    which ``check_array`` would return unchanged."""
    return (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2
            and X.size > 0 and (not check_finite or bool(np.isfinite(X).all())))


def _check_non_negative(sample_weight):
    weights = np.asarray(sample_weight, dtype=float).ravel()
    negative = np.flatnonzero(~(weights >= 0))
    if negative.size:
        raise ValueError(
            f"sample_weight has negative or NaN values (rows "
            f"{negative[:10].tolist()}{' ...' if negative.size > 10 else ''}, e.g. "
            f"{weights[negative[0]]:g}): a negative weight makes the objective "
            "non-convex and influence undefined. Set those weights to 0 (the same "
            "as dropping the rows) or remove the rows.")


def _check_chunk_size(chunk_size):
    if chunk_size is not None and (
            not isinstance(chunk_size, Integral) or isinstance(chunk_size, bool)
            or chunk_size < 1):
        raise ValueError(
            f"chunk_size must be a positive integer (test rows per chunk) or None "
            f"(sized from scikit-learn's working_memory); got {chunk_size!r}.")


def _labelled(kind, x="X", rows=None):
    """Return the method's result labelled like the caller's data (see
    :mod:`skinfluence._labels`): ``x`` names the test-rows argument, ``rows``
    the argument selecting training rows."""

    def decorator(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            arguments = signature.bind(self, *args, **kwargs).arguments
            positions = None
            if rows is not None and arguments.get(rows) is not None:
                positions = self.influence_.train_rows(arguments[rows])
            return _labels.label(self, kind, result, X=arguments.get(x) if x else None,
                                 rows=positions)

        return wrapper

    return decorator


def _pandas_available():
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _unfrozen(estimator):
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


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
    (LinearRegression, Ridge, RidgeCV, also with several targets and one alpha
    per target; RidgeClassifier, RidgeClassifierCV on +-1 targets; KernelRidge
    with any positive semi-definite kernel, on its exact empirical kernel map),
    log-loss (LogisticRegression, LogisticRegressionCV, binary or multinomial),
    (squared) hinge (LinearSVC, one-vs-rest) and (squared) epsilon-insensitive
    loss (LinearSVR), where the hinge and the epsilon-insensitive loss are
    smoothed with temperature ``smoothing`` in the training objective and their
    exact leave-one-out (``loo(method="exact")``) follows the decremental path
    of the true loss, the Tweedie deviance
    (PoissonRegressor, GammaRegressor, TweedieRegressor; the test loss is the
    unit deviance and, without labels, the change of the mean ``predict``),
    the Huber loss with its scale re-estimated (HuberRegressor) and the losses
    of SGDClassifier and SGDRegressor with an L2 penalty. With an L1 part
    (Lasso, ElasticNet, LassoCV, ElasticNetCV, LogisticRegression with
    ``l1_ratio > 0``) the influence is that of the smooth problem on the
    support (the nonzero coefficients, signs fixed); :meth:`support_changes`
    flags the rows whose removal would change the support, and
    ``loo(method="exact")`` is exact for every row. The README lists every
    supported estimator.

    Objectives normalised by the number of rows (or their total weight: the
    GLMs, SGD, Lasso) are rescaled by a refit without a row: each row takes
    its share of the penalty with it, and the influence includes that share.

    With ``class_weight="balanced"`` a refit without a row recomputes the class
    weights, which moves the optimum about as much as the removal itself; the
    influence includes that re-balancing term.

    Parameters
    ----------
    estimator : estimator object
        A supported model (LinearRegression, Ridge, RidgeCV, RidgeClassifier,
        RidgeClassifierCV, KernelRidge, Lasso, ElasticNet, LassoCV,
        ElasticNetCV, LogisticRegression, LogisticRegressionCV, LinearSVC,
        LinearSVR,
        PoissonRegressor, GammaRegressor, TweedieRegressor, HuberRegressor,
        SGDClassifier, SGDRegressor), alone or as the last step of a Pipeline,
        fitted or not. A fitted GridSearchCV, RandomizedSearchCV or
        HalvingGridSearchCV is explained through its ``best_estimator_``
        (hyperparameters held fixed: the leave-one-out truth refits the chosen
        model, not the search). A TransformedTargetRegressor is explained in
        its transformed target space (losses), with predictions mapped back
        through the inverse (chain rule); its fitted transformer is held fixed
        like a Pipeline's preprocessing. Wrappers that are not one linear model
        (CalibratedClassifierCV, one-vs-rest and multi-output wrappers,
        ensembles) are refused with the reason. A fitted estimator (or a
        ``FrozenEstimator``) is used as it is and never refitted or modified;
        an unfitted one is cloned and fitted in :meth:`fit`.
    solver : {"direct", "cg", "lissa"}, default="direct"
        How to apply the inverse Hessian. "direct" factorises it (Cholesky), in
        the primal ``d x d`` or the dual ``n x n`` form, whichever is smaller.
        "cg" runs matrix-free conjugate gradients (Jacobi preconditioner) on
        each block of test gradients: one pass over ``X`` per iteration, no
        ``d x d`` or ``n x n`` matrix, for many features (sparse ``X``). "lissa"
        runs the stochastic LiSSA recursion (Agarwal et al., 2017) with its
        scale estimated by power iteration; it needs about ``kappa`` steps for
        a Hessian of condition number ``kappa`` and suits well-conditioned
        problems (see ``solver_params``).
    smoothing : float, default=0.03
        Temperature ``t`` of the smoothed hinge
        ``t log(1 + exp((1 - m) / t))`` used for ``LinearSVC(loss="hinge")``
        (and of the smoothed epsilon-insensitive loss of ``LinearSVR``).
        Ignored by the other families. The default is the value that agreed
        best with hinge-loss leave-one-out refits in
        ``benchmarks/hinge_smoothing.py``.
    smoothing_resolve : bool, default=True
        For a smoothed loss, compute the influence at the minimiser of the
        smoothed objective (found by Newton's method from the fitted
        coefficients) instead of at the fitted coefficients themselves, where
        support vectors sit exactly on the margin. The estimator is untouched.
    polish : bool, default=False
        Move to the exact optimum of the estimator's objective by Newton's
        method from the fitted coefficients (jointly with the scale for
        HuberRegressor) and explain that optimum. The estimator is untouched.
        Use it for a fit that stopped far from its optimum, typically
        SGDClassifier and SGDRegressor: the influence then describes the
        optimum of the objective (what ``loo(method="exact")`` refits), not the
        stochastic-gradient iterate the estimator holds, and ``explain``'s
        predictions start from the polished coefficients.
    damping : float, default=0.0
        Added to the diagonal of the Hessian. Use a small positive value when the
        Hessian is singular (no penalty, collinear features).
    tol : float, default=1e-8
        Relative residual ``||b - H x|| / ||b||`` at which ``solver="cg"`` stops
        (per test row). Ignored by the other solvers (LiSSA's own ``tol`` goes
        in ``solver_params``).
    max_iter : int, default=None
        Most iterations of "cg" (None: ``10 * d``) or steps of "lissa" (its
        ``max_depth``; None: 20000). A ``ConvergenceWarning`` names the fix
        when it is reached. Ignored by "direct".
    solver_params : dict, default=None
        Further options of the solver, for example ``{"scale": 50.0,
        "depth": 2000, "repeats": 4, "batch_size": 256, "tol": 1e-5}`` for
        "lissa" (:class:`skinfluence.solvers.LissaSolver`) or
        ``{"preconditioner": None}`` for "cg"
        (:class:`skinfluence.solvers.ConjugateGradientSolver`).
    random_state : int, RandomState instance or None, default=None
        Seeds the randomness of "lissa" (power iteration, mini-batches): the
        same seed gives the same numbers. The other solvers are deterministic.
    gradient_tol : float, default=0.05
        :meth:`fit` takes one Newton step from the fitted coefficients and
        measures the relative change it would make to the removal gradients
        and curvatures that influence is made of (``fit_gap_``, invariant to
        feature scaling); above ``gradient_tol`` it warns (``FitWarning``)
        that the estimator does not look fitted on this data or stopped early,
        naming the likely cause. Influence values were measured to be off by
        one to five times the gap (``benchmarks/fit_check.py``). Separable
        classes, interpolated rows, a rank-truncated least-squares fit and an
        ill-conditioned Hessian get their own warnings; separable classes
        without a penalty (no finite optimum) raise an error.
        For LinearSVC and LinearSVR, :meth:`fit` also recovers the exact
        optimum of the true loss and its dual (``influence_.exact_solution``,
        certified by its duality gap) and warns when the fitted coefficients
        are more than 1e-3 (relative) from it: influence and
        ``loo(method="exact")`` describe that optimum.

    output : {"auto", "numpy", "pandas"}, default="auto"
        "auto" labels results like the data: when the training ``X`` (or the
        test ``X`` of a call) is a DataFrame, :meth:`explain`, :meth:`loo` and
        :meth:`prediction_influence` return DataFrames (index: test rows,
        columns: training rows, by their index labels), one value per training
        row comes back as a Series on the training index,
        :meth:`group_influence` names its columns by group,
        :meth:`parameter_influence` names parameters by feature (the intercept
        last, ``"intercept"``), :meth:`top_influencers` returns a tidy long
        DataFrame (test, direction, rank, train, influence) and
        :meth:`regression_diagnostics` gains ``frame``, one row per training
        row. "numpy" always returns arrays; "pandas" always labels (by position
        for arrays).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator (the very object passed in when it was fitted).
    influence_ : FittedInfluence
        The fitted model's influence machinery: its objective bound to the
        training data (``problem_``), the factorised Hessian (``solver_``) and
        the gradient each training row takes away. The analysis methods
        delegate to it and to :mod:`skinfluence.applications`.
    family_ : LinearFamily
        The loss family of the final model.
    solver_ : DirectSolver, ConjugateGradientSolver or LissaSolver
        The fitted solver; ``solver_.diagnostics_`` describes it (and, for the
        iterative solvers, the last block solved: iterations, residuals,
        convergence per test row).
    n_iter_ : int
        Iterations of the solver's most recent solve ("cg" iterations, "lissa"
        steps); 1 for "direct".
    relative_gradient_norm_ : float
        ``||grad F|| / (sum_i |grad f_i| + ||penalty gradient||)`` at the fitted
        coefficients; about the solver tolerance for a converged fit.
    fit_gap_ : float
        Predicted relative change of the influence in one Newton step from the
        fitted coefficients (see ``gradient_tol``); NaN for the smoothed hinge.
    newton_decrement_ : float
        ``sqrt(g^T H^{-1} g)`` at the fitted coefficients: the distance to the
        optimum in the Hessian's norm.
    optimality_gap_ : Bunch
        SGDClassifier and SGDRegressor only: how many leave-one-out steps the
        fit stopped from the optimum (see
        :func:`skinfluence.evaluation.optimality_gap`); :meth:`fit` warns when
        it is more than one and ``polish`` is False.
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
        "solver": [StrOptions({"direct", "cg", "lissa"})],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "solver_params": [dict, None],
        "random_state": ["random_state"],
        "smoothing": [Interval(Real, 0, None, closed="neither")],
        "damping": [Interval(Real, 0, None, closed="left")],
        "smoothing_resolve": ["boolean"],
        "polish": ["boolean"],
        "gradient_tol": [Interval(Real, 0, None, closed="neither")],
        "output": [StrOptions(set(_labels.OUTPUTS))],
    }

    def __init__(self, estimator, *, solver="direct", smoothing=0.03,
                 smoothing_resolve=True, polish=False, damping=0.0, tol=1e-8,
                 max_iter=None, solver_params=None, random_state=None,
                 gradient_tol=0.05, output="auto"):
        self.estimator = estimator
        self.solver = solver
        self.smoothing = smoothing
        self.smoothing_resolve = smoothing_resolve
        self.polish = polish
        self.damping = damping
        self.tol = tol
        self.max_iter = max_iter
        self.solver_params = solver_params
        self.random_state = random_state
        self.gradient_tol = gradient_tol
        self.output = output

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
    @_limit_small_threads
    def fit(self, X, y, sample_weight=None):
        """Read the fitted model and factorise the Hessian of its objective.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame, dask array} of shape (n, n_features)
            The training data the estimator was (or will be) fitted on. A
            ``dask.array`` (rows chunked; columns are brought into one chunk)
            is never collected: every pass over its rows (the linear
            predictor, the gradient and Hessian together, the fit check) is
            one dask computation on the active scheduler, a
            ``dask.distributed`` cluster included, tree-reduced; only
            ``d x d`` results and per-row vectors (``n x n_outputs``) come
            back. The estimator must then be fitted already (scikit-learn
            cannot fit on a dask array); a Pipeline's preprocessing is applied
            chunk by chunk. Every supported model runs on dask rows but the
            hinge and epsilon-insensitive losses, whose exact dual needs the
            rows in memory (refused with the alternatives).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Training targets (several columns for a regressor fitted on them).
        sample_weight : array-like of shape (n_samples,), default=None
            The sample weights of the fit. They scale each row's term of the
            objective (a weight of 0 is the same as deleting the row).

        Returns
        -------
        self : InfluenceExplainer

        Examples
        --------
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_diabetes(return_X_y=True)
        >>> explainer = InfluenceExplainer(Ridge(alpha=0.1)).fit(X, y)  # fits a clone
        >>> explainer.family_.n_parameters, explainer.solver_.form_
        (11, 'primal')
        >>> bool(explainer.fit_gap_ < 1e-10)  # Ridge is at its exact optimum
        True
        """
        if y is None:
            raise ValueError(
                f"This {type(self).__name__} estimator requires y to be passed, "
                "but the target y is None."
            )
        # 2-D y: a regressor with several targets (checked by its family)
        targets = np.asarray(y)
        y = targets if targets.ndim == 2 and targets.shape[1] > 1 else \
            as_1d(y, warn=True)
        if sample_weight is not None:
            _check_non_negative(sample_weight)
        estimator = self.estimator
        if not _is_fitted(estimator) and is_dask(X):
            raise ValueError(
                f"{type(_unfrozen(estimator)).__name__} is not fitted, and scikit-learn "
                "estimators cannot be fitted on a dask array. Fit the model first (on "
                "a sample, with dask-ml, or by skinfluence.exact.newton_minimize on the "
                "dask array) and pass the fitted model.")
        if not _is_fitted(estimator):
            estimator = clone(estimator)
            fit_params = {}
            if sample_weight is not None:
                fit_params[sample_weight_key(estimator)] = sample_weight
            estimator.fit(X, y, **fit_params)
        self.estimator_ = estimator
        self._training_index = _labels.index_of(X)
        # references (no copies), for refit="pipeline"
        self._training_data = (X, y, sample_weight)
        if hasattr(estimator, "feature_names_in_"):
            self.feature_names_in_ = estimator.feature_names_in_
            validate_data(self, X, skip_check_array=True, reset=False)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        final, self._transform, self._target = resolve(estimator)
        family = family_for(final, smoothing=self.smoothing)
        if self._target is not None:  # TransformedTargetRegressor
            self._target.check_invertible(y)
            family = family.with_target_transform(self._target)
            y = self._target.forward(y)

        X_train = self._prepare_X(X, family, reset=True)
        if y.shape[0] != X_train.shape[0]:
            raise ValueError(
                f"X has {X_train.shape[0]} rows but y has {y.shape[0]}; pass the "
                "targets of the same training rows."
            )
        if family.is_classifier is False and not np.all(np.isfinite(y.astype(float))):
            raise ValueError("y contains NaN or infinity.")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X_train)

        self.influence_ = FittedInfluence(
            family, X_train, y, sample_weight, estimator=final, solver=self.solver,
            damping=self.damping, tol=self.tol, max_iter=self.max_iter,
            solver_params=self.solver_params, random_state=self.random_state,
            smoothing_resolve=self.smoothing_resolve, gradient_tol=self.gradient_tol,
            polish=self.polish,
        )
        report = self.influence_.fit_report
        self.newton_decrement_ = report.decrement
        self.fit_gap_ = report.gap
        if getattr(family, "stochastic", False):  # SGD: its own, scale-free check
            self._check_optimality(type(final).__name__)
        for kind, message in report.messages:
            if kind == "no_optimum":
                raise ValueError(message)
            if kind in ("not_converged", "separable") and getattr(
                    family, "stochastic", False):
                continue
            warnings.warn(message, FitWarning, stacklevel=3)
        exact = self.influence_.exact_solution
        if exact is not None and exact.warning is not None:
            # a support-vector model far from the exact optimum of its objective
            warnings.warn(exact.warning, FitWarning, stacklevel=3)
        return self

    #: warn when a stochastic fit stopped more leave-one-out steps than this
    #: from its optimum
    optimality_ratio = 1.0

    def _check_optimality(self, name):
        """Measure (and warn about) how far an SGD fit is from its optimum."""
        gap = self.optimality_gap_ = optimality_gap(self.influence_)
        if self.influence_.polished or gap.ratio <= self.optimality_ratio:
            return
        warnings.warn(
            f"{name} stopped {gap.ratio:.3g} leave-one-out steps away from the "
            f"optimum of its objective (Newton decrement {gap.newton_decrement:.3g}; "
            f"one row's removal moves the optimum by {gap.loo_step:.3g} on average, "
            "in the same norm). Influence describes removals at the optimum: here "
            "refits of the estimator (loo(method='refit')) differ by their own "
            "optimisation noise more than by the removal, and explain() uses the "
            "gradients and curvatures of non-optimal coefficients. Pass "
            "polish=True to explain the exact optimum of the objective (what "
            "loo(method='exact') refits), or fit longer (tol=None, a larger "
            "max_iter, average=True).",
            UserWarning, stacklevel=4)

    # ------------------------------------------------------ fitted parts
    @property
    def family_(self):
        """The loss family of the final model (see :mod:`skinfluence.families`)."""
        return self.influence_.family

    @property
    def relative_gradient_norm_(self):
        """``||grad F|| / (sum_i |grad f_i| + ||penalty gradient||)`` at the
        fitted coefficients (computed on first access: one pass over X)."""
        return self.influence_.relative_gradient_norm

    @property
    def problem_(self):
        """The objective bound to the training data at the parameters used."""
        return self.influence_.problem

    @property
    def solver_(self):
        """The fitted solver (``solver_.diagnostics_`` describes it)."""
        return self.influence_.solver

    def _prepare_y(self, y):
        """Test targets in the space the final model was fitted in."""
        if y is None or self._target is None:
            return y
        return self._target.forward(as_1d(y))

    def _prepare_X(self, X, family=None, reset=False):
        """Validate ``X`` and apply the Pipeline's preprocessing."""
        family = self.family_ if family is None else family
        if not reset and hasattr(self, "feature_names_in_"):
            validate_data(self, X, skip_check_array=True, reset=False)
        if is_dask(X):
            return self._prepare_dask(X, family, reset)
        if self._transform is not None:
            X = self._transform(X)
        # training rows: dense NaN and infinity are caught on the linear
        # predictor, in the first pass of fit (one pass over X fewer)
        check_finite = not (reset and not sp.issparse(X))
        if not _plain_float_matrix(X, check_finite):  # check_array costs ~0.2 ms
            X = check_array(
                X, accept_sparse=("csr", "csc"), dtype=np.float64,
                ensure_all_finite=check_finite, input_name="X",
            )
        if X.shape[1] != family.n_inputs:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with "
                f"{family.n_inputs} features."
            )
        if sp.issparse(X):
            X = X.tocsr()
        if reset:
            self.n_features_in_ = getattr(self.estimator_, "n_features_in_", X.shape[1])
        return family.design(X)

    def _prepare_dask(self, X, family, reset):
        """A dask ``X`` stays lazy: rows chunked, columns in one chunk, float64,
        the Pipeline's preprocessing applied chunk by chunk. NaN and infinity
        are caught on the linear predictor, in the first pass over the rows."""
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D dask array for X; got {X.ndim}-D.")
        expected = getattr(self.estimator_, "n_features_in_", None) \
            if reset else getattr(self, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with "
                f"{expected} features.")
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})
        if self._transform is not None:
            X = X.map_blocks(_transform_block, self._transform, dtype=np.float64,
                             chunks=(X.chunks[0], (family.n_features,)))
        elif X.dtype != np.float64:
            X = X.astype(np.float64)
        if X.shape[1] != family.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with "
                f"{family.n_features} features.")
        if reset:
            self.n_features_in_ = getattr(self.estimator_, "n_features_in_", X.shape[1])
        return X

    # -------------------------------------------------------------- explain
    @_labelled("test_train")
    @_limit_small_threads
    def explain(self, X, y=None, *, method="first_order", chunk_size=None,
                dtype=np.float64, verbose=0):
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
        method : {"first_order", "newton"}, default="first_order"
            "first_order" is the influence function
            ``grad L_j^T H^{-1} grad f_i``. "newton" takes one Newton step with
            the leave-one-out Hessian (the leverage correction
            ``Delta_i = H^{-1} g_i / (1 - h_ii)``, a K x K solve for
            multinomial) and evaluates the test loss at the moved parameters
            instead of linearising it; for squared loss it is exact
            leave-one-out. For ``LinearSVC(loss="hinge")`` both are estimates
            on the smoothed hinge ("newton" with the test loss linearised) and
            only approximate the hinge's leave-one-out; the columns of rows
            that are not support vectors are exactly 0, as in the exact
            answer. When accuracy matters use ``loo(method="exact")``: the
            exact hinge leave-one-out, at about the cost of a few solves per
            support vector (``benchmarks/hinge_path.py``).
        chunk_size : int, default=None
            Test rows processed together. By default as many as keep the
            temporaries within scikit-learn's ``working_memory`` (see
            :func:`sklearn.set_config`); the result itself is
            ``(n_test, n_train)``: for large problems prefer
            :meth:`top_influencers`.
        dtype : {np.float64, np.float32}, default=np.float64
            Precision of the final contraction (``method="first_order"`` only).
            float32 halves the memory of the result and speeds up the product
            (relative error about 1e-6, fine for ranking); the Hessian is always
            factorised in float64. The removal gradients are rounded to
            float32 block by block (no copy of the training matrix).
        verbose : int, default=0
            Report progress on stderr (test rows done, rate, time left), at
            least ten chunks of test rows; 0 is silent (scikit-learn's
            convention). Lazy dask results report nothing here (use dask's
            own progress bar when computing them).

        Returns
        -------
        influence : ndarray or dask array of shape (n_test, n_train) or (n_test, n_train, n_targets)
            ``influence[j, i]`` is the predicted change of test row ``j``'s loss
            (or prediction) if training row ``i`` were removed and the model
            refitted. A regressor with several targets explains the squared
            error summed over the targets, or, without ``y``, each target's
            prediction (the last axis). With dask training rows, a lazy dask
            array chunked like them along the training axis and like ``X``
            (or by ``chunk_size``) along the test axis.

        Examples
        --------
        For least squares the Newton step is the exact leave-one-out change,
        which brute-force refits confirm:

        >>> import numpy as np
        >>> from sklearn.base import clone
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_diabetes(return_X_y=True)
        >>> model = Ridge(alpha=0.1).fit(X[:300], y[:300])
        >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
        >>> influence = explainer.explain(X[300:], y[300:], method="newton")
        >>> influence.shape                      # (test rows, training rows)
        (142, 300)
        >>> keep = np.arange(300) != 7           # refit without training row 7
        >>> refit = clone(model).fit(X[:300][keep], y[:300][keep])
        >>> change = (refit.predict(X[300:]) - y[300:])**2 - (model.predict(X[300:]) - y[300:])**2
        >>> bool(np.allclose(influence[:, 7], change, rtol=0, atol=1e-8))
        True
        """
        check_is_fitted(self)
        if method not in ("first_order", "newton"):
            raise ValueError(
                f"method must be 'first_order' or 'newton'; got {method!r}."
            )
        _check_chunk_size(chunk_size)
        return self.influence_.explain(self._prepare_X(X), self._prepare_y(y),
                                       method=method, chunk_size=chunk_size,
                                       dtype=dtype, verbose=verbose)

    @_labelled("top")
    @_limit_small_threads
    def top_influencers(self, X, y=None, *, k=10, chunk_size=None, dtype=np.float64,
                        verbose=0):
        """The ``k`` most helpful and most harmful training rows of each test row.

        The top of :meth:`explain` (first order), selected inside the blocked
        product that computes it: each tile of test rows x training rows is
        reduced to its row maxima and minima and only rows that reach the
        current ``k``-th value are merged, training rows go in order of
        decreasing removal-gradient norm, and a tile that the Cauchy-Schwarz
        bound ``|a_j . g_i| <= ||a_j|| ||g_i||`` shows cannot enter the top is
        never computed. The ``(n_test, n_train)`` matrix never exists; memory
        is the test side (``n_test x n_parameters``) plus the results. With
        dask training rows every chunk keeps its own top and the tops are
        tree-merged (numpy results).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
            As in :meth:`explain`.
        k : int, default=10
            Rows returned per test row and side (at most ``n_train``).
        chunk_size : int, default=None
            Test rows per chunk.
        dtype : {np.float64, np.float32}, default=np.float64
            Precision of the contraction, as in :meth:`explain`.
        verbose : int, default=0
            Report progress on stderr (test rows done, rate, time left) as in
            :meth:`explain`.

        Returns
        -------
        result : Bunch
            ``helpful_indices``, ``helpful_values`` (largest influence first)
            and ``harmful_indices``, ``harmful_values`` (most negative first),
            each of shape (n_test, k).

        Examples
        --------
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_diabetes(return_X_y=True)
        >>> explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
        >>> top = explainer.top_influencers(X[:3], y[:3], k=5)
        >>> top.helpful_indices.shape
        (3, 5)
        """
        check_is_fitted(self)
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}.")
        _check_chunk_size(chunk_size)
        return self.influence_.top_influencers(self._prepare_X(X), self._prepare_y(y),
                                               k=k, chunk_size=chunk_size, dtype=dtype,
                                               verbose=verbose)

    @_labelled("test_train", rows="train_indices")
    @_limit_small_threads
    def loo(self, X, y=None, *, method="refit", train_indices=None, n_jobs=None,
            verbose=0, tol=None, refit="final_step"):
        """Actual change of each test loss when each training row is removed.

        The exact quantity :meth:`explain` estimates, with the same sign, units
        and shape, so the two can be plotted against each other. The user's
        estimator is never refitted: refits work on clones.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
            Test rows.
        y : array-like of shape (n_test,), default=None
            Test targets; None as in :meth:`explain`.
        method : {"refit", "newton", "exact"}, default="refit"
            "refit" refits clones of the (final) estimator without each row, with
            tightened solver settings (see :func:`skinfluence.tight_clone`:
            Newton solvers at ``tol=1e-10``, liblinear at ``tol=1e-10`` and
            ``max_iter=100_000``), warm-started from the full solution where the
            estimator supports it; the baseline loss comes from a full-data refit
            with the same settings; refits of smooth models are polished by
            Newton on their own objective. SGDClassifier and SGDRegressor refits
            are further runs of stochastic gradient descent, as noisy as the fit
            itself (see ``optimality_gap_``); "exact" gives their objective's
            leave-one-out. LinearSVC and LinearSVR refits (liblinear, which
            shuffles the rows: a ``random_state`` of None becomes 0) are
            polished to the exact optimum of the true loss and kept only when
            their KKT conditions and duality gap certify it (liblinear stalls on
            collinear data even at ``tol=1e-10``); a ``ConvergenceWarning``
            names the rows whose refit could not be certified. "newton" finds
            each leave-one-out optimum of the family's closed-form objective by
            Newton steps from the polished full optimum (one step,
            Sherman-Morrison, for squared loss); the hinge refuses it (its
            smoothed objective's leave-one-out is not the hinge's). "exact"
            runs the family's exact engine: the closed form for squared loss
            (per re-balanced class for RidgeClassifier with
            ``class_weight="balanced"``), Newton for the smooth losses (for
            HuberRegressor jointly with its scale, which "newton" holds fixed),
            an active-set search with a KKT certificate for L1 models (exact
            also where the support changes), and for ``LinearSVC(loss="hinge")``
            the decremental path (:func:`skinfluence.exact.hinge_path_loo`):
            from the exact optimum and its dual, recovered and certified from
            the fitted coefficients, each support vector's multiplier is driven
            to 0 along the piecewise-linear solution path; the columns of the
            other rows are exactly 0. Every end point is checked by its KKT
            conditions; rows that cannot be certified are named in a warning.
        train_indices : array-like of int, default=None
            Training rows to remove, one at a time; all rows when None.
        n_jobs : int, default=None
            Number of joblib workers; any joblib backend works (loky, threading,
            ``joblib.parallel_config(backend="dask")``). Each worker limits its
            BLAS/OpenMP pools to one thread. Results do not depend on it.
        verbose : int, default=0
            1 reports progress on stderr (rows done, rate, time left) about
            every 10 s, 2 or more every second.
        tol : float, default=None
            Precision. For "newton" and "exact": each leave-one-out optimum is
            iterated until its Newton decrement (a scale-free measure of the
            distance to the optimum) falls below ``tol`` times its first one;
            the default ``1e-12`` leaves effects within about ``1e-12`` of the
            largest one (measured against R's ``glm`` refits: 6e-13). For
            "refit": the solver tolerance of the clones (default ``1e-10``),
            after which each refit of a smooth model is polished by Newton on
            its own objective. Rows that do not converge are named in a
            warning; ``loo_info_`` holds ``n_iter`` and ``converged`` per row.
        refit : {"final_step", "pipeline"}, default="final_step"
            What a removal refits when the estimator is a Pipeline.
            "final_step": the model, on the rows as the fitted preprocessing
            transformed them (the preprocessing held fixed, the quantity that
            :meth:`explain` estimates). "pipeline" (``method="refit"`` only):
            the whole pipeline, preprocessing included, which is what a user
            refitting the pipeline without the row gets; a scaler's mean and
            variance move with the row, so the two can differ by a few
            percent.

        Returns
        -------
        loo : ndarray of shape (n_test, n_rows) or (n_test, n_rows, n_targets)
            ``L(z_j; theta_{-i}) - L(z_j; theta)`` (or the change of the
            prediction for a regressor without ``y``, one slice per target). A
            row whose removal leaves a class without rows gets NaN (with a
            warning): a refit could not predict that class. Rows the model
            interpolates (leverage 1) are refitted whatever the method.

        Examples
        --------
        The exact engine (Newton from the fit, no refit of the estimator)
        against refits of the estimator at a tight tolerance:

        >>> import numpy as np
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> model = LogisticRegression(tol=1e-10, max_iter=1000).fit(X[:400], y[:400])
        >>> explainer = InfluenceExplainer(model).fit(X[:400], y[:400])
        >>> rows = [0, 1, 2, 3]
        >>> exact = explainer.loo(X[400:], y[400:], method="exact", train_indices=rows)
        >>> refit = explainer.loo(X[400:], y[400:], method="refit", train_indices=rows)
        >>> exact.shape
        (169, 4)
        >>> bool(np.abs(exact - refit).max() < 1e-9 * np.abs(refit).max())
        True
        """
        check_is_fitted(self)
        if method not in ("refit", "newton", "exact"):
            raise ValueError(
                f"method must be 'refit', 'newton' or 'exact'; got {method!r}.")
        if tol is not None and not (isinstance(tol, Real) and tol > 0):
            raise ValueError(f"tol must be a positive number; got {tol!r}.")
        if refit not in ("final_step", "pipeline"):
            raise ValueError(
                f"refit must be 'final_step' or 'pipeline'; got {refit!r}.")
        if refit == "pipeline":
            return self._refit_pipeline(X, y, method, train_indices, n_jobs, verbose,
                                        tol)
        out = self.influence_.loo(self._prepare_X(X), self._prepare_y(y),
                                  method=method, rows=train_indices, n_jobs=n_jobs,
                                  verbose=verbose, tol=tol)
        self.loo_info_ = self.influence_.loo_info
        return out

    def _refit_pipeline(self, X, y, method, train_indices, n_jobs, verbose, tol):
        """``loo(refit="pipeline")``: refits of the whole Pipeline."""
        pipeline = _unfrozen(self.estimator_)
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
            raise ValueError(
                "refit='pipeline' refits a Pipeline with its preprocessing; the "
                f"estimator is a {type(pipeline).__name__}. Use refit='final_step'.")
        if method != "refit":
            raise ValueError(
                f"refit='pipeline' needs method='refit' (got method={method!r}): "
                "only refits can refit the preprocessing.")
        X_train, y_train, sample_weight = self._training_data
        labels = self.influence_.test_labels(self._prepare_X(X), self._prepare_y(y))
        rows = self.influence_.train_rows(train_indices)
        return refit_pipeline_loo(pipeline, X_train, y_train, sample_weight, X, labels,
                                  rows, n_jobs=n_jobs, verbose=verbose,
                                  tol=1e-10 if tol is None else tol)

    @_limit_small_threads
    def loo_interval(self, X, y=None, *, train_indices=None, groups=None,
                     refine=True, max_refine=None, n_jobs=None, verbose=0):
        """Intervals that provably contain the exact leave-one-out effects.

        For each test row ``j`` and each removal (a training row, or a group of
        rows) the interval ``[lower, upper]`` contains
        ``L(z_j; theta*_{-g}) - L(z_j; theta*)`` with ``theta*`` and
        ``theta*_{-g}`` the exact minimisers of the estimator's objective with
        and without the removed rows (class weights recomputed as a refit
        would), however far the fitted coefficients are from ``theta*``. The
        bound evaluates the exact gradient of each leave-out objective at a
        Newton point and turns it into a radius: generalised self-concordance
        for the log-loss (no strong convexity needed, free intercepts
        included), the rows crossing the margin for the squared hinge, the
        residual of the closed form for squared loss (width 0 up to rounding).
        Removals whose interval is wide, infinite, or not sign-certified are
        refined by certified Newton steps. The derivation is in
        :mod:`skinfluence.exact.certified`.

        Intervals are wide when the penalty is weak (the Newton point is far
        from the leave-out optimum) or, without refinement, when the fit is far
        from its optimum; ``reasons`` says which.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
            As in :meth:`explain`.
        train_indices : array-like of int, default=None
            Training rows to remove, one at a time (all when None).
        groups : array-like of shape (n_train,) or list of array-like, default=None
            Remove groups of rows instead, as in :meth:`group_influence`.
        refine : bool, default=True
            Polish the fit to its optimum first (Newton steps on the training
            objective), certify a second Newton step for every removal, then
            refine the removals that need it. With ``refine=False`` each
            interval is certified around the one-step Newton point from the
            fitted coefficients, so that ``estimate`` is
            ``explain(method="newton")`` and lies inside its interval: one
            pass over the training rows per removal, wider intervals.
        max_refine : int, float or None, default=None
            Most removals refined: a count, or (float in (0, 1]) a fraction of
            the removals. None refines every removal whose interval is
            infinite, does not certify the sign of a non-negligible effect, or
            is wider than 1% of the effect (median).
        n_jobs : int, default=None
            joblib workers; results do not depend on it.
        verbose : int, default=0
            Report progress of the first pass and of each refinement round on
            stderr (1: about every 10 s, 2: every second).

        Returns
        -------
        result : Bunch
            ``estimate``, ``lower``, ``upper``: arrays of shape
            (n_test, n_removals); ``estimate`` is the centre of the certified
            second Newton step (for refined removals, of the last one), moved
            into the interval where the intervals of earlier steps cut it
            (with ``refine=False``: the one-step Newton estimate).
            ``refined`` (n_removals,): which removals
            were refined. ``certified_sign`` (n_test, n_removals): the interval
            excludes 0. Diagnostics: ``fit_decrement`` (Newton decrement of the
            fit at the fitted coefficients), ``polished``, ``baseline_width``
            (n_test,: width of the interval of each test loss at the full-data
            optimum), ``residual`` (the final Newton decrement of each leave-out
            objective), ``margin_change`` (largest change of a training row's
            margin in the Newton step), ``n_steps``, ``undefined`` (removals
            that leave a class without rows: NaN) and ``reasons`` (why the
            intervals are as wide as they are).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
        >>> rows = np.arange(0, 569, 10)
        >>> result = explainer.loo_interval(X[:3], y[:3], train_indices=rows)
        >>> exact = explainer.loo(X[:3], y[:3], method="exact", train_indices=rows)
        >>> bool(np.all((result.lower <= exact) & (exact <= result.upper)))
        True
        """
        check_is_fitted(self)
        if not isinstance(refine, (bool, np.bool_)):
            raise TypeError(f"refine must be True or False; got {refine!r}.")
        if max_refine is not None and (
                isinstance(max_refine, (bool, np.bool_))
                or not isinstance(max_refine, Real)
                or (isinstance(max_refine, Integral) and max_refine < 0)
                or (not isinstance(max_refine, Integral)
                    and not 0 < max_refine <= 1)):
            raise ValueError(
                "max_refine must be None, a non-negative integer (a number of "
                "removals) or a float in (0, 1] (a fraction of them); got "
                f"{max_refine!r}.")
        if train_indices is not None and groups is not None:
            raise ValueError(
                "Pass train_indices (rows removed one at a time) or groups (sets "
                "removed together), not both.")
        removals = names = rows = None
        if groups is not None:
            removals, names = applications.group_index(groups, self.problem_.n_samples)
        elif train_indices is not None:
            rows = self.influence_.train_rows(train_indices)
        result = self.influence_.loo_interval(
            self._prepare_X(X), y, rows=train_indices, removals=removals,
            refine=refine, max_refine=max_refine, n_jobs=n_jobs, verbose=verbose)
        return _labels.label(self, "intervals", result, X=X, rows=rows, groups=names)

    def trust_report(self, X, y=None, *, method="first_order", loo_method="auto",
                     n_test=5, n_train=200, k=10, random_state=None, n_jobs=None,
                     verbose=0, plot=False, ax=None):
        """How far to trust :meth:`explain`: a comparison with exact leave-one-out.

        Samples test rows (and optionally training rows), computes both the
        estimate and the actual leave-one-out change, and summarises their
        agreement.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
        method : {"first_order", "newton"}, default="first_order"
            The estimate, as in :meth:`explain`.
        loo_method : {"auto", "refit", "newton", "exact"}, default="auto"
            The truth, as in :meth:`loo`. "auto": the family's exact engine
            ("exact": closed form, Newton, the hinge's path) where it has one,
            refits otherwise.
        n_test : int or None, default=5
            Test rows sampled from ``X`` (all when None).
        n_train : int or None, default=200
            Training rows sampled, with ``random_state`` (all when None). The
            correlations need a few hundred removals, not every row: on 15,000
            training rows the default takes seconds where all rows take
            minutes.
        k : int, default=10
            Size of the helpful and harmful sets compared.
        random_state : int, RandomState instance or None, default=None
        n_jobs, verbose : as in :meth:`loo`
        plot : bool, default=False
            Also draw estimated against actual with the diagonal (matplotlib).
        ax : matplotlib Axes, default=None

        Returns
        -------
        report : Bunch
            ``pearson``, ``spearman`` (over the finite pairs; NaN, with a
            sentence in ``note``, where the effects are constant); ``helpful_overlap`` and
            ``harmful_overlap``, the mean share of the top-``k`` most helpful
            (most harmful) training rows per test row that both agree on;
            ``certified_sign``, the share of the sampled pairs whose sign
            :meth:`loo_interval` certifies, and ``intervals``, its result (both
            None for a model without a certified bound);
            ``disagreements`` (``test_index``, ``train_index``, ``estimated``,
            ``actual`` of the largest gaps); ``estimated`` and ``actual``
            arrays; ``test_indices``, ``train_indices``; ``loo_method`` (the
            one used) and ``n_refits`` (refits of the estimator run, 0 for an
            exact engine); with ``plot=True``, ``ax`` and ``figure``.

        Examples
        --------
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> model = LogisticRegression(max_iter=1000).fit(X[:400], y[:400])
        >>> report = InfluenceExplainer(model).fit(X[:400], y[:400]).trust_report(
        ...     X[400:], y[400:], n_test=20, n_train=50, random_state=0)
        >>> report.loo_method, report.n_refits   # the exact engine: no refits
        ('exact', 0)
        >>> bool(report.pearson > 0.9)
        True
        """
        check_is_fitted(self)
        if loo_method == "auto":
            loo_method = "exact" if self.family_.exact_engine not in (None, "refit") \
                else "refit"
        return trust_report(self, X, y, method=method, loo_method=loo_method,
                            n_test=n_test, n_train=n_train, k=k,
                            random_state=random_state, n_jobs=n_jobs,
                            verbose=verbose, plot=plot, ax=ax)

    @_labelled("train", x=None)
    def self_influence(self):
        """Each training row's influence on its own loss.

        The predicted change of row ``i``'s own (unweighted) loss when it is
        removed and the model refitted, ``grad l_i^T H^{-1} grad f_i`` (Koh &
        Liang's quantity for finding mislabeled rows: rows the model can only
        fit by bending towards them score high). Computed as a diagonal from
        per-row leverage blocks, O(n d^2) with the direct solver, never the
        ``n x n`` matrix; cached after the first call. On dask training rows
        the leverage blocks take one pass over the chunks (numpy result).

        Returns
        -------
        self_influence : ndarray of shape (n_train,)

        Examples
        --------
        A flipped label is among the rows with the largest self-influence:

        >>> import numpy as np
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> y = y.copy()
        >>> y[10] = 1 - y[10]                   # a confidently wrong label
        >>> model = LogisticRegression(max_iter=1000).fit(X, y)
        >>> scores = InfluenceExplainer(model).fit(X, y).self_influence()
        >>> bool(10 in np.argsort(scores)[-5:])
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            return self.influence_.self_influence()

    def validate_targets(self, y):
        """Check test targets: finite for a regressor, known labels for a
        classifier; raises a ``ValueError`` naming the rows otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> y = np.array(["no", "no", "yes", "yes"])
        >>> explainer = InfluenceExplainer(LogisticRegression()).fit(X, y)
        >>> explainer.validate_targets(["yes", "no"])     # fine: returns None
        >>> explainer.validate_targets([1, 0])
        Traceback (most recent call last):
        ...
        ValueError: y contains labels the estimator was not fitted on: [0, 1]. ...
        """
        check_is_fitted(self)
        self.influence_.test_labels(None, y)

    def _small_threads(self):
        """One BLAS thread when the training problem is small."""
        return limit_small(self.problem_.n_samples, self.family_.n_parameters)

    # ------------------------------------------------- cleaning and debugging
    @_labelled("train", x="X_val")
    def validation_influence(self, X_val, y_val=None):
        """Net influence of each training row on the total loss of a validation set.

        ``sum_j explain(X_val, y_val)[j, i]``, computed with one solve
        (``H^{-1} sum_j grad L_j``) in O(n d), never the
        ``(n_val, n_train)`` matrix; with ``class_weight="balanced"`` it
        includes the re-balancing term of :meth:`explain`. Negative values mark
        rows whose removal would lower the validation loss: candidates for
        mislabelled or harmful data. On dask training rows: one pass over the
        chunks (numpy result).

        Parameters
        ----------
        X_val : {array-like, sparse matrix, DataFrame} of shape (n_val, n_features)
            Validation rows, not used for training, ideally with clean labels.
        y_val : array-like of shape (n_val,), default=None
            Their targets; None as in :meth:`explain`.

        Returns
        -------
        influence : ndarray of shape (n_train,)
            Predicted change of the summed validation loss when each training
            row is removed (positive = the row helps).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
        >>> explainer = InfluenceExplainer(Ridge().fit(X[:20], y[:20])).fit(X[:20], y[:20])
        >>> net = explainer.validation_influence(X[20:], y[20:])
        >>> bool(np.allclose(net, explainer.explain(X[20:], y[20:]).sum(axis=0)))
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.validation_influence(
                self.influence_, self._prepare_X(X_val), self._prepare_y(y_val))

    def functional_influence(self, X_eval, functional, y_eval=None, groups=None, *,
                             method="newton", temperature=1.0, second_order="auto",
                             train_groups=None, n_jobs=None, exact_above=0.5):
        """Change of one number of the model's outputs when each row is removed.

        For a scalar functional ``F`` of the decision values on ``X_eval`` (the
        mean loss, a smoothed accuracy or AUC, the worst group's loss, a
        fairness gap), the predicted ``F(theta_{-i}) - F(theta)`` of every
        training row, with ONE solve ``u = H^{-1} grad F`` and ``O(n d)``
        after it (plus the second-order term of ``second_order``), never the
        ``(n_eval, n_train)`` matrix. The functionals and their smoothing are
        described in :mod:`skinfluence.applications.functionals`.

        Parameters
        ----------
        X_eval : {array-like, sparse matrix, DataFrame} of shape (n_eval, n_features)
            The rows the functional is measured on.
        functional : str or callable
            "mean_loss" (``validation_influence / n_eval``), "accuracy"
            (smoothed: mean ``softmax(Z / T)`` of the true class), "roc_auc"
            (smoothed: mean ``sigmoid((z_p - z_n) / T)`` over positive-negative
            pairs), "worst_group_loss" (largest mean loss over ``groups``),
            "demographic_parity", "equal_opportunity", "fpr_gap" (the gap in
            mean ``sigmoid(z / T)``, the predicted probability of logistic
            regression at ``T = 1``, over all rows, the positives or the
            negatives: the group of the larger label minus the smaller; the
            prediction itself for a regressor), or a callable
            ``functional(Z, y_eval, groups)`` returning ``(value, gradient)``
            with ``gradient`` of the shape of the decision values ``Z``
            (n_eval, n_outputs).
        y_eval : array-like of shape (n_eval,), default=None
            True targets (needed by the accuracy, AUC and rate gaps); without
            them the losses are taken as in :meth:`explain`.
        groups : array-like of shape (n_eval,), default=None
            Group label of each evaluation row (two values for a gap).
        method : {"newton", "first_order", "exact"}, default="newton"
            "newton": the functional's change along the leverage-corrected
            leave-one-out step ``Delta_i = H^{-1} (rho_i (x) x~_i)`` (the step
            of :meth:`explain` with ``method="newton"``), to second order
            (see ``second_order``). "first_order": linearised, along
            ``H^{-1} g_i``. "exact": the functional evaluated at every exact
            leave-one-out optimum (Newton's method on the family's objective,
            relative gradient norm 1e-10), ``O(n n_eval d)``, for checking.
        temperature : float, default=1.0
            ``T`` of the smoothed indicators above.
        second_order : {"auto", True, False}, default="auto"
            For "newton", add the functional's curvature along the step,
            ``1/2 Delta_i^T H_F Delta_i`` (``H_F`` its Hessian in the
            parameters; functionals summed over rows, not the AUC): two block
            solves of ``d`` columns and ``O(n d^2)``. Exact with the step for
            a quadratic functional of a squared-loss model. "auto": whenever
            the functional has a curvature (all built-ins but "roc_auc", a
            callable returning it) and the model has at most 2000 parameters;
            with the long steps computed exactly (``exact_above``) it helps or
            is neutral for every built-in functional measured in
            ``benchmarks/functionals.py``. False: the one-solve ``O(n d)``
            linearisation.
        train_groups : array-like of shape (n_train,) or list of array-like, default=None
            Remove groups of training rows together instead of single rows,
            as in :meth:`group_influence` ("newton": one Newton step with the
            group-removed Hessian; "exact": Newton's method without the group).
        n_jobs : int, default=None
            joblib workers for "exact" (and the rows ``exact_above`` selects).
        exact_above : float or None, default=0.5
            For "newton" on a smooth non-quadratic loss: the removals whose
            step is long in the Hessian's norm, ``||Delta_i||_H >
            exact_above``, are computed at their exact leave-one-out optimum
            instead. Beyond about 0.5 the log-loss's quadratic model along the
            step is no longer accurate (generalised self-concordance): on
            breast cancer at ``C=1`` one training row has a step of norm 1.6
            and its one-step estimate of the mean validation loss is 40% short
            (``benchmarks/functionals.py``); typically a few percent of the
            rows qualify. None: the one-step estimate everywhere.

        Returns
        -------
        influence : ndarray of shape (n_train,) or (n_groups,)
            Predicted (for "exact": actual) change of the functional when
            each training row (group) is removed: positive means removing it
            would raise the functional.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 2))
        >>> y = (X[:, 0] + rng.normal(size=80) > 0).astype(int)
        >>> explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
        >>> group = (X[:, 1] > 0).astype(int)          # a sensitive attribute
        >>> gap = explainer.functional_influence(X, "demographic_parity", groups=group)
        >>> exact = explainer.functional_influence(X, "demographic_parity",
        ...                                        groups=group, method="exact")
        >>> bool(np.corrcoef(gap, exact)[0, 1] > 0.99)
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            values = applications.functional_influence(
                self.influence_, self._prepare_X(X_eval), functional, y_eval, groups,
                method=method, temperature=temperature, second_order=second_order,
                train_groups=train_groups, n_jobs=n_jobs, exact_above=exact_above)
        return self._per_training_row(values, train_groups, X=X_eval)

    def _per_training_row(self, values, train_groups=None, X=None):
        """One value per training row (or per group of training rows),
        labelled like the caller's data."""
        if train_groups is not None:
            return values
        return _labels.label(self, "train", values, X=X)

    @_labelled("train", x=None)
    def loo_self_loss(self, method="newton_step", n_jobs=None):
        """Change of each training row's own loss when it is left out.

        ``L(z_i; theta_{-i}) - L(z_i; theta)``: large for rows the model fits
        only by bending towards them (suspected label errors, outliers).

        Parameters
        ----------
        method : {"newton_step", "exact"}, default="newton_step"
            "newton_step": one Newton step with the leave-one-out Hessian, the
            diagonal of ``explain(X_train, y_train, method="newton")``, in
            O(n K^2) from the cached leverage blocks (exact for squared loss:
            the PRESS residuals). "exact": every leave-one-out optimum by the
            Newton engine of ``loo(method="newton")`` (relative gradient norm
            1e-10; for the hinge the decremental path of
            ``loo(method="exact")``), each row's loss evaluated at its own
            optimum only.
        n_jobs : int, default=None
            joblib workers for "exact".

        Returns
        -------
        loss_change : ndarray of shape (n_train,)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LinearRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
        >>> explainer = InfluenceExplainer(LinearRegression().fit(X, y)).fit(X, y)
        >>> press = explainer.loo_self_loss()      # squared PRESS - squared residual
        >>> bool(np.all(press >= 0))
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.loo_self_loss(self.influence_, method=method,
                                              n_jobs=n_jobs)

    @_labelled("ranking", x="X_val")
    def rank_suspicious(self, method="self_influence", X_val=None, y_val=None):
        """Training rows ranked by how suspicious they look (label errors).

        Workflow for cleaning a training set:

        1. ``ranking = explainer.rank_suspicious(...).ranking``;
        2. inspect the top 5-20% of rows (most suspicious first) by hand;
        3. fix their labels, or drop them (``sample_weight=0`` is the same);
        4. refit the model and a new explainer, and measure on held-out data
           that the change helped; repeat while it does.

        ``benchmarks/mislabel.py`` measures how many of 10% flipped labels
        each ranking finds in the top 10% (logistic regression, see
        ``benchmarks/README.md``): on digits 1 vs 7 self-influence 0.87, the
        training loss 0.85, cleanlab 0.87; on low-dimensional data the training
        loss (0.50) beats self-influence (0.44); with d close to n every
        ranking finds about a quarter, the validation net harm slightly most
        (0.27). Start with the training loss; influence adds a ranking
        against a clean validation set and the size of each row's effect.

        Parameters
        ----------
        method : {"self_influence", "loo_self", "validation", "loss"}, default="self_influence"
            "self_influence": :meth:`self_influence` (Koh & Liang). "loo_self":
            :meth:`loo_self_loss` (one Newton step, leave-one-out Hessian).
            "validation": the net harm ``-validation_influence(X_val, y_val)``
            on a clean validation set. "loss": each row's training loss (the
            baseline that needs no influence).
        X_val, y_val : array-like, default=None
            Clean validation rows; required by (and only used by) "validation".

        Returns
        -------
        result : Bunch
            ``ranking`` (ndarray of int, most suspicious first), ``scores``
            (ndarray of shape (n_train,), higher = more suspicious) and
            ``method``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 3))
        >>> y = (X[:, 0] > 0).astype(int)
        >>> y[:5] = 1 - y[:5]                            # five flipped labels
        >>> model = LogisticRegression().fit(X, y)
        >>> result = InfluenceExplainer(model).fit(X, y).rank_suspicious()
        >>> top = result.ranking[:20]                    # check the top 10%
        >>> int(np.isin(np.arange(5), top).sum()) >= 3
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            if method == "validation" and X_val is not None:
                X_val = self._prepare_X(X_val)
            return applications.rank_suspicious(self.influence_, method=method,
                                                X_val=X_val,
                                                y_val=self._prepare_y(y_val))

    def group_influence(self, X, y=None, groups=None, *, method="first_order",
                        n_jobs=None):
        """Influence of removing whole groups of training rows at once.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
            As in :meth:`explain`.
        groups : array-like of shape (n_train,) or list of array-like
            One group label per training row (columns follow ``np.unique`` of
            the labels), or a list of integer index arrays (groups may
            overlap; columns follow the list).
        method : {"first_order", "newton", "refit"}, default="first_order"
            "first_order": the sum of the members' influences (additive, cheap;
            it misses the interaction of the members, which grows with the
            group). "newton": one Newton step with the group-removed Hessian
            ``H - sum_{i in S} D_i (x) x~_i x~_i^T`` (Woodbury, a ``|S| K``
            square system per group) and the test loss evaluated at the moved
            parameters; exact for squared loss. With
            ``class_weight="balanced"`` it recomputes the class weights without
            the whole group. "refit": the truth, refitting tight clones of the
            estimator without each group (see :meth:`loo`).
        n_jobs : int, default=None
            joblib workers for "refit".

        Returns
        -------
        influence : ndarray of shape (n_test, n_groups)
            Predicted (or, for "refit", actual) change of each test loss when
            each group is removed.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
        >>> explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
        >>> groups = np.arange(40) % 4                   # four groups of ten
        >>> newton = explainer.group_influence(X[:2], y[:2], groups, method="newton")
        >>> refit = explainer.group_influence(X[:2], y[:2], groups, method="refit")
        >>> newton.shape, bool(np.allclose(newton, refit))
        ((2, 4), True)
        """
        check_is_fitted(self)
        if groups is None:
            raise ValueError("group_influence needs groups: one label per training "
                             "row or a list of index arrays.")
        with self._small_threads():
            out, labels = applications.group_influence(
                self.influence_, self._prepare_X(X), self._prepare_y(y), groups,
                method=method,
                n_jobs=n_jobs)
        return _labels.label(self, "groups", out, X=X, groups=labels)

    @_labelled("parameters", x=None, rows="rows")
    def parameter_influence(self, rows=None, *, method="first_order"):
        """Change of the coefficients when each training row is removed.

        ``theta_{-i} - theta`` in the flat layout of the final estimator's
        parameters: ``coef_`` row by row, each followed by its intercept when
        one is fitted (``(n_outputs, n_features + 1)`` raveled). With a
        Pipeline these are the final step's coefficients.

        Memory: the result is ``8 * n_rows * n_parameters`` bytes (dense,
        because the user asked for it; pass ``rows`` to limit it); the work
        runs in blocks of rows of about 256 MiB.

        Parameters
        ----------
        rows : array-like of int or bool, default=None
            Training rows (all when None).
        method : {"first_order", "newton"}, default="first_order"
            "first_order": ``H^{-1} grad f_i``. "newton": one Newton step
            with the leave-one-out Hessian (exact for squared loss: DFBETA up
            to sign).

        Returns
        -------
        delta : ndarray of shape (n_rows, n_parameters)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LinearRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
        >>> model = LinearRegression().fit(X, y)
        >>> delta = InfluenceExplainer(model).fit(X, y).parameter_influence(
        ...     [0], method="newton")
        >>> refit = LinearRegression().fit(X[1:], y[1:])
        >>> bool(np.allclose(delta[0, :2], refit.coef_ - model.coef_))
        True
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.parameter_influence(self.influence_, rows,
                                                    method=method)

    @_labelled("test_train")
    def prediction_influence(self, X, *, method="first_order"):
        """Change of the model output on ``X`` when each training row is removed.

        No labels needed: the change of ``decision_function`` (classifiers)
        or ``predict`` (regressors) of each test row.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        method : {"first_order", "newton"}, default="first_order"
            As in :meth:`explain`.

        Returns
        -------
        shift : ndarray of shape (n_test, n_train) or (n_test, n_train, n_outputs)
            The last axis only when the model has several outputs (multiclass
            ``decision_function``). For the multinomial logistic model the
            change is defined up to a constant common to all classes (which
            leaves the probabilities unchanged); the minimum-norm one is
            returned.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(50, 2)); y = (X[:, 0] + rng.normal(size=50) > 0)
        >>> explainer = InfluenceExplainer(LogisticRegression().fit(X, y)).fit(X, y)
        >>> explainer.prediction_influence(X[:3]).shape
        (3, 50)
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.prediction_influence(
                self.influence_, self._prepare_X(X), method=method)

    def regression_diagnostics(self, exact_dfbeta=True, *, n_jobs=None, verbose=0):
        """Classical influence diagnostics: least squares, or a logistic GLM.

        **LinearRegression, Ridge** (least squares): leverage, studentised
        residuals, Cook's distance, DFFITS, COVRATIO, DFBETA and DFBETAS
        (Belsley, Kuh & Welsch; Cook & Weisberg) with R's ``lm`` /
        ``influence.measures`` and statsmodels' ``OLSInfluence`` definitions and
        sign (``dfbeta = theta - theta_{-i}``), and for weighted fits those of
        WLS (whitened residuals), all at the exact least-squares optimum. For
        Ridge (or a rank-deficient LinearRegression) the number of parameters
        ``p`` is the trace of the hat matrix (effective degrees of freedom) and
        the residual degrees of freedom are ``n - p``. On ill-conditioned
        designs the factorisation switches to QR of the centred design, like
        R: every quantity agrees with R within 1e-11 relative on the NIST
        StRD sets, Longley included (``tests/applications``).

        **Binary LogisticRegression** (a binomial GLM with the sample and class
        weights as prior weights): leverage, Pearson and deviance residuals,
        their standardised versions, R's ``rstudent`` for GLMs, Cook's distance
        and DFBETA both as R's one-step approximation and, with
        ``exact_dfbeta``, the exact leave-one-out change (Newton engine). With
        ``C=np.inf`` these match R's ``glm`` within 1e-10.

        Parameters are ordered as in :meth:`parameter_influence` (intercept
        last).

        Parameters
        ----------
        exact_dfbeta : bool, default=True
            Logistic regression only: also compute ``dfbeta_exact`` (one exact
            leave-one-out optimum per row).
        n_jobs : int, default=None
            joblib workers for ``dfbeta_exact``; results do not depend on it.
        verbose : int, default=0
            Report the progress of ``dfbeta_exact`` on stderr.

        Returns
        -------
        diagnostics : Bunch
            Least squares: ``leverage`` (hat matrix diagonal), ``residuals``,
            ``resid_studentized_internal``, ``resid_studentized_external``,
            ``cooks_distance``, ``dffits``, ``covratio``, ``dfbeta`` and
            ``dfbetas`` (n, n_parameters), ``sigma2`` and ``sigma2_loo``
            (residual variances with all rows and without each row),
            ``n_parameters``, ``params`` (the exact least-squares coefficients)
            and ``params_stderr`` (their standard errors, OLS/WLS).
            Logistic: ``leverage``, ``pearson_residuals``,
            ``deviance_residuals``, ``resid_standardized_pearson``,
            ``resid_standardized_deviance``, ``resid_studentized``,
            ``cooks_distance``, ``dfbeta``, ``dfbeta_exact``, ``params``,
            ``n_parameters``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LinearRegression
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
        >>> diag = InfluenceExplainer(LinearRegression().fit(X, y)).fit(X, y
        ...     ).regression_diagnostics()
        >>> round(float(diag.leverage.sum()), 6)       # trace = 2 features + intercept
        3.0
        """
        check_is_fitted(self)
        with self._small_threads():
            if self.family_.is_classifier:
                diagnostics = applications.glm_diagnostics(
                    self.influence_, exact_dfbeta=exact_dfbeta, n_jobs=n_jobs,
                    verbose=verbose)
            else:
                diagnostics = applications.regression_diagnostics(self.influence_)
        if self.output != "numpy" and _pandas_available():
            diagnostics.frame = _labels.diagnostics_frame(self, diagnostics)
        return diagnostics

    def support_changes(self, train_indices=None):
        """Training rows whose removal would change an L1 model's support.

        For Lasso, ElasticNet (and their CV versions) and LogisticRegression
        with an L1 part, :meth:`explain` is the influence of the smooth
        problem on the support (the nonzero coefficients, signs fixed): exact
        for squared loss while removing the row keeps the support. Here the
        Newton step of each removal predicts the leave-one-out coefficients,
        and the KKT conditions of the leave-one-out problem there tell whether
        a coefficient would leave the support (reach zero) or enter it (its
        gradient exceeds the L1 strength). ``loo(method="exact")`` gives the
        exact effect of every row, support changes included.

        Parameters
        ----------
        train_indices : array-like of int or bool, default=None
            Training rows (all when None).

        Returns
        -------
        result : Bunch
            ``changed`` (bool per row), ``leaving`` and ``entering`` (number of
            coefficients), ``slack`` (``1 - max |grad_j| / lambda_j`` over the
            zero coefficients; negative where one enters) and ``rows``.

        Examples
        --------
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import Lasso
        >>> from skinfluence import InfluenceExplainer
        >>> X, y = load_diabetes(return_X_y=True)
        >>> model = Lasso(alpha=0.5).fit(X, y)
        >>> result = InfluenceExplainer(model).fit(X, y).support_changes()
        >>> result.changed.shape
        (442,)
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.support_changes(self.influence_, train_indices)

    def perturbation_influence(self, X, y=None, rows=None):
        """Gradient of each test loss with respect to each training row's features.

        Koh & Liang's ``I_pert,loss``, as the exact derivative at the fitted
        optimum: ``d L(z_j; theta*) / d x_i = -grad L_j^T H^{-1} J_i`` with
        ``J_i = d grad f_i / d x_i = (D_i W) (x) x~_i + r_i (x) E`` (``W``
        the coefficients, ``E`` the embedding of the features in ``x~``).
        Moving row ``i``'s features by ``eps`` changes the test loss by about
        ``eps . result[j, i]``. With a Pipeline the features are those the
        final step sees (after preprocessing).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
        y : array-like of shape (n_test,), default=None
            As in :meth:`explain`.
        rows : array-like of int or bool, default=None
            Training rows (all when None).

        Returns
        -------
        gradient : ndarray of shape (n_test, n_rows, n_features)
            Dense, ``8 * n_test * n_rows * n_features`` bytes; computed in
            blocks of test rows.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
        >>> explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
        >>> explainer.perturbation_influence(X[:2], y[:2], rows=[0, 1, 2]).shape
        (2, 3, 3)
        """
        check_is_fitted(self)
        with self._small_threads():
            return applications.perturbation_influence(
                self.influence_, self._prepare_X(X), self._prepare_y(y), rows=rows)

    def representer_points(self, X, y=None, *, polish=True, tol=1e-12):
        """Split each test decision value into one contribution per training row.

        Representer points (Yeh et al., 2018); see
        :func:`skinfluence.representer_points` for the parameters and the
        result.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import Ridge
        >>> from skinfluence import InfluenceExplainer
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
        >>> explainer = InfluenceExplainer(Ridge().fit(X, y)).fit(X, y)
        >>> explainer.representer_points(X[:2]).contributions.shape
        (2, 30)
        """
        check_is_fitted(self)
        with self._small_threads():
            return representer_decomposition(self.influence_, self._prepare_X(X),
                                             self._prepare_y(y),
                                             polish=polish, tol=tol)

    # ---------------------------------------------------------- delegation
    @property
    def n_iter_(self):
        """Iterations of the solver's most recent solve (cg: iterations, lissa:
        recursion steps of the longest column); 1 for "direct" (one
        factorisation) and before the first :meth:`explain`."""
        info = self.solver_.diagnostics_
        return max(1, int(info.get("n_iter", info.get("depth", 1))))

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
