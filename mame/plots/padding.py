"""What variable shape costs in padding: per aspect-ratio bucket, the share of a dataset's images it holds (bars)
and the mean share of its padded shape that is pad (a line per pixel budget).

Computed from plain arrays (each image's bucket index and padded fraction, the buckets' ratios): the deck works them
out with ``mame.data.aspect_buckets.Buckets`` and hands them here.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mame.plots.base import PlotError, one_axes

COLORS = {"share": "#93c5fd", "lines": ("#c2410c", "#7c3aed", "#0f766e", "#be123c")}


def ratio_label(ratio: float) -> str:
    """A bucket's width : height as a slide shows it: ``1:2``, ``1:1.3``, ``1:1``, ``1.6:1``."""
    if ratio <= 0:
        raise PlotError(f"ratio: expected a positive width / height, got {ratio}")
    if abs(ratio - 1) < 1e-9:
        return "1:1"
    return f"{ratio:.2g}:1" if ratio > 1 else f"1:{1 / ratio:.2g}"


def padding_data(bucket, padded: dict[str, np.ndarray], ratios) -> dict:
    """``bucket``: each image's bucket index into ``ratios`` (width / height of each bucket); ``padded``: per pixel
    budget (its label), each image's padded fraction, in the order of ``bucket``. Returns ``{"labels", "ratios",
    "counts", "share", "n", "series": [{"label", "mean" (per bucket, nan where empty), "overall"}]}``."""
    bucket = np.asarray(bucket, dtype=np.int64)
    k = len(ratios)
    if bucket.ndim != 1 or not len(bucket) or bucket.min() < 0 or bucket.max() >= k:
        raise PlotError(f"bucket: expected a non-empty 1-d array of indices into the {k} ratios")
    if not padded or any(np.shape(v) != bucket.shape for v in padded.values()):
        raise PlotError("padded: expected {budget label: one padded fraction per image}")
    counts = np.bincount(bucket, minlength=k)
    series = []
    for label, values in padded.items():
        values = np.asarray(values, dtype=np.float64)
        sums = np.bincount(bucket, weights=values, minlength=k)
        mean = np.divide(sums, counts, out=np.full(k, np.nan), where=counts > 0)
        series.append({"label": label, "mean": mean, "overall": float(values.mean())})
    return {"labels": [ratio_label(r) for r in ratios], "ratios": list(ratios), "counts": counts,
            "share": counts / counts.sum(), "n": int(counts.sum()), "series": series}


def draw_padding(data: dict, *, ax=None) -> Figure:
    """Bars: the share of the images in each bucket (left axis); lines: each budget's mean padded fraction in the
    buckets that hold images, its overall mean dashed (right axis)."""
    if not data.get("labels") or not data.get("series"):
        raise PlotError("data: expected the buckets' labels and at least one series")
    fig, ax = one_axes(ax, "column")
    x = np.arange(len(data["labels"]))
    bars = ax.bar(x, data["share"], width=0.7, color=COLORS["share"], label=f"share of the {data['n']:,} images",
                  gid="share")
    ax.bar_label(bars, labels=[f"{c:,}" if c else "" for c in data["counts"]], fontsize=9, padding=1, color="#1e3a8a")
    ax.set_ylim(0, max(0.05, float(np.max(data["share"]))) * 1.6)  # room for the legend above the bars
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("share of the images", fontsize=11)
    ax.set_xticks(x, data["labels"], fontsize=10)
    ax.set_xlabel("aspect-ratio bucket, width : height (bar labels: images)", fontsize=11)
    right = ax.twinx()
    used = data["counts"] > 0
    top = 0.0
    for color, s in zip(COLORS["lines"] * 4, data["series"]):
        mean = np.where(used, s["mean"], np.nan)
        right.plot(x, mean, "o-", color=color, markersize=4.5, linewidth=1.6,
                   label=f"padded fraction, {s['label']} (mean {s['overall']:.0%})", gid=f"padded:{s['label']}")
        right.axhline(s["overall"], color=color, linewidth=0.9, linestyle="--")
        top = max(top, float(np.nanmax(mean)) if used.any() else 0.0)
    right.set_ylim(0, max(0.2, top * 1.25))
    right.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    right.set_ylabel("padded fraction (pad / padded shape)", fontsize=11)
    ax.spines["top"].set_visible(False)
    right.spines["top"].set_visible(False)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=10, frameon=True, framealpha=0.9,
              edgecolor="none")
    ax.tick_params(axis="y", labelsize=10)
    right.tick_params(axis="y", labelsize=10)
    return fig
