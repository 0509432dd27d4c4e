"""2-D and 3-D projections of feature vectors (PCA, UMAP, t-SNE) and their class-coloured 2-D scatter
(the 3-D figures are drawn by :mod:`mame.plots.projection3d`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mame.plots.base import SMALL_FONT, PlotError, class_colors, class_marker, figure_of, new_figure

METHODS = ("pca", "umap", "tsne")
METHOD_NAMES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
LEGENDS = ("outside", "centroids", "none")
CENTROID_FONT = 8.0
LABEL_STEPS = 150  # adjust_text iterations for the class names (deterministic, unlike a time limit)
MAX_CENTROID_NAMES = 30  # class names written on a projection; past it, classes spread over the class order


def project_features(features: np.ndarray, labels: np.ndarray, *, method: str = "pca",
                     max_per_class: int | None = 100, seed: int = 0, dims: int = 2,
                     files: Sequence[str] | None = None) -> dict:
    """Seeded per-class subsample, standardised, projected to ``dims`` (2 or 3) dimensions.

    Returns ``coords`` (n, dims), ``labels`` and ``indices`` (rows of the input kept), ``method``,
    ``explained_variance`` (PCA ratios of the components; None for the others) and ``files`` (the kept
    rows' entries of ``files``, e.g. image file names; None when not given).
    """
    if dims not in (2, 3):
        raise PlotError(f"dims: expected 2 or 3, got {dims!r}")
    features, labels = _check_inputs(features, labels, method, max_per_class, min_dims=dims)
    if files is not None and len(files) != labels.shape[0]:
        raise PlotError(f"files: expected {labels.shape[0]} entries (one per feature row), got {len(files)}")
    indices = subsample_per_class(labels, max_per_class, seed)
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(features[indices])
    explained = None
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=dims, random_state=seed)
        coords = pca.fit_transform(x)
        explained = [float(v) for v in pca.explained_variance_ratio_]
    elif method == "umap":
        coords = _umap(x, seed, dims)
    else:
        coords = _tsne(x, seed, dims)
    kept_files = None if files is None else [str(f) for f in np.asarray(files)[indices]]
    return {"coords": np.asarray(coords, dtype=float), "labels": labels[indices], "indices": indices,
            "method": method, "explained_variance": explained, "files": kept_files}


def _check_inputs(features, labels, method: str, max_per_class: int | None, min_dims: int = 2):
    if method not in METHODS:
        raise PlotError(f"method: expected one of {METHODS}, got {method!r}")
    if max_per_class is not None and max_per_class < 1:
        raise PlotError(f"max_per_class: expected a positive number or None, got {max_per_class}")
    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels)
    if features.ndim != 2 or features.shape[1] < min_dims:
        raise PlotError(f"features: expected a 2-d array (n, d) with d >= {min_dims}, got shape {features.shape}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise PlotError(f"labels: expected a 1-d array of {features.shape[0]} labels (one per feature "
                        f"row), got shape {labels.shape}")
    if features.shape[0] < min_dims + 1:
        raise PlotError(f"features: expected at least {min_dims + 1} rows to project, got {features.shape[0]}")
    if not np.all(np.isfinite(features)):
        raise PlotError("features: expected finite values (found NaN or inf)")
    return features, labels


def subsample_per_class(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most ``max_per_class`` rows of each label, drawn with ``seed``."""
    labels = np.asarray(labels)
    if max_per_class is None:
        return np.arange(labels.shape[0])
    rng = np.random.default_rng(seed)
    kept = []
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        kept.append(rng.choice(rows, size=min(max_per_class, rows.size), replace=False))
    return np.sort(np.concatenate(kept))


def _umap(x: np.ndarray, seed: int, dims: int = 2) -> np.ndarray:
    import sys
    import warnings

    # umap's package init imports TensorFlow for ParametricUMAP (unused here): seconds of start-up and C++ log
    # lines in the terminal of `make report`. A None entry makes that import fail, which umap tolerates.
    sys.modules.setdefault("umap.parametric_umap", None)
    import umap  # heavy import (numba), only when asked for

    n = x.shape[0]
    reducer = umap.UMAP(n_components=dims, n_neighbors=max(2, min(15, n - 1)), random_state=seed,
                        init="spectral" if n > 50 else "random", n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return reducer.fit_transform(x)


def _tsne(x: np.ndarray, seed: int, dims: int = 2) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = x.shape[0]
    perplexity = float(max(1.0, min(30.0, (n - 1) / 3)))
    return TSNE(n_components=dims, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)


def draw_projection(data: dict, *, class_names: Sequence[str], ax: Axes | None = None,
                    title: str | None = None, legend: str = "outside", size: str = "full") -> Figure:
    """Scatter of ``project_features`` output, one colour and marker per class.

    ``labels`` must be class indices into ``class_names``. ``legend``: ``"outside"`` (compact legend
    right of the axes), ``"centroids"`` (class names written at each class's median point, in the class's
    colour, moved apart by adjustText where they would overlap) or ``"none"``.
    """
    coords, labels = _check_projection(data, class_names, legend)
    if ax is None:
        fig, axes = new_figure(size)
        ax = axes[0, 0]
    else:
        fig = figure_of(ax)
    colours = class_colors(len(class_names))
    size = 14 if coords.shape[0] > 500 else 22
    for index in np.unique(labels):
        points = coords[labels == index]
        ax.scatter(points[:, 0], points[:, 1], s=size, color=colours[index], marker=class_marker(index),
                   alpha=0.8, linewidths=0, label=class_names[index])
    _axis_labels(ax, data)
    _class_legend(ax, coords, labels, class_names, legend)
    if title:
        ax.set_title(title)
    return fig


def _class_legend(ax: Axes, coords: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                  legend: str) -> None:
    present = np.unique(labels)
    if legend == "outside":
        ax.legend(fontsize=SMALL_FONT, markerscale=1.3, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, ncols=_legend_columns(ax, present.size), handletextpad=0.2,
                  columnspacing=0.8, labelspacing=0.3, frameon=False)
    elif legend == "centroids":
        from adjustText import adjust_text

        if present.size > MAX_CENTROID_NAMES:  # names of classes spread over the class order; the rest unnamed
            present = present[np.linspace(0, present.size - 1, MAX_CENTROID_NAMES).round().astype(int)]
            ax.text(0.01, 0.01, f"names: {MAX_CENTROID_NAMES} of {np.unique(labels).size} classes",
                    transform=ax.transAxes, fontsize=SMALL_FONT, color="#6b7280", ha="left", va="bottom")
        texts = []
        for index in present:
            centre = np.median(coords[labels == index], axis=0)
            texts.append(ax.text(centre[0], centre[1], class_names[index], fontsize=CENTROID_FONT, ha="center",
                                 va="center", color=_darker(class_colors(len(class_names))[index]),
                                 bbox={"boxstyle": "round,pad=0.12", "fc": "white", "alpha": 0.75, "lw": 0}))
        # move overlapping names apart (a thin line back to the class's median point when moved far); 150 steps
        # place 29 names as well as its default 500 (compared by eye on the demo's t-SNE) in a third of the time
        adjust_text(texts, ax=ax, expand=(1.05, 1.15), max_move=(30, 30), ensure_inside_axes=True,
                    iter_lim=LABEL_STEPS, arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.45"})


def _darker(colour) -> tuple[float, float, float]:
    """The class colour darkened enough to read as text on white."""
    r, g, b = colour[:3]
    return (0.6 * r, 0.6 * g, 0.6 * b)


def _legend_columns(ax: Axes, entries: int) -> int:
    """As few legend columns as fit the height of the axes' row of the figure."""
    spec = ax.get_subplotspec()
    rows = spec.get_gridspec().nrows if spec is not None else 1
    height_pt = figure_of(ax).get_figheight() * 72 / rows
    per_column = max(1, int(0.9 * height_pt / (SMALL_FONT * 1.3)))
    return math.ceil(entries / per_column)


def _check_projection(data: dict, class_names: Sequence[str], legend: str):
    if legend not in LEGENDS:
        raise PlotError(f"legend: expected one of {LEGENDS}, got {legend!r}")
    return check_projection_data(data, class_names, dims=2)


def check_projection_data(data: dict, class_names: Sequence[str], *, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``coords`` (n, ``dims``) and integer ``labels`` of ``project_features``' result, or a PlotError saying
    what was expected."""
    if not isinstance(data, dict) or "coords" not in data or "labels" not in data:
        raise PlotError(f"data: expected the dict returned by project_features(..., dims={dims}) (keys 'coords', 'labels')")
    coords = np.asarray(data["coords"], dtype=float)
    labels = np.asarray(data["labels"])
    if coords.ndim != 2 or coords.shape[1] != dims or labels.shape != (coords.shape[0],):
        raise PlotError(f"data: expected coords of shape (n, {dims}) and n labels, got {coords.shape} and {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= len(class_names)):
        raise PlotError(f"data.labels: expected class indices in [0, {len(class_names) - 1}] to index class_names")
    return coords, labels.astype(int)


def _axis_labels(ax: Axes, data: dict) -> None:
    name = METHOD_NAMES.get(data.get("method"), str(data.get("method", "")))
    explained = data.get("explained_variance")
    for axis, set_label in enumerate((ax.set_xlabel, ax.set_ylabel)):
        suffix = f" ({100 * explained[axis]:.1f} % of variance)" if explained else ""
        set_label(f"{name} {axis + 1}{suffix}")
    ax.grid(True, alpha=0.2)
