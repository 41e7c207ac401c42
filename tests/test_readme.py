"""The README runs as written: its code, top to bottom, prints what it shows;
the demonstration's exact engine agrees with refits of the model."""

import doctest
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("pandas")


def test_readme_code_prints_what_it_shows():
    result = doctest.testfile(
        str(ROOT / "README.rst"), module_relative=False, report=True,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 40  # the examples were found
    assert result.failed == 0


def test_readme_has_no_code_outside_the_checked_examples():
    text = (ROOT / "README.rst").read_text()
    assert ".. code-block:: python" not in text  # every Python example is checked


def test_demo_exact_engine_agrees_with_refits():
    from skinfluence.__main__ import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--n-test", "1", "--top", "2", "--n-jobs", "1"]) == 0
    text = out.getvalue()
    agreement = float(text.split("they agree to ")[1].split()[0])
    assert agreement < 1e-9  # the Newton engine against refits of clones
    assert "most helpful: train" in text and "most harmful: train" in text
