"""The fine-tuning ladder: validation accuracy per step, one line per backbone.

Compute (``ladder_data``: steps in order → one series per backbone), then draw (``draw_ladder``).
"""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mame.plots.base import PlotError, class_colors, figure_of, new_figure

MIN_SPAN = 0.06  # six points of accuracy


def ladder_data(steps: list[dict]) -> dict:
    """Steps as ``{"backbone", "step", "value"}`` dicts (``step`` 1-based) → series per backbone, in order.

    Returns ``{"series": [{"name", "steps": [...], "values": [...]}], "max_step"}``; a backbone's steps
    are sorted, a missing value (None) is left out of its line.
    """
    if not isinstance(steps, list) or not steps:
        raise PlotError("steps: expected a non-empty list of {backbone, step, value} dicts")
    series: dict[str, dict[int, float]] = {}
    for row in steps:
        if not isinstance(row, dict) or not {"backbone", "step", "value"} <= set(row):
            raise PlotError(f"steps: expected dicts with backbone, step and value, got {row!r}")
        if not isinstance(row["step"], int) or row["step"] < 1:
            raise PlotError(f"steps: expected a 1-based int step, got {row['step']!r}")
        if row["value"] is not None and not math.isnan(float(row["value"])):
            series.setdefault(str(row["backbone"]), {})[row["step"]] = float(row["value"])
    if not series:
        raise PlotError("steps: expected at least one step with a value")
    out = [{"name": name, "steps": sorted(points), "values": [points[s] for s in sorted(points)]}
           for name, points in series.items()]
    return {"series": out, "max_step": max(s["steps"][-1] for s in out)}


def draw_ladder(data: dict, *, ax: Axes | None = None, title: str | None = None,
                ylabel: str = "Validation accuracy") -> Figure:
    """One line (with value labels) per backbone of several steps, a single marker per one-step backbone."""
    if ax is None:
        fig, axes = new_figure("column")
        ax = axes[0, 0]
    else:
        fig = figure_of(ax)
    colours = class_colors(len(data["series"]))
    for colour, series in zip(colours, data["series"]):
        style = "-o" if len(series["steps"]) > 1 else "D"
        ax.plot(series["steps"], series["values"], style, color=colour, markersize=7, linewidth=2,
                label=series["name"])
        for x, y in zip(series["steps"], series["values"]):
            ax.annotate(f"{y:.1%}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=9, color=colour)
    ax.set_xticks(range(1, data["max_step"] + 1), [f"#{i}" for i in range(1, data["max_step"] + 1)])
    ax.set_xlim(0.6, data["max_step"] + 0.4)
    _y_range(ax, [v for series in data["series"] for v in series["values"]])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))  # decimals follow the range
    ax.set_xlabel("Step of the ladder")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=10, loc="best")
    if title:
        ax.set_title(title)
    return fig


def _y_range(ax: Axes, values: list[float]) -> None:
    """Room above the value labels, and at least ``MIN_SPAN`` of accuracy so a flat ladder looks flat."""
    low, high = min(values), max(values)
    pad = max(0.18 * (high - low), (MIN_SPAN - (high - low)) / 2)
    ax.set_ylim(low - pad, high + 1.3 * pad)
