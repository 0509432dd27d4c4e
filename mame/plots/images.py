"""Image grids (sample images with their predictions) and Grad-CAM heatmap overlays."""

from __future__ import annotations

import math
import textwrap

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from mame.plots.base import SLIDE_SIZES, PlotError, as_axes_list, figure_of, new_figure

TITLE_WIDTH = 26  # characters per title line


def to_uint8_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """An (H, W), (H, W, 1|3|4) image, uint8 or float (0–1 or 0–255), as (H, W, 3) uint8."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
    elif array.ndim == 2:
        array = np.stack([array] * 3, axis=2)
    else:
        raise PlotError(f"{what}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.size == 0:
        raise PlotError(f"{what}: expected a non-empty image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    array = np.nan_to_num(array.astype(float))
    if np.issubdtype(np.asarray(image).dtype, np.floating) and array.max() <= 1.0:
        array = array * 255.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4,
                    colormap: str = "jet") -> np.ndarray:
    """``heatmap`` (any 2-d size, min-max scaled) resized to ``image``, coloured and blended in.

    Returns an (H, W, 3) uint8 RGB array: ``(1 - alpha) * image + alpha * colour``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise PlotError(f"alpha: expected a value in [0, 1], got {alpha}")
    rgb = to_uint8_rgb(image)
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if heat.ndim == 3 and heat.shape[2] == 1:
        heat = heat[..., 0]
    if heat.ndim != 2 or heat.size == 0:
        raise PlotError(f"heatmap: expected a non-empty 2-d array, got shape {heat.shape}")
    low, high = float(heat.min()), float(heat.max())
    heat = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    height, width = rgb.shape[:2]
    resized = np.asarray(Image.fromarray(heat).resize((width, height), Image.Resampling.BILINEAR))
    colour = matplotlib.colormaps[colormap](np.clip(resized, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb.astype(float) + alpha * colour
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def draw_image_grid(images: list[np.ndarray], titles: list[str], *, ncols: int = 5, ax=None) -> Figure:
    """Images in a grid, each with its title (e.g. ``"Bronze\\nnecklace (0.39)"``); axes hidden.

    ``ax``, when given, is a sequence (or array) of at least ``len(images)`` Axes.
    """
    if not isinstance(images, (list, tuple)) or not images:
        raise PlotError("images: expected a non-empty list of arrays")
    if len(titles) != len(images):
        raise PlotError(f"titles: expected one title per image ({len(images)}), got {len(titles)}")
    if ncols < 1:
        raise PlotError(f"ncols: expected a positive number of columns, got {ncols}")
    pictures = [to_uint8_rgb(image, f"images[{i}]") for i, image in enumerate(images)]
    if ax is None:
        ncols = min(ncols, len(pictures))
        nrows = math.ceil(len(pictures) / ncols)
        width = SLIDE_SIZES["full"][0]
        height = min(SLIDE_SIZES["full"][1], nrows * (width / ncols) * 1.2)
        fig, axes = new_figure(nrows=nrows, ncols=ncols, figsize=(width, height))
        axes = list(axes.ravel())
    else:
        axes = as_axes_list(ax, len(pictures), "ax")
        fig = figure_of(axes[0])
    font = 10 if len(axes) <= 10 else 8
    for panel, picture, title in zip(axes, pictures, titles):
        panel.imshow(picture, interpolation="antialiased")
        panel.set_title(_wrap(str(title)), fontsize=font)
    for panel in axes:
        panel.set_axis_off()
    return fig


def _wrap(title: str) -> str:
    return "\n".join(textwrap.fill(line, TITLE_WIDTH) for line in title.splitlines() or [""])
