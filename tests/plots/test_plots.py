"""The deck's figures: assert on what is drawn (data, labels, sizes), not on pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from PIL import Image

from mame.classes import CLASS_NAMES
from mame.metrics import classification_result
from mame.plots import (
    PlotError,
    confusion_matrix_data,
    draw_accuracy_bars,
    draw_confusion_matrix,
    draw_image_grid,
    draw_learning_curves,
    draw_projection,
    new_figure,
    overlay_heatmap,
    project_features,
    save_figure,
)

N = len(CLASS_NAMES)


@pytest.fixture(scope="module")
def entry() -> dict:
    """A 29-class metrics.json entry from real predictions; the last class never occurs."""
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, N - 1, 600)
    y_pred = np.where(rng.random(600) < 0.6, y_true, rng.integers(0, N, 600))
    return classification_result(y_true, y_pred, class_names=CLASS_NAMES)


def clusters(n_classes: int, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = rng.normal(scale=5.0, size=(n_classes, 16))
    return centres[labels] + rng.normal(size=(labels.size, 16)), labels


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


# --- confusion matrix ---------------------------------------------------------------------------

def test_confusion_matrix_rows_normalised_and_empty_rows_stay_zero(entry):
    data = confusion_matrix_data(entry)
    counts = np.asarray(entry["confusion_matrix"]["matrix"], dtype=float)
    assert data["labels"] == list(CLASS_NAMES)
    assert np.allclose(data["matrix"][:-1].sum(axis=1), 1.0)
    assert np.all(data["matrix"][-1] == 0.0)  # the absent class: no division by zero
    assert np.allclose(data["matrix"][3], counts[3] / counts[3].sum())
    assert data["accuracy"] == pytest.approx(entry["report"]["accuracy"])


def test_confusion_matrix_other_normalisations(entry):
    counts = np.asarray(entry["confusion_matrix"]["matrix"], dtype=float)
    assert np.array_equal(confusion_matrix_data(entry, normalize=None)["matrix"], counts)
    assert confusion_matrix_data(entry, normalize="all")["matrix"].sum() == pytest.approx(1.0)
    by_pred = confusion_matrix_data(entry, normalize="pred")["matrix"]
    assert np.allclose(by_pred.sum(axis=0)[counts.sum(axis=0) > 0], 1.0)


def test_confusion_heatmap_draws_the_normalised_matrix_with_all_names(entry):
    data = confusion_matrix_data(entry)
    fig = draw_confusion_matrix(data, title="Test")
    ax = fig.axes[0]
    assert np.allclose(ax.images[0].get_array(), data["matrix"])
    assert tick_texts(ax.get_xticklabels()) == list(CLASS_NAMES)
    assert tick_texts(ax.get_yticklabels()) == list(CLASS_NAMES)
    assert len(fig.axes) == 2  # the colourbar
    assert len(ax.texts) == 0  # 29 classes: no numbers in the cells unless asked
    assert ax.get_title() == "Test"
    assert len(draw_confusion_matrix(data, annotate=True).axes[0].texts) == N * N


def test_confusion_heatmap_annotates_few_classes_and_uses_a_given_axes():
    small = classification_result([0, 1, 2, 2], [0, 2, 2, 2], class_names=["a", "b", "c"])
    fig, axes = new_figure("half")
    returned = draw_confusion_matrix(confusion_matrix_data(small, normalize=None), ax=axes[0, 0])
    assert returned is fig
    assert sorted(t.get_text() for t in axes[0, 0].texts) == sorted("100010002")


@pytest.mark.parametrize("block, message", [
    ({"labels": ["a", "b"], "matrix": [[1, 2, 3], [4, 5, 6]]}, "square"),
    ({"labels": ["a"], "matrix": [[1, 2], [3, 4]]}, "expected 2 labels"),
    ({"labels": ["a", "b"], "matrix": [[1, -2], [3, 4]]}, "non-negative"),
    ({"matrix": [[1]]}, "'labels' and 'matrix'"),
])
def test_confusion_matrix_rejects_bad_entries(block, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix_data({"report": {}, "confusion_matrix": block})


def test_confusion_matrix_rejects_unknown_normalisation(entry):
    with pytest.raises(PlotError, match="normalize: expected one of"):
        confusion_matrix_data(entry, normalize="rows")


# --- learning curves ----------------------------------------------------------------------------

def test_learning_curves_plot_the_history_from_epoch_one():
    history = {"loss": [2.0, 1.5, 1.2], "val_loss": [2.2, 1.9, 1.8],
               "accuracy": [0.2, 0.4, 0.5], "val_accuracy": [0.15, 0.3, 0.35], "lr": [1e-4] * 3}
    fig = draw_learning_curves(history, title="#1", log_loss=True)
    loss_ax, acc_ax = fig.axes
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines["train"].get_ydata()) == history[metric]
        assert list(lines["validation"].get_ydata()) == history[f"val_{metric}"]
        assert list(lines["train"].get_xdata()) == [1, 2, 3]
        assert ax.get_legend() is not None
    assert loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"
    assert fig.get_suptitle() == "#1"


def test_learning_curves_tolerate_missing_validation_and_metrics():
    fig = draw_learning_curves({"loss": [1.0, 0.5]})
    assert len(fig.axes) == 1
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]
    with pytest.raises(PlotError, match="expected at least one non-empty series"):
        draw_learning_curves({"val_loss": [], "lr": [0.1]})
    with pytest.raises(PlotError, match="expected 2 matplotlib Axes"):
        draw_learning_curves({"loss": [1.0], "accuracy": [0.1]}, ax=new_figure()[1][0, 0])


# --- projections --------------------------------------------------------------------------------

def test_pca_projection_caps_each_class_and_is_reproducible():
    features, labels = clusters(N, 12)
    labels = labels[:-5]  # the last class has 7 rows, fewer than the cap
    features = features[:-5]
    data = project_features(features, labels, method="pca", max_per_class=10, seed=3)
    counts = np.bincount(data["labels"], minlength=N)
    assert counts[:-1].tolist() == [10] * (N - 1) and counts[-1] == 7
    assert data["coords"].shape == (10 * (N - 1) + 7, 2)
    assert np.array_equal(labels[data["indices"]], data["labels"])
    again = project_features(features, labels, method="pca", max_per_class=10, seed=3)
    assert np.array_equal(again["coords"], data["coords"])
    other = project_features(features, labels, method="pca", max_per_class=10, seed=4)
    assert not np.array_equal(other["indices"], data["indices"])
    assert len(data["explained_variance"]) == 2 and 0 < sum(data["explained_variance"]) <= 1


def test_projection_scatter_has_one_point_per_sample_and_a_29_class_legend():
    features, labels = clusters(N, 6)
    data = project_features(features, labels, max_per_class=4)
    fig = draw_projection(data, class_names=CLASS_NAMES, title="PCA")
    ax = fig.axes[0]
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in collections) == 4 * N
    assert tick_texts(ax.get_legend().get_texts()) == list(CLASS_NAMES)
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in collections}
    assert len(colours) == N  # every class has its own colour
    assert "% of variance" in ax.get_xlabel()
    centroids = draw_projection(data, class_names=CLASS_NAMES, legend="centroids").axes[0]
    assert sorted(t.get_text() for t in centroids.texts) == sorted(CLASS_NAMES)


def test_tsne_works_on_tiny_inputs():
    features, labels = clusters(3, 10)
    data = project_features(features, labels, method="tsne", max_per_class=None)
    assert data["coords"].shape == (30, 2) and np.all(np.isfinite(data["coords"]))
    assert data["method"] == "tsne" and data["explained_variance"] is None


def test_umap_works_on_30_and_on_10_points_and_imports_no_tensorflow():
    """UMAP projects 30 points and, with fewer points than its default neighbours, 10. umap's package init would
    import TensorFlow (ParametricUMAP): seconds of start-up and C++ log lines printed by `make report`. A fresh
    interpreter projects with UMAP and never loads it, and prints nothing (one interpreter: numba compiles
    UMAP's functions once, ~15 s on 2 cores)."""
    import subprocess
    import sys

    code = ("import sys, json, numpy as np; from mame.plots import project_features; "
            "rng = np.random.default_rng(0); y = np.repeat(np.arange(3), 10); "
            "x = rng.normal(0, 0.3, (30, 8)) + y[:, None]; "
            "full = project_features(x, y, method='umap', max_per_class=None); "
            "tiny = project_features(x[::3], y[::3], method='umap'); "
            "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'method': full['method'], "
            "'variance': full['explained_variance'], 'shapes': [list(full['coords'].shape), list(tiny['coords'].shape)], "
            "'finite': bool(np.isfinite(full['coords']).all() and np.isfinite(tiny['coords']).all())}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "tf": False, "method": "umap", "variance": None, "shapes": [[30, 2], [10, 2]], "finite": True}
    assert proc.stdout.count("\n") == 1  # the one line printed above, nothing else
    assert "oneDNN" not in proc.stderr and "cuda" not in proc.stderr.lower()


def test_centroid_names_are_moved_apart_where_they_would_overlap():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(N), 10)
    coords = rng.normal(0, 0.05, (len(labels), 2)) + (labels[:, None] % 3) * 0.01  # every class in one spot
    fig = draw_projection({"coords": coords, "labels": labels, "method": "pca"}, class_names=CLASS_NAMES,
                          legend="centroids", size="half")
    ax = fig.axes[0]
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    overlaps = sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert len(boxes) == N and overlaps < N  # adjustText spreads them (29 names at one point all overlap otherwise)


def test_projection_rejects_bad_input():
    features, labels = clusters(3, 5)
    with pytest.raises(PlotError, match="one per feature row"):
        project_features(features, labels[:-1])
    with pytest.raises(PlotError, match="method: expected one of"):
        project_features(features, labels, method="mds")
    data = project_features(features, labels)
    with pytest.raises(PlotError, match="class indices in"):
        draw_projection(data, class_names=["a", "b"])


# --- bars ---------------------------------------------------------------------------------------

def test_grouped_bars_heights_and_value_labels():
    rows = [{"model": "1", "train": 0.97, "val": 0.307, "test": 0.27},
            {"model": "2", "train": 0.66, "val": 0.45, "test": None}]
    fig = draw_accuracy_bars(rows, x="model", y=["train", "val", "test"], title="Baseline")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert np.allclose(heights[:5], [0.97, 0.66, 0.307, 0.45, 0.27])
    assert np.isnan(heights[5])  # missing value: no bar
    assert "0.97" in tick_texts(ax.texts) and "0.31" in tick_texts(ax.texts)
    assert tick_texts(ax.get_xticklabels()) == ["1", "2"]
    assert tick_texts(ax.get_legend().get_texts()) == ["train", "val", "test"]


def test_long_rows_with_hue_group_by_backbone():
    rows = [{"backbone": b, "classifier": c, "accuracy": a}
            for b, c, a in [("VGG16", "SVC", 0.7), ("VGG16", "kNN", 0.6), ("ResNet50", "SVC", 0.8)]]
    ax = draw_accuracy_bars(rows, x="backbone", y="accuracy", hue="classifier").axes[0]
    by_series = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    assert by_series["SVC"] == [0.7, 0.8]
    assert by_series["kNN"][0] == 0.6 and np.isnan(by_series["kNN"][1])
    with pytest.raises(PlotError, match="column 'model'"):
        draw_accuracy_bars(rows, x="model", y="accuracy")
    with pytest.raises(PlotError, match="expected a number in column 'accuracy'"):
        draw_accuracy_bars([{"backbone": "a", "accuracy": "high"}], x="backbone", y="accuracy")


# --- images -------------------------------------------------------------------------------------

def test_overlay_heatmap_resizes_and_blends():
    image = np.full((40, 60, 3), 200, dtype=np.uint8)
    heatmap = np.array([[0.0, 1.0], [0.0, 0.0]])
    out = overlay_heatmap(image, heatmap, alpha=0.5)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[0, -1, 0] > out[0, -1, 2]  # hot corner is red in jet
    assert out[-1, 0, 2] > out[-1, 0, 0]  # cold corner is blue
    assert np.array_equal(overlay_heatmap(image, heatmap, alpha=0.0), image)
    gray = overlay_heatmap(np.zeros((8, 8)), np.ones((3, 3)))
    assert gray.shape == (8, 8, 3)
    with pytest.raises(PlotError, match="heatmap: expected a non-empty 2-d array"):
        overlay_heatmap(image, np.zeros((2, 2, 2)))


def test_image_grid_shows_each_image_with_its_title():
    images = [np.full((16, 16, 3), i * 20, dtype=np.uint8) for i in range(7)]
    titles = [f"{CLASS_NAMES[i]}\nmousetrap (0.21)" for i in range(7)]
    fig = draw_image_grid(images, titles, ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 8 and len(shown) == 7
    assert [ax.get_title() for ax in shown] == titles
    assert np.array_equal(shown[3].images[0].get_array(), images[3])
    with pytest.raises(PlotError, match="one title per image"):
        draw_image_grid(images, titles[:-1])


# --- saving -------------------------------------------------------------------------------------

def test_save_figure_writes_slide_sized_png_byte_identically(tmp_path, entry):
    def render(path):
        history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.9]}
        return save_figure(draw_learning_curves(history), path)

    first = render(tmp_path / "figs" / "a.png")
    second = render(tmp_path / "figs" / "b.png")
    with Image.open(first) as png:
        assert png.size == (1200, 620) and "Software" not in png.info
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["a.png", "b.png"]  # no temp files left
    square = save_figure(draw_confusion_matrix(confusion_matrix_data(entry)), tmp_path / "cm.png")
    with Image.open(square) as png:
        assert png.size == (850, 620)
    with pytest.raises(PlotError, match="expected a .png path"):
        save_figure(Figure(), tmp_path / "x.svg")


def test_save_figure_closes_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.2))
    draw_learning_curves({"loss": [1.0, 0.5]}, ax=ax)
    save_figure(fig, tmp_path / "half.png", dpi=100)
    assert not plt.fignum_exists(fig.number)
    with Image.open(tmp_path / "half.png") as png:
        assert png.size == (600, 520)


def test_drawing_and_saving_never_touch_pyplot(tmp_path):
    import subprocess
    import sys

    script = ("import sys\nfrom pathlib import Path\nfrom mame.plots import draw_learning_curves, save_figure\n"
              f"save_figure(draw_learning_curves({{'loss': [1.0, 0.5]}}), Path({str(tmp_path / 'c.png')!r}))\n"
              "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").is_file()
