"""``make bench``'s shapes section at its smallest, so that it cannot rot (figures printed, never asserted on speed)."""

from __future__ import annotations

import io

from mame.bench import shape_speed
from mame.data import aspect_buckets


def test_an_epoch_of_mames_shapes_has_one_batch_shape_per_bucket_where_the_papers_padding_has_one_per_batch():
    epoch = shape_speed.epoch_shapes(batch_size=64)
    assert epoch["images"] == 37_407 and epoch["batches"] >= 37_407 // 64
    assert epoch["bucket_shapes"] <= len(aspect_buckets.RATIOS) < epoch["paper_shapes"]
    assert epoch["paper_shapes"] > 0.9 * epoch["batches"]  # nearly every batch its own shape
    assert epoch["bucket_padded_fraction"] < 0.13 < epoch["paper_padded_fraction"]


def test_the_shapes_section_measures_each_backbone_with_its_traces_bounded_by_the_buckets(tmp_path):
    out = io.StringIO()
    found = shape_speed.measure(out, tmp_path, image_size=32, images=8, batch=4, backbones=("vgg16",))
    (row,) = found["backbones"]
    assert row["fixed_traces"] == 1 and 1 < row["variable_traces"] <= len(aspect_buckets.RATIOS)
    assert row["fixed_per_s"] > 0 and row["variable_per_s"] > 0
    assert row["padding_gap_images"] == 0 or 0 <= row["padding_gap_median"] <= row["padding_gap_max"]
    assert f"VS traced {row['variable_traces']} shapes" in out.getvalue()
