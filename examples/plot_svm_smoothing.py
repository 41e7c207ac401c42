"""
=====================================================================
Linear SVM: the smoothed hinge against the exact hinge leave-one-out
=====================================================================

The paper's Figure 4. The hinge loss ``max(0, 1 - m)`` has no second
derivative at the margin, so the influence function is computed on the smooth
approximation ``h_t(m) = t log(1 + exp((1 - m) / t))`` (``smoothing=t``) and
compared with the exact leave-one-out change of the true hinge-loss
``LinearSVC``: ``loo(method="exact")``, the decremental path from the exact
optimum, which agrees with refits of the model to round-off (last panel) at a
fraction of their cost. Data: the Iris versicolor (``+1``) and virginica
(``-1``) flowers, 10 random test flowers, the other 90 for training.
"""

# %%
# The smoothed hinge
# ------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.plotting import EstimatedVsActualDisplay

ts = (0.001, 0.01, 0.1)
fig, axes = plt.subplots(1, 5, figsize=(20, 4), layout="constrained")
m = np.linspace(-1, 3, 400)
axes[0].plot(m, np.maximum(0, 1 - m), color="k", label="hinge (t = 0)")
for t in ts + (0.3,):
    axes[0].plot(m, t * np.logaddexp(0, (1 - m) / t), label=f"t = {t}")
axes[0].set_xlabel("margin y (x.w + b)")
axes[0].set_title("smoothed hinge h_t")
axes[0].legend(fontsize="small")

# %%
# Data and the hinge-loss LinearSVC
# ---------------------------------
iris = load_iris()
keep = iris.target > 0
y_all = np.where(iris.target[keep] == 1, 1, -1)
rng = np.random.RandomState(0)
test = rng.choice(keep.sum(), size=10, replace=False)
train = np.setdiff1d(np.arange(keep.sum()), test)


def influence_vs_loo(X, C, smoothings, axes=None):
    """Pearson(influence with smoothing t, exact hinge LOO) for each t."""
    X_train, y_train, X_test, y_test = X[train], y_all[train], X[test], y_all[test]
    model = LinearSVC(loss="hinge", C=C, tol=1e-10, max_iter=100_000)
    model.fit(X_train, y_train)
    actual = InfluenceExplainer(model).fit(X_train, y_train).loo(X_test, y_test,
                                                                  method="exact")
    labels = np.broadcast_to(y_train, actual.shape)
    pearson = {}
    for k, t in enumerate(smoothings):
        explainer = InfluenceExplainer(model, smoothing=t).fit(X_train, y_train)
        display = EstimatedVsActualDisplay(explainer.explain(X_test, y_test), actual,
                                           labels=labels)
        if axes is not None:
            display.plot(ax=axes[k], title=f"smoothed hinge, t = {t}")
        pearson[t] = display.pearson
    return pearson, actual


X_scaled = StandardScaler().fit_transform(iris.data[keep])
ours, exact = influence_vs_loo(X_scaled, C=0.05, smoothings=ts, axes=axes[1:4])

# %%
# The exact path on the diagonal: against refits of the model
# ------------------------------------------------------------
# ``loo(method="refit")`` refits a clone without each row (liblinear at
# ``tol=1e-10``, each refit polished to its exact optimum and certified by its
# duality gap). The exact path gives the same numbers; the rows that are not
# support vectors are exactly 0 in both.
model = LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100_000)
model.fit(X_scaled[train], y_all[train])
explainer = InfluenceExplainer(model).fit(X_scaled[train], y_all[train])
refit = explainer.loo(X_scaled[test], y_all[test], method="refit")
exact_display = EstimatedVsActualDisplay(exact, refit,
                                         labels=np.broadcast_to(y_all[train], refit.shape))
exact_display.plot(ax=axes[4], title="exact path vs refits")
axes[4].set_ylabel("exact path")
gap = float(np.abs(exact - refit).max())
support = explainer.influence_.support[:, 0]

# %%
# The paper's own setting: raw features, lambda = 2 (C = 1 / lambda)
# ------------------------------------------------------------------
raw, _ = influence_vs_loo(iris.data[keep], C=0.5, smoothings=(0.01, 0.1))

# %%
# The claim, in numbers
# ---------------------
print("Figure 4 (paper: Pearson(influence, hinge LOO) = 0.8602 at t = 0.01, "
      "0.7700 at t = 0.1; t -> 0 overestimates)")
for t, r in ours.items():
    paper = {0.01: "0.8602", 0.1: "0.7700"}.get(t, "'disastrous'")
    print(f"  standardised, C = 0.05, t = {t:<5}: ours = {r:.4f}  (paper {paper})")
for t, r in raw.items():
    print(f"  raw features, C = 0.5,  t = {t:<5}: ours = {r:.4f}")
print(f"exact path vs refits: max |difference| = {gap:.1e} (largest effect "
      f"{np.abs(refit).max():.3f}); {int((~support).sum())} of {support.size} training "
      "rows are not support vectors and have exactly 0 effect")
