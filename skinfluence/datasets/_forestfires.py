"""Loader of the UCI Forest Fires data set (Cortez & Morais, 2007; CC BY 4.0)."""

import csv
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_forestfires"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
           "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CATEGORICAL = ("month", "day")

_DESCR = """\
Forest Fires (UCI Machine Learning Repository)
----------------------------------------------

517 forest fires in the Montesinho natural park, Portugal. Inputs: ``X``, ``Y``
(spatial grid coordinates, 1-9), ``month`` and ``day`` (categorical), the Fire
Weather Index components ``FFMC``, ``DMC``, ``DC``, ``ISI``, and ``temp`` (C),
``RH`` (%), ``wind`` (km/h), ``rain`` (mm/m2). Target: the burned ``area`` in
hectares, heavily skewed (most fires burned under 1 ha); ``log1p(area)`` is the
usual transform.

Source: P. Cortez and A. Morais, "A Data Mining Approach to Predict Forest Fires
using Meteorological Data", EPIA 2007, pp. 512-523. UCI repository,
https://archive.ics.uci.edu/dataset/162/forest+fires. Licence: CC BY 4.0.
"""


def load_forestfires(*, as_frame=False, log_target=False, one_hot=False):
    """Load the UCI Forest Fires regression data set (517 rows).

    Parameters
    ----------
    as_frame : bool, default=False
        Return ``data`` as a pandas DataFrame (``month`` and ``day`` as strings)
        and ``target`` as a Series. Needs pandas.
    log_target : bool, default=False
        Return ``log1p(area)`` instead of the burned area in hectares.
    one_hot : bool, default=False
        Replace ``month`` and ``day`` by one indicator column per level
        (``month_jan`` ... ``day_sun``), giving a purely numeric array. Without
        it and without ``as_frame``, ``data`` is an object array.

    Returns
    -------
    data : Bunch
        ``data``, ``target``, ``feature_names``, ``target_name``,
        ``categorical_features`` and ``DESCR``; ``frame`` with ``as_frame``.

    Notes
    -----
    Source: UCI Machine Learning Repository (Cortez & Morais, 2007), licensed
    CC BY 4.0; shipped unchanged in ``skinfluence/datasets/data``.

    Examples
    --------
    >>> from skinfluence.datasets import load_forestfires
    >>> data = load_forestfires(log_target=True, one_hot=True)
    >>> data.data.shape
    (517, 29)
    """
    with resources.files(__package__).joinpath("data", "forestfires.csv").open(
            "r", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    columns = {name: [row[k] for row in rows] for k, name in enumerate(header)}
    target = np.asarray(columns.pop("area"), dtype=float)
    target_name = "area"
    if log_target:
        target, target_name = np.log1p(target), "log1p(area)"
    names = list(columns)
    numeric = {name: np.asarray(values, dtype=float)
               for name, values in columns.items() if name not in _CATEGORICAL}

    if one_hot:
        blocks, feature_names = [], []
        for name in names:
            if name in _CATEGORICAL:
                levels = _MONTHS if name == "month" else _DAYS
                values = np.asarray(columns[name])
                for level in levels:
                    blocks.append((values == level).astype(float))
                    feature_names.append(f"{name}_{level}")
            else:
                blocks.append(numeric[name])
                feature_names.append(name)
        data = np.column_stack(blocks)
        categorical = []
    else:
        feature_names = names
        categorical = list(_CATEGORICAL)
        data = np.empty((len(rows), len(names)), dtype=object)
        for k, name in enumerate(names):
            data[:, k] = columns[name] if name in _CATEGORICAL else numeric[name]

    bunch = Bunch(target=target, feature_names=feature_names, target_name=target_name,
                  categorical_features=categorical, DESCR=_DESCR)
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(data, columns=feature_names)
        for name in feature_names:
            if name not in categorical:
                frame[name] = frame[name].astype(float)
        bunch.data = frame
        bunch.target = pd.Series(target, name=target_name)
        bunch.frame = pd.concat([frame, bunch.target], axis=1)
    else:
        bunch.data = data
    return bunch
