"""The final slides' figures: per-class bars, the most confused pairs and the error gallery.
Asserts on what is computed and drawn (data, labels, titles, image arrays), not on pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from mame.classes import CLASS_NAMES
from mame.metrics import classification_result
from mame.plots import PlotError, confused_pairs, draw_error_gallery, draw_per_class_bars, error_examples, error_title, per_class_data
from mame.plots.perclass import BELOW_COLOR

LABELS = ["a", "b", "c", "d"]
COUNTS = np.array([[50, 2, 9, 0],    # a -> c: 9
                   [4, 40, 0, 0],    # b -> a: 4
                   [0, 7, 30, 0],    # c -> b: 7
                   [0, 0, 0, 3]])    # d: no errors


def test_per_class_data_is_sorted_best_first_and_leaves_out_classes_without_images():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    report = classification_result(y_true, y_pred, class_names=CLASS_NAMES)["report"]
    data = per_class_data(report, metric="recall")
    assert data["labels"] == [CLASS_NAMES[2], CLASS_NAMES[0], CLASS_NAMES[1]]
    assert data["values"].tolist() == [1.0, 0.75, 0.5]
    assert data["support"].tolist() == [4, 4, 2]
    assert len(data["empty"]) == len(CLASS_NAMES) - 3 and data["accuracy"] == 0.8
    with pytest.raises(PlotError, match="metric"):
        per_class_data(report, metric="support")


def test_per_class_bars_draw_each_value_top_down_with_the_accuracy_line():
    data = {"labels": ["x", "y", "z"], "values": np.array([0.9, 0.6, 0.2]), "metric": "recall", "accuracy": 0.7}
    fig = draw_per_class_bars(data)
    ax = fig.axes[0]
    bars = sorted(ax.patches, key=lambda p: -p.get_y())  # top first
    assert [round(b.get_width(), 6) for b in bars] == [0.9, 0.6, 0.2]
    ticks = sorted(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]), key=lambda t: -t[0])
    assert [text for _, text in ticks] == ["x", "y", "z"]
    below = [to_hex(b.get_facecolor()) == BELOW_COLOR for b in bars]
    assert below == [False, True, True]
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [0.7]
    assert [t.get_text() for t in ax.texts] == ["0.90", "0.60", "0.20"]  # value labels, in data order
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["overall accuracy 0.70", "below the overall accuracy"]


def test_confused_pairs_are_the_largest_off_diagonal_cells_never_the_diagonal_or_empty_cells():
    pairs = confused_pairs(COUNTS, LABELS, top=5)
    assert [(p["true_name"], p["pred_name"], p["count"]) for p in pairs] == [
        ("a", "c", 9), ("c", "b", 7), ("b", "a", 4), ("a", "b", 2)]  # 4 non-empty cells only
    assert pairs[0]["share"] == pytest.approx(9 / 61)
    assert confused_pairs(np.eye(3) * 5, ["x", "y", "z"]) == []
    with pytest.raises(PlotError, match="square matrix"):
        confused_pairs(COUNTS[:3], LABELS)


def test_error_examples_are_only_that_pairs_mistakes_most_confident_first():
    y_true = np.array([0, 0, 0, 0, 2, 0, 1])
    y_pred = np.array([2, 0, 2, 2, 2, 1, 0])
    probs = np.full((7, 4), 0.1)
    probs[[0, 2, 3], 2] = [0.5, 0.9, 0.7]
    pairs = confused_pairs(COUNTS, LABELS, top=2)  # a -> c, c -> b
    examples = error_examples(y_true, y_pred, probs, pairs, per_pair=2)
    assert [i["index"] for i in examples[0]["items"]] == [2, 3]  # 0 (p 0.5) is third; 1 and 4 are right
    assert [i["p"] for i in examples[0]["items"]] == [0.9, 0.7]
    assert examples[1]["items"] == []  # no image of c predicted as b here


def test_error_gallery_draws_one_row_per_pair_with_true_to_predicted_titles():
    pairs = confused_pairs(COUNTS, LABELS, top=2)
    examples = [{"pair": pairs[0], "items": [{"index": 5, "p": 0.812}, {"index": 9, "p": 0.5}]},
                {"pair": pairs[1], "items": [{"index": 7, "p": 0.44}]}]
    images = {i: np.full((6, 8, 3), i * 20, dtype=np.uint8) for i in (5, 9, 7)}
    fig = draw_error_gallery(examples, images, per_pair=3)
    axes = fig.axes
    assert len(axes) == 6
    drawn = [(ax.get_title().replace("\n", " "), int(ax.images[0].get_array()[0, 0, 0])) if ax.images else None
             for ax in axes]
    assert drawn == [("a → c (0.81)", 100), ("a → c (0.50)", 180), None,
                     ("c → b (0.44)", 140), None, None]
    assert not any(ax.axison for ax in axes)
    assert error_title(pairs[0], 0.8) == "a → c (0.80)"
    with pytest.raises(PlotError, match="missing indices"):
        draw_error_gallery(examples, {5: images[5]})
