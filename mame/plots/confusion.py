"""Confusion-matrix figure: compute (normalise a metrics.json entry), then draw a labelled heatmap."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mame.plots.base import PlotError, figure_of, new_figure, tick_font_size

NORMALIZE = ("true", "pred", "all", None)
ANNOTATE_UP_TO = 12  # classes; above this the numbers are too small to read on a slide


def confusion_matrix_data(entry: dict, *, normalize: str | None = "true") -> dict:
    """Labels, counts and the normalised matrix of a metrics.json classification entry.

    ``normalize`` as in scikit-learn: ``"true"`` (rows sum to 1), ``"pred"`` (columns), ``"all"``,
    or ``None`` (counts). Rows or columns without samples stay zero.
    """
    if normalize not in NORMALIZE:
        raise PlotError(f"normalize: expected one of {NORMALIZE}, got {normalize!r}")
    labels, counts = _read_entry(entry)
    if normalize == "true":
        totals = counts.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        totals = counts.sum(axis=0, keepdims=True)
    elif normalize == "all":
        totals = np.full((1, 1), counts.sum())
    else:
        totals = np.ones((1, 1))
    matrix = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    report = entry.get("report") or {}
    accuracy = report.get("accuracy") if isinstance(report, dict) else None
    return {"labels": labels, "counts": counts, "matrix": matrix, "normalize": normalize,
            "accuracy": None if accuracy is None else float(accuracy)}


def most_confused(data: dict, keep: int) -> dict:
    """``data`` (``confusion_matrix_data``) cut to the ``keep`` classes with the most errors, as true or as predicted
    class (ties: class order), in their own order; unchanged when it has ``keep`` classes or fewer. ``shown``:
    the classes kept, of how many."""
    labels, counts = data["labels"], np.asarray(data["counts"])
    if len(labels) <= keep:
        return {**data, "shown": None}
    errors = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diag(counts)
    rows = np.sort(np.argsort(-errors, kind="stable")[:keep])
    cut = lambda m: np.asarray(m)[np.ix_(rows, rows)]
    return {**data, "labels": [labels[i] for i in rows], "counts": cut(counts), "matrix": cut(data["matrix"]),
            "shown": {"kept": keep, "of": len(labels)}}


def _read_entry(entry: dict) -> tuple[list[str], np.ndarray]:
    if not isinstance(entry, dict) or not isinstance(entry.get("confusion_matrix"), dict):
        raise PlotError("entry: expected a classification entry with a 'confusion_matrix' object")
    block = entry["confusion_matrix"]
    if "labels" not in block or "matrix" not in block:
        raise PlotError("confusion_matrix: expected the keys 'labels' and 'matrix'")
    labels = [str(label) for label in block["labels"]]
    try:
        counts = np.asarray(block["matrix"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise PlotError(f"confusion_matrix.matrix: expected a square list of lists of counts ({exc})") from None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise PlotError(f"confusion_matrix.matrix: expected a non-empty square matrix, got shape {counts.shape}")
    if len(labels) != counts.shape[0]:
        raise PlotError(f"confusion_matrix.labels: expected {counts.shape[0]} labels to match the "
                        f"matrix, got {len(labels)}")
    if not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise PlotError("confusion_matrix.matrix: expected non-negative finite counts")
    return labels, counts


def draw_confusion_matrix(data: dict, *, ax: Axes | None = None, title: str | None = None,
                          annotate: bool | None = None, size: str = "square",
                          font_size: float | None = None) -> Figure:
    """Heatmap of ``confusion_matrix_data`` output: every class name on both axes, a colourbar,
    and the values written in the cells when there are few classes (or ``annotate=True``).
    ``size`` is a slide size of ``new_figure`` (when ``ax`` is None); ``font_size`` overrides the tick labels'."""
    matrix, labels = _check_data(data)
    n = len(labels)
    fig = figure_of(ax) if ax is not None else None
    if ax is None:
        fig, axes = new_figure(size)
        ax = axes[0, 0]
    normalised = data.get("normalize") is not None
    vmax = 1.0 if normalised else max(float(matrix.max()), 1.0)
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    font = font_size or tick_font_size(n)
    if n > 20:  # upright names would overlap at this pitch
        ax.set_xticks(range(n), labels, rotation=90, ha="center", va="top", fontsize=font)
    else:
        ax.set_xticks(range(n), labels, rotation=60 if n > 10 else 30, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colorbar.set_label("Fraction of the true class" if data.get("normalize") == "true"
                       else "Fraction" if normalised else "Images")
    if annotate or (annotate is None and n <= ANNOTATE_UP_TO):
        _annotate(ax, matrix, vmax, normalised, font)
    if title:
        ax.set_title(title)
    return fig


def _check_data(data: dict) -> tuple[np.ndarray, list[str]]:
    if not isinstance(data, dict) or "matrix" not in data or "labels" not in data:
        raise PlotError("data: expected the dict returned by confusion_matrix_data (keys 'matrix', 'labels')")
    matrix = np.asarray(data["matrix"], dtype=float)
    labels = [str(label) for label in data["labels"]]
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise PlotError(f"data: expected a square matrix matching {len(labels)} labels, got shape {matrix.shape}")
    return matrix, labels


def _annotate(ax: Axes, matrix: np.ndarray, vmax: float, normalised: bool, font: float) -> None:
    size = font if matrix.shape[0] <= ANNOTATE_UP_TO else max(4.5, font - 2.5)
    for (row, col), value in np.ndenumerate(matrix):
        text = f"{value:.2f}" if normalised else f"{int(round(value))}"
        colour = "white" if value > 0.6 * vmax else "black"
        ax.text(col, row, text, ha="center", va="center", fontsize=size, color=colour)
