"""Write the generated inputs of the R reference script (run from the project root).

``wls.csv``: 40 rows, three features of very different scales, a linear target
with noise and positive weights. ``binomial.csv``: 150 rows of scikit-learn's
breast-cancer data, five standardised features (not separable), the label and
positive weights. Then run ``Rscript tests/data/make_r_references.R``.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

HERE = Path(__file__).parent


def main():
    rng = np.random.default_rng(20261201)
    n = 40
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [5.0, -20.0, 0.0]
    y = X @ [1.5, -0.2, 8.0] + 3.0 + rng.normal(size=n) * 0.7
    w = rng.uniform(0.2, 3.0, size=n)
    with open(HERE / "wls.csv", "w") as f:
        f.write("y,x1,x2,x3,w\n")
        for row in zip(y, *X.T, w):
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    data = load_breast_cancer()
    cols = [0, 1, 4, 5, 8]  # mean radius, texture, smoothness, compactness, symmetry
    Xb = data.data[:, cols]
    Xb = (Xb - Xb.mean(0)) / Xb.std(0)
    yb = data.target
    idx = rng.permutation(len(yb))[:150]
    Xb, yb = Xb[idx], yb[idx]
    wb = rng.uniform(0.5, 2.0, size=len(yb))
    names = [data.feature_names[c].replace(" ", "_") for c in cols]
    with open(HERE / "binomial.csv", "w") as f:
        f.write("y," + ",".join(names) + ",w\n")
        for i in range(len(yb)):
            values = [str(int(yb[i]))] + [repr(float(v)) for v in Xb[i]] + [repr(float(wb[i]))]
            f.write(",".join(values) + "\n")


if __name__ == "__main__":
    main()
