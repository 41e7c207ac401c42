"""Small data sets shipped with skinfluence (see ``data/README.md``)."""

from ._forestfires import load_forestfires

__all__ = ["load_forestfires"]
