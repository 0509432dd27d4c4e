"""Per-class scores of a classification report (e.g. test recall per class) as sorted horizontal bars."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mame.plots.base import PlotError, figure_of, new_figure, tick_font_size

SUMMARY_ROWS = ("accuracy", "macro avg", "weighted avg", "micro avg")
METRICS = ("precision", "recall", "f1-score")
ABOVE_COLOR = "#2563eb"
BELOW_COLOR = "#ea580c"
PER_CLASS_SIZE = (6.4, 5.9)  # inches: a slide column of full height, 29 legible rows


def per_class_data(report: dict, *, metric: str = "recall", keep: int | None = None) -> dict:
    """The classes of a ``classification_report(output_dict=True)`` dict sorted by ``metric``, best first.

    Classes without support (no image of the class) are left out: their recall is undefined. With more than
    ``keep`` classes, only the ``keep // 2`` best and the ``keep // 2`` worst (``shown`` says so, else None).
    Returns ``{"labels", "values", "support", "metric", "empty" (classes left out), "accuracy" (or None), "shown"}``.
    """
    if metric not in METRICS:
        raise PlotError(f"metric: expected one of {METRICS}, got {metric!r}")
    if not isinstance(report, dict):
        raise PlotError("report: expected a classification_report dict")
    rows = {name: row for name, row in report.items() if name not in SUMMARY_ROWS}
    if not rows or not all(isinstance(r, dict) and metric in r and "support" in r for r in rows.values()):
        raise PlotError(f"report: expected per-class rows with {metric!r} and 'support'")
    kept = [(name, float(row[metric]), int(row["support"])) for name, row in rows.items() if row["support"] > 0]
    kept.sort(key=lambda item: (-item[1], item[0]))
    shown = None
    if keep is not None and len(kept) > keep:
        shown = f"the {keep // 2} best and the {keep // 2} worst of {len(kept)} classes"
        kept = kept[:keep // 2] + kept[-(keep // 2):]
    accuracy = report.get("accuracy")
    return {"labels": [k[0] for k in kept], "values": np.array([k[1] for k in kept], dtype=float),
            "support": np.array([k[2] for k in kept], dtype=int), "metric": metric,
            "empty": [name for name, row in rows.items() if row["support"] <= 0],
            "accuracy": None if accuracy is None else float(accuracy), "shown": shown}


def draw_per_class_bars(data: dict, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Horizontal bars of ``per_class_data`` output, best at the top, each with its value; with the overall
    accuracy as a dashed line, classes below it in a second colour."""
    labels, values = _check(data)
    if ax is None:
        fig, axes = new_figure(figsize=PER_CLASS_SIZE)
        ax = axes[0, 0]
    else:
        fig = figure_of(ax)
    n = len(labels)
    accuracy = data.get("accuracy")
    below = values < accuracy if accuracy is not None else np.zeros(n, dtype=bool)
    positions = np.arange(n)[::-1]  # first (best) class at the top
    bars = ax.barh(positions, values, height=0.72, color=[BELOW_COLOR if b else ABOVE_COLOR for b in below])
    font = tick_font_size(n) + 1.0
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=font - 0.5)
    ax.set_yticks(positions, labels, fontsize=font)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlim(0.0, 1.12)  # room for the value labels
    ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel(f"{str(data.get('metric', 'value')).capitalize()} per class")
    ax.grid(True, axis="x", alpha=0.3)
    if accuracy is not None:
        line = ax.axvline(accuracy, color="#111827", linestyle="--", linewidth=1.2, label=f"overall accuracy {accuracy:.2f}")
        handles = [line] + ([Patch(color=BELOW_COLOR, label="below the overall accuracy")] if below.any() else [])
        ax.legend(handles=handles, fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def _check(data: dict) -> tuple[list[str], np.ndarray]:
    if not isinstance(data, dict) or "labels" not in data or "values" not in data:
        raise PlotError("data: expected the dict returned by per_class_data (keys 'labels', 'values')")
    labels = [str(label) for label in data["labels"]]
    values = np.asarray(data["values"], dtype=float)
    if not labels or values.shape != (len(labels),):
        raise PlotError(f"data: expected one value per class, got {len(labels)} labels and shape {values.shape}")
    return labels, values
