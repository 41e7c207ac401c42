"""scikit-learn's estimator API checks, run on InfluenceExplainer.

Checks that fail for a reason outside the explainer are listed in
``_expected_failed_checks`` with that reason (inherited from the wrapped model,
or from how a Pipeline routes ``sample_weight``). Checks that fail because of a
defect of the explainer are deliberately NOT listed, so that they stay red until
fixed: today ``check_supervised_y_2d`` for Ridge (a column-vector y is accepted
without a DataConversionWarning although the tags say single-output).
"""

import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer

ESTIMATORS = [
    InfluenceExplainer(LogisticRegression()),
    InfluenceExplainer(Ridge()),
    InfluenceExplainer(LinearSVC()),
    InfluenceExplainer(make_pipeline(StandardScaler(), LogisticRegression())),
]

_SW_EQUIVALENCE = (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)


def _expected_failed_checks(explainer):
    inner = explainer.estimator
    if isinstance(inner, LinearSVC):
        # Inherited: scikit-learn lists the same two checks as expected failures
        # for LinearSVC itself. liblinear's dual coordinate descent at the
        # default tol=1e-4 stops at different points for weighted and repeated
        # data (differences ~1e-5 against rtol=1e-7). The explainer passes both
        # checks with LinearSVC(tol=1e-10, max_iter=100_000).
        reason = (
            "inherited from LinearSVC: at the default tol, liblinear's fit with "
            "integer sample_weight is not equal (rtol=1e-7) to the fit on "
            "repeated rows; sklearn xfails this check for LinearSVC too"
        )
        return dict.fromkeys(_SW_EQUIVALENCE, reason)
    if isinstance(inner, Pipeline):
        # fit() routes sample_weight to the final step only (as
        # ``pipe.fit(X, y, logisticregression__sample_weight=w)`` does), so the
        # StandardScaler sees unweighted rows: its mean/scale differ between the
        # weighted fit and the fit on repeated rows. Only the dense variant runs
        # (StandardScaler(with_mean=True) makes the pipeline refuse sparse X).
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "sample_weight is routed to the final step only; the "
                "StandardScaler is fitted unweighted, so weights are not "
                "equivalent to repeating rows"
            ),
        }
    return {}


# the checks fit on tiny random data with default tolerances: the fit check's
# warnings there are the intended behaviour, not a failure of the API
@pytest.mark.filterwarnings("ignore::skinfluence.FitWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_expected_failures_are_only_sample_weight_equivalence():
    # guard against the list above silently growing
    for explainer in ESTIMATORS:
        assert set(_expected_failed_checks(explainer)) <= set(_SW_EQUIVALENCE)


@pytest.mark.parametrize("inner", [LogisticRegression(), Ridge(), LinearSVC()])
def test_tags_require_y(inner):
    # DEFECT (fails today): __sklearn_tags__ leaves target_tags.required=False
    # although fit always needs y, so sklearn skips check_requires_y_none.
    from sklearn.utils import get_tags

    assert get_tags(inner).target_tags.required
    assert get_tags(InfluenceExplainer(inner)).target_tags.required
