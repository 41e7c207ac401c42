"""Agreement of two score vectors: correlations, scale and the top rows."""

import numpy as np
from scipy.stats import kendalltau, pearsonr, spearmanr

from .._result import Result
from ..estimators.subsets import top_k_overlap

__all__ = ["compare_scores"]


def compare_scores(a, b, *, k=10):
    """How far two attribution scores agree.

    Any two arrays of the same shape (influence matrices are compared entry
    by entry): an estimate against exact leave-one-out, one estimator against
    another, two repeats of a randomised one. Pairs where either is NaN are
    left out (``n`` says how many remain).

    Parameters
    ----------
    a, b : array-like of the same shape
    k : int, default=10
        Size of the top sets compared.

    Returns
    -------
    result : Bunch
        pearson, spearman, kendall : float
            Correlations (Kendall's tau-b).
        slope, intercept : float
            Least squares fit ``b ~ slope * a + intercept``: 1 and 0 when
            ``a`` has the scale of ``b``.
        helpful_overlap, harmful_overlap : float
            Share of the ``k`` largest (smallest) entries of ``a`` that are
            among the ``k`` largest (smallest) of ``b``.
        n : int
            Number of entries compared.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence import compare_scores
    >>> a = np.array([0.3, -0.1, 0.2, -0.4, 0.0])
    >>> res = compare_scores(a, 2 * a + 1, k=2)
    >>> round(res.pearson, 6), round(res.slope, 6), res.harmful_overlap
    (1.0, 2.0, 1.0)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and "
                         f"{b.shape}.")
    a, b = a.ravel(), b.ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    if a.size < 3:
        raise ValueError(f"compare_scores needs at least 3 finite pairs; got {a.size}.")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("a or b is constant: correlations are undefined.")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be a positive integer; got {k}.")
    slope, intercept = np.polyfit(a, b, 1)
    return Result(
        pearson=float(pearsonr(a, b)[0]), spearman=float(spearmanr(a, b)[0]),
        kendall=float(kendalltau(a, b)[0]), slope=float(slope),
        intercept=float(intercept),
        helpful_overlap=top_k_overlap(a, b, k, largest=True),
        harmful_overlap=top_k_overlap(a, b, k, largest=False), n=int(a.size))
