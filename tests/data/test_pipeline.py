"""tf.data pipelines on a few tiny PNG/JPEG images written in a temporary folder."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mame.classes import CLASS_NAMES
from mame.data.metadata import DataError, TestSplitError, read_metadata
from mame.data.pipeline import iterate_numpy, load_arrays, make_dataset

HEADER = ("Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,"
          "Product size,Aspect ratio")
SIZES = [(24, 40), (40, 24), (32, 32), (30, 45), (36, 20), (28, 28), (40, 30), (20, 36)]


def write_dataset(root: Path) -> Path:
    """Eight images (PNG and dotted ``.jpeg`` names), one class each, and their CSV."""
    images = root / "data_256"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, (height, width) in enumerate(SIZES):
        name = f"19{i}.{i}.jpeg" if i % 2 else f"{i}.png"
        pixels = np.full((height, width, 3), 20 * i + 10, np.uint8) + rng.integers(0, 30, (1, 1, 3),
                                                                              dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, format="JPEG" if i % 2 else "PNG")
        medium = CLASS_NAMES[3 * i] + (" " if i == 0 else "")
        rows.append(f"{name},{medium},M,{i},train,{width}.0,{height}.0,{width * height}.0,1.0")
    (root / "MAMe_dataset.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return images


@pytest.fixture()
def tiny(tmp_path):
    images = write_dataset(tmp_path)
    return read_metadata(tmp_path).records, images


def batches(dataset):
    return list(iterate_numpy(dataset))


def test_fixed_shape_with_central_crop(tiny):
    records, images = tiny
    result = batches(make_dataset(records, images, image_size=32, crop_size=24, batch_size=3))
    assert [b[0].shape for b in result] == [(3, 24, 24, 3)] * 2 + [(2, 24, 24, 3)]
    x = np.concatenate([b[0] for b in result])
    y = np.concatenate([b[1] for b in result])
    assert x.dtype == np.uint8 and y.dtype == np.int32  # exact pixels; the model casts them to its float input
    assert y.tolist() == [3 * i for i in range(8)]
    # flat images stay flat: image i has value 20 * i + 10 plus a small offset
    assert np.allclose(x.mean(axis=(1, 2, 3)), [20 * i + 25 for i in range(8)], atol=17)
    assert 0.0 <= x.min() and x.max() <= 255.0


def test_paths_match_labels(tiny):
    records, images = tiny
    (x, y, paths), = batches(make_dataset(records, images, image_size=16, batch_size=8,
                                          shuffle=True, seed=1, with_paths=True))
    by_path = {str(images / r.image_file): r.label for r in records}
    assert [by_path[p] for p in paths] == y.tolist()


def test_seeded_shuffle_is_reproducible(tiny):
    records, images = tiny

    def order(seed: int, **kwargs) -> list[int]:
        dataset = make_dataset(records, images, image_size=8, batch_size=8, shuffle=True,
                               seed=seed, **kwargs)
        return np.concatenate([b[1] for b in batches(dataset.take(2))]).tolist()

    assert order(7) == order(7)
    assert order(7) != order(8)
    assert sorted(order(7)[:8]) == [3 * i for i in range(8)]
    epochs = order(7, repeat=True)
    assert sorted(epochs[8:]) == sorted(epochs[:8]) and epochs[8:] != epochs[:8]


def test_epochs_never_share_a_batch_and_a_resumed_stream_matches(tiny):
    records, images = tiny

    def stream(first_epoch: int, n_batches: int, **kwargs) -> list[tuple[list[int], float]]:
        dataset = make_dataset(records, images, image_size=8, batch_size=3, shuffle=True, seed=5, repeat=True,
                               first_epoch=first_epoch, **kwargs)
        return [(y.tolist(), float(x.sum())) for x, y in batches(dataset.take(n_batches))]

    whole = stream(0, 9, augment=True)  # 8 images in batches of 3: 3, 3, 2 per epoch
    assert [len(labels) for labels, _ in whole] == [3, 3, 2] * 3
    for epoch in range(3):
        assert sorted(sum((labels for labels, _ in whole[3 * epoch: 3 * epoch + 3]), [])) == [3 * i for i in range(8)]
    # a run resumed at epoch 2 sees the same batches, augmentation included, as one that never stopped
    assert stream(2, 3, augment=True) == whole[6:9]
    assert stream(1, 3, augment=True) == whole[3:6]
    with pytest.raises(ValueError, match="first_epoch"):
        make_dataset(records, images, image_size=8, first_epoch=-1)


def test_augment_changes_pixels_not_shapes(tiny):
    records, images = tiny
    plain, labels = load_arrays(records, images, image_size=24)
    augmented, same_labels = load_arrays(records, images, image_size=24, augment=True, seed=3)
    again, _ = load_arrays(records, images, image_size=24, augment=True, seed=3)
    assert augmented.shape == plain.shape == (8, 24, 24, 3)
    assert same_labels.tolist() == labels.tolist()
    assert not np.allclose(augmented, plain)
    assert np.array_equal(augmented, again)
    assert 0.0 <= augmented.min() and augmented.max() <= 255.0


def test_missing_files_are_listed_up_front(tiny):
    records, images = tiny
    (images / records[1].image_file).unlink()
    (images / records[4].image_file).unlink()
    with pytest.raises(DataError, match=r"2 of 8 images missing \(191\.1\.jpeg, 4\.png\)"):
        make_dataset(records, images, image_size=16)


@pytest.mark.parametrize("index, damage, reason", [
    (3, lambda data: data[:200], "truncated JPEG"),
    (2, lambda data: data[: len(data) // 2], "truncated PNG"),
    (4, lambda data: b"", "empty file"),
    (6, lambda data: b"<html>not found</html>", "not a JPEG, PNG"),
])
def test_damaged_file_is_named(tiny, index, damage, reason):
    records, images = tiny
    victim = images / records[index].image_file
    victim.write_bytes(damage(victim.read_bytes()))
    # with the decoded-image cache (the default), when the dataset is made: before anything trains
    with pytest.raises(DataError, match=f"^{re.escape(str(victim))}: corrupt image: {reason}"):
        make_dataset(records, images, image_size=16, batch_size=2)
    dataset = make_dataset(records, images, image_size=16, batch_size=2, cache=False)
    with pytest.raises(DataError, match=f"^{re.escape(str(victim))}: corrupt image: {reason}"):
        batches(dataset)
    # consumed directly (as model.fit does), TensorFlow's own error names the file too
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(victim.name)):
        list(dataset)


def test_corrupt_jpeg_body_is_found_with_pillow(tiny):
    records, images = tiny
    victim = images / records[5].image_file
    data = victim.read_bytes()
    garbage = np.random.default_rng(1).integers(0, 256, len(data) - 22, dtype=np.uint8)
    victim.write_bytes(data[:20] + garbage.tobytes() + b"\xff\xd9")  # header and end intact
    with pytest.raises(DataError, match=f"^{re.escape(str(victim))}: corrupt image: "):
        load_arrays(records, images, image_size=16)


def test_bad_sizes_are_rejected(tiny):
    records, images = tiny
    with pytest.raises(ValueError, match="exactly one of image_size"):
        make_dataset(records, images)
    with pytest.raises(ValueError, match="crop_size 40"):
        make_dataset(records, images, image_size=32, crop_size=40)
    with pytest.raises(DataError, match="no records"):
        make_dataset([], images, image_size=32)


def test_test_split_images_are_refused_outside_the_evaluate_stage(tiny):
    records, images = tiny
    as_test = [dataclasses.replace(r, subset="test") for r in records[:2]]
    with pytest.raises(TestSplitError, match="2 test-split images asked for outside the evaluate stage"):
        make_dataset(records[2:] + as_test, images, image_size=8)
    assert len(batches(make_dataset(as_test, images, image_size=8, allow_test=True))[0][1]) == 2
