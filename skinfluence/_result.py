"""Results that print as a short summary.

:class:`Result` is a scikit-learn ``Bunch`` (keys are attributes, arrays stay
arrays) whose ``repr`` shows one line per field: numbers with four
significant digits, arrays by dtype and shape, nested results by their size.
:class:`TrustReport` prints what a reader wants from a trust report first.
"""

import numpy as np
from sklearn.utils import Bunch

__all__ = ["Result", "TrustReport"]


def _describe(value):
    if isinstance(value, Bunch):
        return f"{type(value).__name__} with {len(value)} fields ({', '.join(list(value)[:4])}" \
            f"{', ...' if len(value) > 4 else ''})"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (bool, np.bool_, int, np.integer, str)) or value is None:
        return repr(value.item() if isinstance(value, np.generic) else value)
    shape = getattr(value, "shape", None)
    if shape is not None:
        kind = type(value).__name__
        dtype = getattr(value, "dtype", "")
        if len(shape) == 0:
            return _describe(value.item()) if hasattr(value, "item") else repr(value)
        return f"{kind} {dtype} of shape {tuple(shape)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Result(Bunch):
    """A ``Bunch`` of results with a one-line-per-field ``repr``."""

    def __repr__(self):
        lines = [f"  {key}: {_describe(value)}" for key, value in self.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(repr(self))


class TrustReport(Result):
    """The trust report: agreement of an estimate with exact leave-one-out."""

    def __repr__(self):
        lines = [
            f"TrustReport: {self.get('method')} influence vs {self.get('loo_method')} "
            f"leave-one-out, {len(self.get('test_indices', []))} test rows x "
            f"{len(self.get('train_indices', []))} training rows "
            f"({self.get('n_refits', 0)} refits)",
            f"  Pearson {self.pearson:.4f}, Spearman {self.spearman:.4f}",
            f"  top-{self.k} overlap: helpful {self.helpful_overlap:.2f}, "
            f"harmful {self.harmful_overlap:.2f}",
        ]
        if self.get("note"):
            lines.append(f"  note: {self.note}")
        if self.get("certified_sign") is not None:
            lines.append(f"  certified sign: {self.certified_sign:.1%} of the pairs")
        worst = self.get("disagreements")
        if worst is not None and len(worst.estimated):
            lines.append("  largest disagreements (test, train: estimated vs actual):")
            for j, i, e, a in list(zip(worst.get("test_label", worst.test_index),
                                       worst.get("train_label", worst.train_index),
                                       worst.estimated, worst.actual))[:3]:
                lines.append(f"    {j}, {i}: {e:+.3g} vs {a:+.3g}")
        lines.append("  arrays: estimated, actual, test_indices, train_indices"
                     + (", intervals" if self.get("intervals") is not None else ""))
        return "\n".join(lines)
