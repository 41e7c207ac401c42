"""Run every example top to bottom, headless, and check the claim it prints.

Each example is executed in this process with ``runpy`` under matplotlib's Agg
backend (imports are shared, so the module stays fast). The checks compare the
example's own numbers with what it claims: the exact leave-one-out refits are
the independent truth.
"""

import re
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def check_ridge_forestfires(g, out):
    assert g["pearson"]["direct"] > 0.99
    assert g["pearson"]["cg"] == pytest.approx(g["pearson"]["direct"], abs=1e-6)
    assert g["pearson"]["lissa, full batch"] == pytest.approx(g["pearson"]["direct"],
                                                              abs=1e-4)
    assert g["pearson"]["lissa, 16 rows/step"] > 0.95
    assert g["gap"] < 1e-8  # one Newton step is exact leave-one-out for ridge


def check_digits_logistic(g, out):
    assert g["display"].pearson > 0.97
    assert len(set(g["helpful"]) & g["top_actual"][0]) >= 4
    assert len(set(g["harmful"]) & g["top_actual"][1]) >= 4
    # helpful and harmful rows come from both classes
    assert min(min(pair) for pair in g["both_signs"]) > 0


def check_influence_components(g, out):
    np.testing.assert_allclose(g["full"], g["influence"], rtol=1e-6,
                               atol=1e-9 * np.abs(g["influence"]).max())
    assert g["sign_is_label"] == 1.0
    assert 0 < g["helpful_other"] < 1
    assert abs(np.corrcoef(g["no_hessian"], g["influence"])[0, 1]) < 0.9


def check_svm_smoothing(g, out):
    assert g["ours"][0.01] > 0.85
    assert g["ours"][0.01] > g["ours"][0.1]
    # the exact path equals the certified refits; non-support vectors are 0
    assert g["gap"] <= 1e-10 * np.abs(g["refit"]).max()
    assert np.all(g["exact"][:, ~g["support"]] == 0)


def check_logistic_vs_svm(g, out):
    svm = np.abs(g["displays"]["linear SVM (hinge)"].influence)
    logistic = np.abs(g["displays"]["logistic regression"].influence)
    far = g["beyond"]
    assert svm[far].max() < 1e-6 * svm.max()
    assert logistic[far].max() > 1e-3 * logistic.max()


def check_fix_mislabeled(g, out):
    at = g["at"]
    found = {name: np.mean(curve, axis=0) for name, curve in g["found"].items()}
    assert found["self-influence"][at] > 0.6
    assert found["self-influence"][at] > 3 * found["random"][at]
    accuracy = np.mean(g["accuracy"]["self-influence"], axis=0)
    assert accuracy[-1] > accuracy[0]


def check_pipeline_model_selection(g, out):
    assert g["display"].pearson > 0.99
    assert g["estimated"].shape == (5, len(g["y_train"]))


def check_loo_dask(g, out):
    np.testing.assert_array_equal(g["on_dask"], g["in_process"])
    assert g["display"].pearson > 0.9


def check_boosting_any_model(g, out):
    at = g["at"]
    for curve in g["curves"].values():
        assert curve.engine == "refit"
        assert curve.targeted[at] < curve.random_mean[at]
    assert g["flipped"][g["removed"]].mean() > 2 * g["flipped"].mean()
    assert g["agreement"].pearson > 0


def check_fairness_gap(g, out):
    gap, at = g["curves"]["demographic_parity"], g["at"]
    assert gap.engine == "newton"
    assert gap.targeted[at] < 0.5 * gap.full
    assert gap.targeted[at] < gap.random_mean[at] - 3 * gap.random_std[at]
    assert g["biased"][g["removed"]].mean() > 0.5
    assert abs(g["clean_gap"]) < 0.5 * gap.full


CHECKS = {
    "plot_ridge_forestfires.py": check_ridge_forestfires,
    "plot_digits_logistic.py": check_digits_logistic,
    "plot_influence_components.py": check_influence_components,
    "plot_svm_smoothing.py": check_svm_smoothing,
    "plot_logistic_vs_svm.py": check_logistic_vs_svm,
    "plot_fix_mislabeled.py": check_fix_mislabeled,
    "plot_pipeline_model_selection.py": check_pipeline_model_selection,
    "plot_loo_dask.py": check_loo_dask,
    "plot_boosting_any_model.py": check_boosting_any_model,
    "plot_fairness_gap.py": check_fairness_gap,
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("plot_*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example(name, capsys, monkeypatch):
    import runpy

    if name == "plot_loo_dask.py":
        pytest.importorskip("distributed")
    if name == "plot_pipeline_model_selection.py":
        pytest.importorskip("pandas")
    path = EXAMPLES / name
    source = path.read_text()
    # a sphinx-gallery script: title docstring, then "# %%" cells
    assert source.startswith('"""\n=') and "# %%" in source
    monkeypatch.chdir(path.parent)
    try:
        g = runpy.run_path(str(path), run_name="__main__")
        out = capsys.readouterr().out
        assert plt.get_fignums(), "the example drew no figure"
    finally:
        plt.close("all")
    # the claim is printed as a number
    assert re.search(r"ours = [-+]?\d", out), out
    CHECKS[name](g, out)
