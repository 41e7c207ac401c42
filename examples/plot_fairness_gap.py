"""
===================================================
Which training rows drive a fairness gap?
===================================================

The demographic-parity gap of a classifier is the difference of its mean
predicted probability between two groups. Which training rows open it?
``functional_influence`` answers for every training row at once: the
predicted change of the gap when the row is removed, from one solve with the
Hessian. The removal curve then checks the answer by retraining.

The group here is **synthetic**, stated honestly: the breast-cancer data have
no sensitive attribute, so each row gets a made-up group 0 or 1, balanced
within each class, as an extra feature. A biased labeller then marks 30% of
the benign rows of group 0 as malignant in the training set, which opens a gap
(group 1 minus group 0) that the clean labels do not have.
"""

# %%
# Data, a synthetic group and biased labels
# -----------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer, removal_curve
from skinfluence.plotting import RemovalCurveDisplay

rng = np.random.default_rng(0)
X, y = load_breast_cancer(return_X_y=True)
X_train, X_rest, y_train, y_rest = train_test_split(
    X, y, test_size=0.5, random_state=0, stratify=y)
X_val, X_test, y_val, y_test = train_test_split(
    X_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest)


def synthetic_group(labels):
    """Group 0 or 1 at random, half of each class in each group."""
    group = np.empty(len(labels), dtype=int)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        group[rows] = np.arange(len(rows)) % 2
    return group


g_train, g_val, g_test = (synthetic_group(labels) for labels in (y_train, y_val, y_test))
biased = (g_train == 0) & (y_train == 1) & (rng.random(len(y_train)) < 0.3)
y_biased = np.where(biased, 0, y_train)
scaler = StandardScaler().fit(X_train)
X_train, X_val, X_test = (np.column_stack([scaler.transform(A), g])
                          for A, g in ((X_train, g_train), (X_val, g_val),
                                       (X_test, g_test)))
model = LogisticRegression(C=0.1, max_iter=5000).fit(X_train, y_biased)

# %%
# Influence of every training row on the gap
# ------------------------------------------
# The gap is measured on validation rows; negative influence means removing
# the row would lower (close) the gap.
explainer = InfluenceExplainer(model).fit(X_train, y_biased)
influence = explainer.functional_influence(X_val, "demographic_parity",
                                           groups=g_val)

# %%
# Removal curve on held-out test rows
# -----------------------------------
fractions = [0.0, 0.02, 0.05, 0.1]
curves = {metric: removal_curve(model, X_train, y_biased, X_test, y_test,
                                influence, fractions=fractions, metric=metric,
                                groups=g_test, n_random=10, random_state=0)
          for metric in ("demographic_parity", "loss")}
clean = LogisticRegression(C=0.1, max_iter=5000).fit(X_train, y_train)
p = clean.predict_proba(X_test)[:, 1]
clean_gap = p[g_test == 1].mean() - p[g_test == 0].mean()

fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for ax, (metric, curve) in zip(axes, curves.items()):
    RemovalCurveDisplay.from_curve(curve, ax=ax, label="largest gap reduction first")
axes[0].axhline(clean_gap, color="green", lw=1, ls=":", label="clean labels")
axes[0].axhline(0.0, color="black", lw=0.5)
axes[0].legend(fontsize="small")
axes[0].set_ylabel("demographic-parity gap (test)")
axes[1].set_ylabel("test log-loss")

# %%
# The claim, in numbers
# ---------------------
gap = curves["demographic_parity"]
at = fractions.index(0.05)
removed = gap.order[: gap.n_removed[at]]
print(f"gap with the biased labels {gap.full:.3f}, with clean labels "
      f"{clean_gap:.3f}")
print(f"after removing the 5% of rows with the most negative influence on the "
      f"gap: ours = {gap.targeted[at]:.3f}; after removing 5% at random "
      f"{gap.random_mean[at]:.3f} +- {gap.random_std[at]:.3f}")
print(f"biased labels among the removed rows: {biased[removed].mean():.0%} "
      f"({biased.mean():.0%} of all training rows)")
