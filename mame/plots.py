"""The deck's figures, scikit-learn display style: compute, then draw (``ax=None``, returns the
Figure), then save (``save_figure``). Built on ``matplotlib.figure.Figure``, no pyplot state.

The code lives in ``plots_base`` (sizes, palette, saving), ``plots_confusion``, ``plots_curves``
(learning curves, accuracy bars), ``plots_projection`` (PCA/UMAP/t-SNE) and ``plots_images``
(image grids, Grad-CAM overlays); this module is the public entry point.
"""

from __future__ import annotations

from .plots_base import (DPI, SLIDE_SIZES, PlotError, class_colors, close_figure, new_figure,
                         save_figure)
from .plots_confusion import confusion_matrix_data, draw_confusion_matrix
from .plots_curves import draw_accuracy_bars, draw_learning_curves
from .plots_images import draw_image_grid, overlay_heatmap, to_uint8_rgb
from .plots_projection import draw_projection, project_features, subsample_per_class

__all__ = [
    "DPI", "SLIDE_SIZES", "PlotError", "class_colors", "close_figure", "confusion_matrix_data",
    "draw_accuracy_bars", "draw_confusion_matrix", "draw_image_grid", "draw_learning_curves",
    "draw_projection", "new_figure", "overlay_heatmap", "project_features", "save_figure",
    "subsample_per_class", "to_uint8_rgb",
]
