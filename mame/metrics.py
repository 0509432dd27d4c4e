"""Classification metrics in one shape: scikit-learn's ``classification_report(output_dict=True)``
plus the confusion matrix with its ordered labels. Text and tables elsewhere are views of this dict."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_labels(values, n_classes: int, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d array of class indices, got shape {arr.shape}")
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{what}: expected integer class indices in [0, {n_classes - 1}]")
    return arr.astype(int)


def classification_result(y_true, y_pred, *, class_names: Sequence[str], predictions: str | None = None) -> dict:
    """The ``classification`` entry of metrics.json for one split (all classes listed, even if absent)."""
    from sklearn.metrics import classification_report, confusion_matrix

    n = len(class_names)
    y_true = _as_labels(y_true, n, "y_true")
    y_pred = _as_labels(y_pred, n, "y_pred")
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred: expected the same non-zero length, got {y_true.size} and {y_pred.size}")
    labels = list(range(n))
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    if "accuracy" not in report:  # sklearn gives "micro avg" instead when some labels never occur
        report.pop("micro avg", None)
        report["accuracy"] = float(np.mean(y_true == y_pred))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    entry = {"report": _plain(report),
             "confusion_matrix": {"labels": list(class_names), "matrix": matrix.astype(int).tolist()}}
    if predictions:
        entry["predictions"] = predictions
    return entry


def _plain(report: dict) -> dict:
    """Python floats throughout (no numpy scalars) so the dict serialises and validates as is."""
    return {k: ({m: float(v) for m, v in row.items()} if isinstance(row, dict) else float(row))
            for k, row in report.items()}


def accuracy(entry: dict) -> float:
    return float(entry["report"]["accuracy"])


def describe_comparison(comparison: dict) -> str:
    """A paired comparison (``delta_pp``, ``p_value``) as ``+1.3 pp, p=0.02`` (``p<0.001`` below that)."""
    p = comparison["p_value"]
    shown = "p<0.001" if p < 0.001 else f"p={p:.2g}" if p < 0.01 else f"p={p:.2f}"
    return f"{comparison['delta_pp']:+.1f} pp, {shown}"
