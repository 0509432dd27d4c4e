"""Error gallery: the most confused class pairs of a confusion matrix, and thumbnails of the images
misclassified within each pair ("true → predicted (p)"). Compute (pairs, examples), then draw."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mame.plots.base import PlotError, as_axes_list, figure_of, new_figure
from mame.plots.images import draw_image_grid

GALLERY_SIZE = (12.0, 4.6)  # inches: a slide under its title, with two caption lines below


def confused_pairs(counts, labels, *, top: int = 3) -> list[dict]:
    """The ``top`` largest off-diagonal cells of a confusion matrix (rows: true class), largest first
    (ties: matrix order); empty cells are never pairs. Each: ``{true, pred, true_name, pred_name, count,
    share}``, ``share`` being the fraction of the true class's images."""
    matrix = np.asarray(counts, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise PlotError(f"counts: expected a square matrix matching {len(labels)} labels, got shape {matrix.shape}")
    if top < 1:
        raise PlotError(f"top: expected a positive number of pairs, got {top}")
    off = matrix.copy()
    np.fill_diagonal(off, 0.0)
    order = np.argsort(-off, axis=None, kind="stable")
    totals = matrix.sum(axis=1)
    pairs = []
    for flat in order[:top]:
        true, pred = np.unravel_index(flat, off.shape)
        if off[true, pred] <= 0:
            break
        pairs.append({"true": int(true), "pred": int(pred), "true_name": str(labels[true]),
                      "pred_name": str(labels[pred]), "count": int(off[true, pred]),
                      "share": float(off[true, pred] / totals[true])})
    return pairs


def error_examples(y_true, y_pred, probabilities, pairs: list[dict], *, per_pair: int = 4) -> list[dict]:
    """For each pair, up to ``per_pair`` images of class ``true`` predicted as ``pred``, most confident
    first: ``[{"pair": pair, "items": [{"index", "p"}]}]`` where ``p`` is the predicted class's probability."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    probs = np.asarray(probabilities, dtype=float)
    if y_true.shape != y_pred.shape or probs.ndim != 2 or probs.shape[0] != y_true.size:
        raise PlotError(f"y_true, y_pred, probabilities: expected n, n and (n, classes), got "
                        f"{y_true.shape}, {y_pred.shape}, {probs.shape}")
    out = []
    for pair in pairs:
        rows = np.flatnonzero((y_true == pair["true"]) & (y_pred == pair["pred"]))
        p = probs[rows, pair["pred"]]
        ranked = rows[np.argsort(-p, kind="stable")][:per_pair]
        out.append({"pair": pair, "items": [{"index": int(i), "p": float(probs[i, pair["pred"]])} for i in ranked]})
    return out


def error_title(pair: dict, p: float) -> str:
    return f"{pair['true_name']} → {pair['pred_name']} ({p:.2f})"


def draw_error_gallery(examples: list[dict], images: dict, *, ax=None, per_pair: int | None = None) -> Figure:
    """One row per pair of ``error_examples``: its images (``images[index]``, an array) titled
    "true → predicted (p)". ``ax``, when given, holds at least rows × ``per_pair`` Axes (row-major)."""
    rows = [e for e in examples if e["items"]]
    if not rows:
        raise PlotError("examples: expected at least one pair with a misclassified image")
    missing = [i["index"] for e in rows for i in e["items"] if i["index"] not in images]
    if missing:
        raise PlotError(f"images: expected an image for every example, missing indices {missing[:5]}")
    ncols = per_pair or max(len(e["items"]) for e in rows)
    if ax is None:
        fig, grid = new_figure(nrows=len(rows), ncols=ncols, figsize=GALLERY_SIZE)
        axes = list(grid.ravel())
    else:
        axes = as_axes_list(ax, len(rows) * ncols, "ax")
        fig = figure_of(axes[0])
    for r, example in enumerate(rows):
        row_axes = axes[r * ncols:(r + 1) * ncols]
        items = example["items"][:ncols]
        draw_image_grid([images[i["index"]] for i in items], [error_title(example["pair"], i["p"]) for i in items],
                        ax=row_axes[:len(items)])
        for blank in row_axes[len(items):]:
            blank.set_axis_off()
    return fig
