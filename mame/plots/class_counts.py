"""The dataset at a glance: images per class in each split, as horizontal bars sharing the class axis
(classes sorted by their test count, so an imbalanced test split shows as a slope)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mame.plots.base import SLIDE_SIZES, PlotError, as_axes_list, figure_of, new_figure, tick_font_size

SPLIT_COLORS = {"train": "#2563eb", "val": "#0d9488", "test": "#ea580c"}


def class_counts_data(counts: dict[str, dict[str, int]], *, sort_by: str = "test", keep: int | None = None) -> dict:
    """``counts[split][class]`` as arrays in one class order (descending by ``sort_by``'s counts, then name); with
    more than ``keep`` classes, only the ``keep // 2`` largest and the ``keep // 2`` smallest (``shown`` says so;
    the totals stay every class's). Returns ``{"classes", "splits", "values": {split: array}, "totals": {split: int},
    "shown"}``."""
    if not counts or not all(isinstance(v, dict) for v in counts.values()):
        raise PlotError("counts: expected {split: {class: count}}")
    splits = [s for s in ("train", "val", "test") if s in counts] + [s for s in counts if s not in ("train", "val", "test")]
    classes = sorted({c for per_class in counts.values() for c in per_class})
    key = counts.get(sort_by, counts[splits[0]])
    classes.sort(key=lambda c: (-key.get(c, 0), c))
    totals = {s: int(sum(counts[s].values())) for s in splits}
    shown = None
    if keep is not None and len(classes) > keep:
        shown = f"the {keep // 2} largest and the {keep // 2} smallest of {len(classes)} classes"
        classes = classes[:keep // 2] + classes[-(keep // 2):]
    values = {s: np.array([int(counts[s].get(c, 0)) for c in classes]) for s in splits}
    return {"classes": classes, "splits": splits, "values": values, "totals": totals, "shown": shown}


def draw_class_counts(data: dict, *, ax=None) -> Figure:
    """One panel of horizontal bars per split (shared class axis), each bar labelled with its count and
    the panel titled with the split's total and its largest/smallest class ratio."""
    splits, classes = data["splits"], data["classes"]
    if not splits or not classes:
        raise PlotError("data: expected at least one split and one class")
    if ax is None:
        fig, grid = new_figure(ncols=len(splits), figsize=SLIDE_SIZES["full"])
        axes = list(grid.ravel())
    else:
        axes = as_axes_list(ax, len(splits), "ax")
        fig = figure_of(axes[0])
    n = len(classes)
    positions = np.arange(n)[::-1]
    font = tick_font_size(n)
    for i, (panel, split) in enumerate(zip(axes, splits)):
        values = data["values"][split]
        bars = panel.barh(positions, values, height=0.75, color=SPLIT_COLORS.get(split, "#6b7280"))
        panel.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=font - 0.5)
        panel.set_xlim(0, max(1, values.max()) * 1.22)
        positive = values[values > 0]
        ratio = f", largest/smallest {positive.max() / positive.min():.0f}x" if positive.size and positive.min() > 0 \
            and positive.max() / positive.min() >= 1.5 else ""
        panel.set_title(f"{split}: {data['totals'][split]:,} images{ratio}", fontsize=10)
        panel.set_yticks(positions, classes if i == 0 else [""] * n, fontsize=font)
        panel.set_ylim(-0.6, n - 0.4)
        panel.tick_params(axis="x", labelsize=8)
        panel.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        for side in ("top", "right"):
            panel.spines[side].set_visible(False)
    return fig
