"""Variable shape: the paper's R65k sizes, aspect-ratio buckets that bound the batch shapes, batches padded
mid-grey with their valid sizes, the decoded-image cache for them (ragged) and augmentation of the valid region
only. Real TensorFlow on cached_tiny images."""

from __future__ import annotations

import numpy as np

from mame.data import aspect_buckets, image_cache, official
from mame.data.metadata import read_metadata
from mame.data.pipeline import in_record_order, iterate_numpy, make_dataset, record_order
from tests.data.test_pipeline import SIZES


def test_a_3144_by_3840_image_gets_the_papers_r65k_size():
    buckets = aspect_buckets.Buckets(aspect_buckets.R65K)
    height, width = buckets.resized([3144], [3840])[0]  # width 3144, height 3840: upright
    assert (height, width) == (283, 232) and abs(height * width / aspect_buckets.R65K - 1) < 0.002
    assert tuple(buckets.resized([3840], [3144])[0]) == (232, 283)


def test_every_real_mame_image_fits_its_bucket_and_the_pad_is_bounded():
    """All 37,407 official shapes at R65k: each fits its bucket's shape, at most 12 % of a padded image is pad
    inside the buckets' range (the paper's per-batch padding is about half pad at this mix of ratios), and 11
    shapes hold them all."""
    sizes = np.array([s for per_class in official.image_shapes().values() for s in per_class])
    buckets = aspect_buckets.Buckets(aspect_buckets.R65K)
    resized = buckets.resized(sizes[:, 0], sizes[:, 1])
    box = np.array(buckets.shapes)[buckets.bucket(sizes[:, 0], sizes[:, 1])]
    assert (resized <= box).all() and (resized >= 1).all()
    pad = buckets.padded_fraction(sizes[:, 0], sizes[:, 1])
    inside = (sizes[:, 0] / sizes[:, 1] > aspect_buckets.STEP ** -5.5) & (sizes[:, 0] / sizes[:, 1] < aspect_buckets.STEP ** 5.5)
    assert pad[inside].max() < 0.12 and 0.10 < pad.mean() < 0.12 and inside.mean() > 0.99  # beyond: shrunk to fit
    assert abs(resized[inside].prod(axis=1) / aspect_buckets.R65K - 1).max() < 0.01  # the budget, except beyond the buckets
    assert len(set(map(tuple, box))) == len(aspect_buckets.RATIOS) == 11
    rng = np.random.default_rng(0)  # the paper: each random batch of 32 padded to its tallest and its widest image
    batches = [sizes[rng.choice(len(sizes), 32)] for _ in range(200)]
    paper = [1 - buckets.resized(b[:, 0], b[:, 1]).prod(1).sum() / (32 * buckets.resized(b[:, 0], b[:, 1]).max(0).prod())
             for b in batches]
    assert np.mean(paper) > 0.4


def test_batches_come_from_one_bucket_each_padded_mid_grey_with_their_valid_sizes(cached_tiny):
    records, images = cached_tiny
    dataset = make_dataset(records, images, target_pixels=400, batch_size=3, with_paths=True)
    batches = list(iterate_numpy(dataset))
    buckets = aspect_buckets.Buckets(400)
    heights, widths = np.array(SIZES).T
    expected_box = np.array(buckets.shapes)[buckets.bucket(widths, heights)]
    seen_paths = []
    for x, labels, paths in batches:
        image, valid = x["image"], x["valid_size"]
        assert image.dtype == np.uint8 and valid.dtype == np.int32 and len(image) == len(valid) == len(labels)
        rows = [next(i for i, r in enumerate(records) if str(images / r.image_file) == p) for p in paths]
        assert len({tuple(expected_box[i]) for i in rows}) == 1 and image.shape[1:3] == tuple(expected_box[rows[0]])
        for picture, (h, w), i in zip(image, valid, rows):
            assert (h, w) == tuple(buckets.resized([widths[i]], [heights[i]])[0])  # the paper's size, ratio kept
            assert (picture[h:] == aspect_buckets.PAD_RGB).all() and (picture[:, w:] == aspect_buckets.PAD_RGB).all()  # top-left
            assert abs(picture[:h, :w].mean() - (20 * i + 25)) < 17  # image i is flat at 20 i + 10 (+ up to 30)
        seen_paths += list(paths)
    assert sorted(seen_paths) == sorted(str(images / r.image_file) for r in records)  # each image once
    order = record_order(dataset)
    assert [str(images / records[i].image_file) for i in order] == seen_paths
    assert np.array_equal(in_record_order(dataset, np.array(seen_paths)), [str(images / r.image_file) for r in records])
    centred = list(iterate_numpy(make_dataset(records, images, target_pixels=400, batch_size=3, placement="centre")))
    for (x, *_), (c, _) in zip(batches, centred):
        for picture, placed, (h, w) in zip(x["image"], c["image"], x["valid_size"]):
            top, left = (np.array(picture.shape[:2]) - (h, w)) // 2
            assert np.array_equal(placed[top:top + h, left:left + w], picture[:h, :w])  # the paper's: centred


def test_bucketing_bounds_the_distinct_batch_shapes(tmp_path, monkeypatch):
    """Sixty images of sixty different aspect ratios: the paper's padding gives a batch shape per batch, the buckets
    at most one per bucket (the short last batch of a bucket adds a batch size, not an image shape)."""
    from PIL import Image

    monkeypatch.setenv(image_cache.CACHE_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "many" / "data_256"
    folder.mkdir(parents=True)
    rows = ["Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,Product size,Aspect ratio"]
    for i in range(60):
        width, height = 20 + i, 80 - i
        Image.fromarray(np.full((height, width, 3), i, np.uint8)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,Bronze,M,{i},train,{width}.0,{height}.0,{width * height}.0,1.0")
    (tmp_path / "many" / "MAMe_dataset.csv").write_text("\n".join(rows) + "\n")
    records = read_metadata(tmp_path / "many").records
    dataset = make_dataset(records, folder, target_pixels=1600, batch_size=4, shuffle=True, repeat=True, seed=2)
    seen = {tuple(x["image"].shape[1:3]) for x, _ in dataset.take(3 * 15)}  # three epochs of 15-16 batches
    buckets = aspect_buckets.Buckets(1600)
    assert seen <= set(buckets.shapes) and len(seen) <= len(set(buckets.bucket(np.arange(20, 80), np.arange(80, 20, -1))))


def test_shuffled_epochs_differ_and_a_resumed_stream_matches(cached_tiny):
    records, images = cached_tiny
    stream = make_dataset(records, images, target_pixels=400, batch_size=2, shuffle=True, repeat=True, seed=5,
                          with_paths=True)
    epochs = [[], []]
    for x, _, paths in stream.take(10):  # 6 batches an epoch here (buckets of 1, 1, 1, 2, 2, 1 images)
        epochs[len(epochs[0]) >= 6].append(tuple(paths.numpy()))
    assert sorted(sum(epochs[0], ())) == sorted(str(images / r.image_file).encode() for r in records)
    resumed = make_dataset(records, images, target_pixels=400, batch_size=2, shuffle=True, repeat=True, seed=5,
                           with_paths=True, first_epoch=1)
    assert [tuple(p.numpy()) for _, _, p in resumed.take(4)] == epochs[1]
    assert epochs[1] != epochs[0][:4]


def test_cached_variable_shape_batches_are_the_uncached_ones_bit_for_bit_and_a_second_pass_decodes_nothing(cached_tiny):
    records, images = cached_tiny
    for options in ({"shuffle": True, "augment": True, "seed": 3}, {}):
        uncached = list(iterate_numpy(make_dataset(records, images, target_pixels=400, batch_size=3, cache=False, **options)))
        cached = list(iterate_numpy(make_dataset(records, images, target_pixels=400, batch_size=3, **options)))
        for (a, la), (b, lb) in zip(uncached, cached):
            assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["valid_size"], b["valid_size"])
            assert np.array_equal(la, lb)
    assert (image_cache.STATS.decoded, image_cache.STATS.reused) == (8, 8)


def test_augmentation_changes_the_valid_region_only(cached_tiny):
    records, images = cached_tiny
    plain = list(iterate_numpy(make_dataset(records, images, target_pixels=400, batch_size=3)))
    changed = list(iterate_numpy(make_dataset(records, images, target_pixels=400, batch_size=3, augment=True, seed=1)))
    differs = 0
    for (x, _), (a, _) in zip(plain, changed):
        assert a["image"].dtype == np.float32 and a["image"].shape == x["image"].shape
        for picture, augmented, (h, w) in zip(x["image"], a["image"], x["valid_size"]):
            assert np.allclose(augmented[h:], aspect_buckets.PAD_RGB) and np.allclose(augmented[:, w:], aspect_buckets.PAD_RGB)
            differs += not np.allclose(augmented[:h, :w], picture[:h, :w], atol=1)
    assert differs >= 6
