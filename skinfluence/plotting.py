"""Plots of influence, in scikit-learn's Display style.

Each display is built with ``from_explainer`` (computes what it shows from a
fitted :class:`~skinfluence.InfluenceExplainer`) or ``from_estimates`` (from
arrays you already have), draws with :meth:`plot`, and keeps the matplotlib
objects in ``ax_`` and ``figure_``. matplotlib is optional and imported only
when something is drawn: ``pip install 'skinfluence[plots]'``.

* :class:`EstimatedVsActualDisplay`: estimated against actual leave-one-out
  change of the test loss, the diagonal, and the correlation in the title.
* :class:`InfluenceVsDistanceDisplay`: influence of every training row on one
  test row against the row's distance to the decision boundary.
* :class:`InfluentialRowsDisplay`: a gallery of the most helpful and most
  harmful training rows for one test row (images, or a table).
* :class:`RemovalCurveDisplay`: a metric after refitting without the top rows
  of a score, against random removal with its spread
  (:func:`~skinfluence.removal_curve`).
"""

import numpy as np
from scipy.stats import spearmanr

__all__ = [
    "EstimatedVsActualDisplay",
    "InfluenceVsDistanceDisplay",
    "InfluentialRowsDisplay",
    "RemovalCurveDisplay",
]

_INSTALL = "pip install 'skinfluence[plots]'"


def _pyplot(caller):
    """Import ``matplotlib.pyplot`` or say how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed. Install it with: "
            f"{_INSTALL}"
        ) from exc
    return plt


def _new_axes(caller, ax, figsize):
    plt = _pyplot(caller)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _one_row(X, name):
    """Row ``X`` as a 2-d, one-row object that explain accepts."""
    if hasattr(X, "iloc"):
        return X if X.ndim == 2 and X.shape[0] == 1 else X.to_frame().T
    if hasattr(X, "shape") and len(X.shape) == 2:
        if X.shape[0] != 1:
            raise ValueError(f"{name} must be one test row; got {X.shape[0]} rows.")
        return X
    return np.asarray(X)[None, :]


def _scatter_groups(ax, x, y, labels, **kwargs):
    """Scatter ``(x, y)``, one colour per distinct label with a legend."""
    kwargs.setdefault("s", 10)
    kwargs.setdefault("alpha", 0.7)
    if labels is None:
        return [ax.scatter(x, y, **kwargs)]
    labels = np.asarray(labels).ravel()
    artists = [ax.scatter(x[labels == value], y[labels == value], label=str(value),
                          **kwargs)
               for value in np.unique(labels)]
    ax.legend(title=kwargs.get("legend_title"), fontsize="small", markerscale=1.5)
    return artists


class EstimatedVsActualDisplay:
    """Estimated against actual leave-one-out change of the test loss.

    Each point is one (test row, training row) pair: on the x axis the actual
    change of the test loss when the training row is removed and the model
    refitted, on the y axis the influence estimate. Points on the dashed
    diagonal are exact; the title carries the Pearson correlation.

    Parameters
    ----------
    estimated : ndarray of shape (n_test, n_train) or (n_pairs,)
        Influence estimates, e.g. from :meth:`InfluenceExplainer.explain`.
    actual : ndarray of the same shape
        Exact leave-one-out changes, e.g. from :meth:`InfluenceExplainer.loo`.
    labels : array-like, default=None
        One label per point (or per training row, broadcast over test rows):
        each label gets its own colour and a legend entry.

    Attributes
    ----------
    pearson, spearman : float
        Correlations of ``estimated`` and ``actual`` over all pairs.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    scatter_ : list of PathCollection
    line_ : Line2D
        The diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence.plotting import EstimatedVsActualDisplay
    >>> actual = np.array([[0.1, -0.2, 0.3]])
    >>> display = EstimatedVsActualDisplay(actual * 1.1, actual)
    >>> round(display.pearson, 6)
    1.0
    """

    def __init__(self, estimated, actual, *, labels=None):
        estimated, actual = np.asarray(estimated, float), np.asarray(actual, float)
        if estimated.shape != actual.shape:
            raise ValueError(
                f"estimated and actual must have the same shape; got "
                f"{estimated.shape} and {actual.shape}."
            )
        self.estimated, self.actual = estimated, actual
        if labels is not None:
            labels = np.asarray(labels)
            if labels.size != estimated.size:
                labels = np.broadcast_to(labels, estimated.shape)
        self.labels = labels
        e, a = estimated.ravel(), actual.ravel()
        self.pearson = float(np.corrcoef(e, a)[0, 1])
        self.spearman = float(spearmanr(e, a)[0])

    def plot(self, ax=None, *, title=None, **scatter_kwargs):
        """Draw the scatter, the diagonal and the correlation.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        title : str, default=None
            First line of the title; the second is the Pearson correlation.
        **scatter_kwargs
            Passed to ``Axes.scatter``.

        Returns
        -------
        display : EstimatedVsActualDisplay
        """
        ax = _new_axes(f"{type(self).__name__}.plot", ax, (4.5, 4.5))
        e, a = self.estimated.ravel(), self.actual.ravel()
        labels = None if self.labels is None else np.ravel(self.labels)
        self.scatter_ = _scatter_groups(ax, a, e, labels, **scatter_kwargs)
        low = min(a.min(), e.min())
        high = max(a.max(), e.max())
        (self.line_,) = ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
        ax.set_xlabel("actual change in test loss (leave-one-out)")
        ax.set_ylabel("predicted change in test loss")
        ax.set_title((title + "\n" if title else "") + f"Pearson r = {self.pearson:.3f}")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_estimates(cls, estimated, actual, *, labels=None, ax=None, title=None,
                       **scatter_kwargs):
        """Plot estimates you already have against exact leave-one-out.

        Parameters
        ----------
        estimated, actual : ndarray of the same shape
        labels : array-like, default=None
            Colour groups, see the class docstring.
        ax : matplotlib Axes, default=None
        title : str, default=None
        **scatter_kwargs
            Passed to ``Axes.scatter``.

        Returns
        -------
        display : EstimatedVsActualDisplay
        """
        return cls(estimated, actual, labels=labels).plot(
            ax=ax, title=title, **scatter_kwargs)

    @classmethod
    def from_explainer(cls, explainer, X, y=None, *, method="first_order",
                       loo_method="refit", train_indices=None, n_jobs=None,
                       labels=None, ax=None, title=None, **scatter_kwargs):
        """Compute the estimates and the exact leave-one-out changes, and plot.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X : {array-like, sparse matrix, DataFrame} of shape (n_test, n_features)
            Test rows (keep them few: the truth refits once per training row).
        y : array-like of shape (n_test,), default=None
        method : {"first_order", "newton"}, default="first_order"
            The estimate, as in :meth:`InfluenceExplainer.explain`.
        loo_method : {"refit", "newton"}, default="refit"
            The truth, as in :meth:`InfluenceExplainer.loo`.
        train_indices : array-like of int, default=None
            Training rows compared (all when None).
        n_jobs : int, default=None
            joblib workers of the refits.
        labels, ax, title, **scatter_kwargs
            As in :meth:`from_estimates`.

        Returns
        -------
        display : EstimatedVsActualDisplay
        """
        _pyplot(f"{cls.__name__}.from_explainer")
        estimated = np.asarray(explainer.explain(X, y, method=method))
        if train_indices is not None:
            estimated = estimated[:, explainer.influence_.train_rows(train_indices)]
        actual = np.asarray(explainer.loo(X, y, method=loo_method,
                                          train_indices=train_indices, n_jobs=n_jobs))
        if title is None:
            title = f"{method} ({explainer.solver}) vs {loo_method} LOO"
        return cls.from_estimates(estimated, actual, labels=labels, ax=ax,
                                  title=title, **scatter_kwargs)


class InfluenceVsDistanceDisplay:
    """Influence of each training row on one test row against its distance to
    the decision boundary (Koh & Liang's comparison of logistic regression and
    the SVM).

    Parameters
    ----------
    influence : ndarray of shape (n_train,)
        Influence of each training row on the test row.
    distance : ndarray of shape (n_train,)
        Each training row's distance to the decision boundary: the signed
        Euclidean distance ``(x_i . w + b) / ||w||``, its absolute value, or
        the margin ``y_i (x_i . w + b) / ||w||`` (``y_i = +-1``).
    labels : array-like of shape (n_train,), default=None
        Training labels, one colour each.
    margin : float, default=None
        Where the SVM margin lies (``1 / ||w||``): drawn as dotted lines.
    distance_kind : {"signed", "absolute", "margin"}, default="signed"
        What ``distance`` is (sets the axis label).

    Attributes
    ----------
    ax_, figure_, scatter_
    """

    def __init__(self, influence, distance, *, labels=None, margin=None,
                 distance_kind="signed"):
        self.influence = np.asarray(influence, float).ravel()
        self.distance = np.asarray(distance, float).ravel()
        if self.influence.shape != self.distance.shape:
            raise ValueError(
                f"influence and distance must have one entry per training row; got "
                f"{self.influence.shape[0]} and {self.distance.shape[0]}."
            )
        self.labels = labels
        self.margin = margin
        self.distance_kind = distance_kind

    def plot(self, ax=None, *, title=None, **scatter_kwargs):
        """Draw influence against distance.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        title : str, default=None
        **scatter_kwargs
            Passed to ``Axes.scatter``.

        Returns
        -------
        display : InfluenceVsDistanceDisplay
        """
        ax = _new_axes(f"{type(self).__name__}.plot", ax, (5, 3.8))
        self.scatter_ = _scatter_groups(ax, self.distance, self.influence,
                                        self.labels, **scatter_kwargs)
        ax.axhline(0, color="grey", lw=0.8)
        if self.margin is not None:
            edges = (-self.margin, self.margin) if self.distance_kind == "signed" \
                else (self.margin,)
            for edge in edges:
                ax.axvline(edge, color="grey", lw=0.8, ls=":")
        xlabel = {
            "signed": "signed distance to the decision boundary",
            "absolute": "distance to the decision boundary",
            "margin": "margin  y (x.w + b) / ||w||",
        }[self.distance_kind]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("influence on the test loss")
        if title:
            ax.set_title(title)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_estimates(cls, influence, distance, *, labels=None, margin=None,
                       distance_kind="signed", ax=None, title=None, **scatter_kwargs):
        """Plot influence values against distances you already have.

        Returns
        -------
        display : InfluenceVsDistanceDisplay
        """
        return cls(influence, distance, labels=labels, margin=margin,
                   distance_kind=distance_kind).plot(ax=ax, title=title,
                                                     **scatter_kwargs)

    @classmethod
    def from_explainer(cls, explainer, X, y=None, *, distance="signed", ax=None,
                       title=None, **scatter_kwargs):
        """Explain one test row and plot each training row's influence against
        its distance to the decision boundary.

        Distances are measured in the space the final model sees (after any
        Pipeline step), from the estimator's fitted coefficients.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
            Of a binary classifier (one decision function).
        X : array-like of shape (1, n_features) or (n_features,)
            The test row.
        y : scalar or array-like of shape (1,), default=None
            Its label (None: the predicted class).
        distance : {"signed", "absolute", "margin"}, default="signed"
            ``(x_i . w + b) / ||w||``, its absolute value, or the margin
            ``y_i (x_i . w + b) / ||w||`` that is positive on the correct side.
        ax, title, **scatter_kwargs
            As in :meth:`plot`.

        Returns
        -------
        display : InfluenceVsDistanceDisplay
            Also holds ``influence`` and ``distance``.
        """
        _pyplot(f"{cls.__name__}.from_explainer")
        if distance not in ("signed", "absolute", "margin"):
            raise ValueError(
                f"distance must be 'signed', 'absolute' or 'margin'; got {distance!r}."
            )
        final = getattr(getattr(explainer, "influence_", None), "estimator", None)
        coef = np.atleast_2d(getattr(final, "coef_", np.empty((0, 0))))
        classes = getattr(final, "classes_", None)
        if classes is None or len(classes) != 2 or coef.shape[0] != 1:
            raise ValueError(
                "InfluenceVsDistanceDisplay needs a binary classifier (one decision "
                f"function); got {type(final).__name__}. For other models compute a "
                "distance yourself and use from_estimates."
            )
        X = _one_row(X, "X")
        if y is not None:
            y = np.atleast_1d(np.asarray(y))
        influence = np.asarray(explainer.explain(X, y))[0]
        problem = explainer.problem_
        w = coef[0]
        X_train = problem.X
        score = np.asarray(X_train @ w).ravel() + float(np.ravel(final.intercept_)[0])
        scale = np.linalg.norm(w)
        values = score / scale
        y_train = np.asarray(problem.y)
        if distance == "absolute":
            values = np.abs(values)
        elif distance == "margin":
            values = values * np.where(y_train == classes[1], 1.0, -1.0)
        margin = 1.0 / scale if type(final).__name__ == "LinearSVC" else None
        return cls.from_estimates(influence, values, labels=y_train, margin=margin,
                                  distance_kind=distance, ax=ax, title=title,
                                  **scatter_kwargs)


class InfluentialRowsDisplay:
    """The most helpful and most harmful training rows for one test row.

    With ``image_shape``, rows are drawn as images (the test row first, then
    the helpful and the harmful rows, each titled with its index, label and
    influence); otherwise as a table of feature values.

    Parameters
    ----------
    influence : ndarray of shape (n_train,)
        Influence of each training row on the test row.
    X_train : array-like of shape (n_train, n_features)
        The training rows to show (for example unscaled images).
    x_test : array-like of shape (n_features,), default=None
        The test row, shown first.
    y_train : array-like of shape (n_train,), default=None
    y_test : scalar, default=None
    n_rows : int, default=5
        Helpful rows and harmful rows shown (each).
    image_shape : tuple of int, default=None
        Draw each row reshaped to this shape with ``imshow``.
    feature_names : list of str, default=None
        Row names of the table (defaults to the DataFrame's columns, or
        ``x0, x1, ...``).

    Attributes
    ----------
    helpful_indices_, harmful_indices_ : ndarray of int
        Training rows with the largest (most helpful) and smallest (most
        harmful) influence, in that order.
    ax_ : ndarray of Axes (images) or Axes (table)
    figure_ : matplotlib Figure
    table_ : matplotlib Table (table only)
    """

    def __init__(self, influence, X_train, *, x_test=None, y_train=None, y_test=None,
                 n_rows=5, image_shape=None, feature_names=None):
        self.influence = np.asarray(influence, float).ravel()
        if feature_names is None and hasattr(X_train, "columns"):
            feature_names = [str(c) for c in X_train.columns]
        if hasattr(X_train, "toarray"):
            X_train = X_train.toarray()
        self.X_train = np.asarray(X_train)
        if self.X_train.shape[0] != self.influence.shape[0]:
            raise ValueError(
                f"X_train has {self.X_train.shape[0]} rows but influence has "
                f"{self.influence.shape[0]} entries; pass the training rows the "
                "explainer was fitted on."
            )
        if x_test is not None:
            x_test = np.asarray(x_test.toarray() if hasattr(x_test, "toarray")
                                else x_test).ravel()
        self.x_test = x_test
        self.y_train = None if y_train is None else np.asarray(y_train).ravel()
        self.y_test = y_test
        self.n_rows = int(n_rows)
        self.image_shape = image_shape
        self.feature_names = feature_names
        order = np.argsort(self.influence, kind="stable")
        k = min(self.n_rows, order.size)
        self.helpful_indices_ = order[::-1][:k]
        self.harmful_indices_ = order[:k]

    def _caption(self, i):
        label = "" if self.y_train is None else f" y={self.y_train[i]}"
        return f"#{i}{label}\n{self.influence[i]:+.2g}"

    def plot(self, ax=None, *, cmap="gray_r"):
        """Draw the gallery (images) or the table.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            Images: ``1 + 2 * n_rows`` Axes, or one Axes whose area is split
            into a grid; a table: one Axes. A new figure when None.
        cmap : str, default="gray_r"
            Colour map of the images.

        Returns
        -------
        display : InfluentialRowsDisplay
        """
        caller = f"{type(self).__name__}.plot"
        plt = _pyplot(caller)
        if self.image_shape is not None:
            self._plot_images(plt, ax, cmap)
        else:
            self._plot_table(plt, ax)
        return self

    def _grid(self, plt, ax, n_cols):
        if ax is None:
            fig, axes = plt.subplots(3, n_cols, figsize=(1.3 * n_cols, 4.6),
                                     layout="constrained", squeeze=False)
            return fig, axes
        if isinstance(ax, np.ndarray) or isinstance(ax, (list, tuple)):
            axes = np.asarray(ax, dtype=object).ravel()
            needed = 1 + 2 * len(self.helpful_indices_)
            if axes.size < needed:
                raise ValueError(f"ax holds {axes.size} Axes; {needed} are needed.")
            return axes[0].figure, axes
        fig = ax.figure
        spec = ax.get_subplotspec().subgridspec(3, n_cols)
        ax.set_axis_off()
        axes = np.array([[fig.add_subplot(spec[r, c]) for c in range(n_cols)]
                         for r in range(3)], dtype=object)
        return fig, axes

    def _plot_images(self, plt, ax, cmap):
        k = len(self.helpful_indices_)
        fig, axes = self._grid(plt, ax, max(k, 1))
        if axes.ndim == 2:
            for a in axes.ravel():
                a.set_axis_off()
            slots = [axes[0, 0]] + list(axes[1, :k]) + list(axes[2, :k])
        else:
            slots = list(axes)
        images = [self.X_train[i] for i in self.helpful_indices_] + \
            [self.X_train[i] for i in self.harmful_indices_]
        captions = [self._caption(i) for i in self.helpful_indices_] + \
            [self._caption(i) for i in self.harmful_indices_]
        test_slot, row_slots = slots[0], slots[1:]
        if self.x_test is not None:
            test_slot.imshow(self.x_test.reshape(self.image_shape), cmap=cmap)
            label = "" if self.y_test is None else f" y={self.y_test}"
            test_slot.set_title(f"test row{label}", fontsize="small")
        for slot, image, caption in zip(row_slots, images, captions):
            slot.imshow(np.asarray(image, float).reshape(self.image_shape), cmap=cmap)
            slot.set_title(caption, fontsize="x-small")
        for slot in slots:
            slot.set_xticks([])
            slot.set_yticks([])
        if axes.ndim == 2:
            axes[1, 0].set_ylabel("helpful", fontsize="small")
            axes[1, 0].set_axis_on()
            axes[2, 0].set_ylabel("harmful", fontsize="small")
            axes[2, 0].set_axis_on()
            for a in (axes[1, 0], axes[2, 0]):
                for spine in a.spines.values():
                    spine.set_visible(False)
        self.ax_, self.figure_ = axes, fig

    def _plot_table(self, plt, ax):
        n_features = self.X_train.shape[1]
        names = self.feature_names or [f"x{k}" for k in range(n_features)]
        columns, cells = [], []
        header = ["influence"] + ([] if self.y_train is None else ["label"])
        if self.x_test is not None:
            columns.append("test")
            top = [""] + ([] if self.y_train is None else [_fmt(self.y_test)])
            cells.append(top + [_fmt(v) for v in self.x_test])
        for name, rows in (("+", self.helpful_indices_), ("-", self.harmful_indices_)):
            for i in rows:
                columns.append(f"{name} #{i}")
                top = [f"{self.influence[i]:+.2g}"]
                if self.y_train is not None:
                    top.append(_fmt(self.y_train[i]))
                cells.append(top + [_fmt(v) for v in self.X_train[i]])
        cell_text = np.array(cells, dtype=object).T.tolist()
        if ax is None:
            _, ax = plt.subplots(figsize=(1.0 + 0.75 * len(columns),
                                          0.5 + 0.22 * (len(header) + n_features)),
                                 layout="constrained")
        ax.set_axis_off()
        self.table_ = ax.table(cellText=cell_text, rowLabels=header + list(names),
                               colLabels=columns, cellLoc="right",
                               bbox=(0.12, 0.0, 0.88, 0.93))
        self.table_.auto_set_font_size(False)
        self.table_.set_fontsize(7)
        ax.set_title("most helpful (+) and most harmful (-) training rows",
                     fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure

    @classmethod
    def from_estimates(cls, influence, X_train, *, x_test=None, y_train=None,
                       y_test=None, n_rows=5, image_shape=None, feature_names=None,
                       ax=None, cmap="gray_r"):
        """Show the extreme rows of an influence vector you already have.

        Returns
        -------
        display : InfluentialRowsDisplay
        """
        influence = np.asarray(influence)
        if influence.ndim == 2:
            if influence.shape[0] != 1:
                raise ValueError("influence must be the row of one test row.")
            influence = influence[0]
        display = cls(influence, X_train, x_test=x_test, y_train=y_train,
                      y_test=y_test, n_rows=n_rows, image_shape=image_shape,
                      feature_names=feature_names)
        if image_shape is not None:
            return display.plot(ax=ax, cmap=cmap)
        return display.plot(ax=ax)

    @classmethod
    def from_explainer(cls, explainer, X, y=None, *, X_train=None, y_train=None,
                       n_rows=5, image_shape=None, feature_names=None, ax=None,
                       cmap="gray_r"):
        """Explain one test row and show its most helpful and harmful rows.

        Parameters
        ----------
        explainer : fitted InfluenceExplainer
        X : array-like of shape (1, n_features) or (n_features,)
            The test row, as the explainer takes it (raw, for a Pipeline).
        y : scalar or array-like of shape (1,), default=None
        X_train : array-like of shape (n_train, n_features), default=None
            The training rows to show, as passed to ``fit`` (for a Pipeline on
            images: the raw images). Default: the matrix the final model saw.
        y_train : array-like of shape (n_train,), default=None
            Default: the training targets given to ``fit``.
        n_rows, image_shape, feature_names, ax, cmap
            As in the class and :meth:`plot`.

        Returns
        -------
        display : InfluentialRowsDisplay
        """
        _pyplot(f"{cls.__name__}.from_explainer")
        X_row = _one_row(X, "X")
        y_row = None if y is None else np.atleast_1d(np.asarray(y))
        influence = np.asarray(explainer.explain(X_row, y_row))[0]
        if X_train is None:
            X_train = explainer.problem_.X
        if y_train is None:
            y_train = explainer.problem_.y
        x_test = X_row
        if hasattr(x_test, "iloc"):
            x_test = x_test.to_numpy()
        if np.shape(x_test)[-1] != np.shape(X_train)[1]:
            x_test = None  # the test row is raw, X_train transformed: not comparable
        y_test = None if y_row is None else y_row[0]
        return cls.from_estimates(influence, X_train, x_test=x_test, y_train=y_train,
                                  y_test=y_test, n_rows=n_rows,
                                  image_shape=image_shape, feature_names=feature_names,
                                  ax=ax, cmap=cmap)


class RemovalCurveDisplay:
    """A metric after removing the top rows by a score, against random removal.

    The solid line is the metric of models refitted without the top
    ``fraction`` of the training rows by the score; the dashed line and the
    band are the mean and one standard deviation of random removals of the
    same sizes. Several curves (for example two scores) can share one Axes:
    call :meth:`plot` with the same ``ax``.

    Parameters
    ----------
    fractions : array-like of shape (n_fractions,)
        Shares of the training rows removed.
    targeted : array-like of shape (n_fractions,)
        The metric after removing the top rows.
    random : array-like of shape (n_random, n_fractions), default=None
        The metric after random removals.
    metric : str, default="loss"
        Axis label.
    label : str, default=None
        Legend entry of the targeted curve.

    Attributes
    ----------
    random_mean, random_std : ndarray or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    line_ : Line2D
        The targeted curve.
    random_line_ : Line2D or None
    band_ : PolyCollection or None

    Examples
    --------
    >>> from skinfluence.plotting import RemovalCurveDisplay
    >>> display = RemovalCurveDisplay([0, 0.1], [0.5, 0.3], [[0.5, 0.49], [0.5, 0.52]])
    >>> [round(float(v), 3) for v in display.random_mean]
    [0.5, 0.505]
    """

    def __init__(self, fractions, targeted, random=None, *, metric="loss",
                 label=None):
        self.fractions = np.asarray(fractions, float).ravel()
        self.targeted = np.asarray(targeted, float).ravel()
        if self.targeted.shape != self.fractions.shape:
            raise ValueError(f"targeted must have one value per fraction "
                             f"({self.fractions.size}); got {self.targeted.size}.")
        self.random = None if random is None or np.size(random) == 0 else np.atleast_2d(
            np.asarray(random, float))
        if self.random is not None and self.random.shape[1] != self.fractions.size:
            raise ValueError(f"random must have shape (n_random, "
                             f"{self.fractions.size}); got {self.random.shape}.")
        self.metric, self.label = metric, label
        if self.random is None:
            self.random_mean = self.random_std = None
        else:
            self.random_mean = np.nanmean(self.random, axis=0)
            self.random_std = (np.nanstd(self.random, axis=0, ddof=1)
                               if self.random.shape[0] > 1 else
                               np.zeros(self.fractions.size))

    def plot(self, ax=None, *, title=None, show_random=True, **line_kwargs):
        """Draw the targeted curve and, if any, the random band.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        title : str, default=None
        show_random : bool, default=True
            Draw the random removals (turn off for a second curve on the
            same Axes).
        **line_kwargs
            Passed to ``Axes.plot`` for the targeted curve.

        Returns
        -------
        display : RemovalCurveDisplay
        """
        ax = _new_axes(f"{type(self).__name__}.plot", ax, (5.0, 3.6))
        x = 100 * self.fractions
        line_kwargs.setdefault("marker", "o")
        line_kwargs.setdefault("label", self.label or "top rows by score")
        (self.line_,) = ax.plot(x, self.targeted, **line_kwargs)
        self.random_line_ = self.band_ = None
        if show_random and self.random is not None:
            (self.random_line_,) = ax.plot(x, self.random_mean, color="grey", ls="--",
                                           label=f"random ({self.random.shape[0]} "
                                                 "draws, mean +- sd)")
            self.band_ = ax.fill_between(x, self.random_mean - self.random_std,
                                         self.random_mean + self.random_std,
                                         color="grey", alpha=0.25, lw=0)
        ax.set_xlabel("training rows removed (%)")
        ax.set_ylabel(self.metric)
        ax.legend(fontsize="small")
        if title is not None:
            ax.set_title(title)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_curve(cls, curve, *, label=None, ax=None, title=None, show_random=True,
                   **line_kwargs):
        """Plot the result of :func:`~skinfluence.removal_curve`.

        Parameters
        ----------
        curve : Bunch
            As returned by :func:`~skinfluence.removal_curve`.
        label, ax, title, show_random, **line_kwargs
            As in the constructor and :meth:`plot`.

        Returns
        -------
        display : RemovalCurveDisplay
        """
        return cls(curve.fractions, curve.targeted, curve.random, metric=curve.metric,
                   label=label).plot(ax=ax, title=title, show_random=show_random,
                                     **line_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, X_eval, y_eval, scores, *, label=None,
                       ax=None, title=None, **kwargs):
        """Compute :func:`~skinfluence.removal_curve` and plot it.

        Parameters
        ----------
        estimator, X, y, X_eval, y_eval, scores
            As in :func:`~skinfluence.removal_curve`.
        label, ax, title
            As in :meth:`plot`.
        **kwargs
            Passed to :func:`~skinfluence.removal_curve` (``fractions``,
            ``direction``, ``metric``, ``n_random``, ...).

        Returns
        -------
        display : RemovalCurveDisplay
            With the computed result in ``curve_``.
        """
        from .evaluation import removal_curve

        _pyplot(f"{cls.__name__}.from_estimator")
        curve = removal_curve(estimator, X, y, X_eval, y_eval, scores, **kwargs)
        display = cls.from_curve(curve, label=label, ax=ax, title=title)
        display.curve_ = curve
        return display


def _fmt(value):
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)
