"""Image shape per class: the aspect ratio (width / height) of a dataset's images beside the real MAMe's, one row
per class on a log axis (a median dot, the middle half as a thick bar, the middle 80 % as a thin one)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mame.plots.base import PlotError, one_axes, tick_font_size

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
COLORS = {"reference": "#6b7280", "dataset": "#2563eb"}


def aspect_ratio_data(dataset: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None = None, *,
                      labels: tuple[str, str] = ("this dataset", "real MAMe"), keep: int | None = None) -> dict:
    """Per class, the ``QUANTILES`` of ``dataset``'s aspect ratios and, where given, of ``reference``'s.
    Classes in the order of the reference's median (else the dataset's), widest last; with more than ``keep``
    classes, the ``keep // 2`` narrowest and the ``keep // 2`` widest. Returns
    ``{"classes", "series": [{"label", "kind", "quantiles": (n_classes, 5) array, "n": counts}]}``."""
    if not dataset or any(len(np.asarray(v)) == 0 for v in dataset.values()):
        raise PlotError("dataset: expected {class: non-empty array of width/height ratios}")
    order_by = reference if reference else dataset
    classes = sorted(dataset, key=lambda c: (float(np.median(order_by.get(c, dataset[c]))), c))
    if keep is not None and len(classes) > keep:
        classes = classes[:keep // 2] + classes[-(keep // 2):]

    def quantiles(values: dict) -> np.ndarray:
        return np.array([np.quantile(np.asarray(values[c], dtype=float), QUANTILES) if len(values.get(c, ())) else
                         np.full(len(QUANTILES), np.nan) for c in classes])

    series = [{"label": labels[0], "kind": "dataset", "quantiles": quantiles(dataset),
               "n": [len(dataset[c]) for c in classes]}]
    if reference:
        series.append({"label": labels[1], "kind": "reference", "quantiles": quantiles(reference),
                       "n": [len(reference.get(c, ())) for c in classes]})
    return {"classes": classes, "series": series}


def draw_aspect_ratios(data: dict, *, ax=None) -> Figure:
    """One row per class: each series' median and spread of aspect ratios, side by side, on a log x axis."""
    classes, series = data["classes"], data["series"]
    if not classes or not series:
        raise PlotError("data: expected at least one class and one series")
    fig, ax = one_axes(ax, "full")
    n = len(classes)
    positions = np.arange(n)[::-1].astype(float)
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0]
    for offset, s in zip(offsets, series):
        q, y, color = s["quantiles"], positions + offset, COLORS.get(s["kind"], "#ea580c")
        ax.hlines(y, q[:, 0], q[:, 4], color=color, linewidth=1.0)
        ax.hlines(y, q[:, 1], q[:, 3], color=color, linewidth=3.2)
        ax.plot(q[:, 2], y, "o", color=color, markersize=3.6, label=f"{s['label']} ({sum(s['n']):,} images)")
    ax.set_xscale("log")
    ticks = [0.25, 0.33, 0.5, 0.67, 1, 1.5, 2, 3, 4]
    ax.set_xticks(ticks, ["1:4", "1:3", "1:2", "2:3", "1:1", "3:2", "2:1", "3:1", "4:1"], fontsize=8)
    ax.minorticks_off()
    ax.axvline(1.0, color="#d1d5db", linewidth=0.8, zorder=0)
    ax.set_yticks(positions, classes, fontsize=tick_font_size(n))
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("aspect ratio, width : height (log scale): upright on the left, wide on the right", fontsize=9)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig
