"""Downsampling against brute-force sklearn refits on the same subsets, exact
LOO as the target it approaches, and memorisation of a corrupted row."""

import numpy as np
import pytest
from joblib import parallel_config
from scipy.stats import pearsonr
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge

from skinfluence import loo_refit, subsample_influence


@pytest.fixture(scope="module")
def regression():
    X, y = load_diabetes(return_X_y=True)
    return X[:60], y[:60], X[100:110], y[100:110]


def test_matches_hand_computed_means(regression):
    X, y, X_test, y_test = regression
    res = subsample_influence(Ridge(alpha=0.1), X, y, X_test, y_test, n_models=30,
                              random_state=0)
    masks = res.masks
    assert masks.shape == (30, 60) and np.all(masks.sum(1) == 30)
    losses = np.array([(Ridge(alpha=0.1).fit(X[m], y[m]).predict(X_test) - y_test) ** 2
                       for m in masks])  # (models, test)
    i = 7
    truth = losses[~masks[:, i]].mean(0) - losses[masks[:, i]].mean(0)
    np.testing.assert_allclose(res.influence[:, i], truth, rtol=1e-8, atol=1e-8)
    se = np.sqrt(losses[masks[:, i]].var(0, ddof=1) / masks[:, i].sum()
                 + losses[~masks[:, i]].var(0, ddof=1) / (~masks[:, i]).sum())
    np.testing.assert_allclose(res.stderr[:, i], se, rtol=1e-6)


def test_same_numbers_for_any_n_jobs(regression):
    X, y, X_test, y_test = regression
    a = subsample_influence(Ridge(), X, y, X_test, y_test, n_models=20,
                            random_state=1, n_jobs=1)
    with parallel_config(backend="threading"):
        b = subsample_influence(Ridge(), X, y, X_test, y_test, n_models=20,
                                random_state=1, n_jobs=2)
    np.testing.assert_array_equal(a.influence, b.influence)


def test_correlation_with_exact_loo_grows_with_n_models(regression):
    X, y, X_test, y_test = regression
    loo = loo_refit(Ridge(alpha=0.1), X, y, X_test, y_test)
    corr = [pearsonr(subsample_influence(Ridge(alpha=0.1), X, y, X_test, y_test,
                                         n_models=k, engine="newton",
                                         random_state=0).influence.ravel(),
                     loo.ravel())[0] for k in (20, 400)]
    assert corr[1] > corr[0] + 0.2 and corr[1] > 0.8, corr


def test_memorisation_finds_a_flipped_label():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    far = np.argmax(X[:, 0])
    y[far] = 0  # a mislabelled, atypical row is memorised
    res = subsample_influence(LogisticRegression(C=10.0), X, y, X[:3], y[:3],
                              n_models=60, random_state=0)
    assert np.argmax(res.self_influence) == far
    assert res.memorization.shape == (80,)
    assert np.all(np.abs(res.memorization) <= 1)
    # stratified subsets: every model saw both classes
    assert np.all((res.masks & (y == 1)).any(1)) and np.all((res.masks & (y == 0)).any(1))


def test_bad_parameters(regression):
    X, y, X_test, y_test = regression
    with pytest.raises(ValueError, match="fraction"):
        subsample_influence(Ridge(), X, y, X_test, y_test, fraction=1.0)
    with pytest.raises(ValueError, match="engine"):
        subsample_influence(Ridge(), X, y, X_test, y_test, engine="magic")
