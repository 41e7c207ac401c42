"""The documentation: every public name shows an example, and the Sphinx site
builds offline without warnings (slow; needs the ``docs`` extra)."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import skinfluence
from skinfluence import InfluenceExplainer

ROOT = Path(__file__).resolve().parents[1]
# scikit-learn's delegations to the fitted model: documented there
DELEGATIONS = {"predict", "predict_proba", "predict_log_proba", "decision_function",
               "score"}


def _public_methods(cls):
    for name, member in vars(cls).items():
        if name.startswith("_") or name in DELEGATIONS or not inspect.isfunction(member):
            continue
        yield f"{cls.__name__}.{name}", member


@pytest.mark.parametrize("name", sorted(skinfluence.__all__))
def test_public_names_show_an_example(name):
    doc = inspect.getdoc(getattr(skinfluence, name)) or ""
    assert "Examples\n--------" in doc, f"skinfluence.{name} has no Examples section"


@pytest.mark.parametrize("name, method", sorted(_public_methods(InfluenceExplainer)))
def test_explainer_methods_show_an_example(name, method):
    doc = inspect.getdoc(method) or ""
    assert "Examples\n--------" in doc, f"{name} has no Examples section"


@pytest.mark.slow
def test_the_documentation_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("sphinx_gallery")
    env = dict(os.environ, SKINFLUENCE_DOCS_RUN_EXAMPLES="0")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "html" / "index.html").exists()
