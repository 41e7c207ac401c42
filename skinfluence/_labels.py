"""pandas in, pandas out: results labelled by the caller's row and column names.

When the training ``X`` (or the test ``X`` of a call) is a DataFrame, or the
explainer was built with ``output="pandas"``, the explainer's results come
back labelled: test rows by the test index, training rows by the training
index, groups by their labels, parameters by their names. ``output="numpy"``
keeps plain arrays. pandas is imported only when labels are asked for.
"""

import numpy as np

__all__ = ["OUTPUTS", "index_of", "is_frame", "label", "parameter_names"]

#: what the explainer's ``output`` parameter accepts
OUTPUTS = ("auto", "numpy", "pandas")


def is_frame(X):
    """Whether ``X`` is a pandas DataFrame (or Series), without importing pandas."""
    return hasattr(X, "index") and hasattr(X, "iloc")


def index_of(X):
    """The row labels of ``X``: its index if it is a DataFrame, else None."""
    return X.index if is_frame(X) else None


def _index(labels, n):
    import pandas as pd

    return pd.RangeIndex(n) if labels is None else pd.Index(labels)


def parameter_names(explainer):
    """Names of the flat parameters ``Theta.ravel()``: ``"<feature>"`` (with
    ``"<output>:"`` in front for several outputs), the intercept last as
    ``"intercept"``."""
    family = explainer.family_
    features = _input_feature_names(explainer, family.n_features)
    outputs = _output_names(family)
    names = []
    for out in outputs:
        prefix = "" if out is None else f"{out}:"
        names.extend(prefix + name for name in features)
        if family.fit_intercept:
            names.append(prefix + "intercept")
    return names


def _input_feature_names(explainer, n):
    """Names of the columns the final model sees (after a Pipeline's steps)."""
    estimator = explainer.estimator_
    steps = getattr(estimator, "steps", None)
    names = None
    if steps is not None and len(steps) > 1:
        try:
            names = list(estimator[:-1].get_feature_names_out())
        except (AttributeError, ValueError, TypeError):
            names = None
    elif hasattr(explainer, "feature_names_in_"):
        names = list(explainer.feature_names_in_)
    if names is None or len(names) != n:
        names = [f"x{j}" for j in range(n)]
    return [str(name) for name in names]


def _output_names(family):
    K = family.n_outputs
    if K == 1:
        return [None]
    classes = getattr(family, "classes", None)
    if classes is not None and len(classes) == K:
        return [str(c) for c in classes]
    return [f"output{k}" for k in range(K)]


def _rows(labels, rows):
    """The labels of ``rows`` (positions), keeping the index's dtype."""
    return labels if rows is None else labels[np.asarray(rows)]


def label(explainer, kind, result, X=None, rows=None, groups=None):
    """Label ``result`` of an explainer method of ``kind`` if pandas is wanted.

    ``kind``: "test_train" ((n_test, n_rows[, n_outputs]) matrices), "train"
    (one value per training row), "top" (top_influencers), "ranking"
    (rank_suspicious), "groups" ((n_test, n_groups)), "parameters"
    ((n_rows, n_parameters)), "diagnostics" (a Bunch of per-row arrays),
    "intervals" (loo_interval's result: its arrays labelled by test row and
    removal).
    ``X`` the call's test rows, ``rows`` the training rows the result covers
    (positions; all when None), ``groups`` the group labels.
    """
    output = getattr(explainer, "output", "auto")
    train_labels = getattr(explainer, "_training_index", None)
    wanted = output == "pandas" or (output == "auto" and (
        train_labels is not None or (X is not None and is_frame(X))))
    if not wanted:
        return result
    import pandas as pd

    n_train = explainer.problem_.n_samples
    train = _index(train_labels, n_train)
    test = None if X is None else _index(index_of(X), _n_rows(X))
    columns = pd.Index(_rows(train, rows), name="train")
    if kind == "test_train":
        values = np.asarray(result)
        if values.ndim == 2:
            return pd.DataFrame(values, index=test.rename("test"), columns=columns)
        outputs = _output_names(explainer.family_)
        if len(outputs) != values.shape[2]:
            outputs = [f"output{k}" for k in range(values.shape[2])]
        multi = pd.MultiIndex.from_product([columns, outputs], names=["train", "output"])
        return pd.DataFrame(values.reshape(values.shape[0], -1), index=test.rename("test"),
                            columns=multi)
    if kind == "train":
        return pd.Series(np.asarray(result), index=columns, name=getattr(
            result, "name", None))
    if kind == "ranking":
        result.ranking = pd.Index(_rows(train, result.ranking), name="train")
        result.scores = pd.Series(result.scores, index=columns, name="suspicion")
        return result
    if kind == "groups":
        names = pd.Index(groups, name="group")
        return pd.DataFrame(np.asarray(result), index=test.rename("test"), columns=names)
    if kind == "parameters":
        return pd.DataFrame(np.asarray(result), index=columns,
                            columns=pd.Index(parameter_names(explainer), name="parameter"))
    if kind == "top":
        return _top_frame(result, test, train)
    if kind == "intervals":
        return _interval_frames(result, test, columns if groups is None
                                else pd.Index(groups, name="group"))
    raise ValueError(f"unknown result kind {kind!r}")


_PER_REMOVAL = ("refined", "residual", "margin_change", "n_steps", "undefined")


def _interval_frames(result, test, removals):
    """Certified intervals: (test row x removal) arrays as DataFrames, one
    value per removal as Series; the rest (diagnostics) as they are."""
    import pandas as pd

    n = len(removals)
    for key, value in list(result.items()):
        if not isinstance(value, np.ndarray):
            continue
        if value.ndim == 2 and value.shape == (len(test), n):
            result[key] = pd.DataFrame(value, index=test.rename("test"), columns=removals)
        elif key in _PER_REMOVAL and value.shape == (n,):
            result[key] = pd.Series(value, index=removals, name=key)
        elif key == "baseline_width" and value.shape == (len(test),):
            result[key] = pd.Series(value, index=test.rename("test"), name=key)
    return result


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _top_frame(result, test, train):
    """A tidy long DataFrame: one row per (test row, direction, rank), in the
    order of the test rows, helpful before harmful."""
    import pandas as pd

    train_labels, test_labels = pd.Index(train), pd.Index(test)
    parts = []
    for order, side in enumerate(("helpful", "harmful")):
        idx = np.asarray(result[f"{side}_indices"])
        values = np.asarray(result[f"{side}_values"])
        m, k = idx.shape
        parts.append(pd.DataFrame({
            "_position": np.repeat(np.arange(m), k) * 2 + order,
            "test": test_labels.repeat(k),
            "direction": side,
            "rank": np.tile(np.arange(1, k + 1), m),
            "train": train_labels.take(idx.ravel()),
            "influence": values.ravel(),
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["_position", "rank"], kind="stable")
    return frame.drop(columns="_position").reset_index(drop=True)


def diagnostics_frame(explainer, diagnostics):
    """statsmodels' ``summary_frame()`` layout: one row per training row, one
    column per diagnostic, DFBETA(S) per named parameter."""
    import pandas as pd

    train = _index(getattr(explainer, "_training_index", None),
                   explainer.problem_.n_samples).rename("train")
    names = parameter_names(explainer)
    columns = {}
    for key, value in diagnostics.items():
        value = np.asarray(value)
        if value.ndim == 1 and value.shape[0] == len(train):
            columns[key] = value
        elif value.ndim == 2 and value.shape == (len(train), len(names)):
            for j, name in enumerate(names):
                columns[f"{key}_{name}"] = value[:, j]
    return pd.DataFrame(columns, index=train)
