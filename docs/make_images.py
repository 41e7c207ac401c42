"""Regenerate the pictures under docs/images from the examples.

Run from the project root: ``python docs/make_images.py``.
"""

import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {
    # example script -> picture of its first figure
    "plot_ridge_forestfires.py": "estimated_vs_actual.png",
}

if __name__ == "__main__":
    for script, picture in IMAGES.items():
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
        plt.figure(plt.get_fignums()[0]).savefig(ROOT / "docs" / "images" / picture,
                                                 dpi=72)
        plt.close("all")
        print(f"wrote docs/images/{picture}")
