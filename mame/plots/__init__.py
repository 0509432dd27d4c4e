"""The deck's figures, scikit-learn display style: compute, then draw (``ax=None``, returns the
Figure), then save (``save_figure``), built on ``matplotlib.figure.Figure`` with no pyplot state.

Modules: ``base`` (sizes, palette, saving), ``confusion``, ``curves`` (learning curves with best
epoch and training phases, accuracy bars), ``step_accuracy`` (accuracy per fine-tuning step), ``projection``
(PCA/UMAP/t-SNE, 2-D or 3-D), ``projection3d`` (interactive plotly
3-D scatter and its static matplotlib view), ``images`` (image grids, Grad-CAM overlays), ``heatmap_grid`` (Grad-CAM grids: images and
each model's maps), ``perclass`` (sorted per-class bars), ``errors`` (most confused pairs and their
misclassified images), ``class_counts`` (images per class and split), ``aspect_ratios`` (image shape per
class), ``padding`` (variable shape's padding per aspect-ratio bucket); this package re-exports their public
names. May import ``mame.classes`` and ``mame.config`` only.
"""

from __future__ import annotations

from mame.plots.aspect_ratios import aspect_ratio_data, draw_aspect_ratios
from mame.plots.base import DPI, SLIDE_SIZES, PlotError, class_colors, close_figure, new_figure, save_figure
from mame.plots.class_counts import class_counts_data, draw_class_counts
from mame.plots.confusion import confusion_matrix_data, draw_confusion_matrix, most_confused
from mame.plots.curves import draw_accuracy_bars, draw_learning_curves, phase_spans
from mame.plots.errors import confused_pairs, draw_error_gallery, error_examples, error_title
from mame.plots.heatmap_grid import draw_gradcam_grid
from mame.plots.images import draw_image_grid, overlay_heatmap, to_uint8_rgb
from mame.plots.padding import draw_padding, padding_data, ratio_label
from mame.plots.perclass import draw_per_class_bars, per_class_data
from mame.plots.projection import draw_projection, project_features, subsample_per_class
from mame.plots.projection3d import draw_projection_3d, draw_projection_3d_static, save_plotly_json
from mame.plots.step_accuracy import draw_ladder, ladder_data

__all__ = [
    "aspect_ratio_data", "class_colors", "class_counts_data", "close_figure", "confused_pairs", "confusion_matrix_data", "DPI",
    "draw_accuracy_bars", "draw_aspect_ratios", "draw_class_counts", "draw_confusion_matrix", "draw_error_gallery",
    "draw_gradcam_grid", "draw_image_grid", "draw_ladder", "draw_learning_curves", "draw_padding", "draw_per_class_bars",
    "draw_projection", "draw_projection_3d", "draw_projection_3d_static", "error_examples", "error_title",
    "ladder_data", "most_confused", "new_figure", "overlay_heatmap", "padding_data", "per_class_data", "phase_spans", "PlotError",
    "project_features", "ratio_label", "save_figure", "save_plotly_json", "SLIDE_SIZES", "subsample_per_class", "to_uint8_rgb",
]
