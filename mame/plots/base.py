"""Shared pieces of the deck's figures: slide sizes, new figures, the class palette, saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global state) and laid
out with constrained layout so that labels are never clipped.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mame.files import atomic_path

DPI = 100
# A 16:9 slide is 1280×720 px: a full-slide figure leaves room for the title, a half-slide one
# fills one of two columns; "column" is a figure beside a text column of about 40%; "square" is full
# height for square plots (a confusion matrix).
# "matrix" is a 29-class confusion matrix under a slide title and one line of text, labels legible.
SLIDE_SIZES: dict[str, tuple[float, float]] = {"full": (12.0, 6.2), "half": (6.0, 5.2), "column": (7.4, 4.9),
                                               "square": (8.5, 6.2), "matrix": (7.4, 6.0)}
SMALL_FONT = 7.5
MARKERS = ("o", "s", "^")


class PlotError(ValueError):
    """Input that a figure cannot be drawn from; the message says what was expected."""


def new_figure(size: str = "full", *, nrows: int = 1, ncols: int = 1,
               figsize: tuple[float, float] | None = None) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of a slide size (``"full"``, ``"half"``, ``"square"``), and its axes (2-d array)."""
    if figsize is None:
        if size not in SLIDE_SIZES:
            raise PlotError(f"size: expected one of {sorted(SLIDE_SIZES)}, got {size!r}")
        figsize = SLIDE_SIZES[size]
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def figure_of(ax: Axes) -> Figure:
    """The top-level figure an axes belongs to."""
    return ax.get_figure(root=True)


def one_axes(ax: Axes | None, size: str) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of a slide size with one axes when ``ax`` is None."""
    if ax is not None:
        return figure_of(ax), ax
    fig, grid = new_figure(size)
    return fig, grid[0, 0]


def class_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours: strong hues first (tab10, tab20b darks), then their light variants."""
    tab20 = matplotlib.colormaps["tab20"].colors
    tab20b = matplotlib.colormaps["tab20b"].colors
    tab20c = matplotlib.colormaps["tab20c"].colors
    order = ([tab20[i] for i in range(0, 20, 2)] + [tab20b[i] for i in range(0, 20, 4)]
             + [tab20[i] for i in range(1, 20, 2)] + [tab20b[i] for i in range(2, 20, 4)]
             + [tab20c[i] for i in range(0, 20, 4)])
    return [(*order[i % len(order)][:3], 1.0) for i in range(n)]


def class_marker(index: int) -> str:
    """A marker per block of ten classes, so classes of a similar colour still differ in shape."""
    return MARKERS[(index // 10) % len(MARKERS)]


def tick_font_size(n_labels: int) -> float:
    """A font size for ``n_labels`` tick labels that stays legible on a slide."""
    return 10.0 if n_labels <= 10 else 8.5 if n_labels <= 20 else SMALL_FONT


def save_figure(fig: Figure, path: Path, *, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temp file + rename), then close it.

    No software or date metadata is written, so the same figure gives byte-identical files.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise PlotError(f"{path}: expected a .png path")
    try:
        with atomic_path(path, fsync=False) as tmp:  # no fsync: a deck draws dozens of figures, each redrawable
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        close_figure(fig)
    return path


def close_figure(fig: Figure) -> None:
    """Release a figure: pyplot-managed ones are closed through pyplot, plain ones are cleared."""
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt  # only reached when the caller already uses pyplot

        plt.close(fig)
    else:
        fig.clear()


def as_axes_list(ax, needed: int, what: str) -> list[Axes]:
    """``ax`` (one Axes or a sequence/array of them) as a flat list of at least ``needed`` axes."""
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) < needed or not all(isinstance(a, Axes) for a in axes):
        raise PlotError(f"{what}: expected {needed} matplotlib Axes, got {len(axes)}")
    return axes


