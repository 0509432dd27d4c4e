"""What variable shape costs in padding, per aspect-ratio bucket: the data and what is drawn of it, not pixels."""

from __future__ import annotations

import numpy as np
import pytest

from mame.plots import PlotError, draw_padding, padding_data, ratio_label

RATIOS = (0.5, 1.0, 2.0)


def test_each_bucket_gets_its_share_of_the_images_and_the_mean_padded_fraction_of_its_own():
    bucket = np.array([0, 1, 1, 1, 2, 2])
    padded = {"small": np.array([0.4, 0.0, 0.2, 0.1, 0.3, 0.5]), "large": np.array([0.2, 0.0, 0.1, 0.05, 0.1, 0.3])}
    data = padding_data(bucket, padded, RATIOS)
    assert data["labels"] == ["1:2", "1:1", "2:1"] and data["n"] == 6
    assert data["counts"].tolist() == [1, 3, 2] and data["share"].tolist() == pytest.approx([1 / 6, 1 / 2, 1 / 3])
    small, large = data["series"]
    assert small["mean"].tolist() == pytest.approx([0.4, 0.1, 0.4]) and small["overall"] == pytest.approx(0.25)
    assert large["label"] == "large" and large["mean"].tolist() == pytest.approx([0.2, 0.05, 0.2])


def test_an_empty_bucket_has_no_padded_fraction_and_no_point():
    data = padding_data(np.array([0, 0, 2]), {"p": np.array([0.1, 0.3, 0.5])}, RATIOS)
    assert np.isnan(data["series"][0]["mean"][1]) and data["counts"].tolist() == [2, 0, 1]
    fig = draw_padding(data)
    bars, right = fig.axes
    assert [p.get_height() for p in bars.patches] == pytest.approx([2 / 3, 0, 1 / 3])
    line = next(line for line in right.get_lines() if line.get_gid() == "padded:p")
    assert np.isnan(line.get_ydata()[1]) and line.get_ydata()[[0, 2]].tolist() == pytest.approx([0.2, 0.5])
    assert [t.get_text() for t in bars.get_xticklabels()] == ["1:2", "1:1", "2:1"]
    assert "mean 30%" in line.get_label()


def test_ratio_labels_read_as_width_to_height():
    assert [ratio_label(r) for r in (2 ** (-5 / 3), 0.5, 1.0, 2 ** (1 / 3), 2 ** (5 / 3))] == [
        "1:3.2", "1:2", "1:1", "1.3:1", "3.2:1"]
    with pytest.raises(PlotError):
        ratio_label(0)


def test_bad_input_says_what_was_expected():
    with pytest.raises(PlotError, match="indices into the 3 ratios"):
        padding_data(np.array([0, 3]), {"p": np.array([0.1, 0.2])}, RATIOS)
    with pytest.raises(PlotError, match="one padded fraction per image"):
        padding_data(np.array([0, 1]), {"p": np.array([0.1])}, RATIOS)
