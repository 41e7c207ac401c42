"""The evaluation harness: metrics against closed forms and known orderings."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge

from skinfluence import evaluate_estimators, linear_datamodeling_score


def test_lds_definition():
    rng = np.random.default_rng(1)
    tau = rng.normal(size=(3, 8))
    masks = rng.random((30, 8)) < 0.5
    noise = rng.normal(size=(30, 3))
    actual = 2.0 + (~masks) @ tau.T + noise
    expected = np.mean([spearmanr(2.0 + (~masks) @ tau[j], actual[:, j])[0]
                        for j in range(3)])
    assert linear_datamodeling_score(tau, masks, actual, np.full(3, 2.0)) == \
        pytest.approx(expected)
    # an attribution with the wrong sign is anti-correlated
    assert linear_datamodeling_score(-tau, masks, actual - noise, np.full(3, 2.0)) \
        == pytest.approx(-1.0)


def test_harness_on_ridge():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=60)
    X_test = rng.normal(size=(15, 3))
    y_test = X_test @ [1.0, -2.0, 0.5]
    res = evaluate_estimators(
        Ridge(alpha=1.0), X, y, X_test, y_test,
        methods=("loo", "first_order", "newton", "representer", "downsampling",
                 "tmc_shapley", "banzhaf"),
        params={"downsampling": {"n_models": 100, "engine": "newton"},
                "tmc_shapley": {"n_permutations": 30},
                "banzhaf": {"n_samples": 200}},
        n_lds_subsets=20)
    table = {row["method"]: row for row in res.table}
    assert table["loo"]["loo_pearson"] == pytest.approx(1.0)
    assert table["newton"]["loo_pearson"] == pytest.approx(1.0, abs=1e-9)  # exact
    assert table["first_order"]["loo_pearson"] > 0.95
    assert res.flipped.sum() == 6
    # reflected targets are large outliers: exact LOO finds them
    assert table["loo"]["flip_auc"] > 0.9
    assert table["loo"]["lds"] > 0.5
    for row in res.table:
        assert np.isfinite([row["loo_pearson"], row["lds"], row["flip_auc"],
                            row["seconds"]]).all()
    assert "flip AUC" in res.text


def test_unknown_method():
    with pytest.raises(ValueError, match="Unknown methods"):
        evaluate_estimators(Ridge(), np.eye(4), np.ones(4), np.eye(4), np.ones(4),
                            methods=("magic",))
