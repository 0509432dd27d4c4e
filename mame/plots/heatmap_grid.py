"""Grad-CAM grids: sample images in columns (one per class), the images themselves in the first row (the
object's outline drawn where its mask is known), then one row of heatmap overlays per model. The maps
are computed elsewhere (``mame.models.gradcam``); this only draws them."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from mame.plots.base import SLIDE_SIZES, PlotError, as_axes_list, figure_of, new_figure
from mame.plots.images import overlay_heatmap, to_uint8_rgb

TITLE_WIDTH = 14      # characters per column-title line
LABEL_WIDTH = 16      # characters per row-label line
ALPHA = 0.45          # heatmap opacity over the image
OUTLINE = "#ffffff"   # the object mask's contour


def draw_gradcam_grid(images: list, titles: list[str], rows: list[dict], *, masks: list | None = None,
                      ax=None, figsize: tuple[float, float] | None = None) -> Figure:
    """``images``: one (H, W, 3) array per column, titled by ``titles``. ``rows``: ``{"label": str, "maps":
    [(H, W) in [0, 1] per column], "captions": [str per column]}``, one per model. ``masks``: per column a
    boolean (H, W) array or None. ``ax``, when given, holds (1 + len(rows)) x len(images) Axes, row-major."""
    if not images:
        raise PlotError("images: expected at least one image")
    n = len(images)
    if len(titles) != n:
        raise PlotError(f"titles: expected one per image ({n}), got {len(titles)}")
    for row in rows:
        if len(row["maps"]) != n or len(row.get("captions", [""] * n)) != n:
            raise PlotError(f"rows[{row.get('label')!r}]: expected {n} maps and captions, got "
                            f"{len(row['maps'])} and {len(row.get('captions', []))}")
    masks = masks if masks is not None else [None] * n
    if len(masks) != n:
        raise PlotError(f"masks: expected one per image ({n}) or None, got {len(masks)}")
    nrows = 1 + len(rows)
    if ax is None:
        fig, grid = new_figure(nrows=nrows, ncols=n, figsize=figsize or _size(nrows, n))
        axes = list(grid.ravel())
    else:
        axes = as_axes_list(ax, nrows * n, "ax")
        fig = figure_of(axes[0])
    font = 9.5 if n <= 8 else 8.5
    pictures = [to_uint8_rgb(image, f"images[{i}]") for i, image in enumerate(images)]
    for col, (picture, title, mask) in enumerate(zip(pictures, titles, masks)):
        panel = axes[col]
        panel.imshow(picture, interpolation="antialiased")
        if mask is not None and np.any(mask):
            panel.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=OUTLINE, linewidths=0.9)
        panel.set_title(textwrap.fill(str(title), TITLE_WIDTH), fontsize=font)
    for r, row in enumerate(rows, start=1):
        for col, (picture, heat) in enumerate(zip(pictures, row["maps"])):
            panel = axes[r * n + col]
            panel.imshow(overlay_heatmap(picture, np.asarray(heat, dtype=np.float32), alpha=ALPHA),
                         interpolation="antialiased")
            caption = (row.get("captions") or [""] * n)[col]
            panel.set_xlabel(caption, fontsize=font - 0.5, labelpad=1)
    for r in range(nrows):
        for col in range(n):
            panel = axes[r * n + col]
            panel.set_xticks([])
            panel.set_yticks([])
            for spine in panel.spines.values():
                spine.set_visible(False)
        label = "Image" if r == 0 else rows[r - 1]["label"]
        axes[r * n].set_ylabel(textwrap.fill(label, LABEL_WIDTH), fontsize=font, rotation=90)
    return fig


def _size(nrows: int, ncols: int) -> tuple[float, float]:
    """Square cells as large as a full slide allows, plus room for titles, captions and row labels; no
    wider than the cells need (a figure padded with white space would be shrunk on the slide)."""
    width, height = SLIDE_SIZES["full"]
    cell = min((width - 0.8) / ncols - 0.05, (height - 0.5) / nrows - 0.3)
    return min(width, ncols * (cell + 0.05) + 0.8), min(height, nrows * (cell + 0.3) + 0.5)
