"""Training figures: learning curves with the best epoch and the training phases, and the fine-tuning
ladder. Assert on what is drawn (scales, lines, spans, labels), not on pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mame.plots import PlotError, draw_ladder, draw_learning_curves, ladder_data, phase_spans, save_figure

HISTORY = {"loss": [3.0, 2.0, 1.2, 0.9, 0.7, 0.6], "val_loss": [3.1, 2.4, 1.6, 1.4, 1.5, 1.7],
           "accuracy": [0.1, 0.3, 0.5, 0.6, 0.7, 0.75], "val_accuracy": [0.1, 0.25, 0.4, 0.48, 0.47, 0.46],
           "seconds": [1.0] * 6}
PHASES = [{"name": "head", "epochs": 2}, {"name": "finetune", "epochs": 4}]


def by_gid(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_curves_stack_loss_on_a_log_scale_over_accuracy_train_and_validation():
    fig = draw_learning_curves(HISTORY, log_loss=True, stacked=True, best_epoch=4, phases=PHASES)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_position().y0 > acc_ax.get_position().y0  # loss above accuracy
    assert loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"
    assert loss_ax.get_ylabel() == "Loss" and acc_ax.get_ylabel() == "Accuracy"
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines["train"].get_ydata()) == HISTORY[metric]
        assert list(lines["validation"].get_ydata()) == HISTORY[f"val_{metric}"]
        assert list(lines["train"].get_xdata()) == [1, 2, 3, 4, 5, 6]


def test_best_epoch_is_a_vertical_line_at_that_epoch_on_every_panel():
    fig = draw_learning_curves(HISTORY, log_loss=True, best_epoch=4, phases=PHASES)
    for ax in fig.axes:
        (line,) = by_gid(ax, "best-epoch")
        assert isinstance(line, Line2D) and list(line.get_xdata()) == [4, 4]
        assert line.get_label() == "best epoch (4)"
        assert "best epoch (4)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_phase_boundary_sits_between_the_last_head_epoch_and_the_first_finetune_epoch():
    fig = draw_learning_curves(HISTORY, best_epoch=4, phases=PHASES)
    for ax in fig.axes:
        (boundary,) = by_gid(ax, "phase-boundary")
        assert list(boundary.get_xdata()) == [2.5, 2.5]
        (span,) = by_gid(ax, "phase-span")
        assert isinstance(span, Rectangle) and span.get_label() == "head phase"
        assert (span.get_x(), span.get_x() + span.get_width()) == (0.5, 2.5)
        assert [t.get_text() for t in by_gid(ax, "phase-name")] == ["head", "finetune"]
        assert ax.get_xlim() == (0.5, 6.5)


def test_one_phase_draws_no_boundary_and_no_marker_unless_asked():
    fig = draw_learning_curves(HISTORY, phases=[{"name": "train", "epochs": 6}])
    ax = fig.axes[0]
    assert not by_gid(ax, "phase-boundary") and not by_gid(ax, "phase-span") and not by_gid(ax, "best-epoch")


def test_phases_and_best_epoch_must_match_the_history():
    assert phase_spans([{"name": "head", "epochs": 2}, {"name": "x", "epochs": 0}, {"name": "ft", "epochs": 1}], 3) == [
        {"name": "head", "first": 1, "last": 2}, {"name": "ft", "first": 3, "last": 3}]
    with pytest.raises(PlotError, match="summing to the history's 6 epochs, got 5"):
        draw_learning_curves(HISTORY, phases=[{"name": "head", "epochs": 2}, {"name": "ft", "epochs": 3}])
    with pytest.raises(PlotError, match="best_epoch: expected an epoch number from 1 to 6, got 7"):
        draw_learning_curves(HISTORY, best_epoch=7)
    with pytest.raises(PlotError, match="non-negative int 'epochs'"):
        draw_learning_curves(HISTORY, phases=[{"name": "head"}])


def test_stacked_curves_fit_a_slide_column(tmp_path):
    from PIL import Image

    path = save_figure(draw_learning_curves(HISTORY, stacked=True, log_loss=True), tmp_path / "c.png")
    with Image.open(path) as png:
        assert png.size == (740, 490)


STEPS = [{"backbone": "VGG16", "step": i, "value": v} for i, v in enumerate([0.74, 0.76, 0.75, None, 0.77, 0.78], 1)]
STEPS += [{"backbone": "ResNet50", "step": 1, "value": 0.8}]


def test_ladder_data_is_one_series_per_backbone_in_step_order():
    data = ladder_data(list(reversed(STEPS)))
    names = [s["name"] for s in data["series"]]
    assert names == ["ResNet50", "VGG16"] and data["max_step"] == 6
    vgg = data["series"][1]
    assert vgg["steps"] == [1, 2, 3, 5, 6] and vgg["values"] == [0.74, 0.76, 0.75, 0.77, 0.78]  # step 4 did not run
    with pytest.raises(PlotError, match="at least one step with a value"):
        ladder_data([{"backbone": "VGG16", "step": 1, "value": None}])
    with pytest.raises(PlotError, match="1-based int step"):
        ladder_data([{"backbone": "VGG16", "step": 0, "value": 0.5}])


def test_ladder_draws_a_line_for_a_multi_step_backbone_and_a_marker_for_a_single_step():
    fig = draw_ladder(ladder_data(STEPS))
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["VGG16"].get_xdata()) == [1, 2, 3, 5, 6]
    assert np.allclose(lines["VGG16"].get_ydata(), [0.74, 0.76, 0.75, 0.77, 0.78])
    assert lines["VGG16"].get_linestyle() == "-" and lines["ResNet50"].get_linestyle() == "None"
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"#{i}" for i in range(1, 7)]
    assert "78.0%" in [t.get_text() for t in ax.texts] and "80.0%" in [t.get_text() for t in ax.texts]
    assert ax.get_ylabel() == "Validation accuracy"


def test_a_single_epoch_still_gets_an_epoch_tick_and_a_labelled_log_range():
    fig = draw_learning_curves({"loss": [3.40], "val_loss": [3.36], "accuracy": [0.01], "val_accuracy": [0.03]},
                               log_loss=True, best_epoch=1)
    loss_ax = fig.axes[0]
    low, high = loss_ax.get_ylim()
    assert high / low >= 2.5  # wide enough to hold a labelled tick (1, 2, 3 or 5 times a power of ten)
    assert list(loss_ax.get_xticks()) == [1]


def test_a_flat_ladder_spans_a_few_points_of_accuracy_not_a_hair():
    ax = draw_ladder(ladder_data([{"backbone": "VGG16", "step": i, "value": 0.034} for i in (1, 2, 3)])).axes[0]
    low, high = ax.get_ylim()
    assert high - low >= 0.06 and low < 0.034 < high
