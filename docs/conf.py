"""Sphinx configuration: numpydoc docstrings, an API reference generated from
them, and the examples rendered by sphinx-gallery.

Build offline from the project root: ``python -m sphinx -b html docs docs/_build``
(``pip install ".[docs]"``). Set ``SKINFLUENCE_DOCS_RUN_EXAMPLES=0`` to build
without running the examples (the test suite runs them separately).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import skinfluence  # noqa: E402

project = "skinfluence"
author = "the skinfluence developers"
copyright = "2026, the skinfluence developers"
release = skinfluence.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# the API pages document numpydoc sections, not every type name
numpydoc_validation_checks = set()

intersphinx_mapping = {}  # offline build: no inventories fetched

templates_path = []
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5"]
html_theme = "alabaster"
html_static_path = []
html_title = f"skinfluence {release}"

run_examples = os.environ.get("SKINFLUENCE_DOCS_RUN_EXAMPLES", "1") != "0"
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "plot_gallery": run_examples,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "matplotlib_animations": False,
    "min_reported_time": 0,
    "reset_modules": ("matplotlib",),
}
suppress_warnings = ["config.cache"]


def _skip_inherited_plumbing(app, what, name, obj, skip, options):
    """scikit-learn's metadata-routing methods are documented by scikit-learn."""
    if name == "get_metadata_routing" or (name.startswith("set_") and
                                          name.endswith("_request")):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_plumbing)
