"""The shipped Forest Fires data: shape, encodings, and packaging."""

import csv
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from skinfluence.datasets import load_forestfires


def test_forestfires_numeric_one_hot():
    data = load_forestfires(log_target=True, one_hot=True)
    assert data.data.shape == (517, 29) and data.data.dtype == np.float64
    months = [k for k, n in enumerate(data.feature_names) if n.startswith("month_")]
    days = [k for k, n in enumerate(data.feature_names) if n.startswith("day_")]
    assert len(months) == 12 and len(days) == 7
    np.testing.assert_array_equal(data.data[:, months].sum(axis=1), 1.0)
    np.testing.assert_array_equal(data.data[:, days].sum(axis=1), 1.0)
    raw = load_forestfires()
    np.testing.assert_allclose(data.target, np.log1p(raw.target))
    assert raw.target.max() == pytest.approx(1090.84)  # the largest fire, in ha
    assert data.target_name == "log1p(area)"
    # first row of the file: 7,5,mar,fri,86.2,...,area 0
    assert list(raw.data[0, :4]) == [7.0, 5.0, "mar", "fri"]
    assert data.data[0, data.feature_names.index("month_mar")] == 1.0
    assert "CC BY 4.0" in data.DESCR


def test_forestfires_frame():
    pytest.importorskip("pandas")
    data = load_forestfires(as_frame=True)
    assert data.data.shape == (517, 12)
    assert data.categorical_features == ["month", "day"]
    assert set(data.data["day"]) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    assert data.frame.shape == (517, 13)
    assert data.data["temp"].dtype == np.float64


def test_forestfires_file_matches_shared_copy_and_is_packaged():
    path = resources.files("skinfluence.datasets").joinpath("data", "forestfires.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 518 and rows[0][-1] == "area"
    readme = resources.files("skinfluence.datasets").joinpath("data", "README.md")
    assert "CC BY 4.0" in readme.read_text() and "Cortez" in readme.read_text()
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.exists():
        config = tomllib.loads(pyproject.read_text())
        patterns = config["tool"]["setuptools"]["package-data"]["skinfluence.datasets"]
        assert "data/*.csv" in patterns
