"""3-D projections of feature vectors: an interactive plotly figure for the HTML deck, and a static
matplotlib view of the same scene from the same camera for the PDF.

Compute with ``project_features(..., dims=3)`` (:mod:`mame.plots.projection`); draw with
``draw_projection_3d`` (plotly ``Figure``: one trace per class, so the legend hides and isolates classes;
hovering a point shows its class and image file) or ``draw_projection_3d_static`` (matplotlib
``Figure``); save with ``save_plotly_json`` or ``save_figure``. plotly is imported only when drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mame.plots.base import DPI, SMALL_FONT, PlotError, class_colors, class_marker
from mame.plots.projection import METHOD_NAMES, check_projection_data
from mame.results import atomic_write_text

# The camera both views start from: plotly's ``scene.camera.eye`` (the scene's centre is the origin,
# axes scaled to a unit cube). Matplotlib's elevation and azimuth are derived from it.
CAMERA_EYE = (1.65, -1.65, 1.0)
# plotly symbols for the 2-D figures' matplotlib markers (one per block of ten classes), and the
# matplotlib markers that look like those symbols in the static view.
PLOTLY_SYMBOLS = {"o": "circle", "s": "square", "^": "diamond"}
STATIC_MARKERS = {"o": "o", "s": "s", "^": "D"}
FIGURE_SIZE = (12.8, 5.4)  # inches at DPI: the figure's box on the slide, 1280 x 540 px
# The scene's share of the figure's width; the rest holds the legend, in two columns (29 entries, one above
# the other, would not fit the height): paper x of each column's left edge.
SCENE_WIDTH = 0.70
LEGEND_COLUMNS_X = (0.715, 0.858)
MAX_STATIC_LEGEND = 32  # classes the still view names (two columns); past it, a line says how to find a class


def camera_angles(eye: Sequence[float] = CAMERA_EYE) -> tuple[float, float]:
    """Matplotlib's ``(elev, azim)`` in degrees for a plotly camera ``eye`` looking at the origin."""
    x, y, z = (float(v) for v in eye)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def axis_titles(data: dict) -> list[str]:
    """``PCA 1 (12.3 % of variance)`` ... for each of the three axes."""
    name = METHOD_NAMES.get(data.get("method"), str(data.get("method", "")))
    explained = data.get("explained_variance")
    return [f"{name} {axis + 1}" + (f" ({100 * explained[axis]:.1f} % of variance)" if explained else "")
            for axis in range(3)]


def _rgb(colour) -> str:
    r, g, b = (round(255 * c) for c in colour[:3])
    return f"rgb({r},{g},{b})"


def draw_projection_3d(data: dict, *, class_names: Sequence[str], title: str | None = None,
                       eye: Sequence[float] = CAMERA_EYE, marker_size: float = 2.2):
    """An interactive 3-D scatter (plotly ``Figure``) of ``project_features(..., dims=3)`` output.

    One trace per class, named after it, in the class's colour and the 2-D figures' marker shape; the
    hover text is the class name and the image file (``data["files"]`` when given).
    """
    import plotly.graph_objects as go

    coords, labels = _check_projection_3d(data, class_names)
    files = data.get("files")
    colours = class_colors(len(class_names))
    fig = go.Figure()
    present = np.unique(labels)
    per_column = math.ceil(present.size / len(LEGEND_COLUMNS_X))
    for position, index in enumerate(present):
        rows = np.flatnonzero(labels == index)
        marker = {"size": marker_size, "color": _rgb(colours[index]), "opacity": 0.85,
                  "symbol": PLOTLY_SYMBOLS[class_marker(int(index))], "line": {"width": 0}}
        fig.add_trace(go.Scatter3d(
            x=coords[rows, 0].astype(np.float32), y=coords[rows, 1].astype(np.float32),
            z=coords[rows, 2].astype(np.float32), mode="markers", name=class_names[index], marker=marker,
            legend="legend" if position < per_column else f"legend{1 + position // per_column}",
            customdata=[files[i] for i in rows] if files is not None else None,
            hovertemplate="<b>%{fullData.name}</b>" + ("<br>%{customdata}" if files is not None else "") + "<extra></extra>"))
    titles = axis_titles(data)
    axis = lambda text: {"title": {"text": text, "font": {"size": 11}}, "tickfont": {"size": 9}}
    legend = lambda x: {"font": {"size": 10}, "itemsizing": "constant", "tracegroupgap": 0, "x": x, "xanchor": "left",
                        "y": 1.0, "yanchor": "top"}  # under the mode bar (top right)
    legends = {("legend" if i == 0 else f"legend{i + 1}"): legend(x) for i, x in enumerate(LEGEND_COLUMNS_X)}
    fig.update_layout(
        scene={"xaxis": axis(titles[0]), "yaxis": axis(titles[1]), "zaxis": axis(titles[2]), "aspectmode": "cube",
               "camera": {"eye": dict(zip("xyz", (float(v) for v in eye)))}, "dragmode": "turntable",
               "domain": {"x": [0, SCENE_WIDTH], "y": [0, 1]}},
        **legends,
        margin={"l": 0, "r": 0, "t": 56 if title else 26, "b": 0}, title={"text": title} if title else None,
        font={"family": "DejaVu Sans, sans-serif"}, paper_bgcolor="white", uirevision="keep")
    return fig


def draw_projection_3d_static(data: dict, *, class_names: Sequence[str], eye: Sequence[float] = CAMERA_EYE,
                              figsize: tuple[float, float] = FIGURE_SIZE) -> Figure:
    """The same scene as ``draw_projection_3d`` seen from the same camera, as a matplotlib ``Figure``
    (classes in the same colours and marker shapes, the legend right of the axes)."""
    coords, labels = _check_projection_3d(data, class_names)
    fig = Figure(figsize=figsize, dpi=DPI)
    ax = fig.add_axes((0.0, 0.0, SCENE_WIDTH, 1.0), projection="3d")
    colours = class_colors(len(class_names))
    for index in np.unique(labels):
        points = coords[labels == index]
        ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=14, color=colours[index], alpha=0.85,
                   marker=STATIC_MARKERS[class_marker(int(index))], linewidths=0, label=class_names[index],
                   depthshade=False)
    elev, azim = camera_angles(eye)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1), zoom=0.95)
    for set_label, text in zip((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), axis_titles(data)):
        set_label(text, fontsize=SMALL_FONT + 1)
    ax.tick_params(labelsize=SMALL_FONT)
    present = np.unique(labels).size
    if present > MAX_STATIC_LEGEND:  # two columns hold about 30 names; the interactive figure names every point
        fig.text(LEGEND_COLUMNS_X[0], 0.95, f"{present} classes, one colour and marker each:\ntoo many to name here; "
                 "hover a point in the\ninteractive figure for its class", fontsize=SMALL_FONT + 1, va="top")
        return fig
    fig.legend(*ax.get_legend_handles_labels(), fontsize=SMALL_FONT + 1, markerscale=1.6, loc="upper left",
               bbox_to_anchor=(LEGEND_COLUMNS_X[0], 0.95), ncols=len(LEGEND_COLUMNS_X), frameon=False,
               handletextpad=0.3, labelspacing=0.45, columnspacing=1.2)
    return fig


def save_plotly_json(fig, path: Path) -> Path:
    """Write a plotly figure as JSON at ``path`` atomically (``plotly.io.read_json`` reads it back).

    ``</`` is written as ``<\\/`` (the same JSON) so that the text can sit inside an HTML ``<script>``.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise PlotError(f"{path}: expected a .json path")
    return atomic_write_text(path, fig.to_json(validate=False).replace("</", "<\\/"))


def _check_projection_3d(data: dict, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    coords, labels = check_projection_data(data, class_names, dims=3)
    files = data.get("files")
    if files is not None and len(files) != coords.shape[0]:
        raise PlotError(f"data.files: expected {coords.shape[0]} file names (one per point), got {len(files)}")
    return coords, labels
