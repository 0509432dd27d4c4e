"""tf.data pipelines over MAMe records: decode, resize (fixed or variable shape), augment, batch.

Images come out as uint8 (the resized pixels rounded: exact, a quarter of float32's bytes to move and, on a GPU,
to copy to it; Keras casts them to the model's float32 input), augmented ones as float32 in 0-255 (what the
backbones' own preprocessing expects); labels int32. Variable shape (``mame.data.padded_batches``): batches grouped by
aspect ratio into a fixed set of padded shapes, each with its images' valid sizes.

Corrupt images. Each file is checked in the graph before decoding (empty, unknown format, JPEG
without its end marker, PNG without ``IEND``): such a file fails with an error whose message
names it, also inside ``model.fit``. ``iterate_numpy`` turns that error into a ``DataError``;
for the rare corruption the cheap check cannot see, it finds the file with Pillow.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mame.data import decode
from mame.data import ledger as test_ledger
from mame.data.augment import augment_image
from mame.data.decode import DATASET_FILES, decode_checked, iterate_numpy, tf  # noqa: F401  (iterate_numpy: re-exported)
from mame.data.metadata import TEST, DataError, Record, TestSplitError

SHOW_FIRST = 5
_ORDER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def image_paths(records: Sequence[Record], image_dir: str | os.PathLike) -> list[str]:
    """Full paths of the records' images; ``DataError`` listing the missing ones, if any."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found")
    listed: dict[str, set[str]] = {}  # each folder the records name, listed once (a flat folder: one scandir)

    def present(file: str) -> bool:
        folder, _, name = file.rpartition("/")
        if folder not in listed:
            try:
                listed[folder] = {entry.name for entry in os.scandir(image_dir / folder)}
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = set()
        return name in listed[folder]

    missing = [r.image_file for r in records if not present(r.image_file)]
    if missing:
        first = ", ".join(missing[:SHOW_FIRST]) + (", ..." if len(missing) > SHOW_FIRST else "")
        raise DataError(f"{image_dir}: {len(missing)} of {len(records)} images missing ({first})")
    return [str(image_dir / r.image_file) for r in records]


def make_dataset(records: Sequence[Record], image_dir: str | os.PathLike, *,
                 image_size: int | None = None, crop_size: int | None = None,
                 target_pixels: int | None = None, placement: str = "corner", batch_size: int = 32, shuffle: bool = False,
                 seed: int = 0, augment: bool = False, repeat: bool = False, first_epoch: int = 0,
                 with_paths: bool = False, allow_test: bool = False, cache: bool = True) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (``(images, labels, paths)`` with ``with_paths``).

    Fixed shape: ``image_size`` (square resize) then an optional central ``crop_size`` crop.
    Variable shape: ``target_pixels`` keeps the aspect ratio at about that many pixels; batches are grouped by
    aspect ratio into a fixed set of padded shapes, and their images are ``{"image", "valid_size"}``
    (``mame.data.padded_batches``: ``placement`` corner or centre; ``record_order`` gives an unshuffled dataset's
    order, bucket by bucket). The order (``shuffle``) and the augmentation
    depend only on ``seed`` and the epoch; with ``repeat`` every epoch is reshuffled, and batches
    never straddle two epochs (the last batch of an epoch may be short). ``first_epoch`` starts the
    stream at that epoch, so a resumed training run sees exactly the batches of an uninterrupted one.
    Test-split records are refused unless ``allow_test`` (only the evaluate stage passes it); with it, the pass is
    recorded in the test-split ledger here (``mame.data.ledger.record``: the ledger the records carry, or the one
    named by ``mame.data.ledger.reading``).

    Images are decoded once into the decoded-image cache (``mame.data.image_cache``; ``cache``
    False, or ``MAME_IMAGE_CACHE=off``, decodes them at each pass): a corrupt image then fails here, before
    anything trains, with a ``DataError`` naming it. Either way the pixels are the resized ones rounded to
    integers, bit for bit the same.
    """
    _check_sizes(image_size, crop_size, target_pixels, batch_size)
    if not records:
        raise DataError(f"{image_dir}: no records to load")
    if first_epoch < 0:
        raise ValueError(f"first_epoch must be >= 0, got {first_epoch}")
    n_test = sum(r.subset == TEST for r in records)
    if n_test and not allow_test:
        raise TestSplitError(f"{image_dir}: {n_test} test-split images asked for "
                             "outside the evaluate stage (pass allow_test=True there, with the read in its ledger)")
    paths = image_paths(records, image_dir)
    if n_test:  # recorded here, whoever asked: in the ledger the records carry (or the one being read into)
        test_ledger.record(getattr(records, "ledger", None), f"{image_dir}: {n_test} test-split images loaded (make_dataset)",
                           n_test)
    if target_pixels is not None:
        from mame.data import padded_batches

        dataset, order = padded_batches.make_batches(
            paths, [r.label for r in records], Path(image_dir), target_pixels=target_pixels, placement=placement,
            batch_size=batch_size, shuffle=shuffle, seed=seed, augment=augment, repeat=repeat, first_epoch=first_epoch,
            cache=cache)
        return _finish(dataset, paths, with_paths, None if shuffle else order)
    path_table = tf.constant(paths)
    label_table = tf.constant([r.label for r in records], dtype=tf.int32)

    read = _cached_reader(paths, image_dir, image_size, crop_size) if cache else None

    def load(position: tf.Tensor, index: tf.Tensor):
        path = tf.gather(path_table, index)
        image = decode_fixed(path, image_size, crop_size)
        if augment:
            image = augment_image(image, tf.stack([tf.constant(seed, tf.int64), position]))
        return image, tf.gather(label_table, index), path

    def load_batch(positions: tf.Tensor, indices: tf.Tensor):
        # cached: one memory-map read per batch (a read per image costs more than the copy itself)
        images, seeds = read(indices), tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)), positions], 1)
        if augment:
            images = tf.map_fn(lambda pair: augment_image(*pair), (images, seeds), fn_output_signature=tf.float32)
        return images, tf.gather(label_table, indices), tf.gather(path_table, indices)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        dataset = _epoch_positions(len(paths), epoch, shuffle=shuffle, seed=seed)
        if read is not None:
            return dataset.batch(batch_size).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)

    epochs = tf.data.Dataset.counter(start=first_epoch) if repeat else tf.data.Dataset.range(first_epoch, first_epoch + 1)
    return _finish(epochs.flat_map(one_epoch), paths, with_paths, None if shuffle else np.arange(len(paths)))


def _finish(dataset: tf.data.Dataset, paths: list[str], with_paths: bool, order: np.ndarray | None) -> tf.data.Dataset:
    """``(images, labels)`` or with their paths, prefetched; its files and record order remembered."""
    if not with_paths:
        dataset = dataset.map(lambda images, labels, _: (images, labels))
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    DATASET_FILES[dataset] = paths
    if order is not None:
        _ORDER[dataset] = order
    return dataset


def record_order(dataset: tf.data.Dataset) -> np.ndarray:
    """The record index of each image an unshuffled ``make_dataset`` result yields, in yield order (record order
    for fixed shape, bucket by bucket for variable shape); ValueError for a shuffled or unknown dataset."""
    order = _ORDER.get(dataset)
    if order is None:
        raise ValueError("record_order: not an unshuffled dataset made by make_dataset")
    return order


def in_record_order(dataset: tf.data.Dataset, rows: np.ndarray) -> np.ndarray:
    """``rows`` computed in ``dataset``'s yield order (one per image), put back in record order."""
    order = record_order(dataset)
    if len(rows) != len(order):
        raise ValueError(f"in_record_order: {len(rows)} rows for {len(order)} images")
    out = np.empty_like(rows)
    out[order] = rows
    return out


def _cached_reader(paths: list[str], image_dir, image_size: int, crop_size: int | None):
    """A graph function from record indices to their cached images (uint8), or None without a cache."""
    from mame.data import image_cache

    root = image_cache.cache_root()
    if root is None:
        return None
    stamp = image_cache.code_stamp(decode, resize_fixed, decode_fixed)  # the whole decode module: its checks too
    store = image_cache.ImageCache(root, Path(image_dir), image_size, crop_size, stamp)
    rows = store.fill(paths, lambda missing: _decoded_batches(missing, image_size, crop_size))
    if rows is None:
        return None
    row_table, read_rows, shape = tf.constant(rows), store.reader(), store.shape

    def read(indices: tf.Tensor) -> tf.Tensor:
        images = tf.numpy_function(read_rows, [tf.gather(row_table, indices)], tf.uint8, stateful=False)
        images.set_shape((None, *shape))
        return images

    return read


def decode_fixed(path: tf.Tensor, image_size: int, crop_size: int | None) -> tf.Tensor:
    """One image as the cache keeps it: decoded, resized (and cropped), rounded to uint8."""
    return tf.cast(tf.round(resize_fixed(decode_checked(path), image_size, crop_size)), tf.uint8)


def _decoded_batches(paths: list[str], image_size: int, crop_size: int | None) -> Iterator[np.ndarray]:
    """uint8 batches of ``paths`` in order, decoded side by side (``DataError`` naming a corrupt file)."""
    from mame.data.image_cache import FILL_BATCH

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: (decode_fixed(path, image_size, crop_size),), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).batch(FILL_BATCH).prefetch(1)
    for (batch,) in iterate_numpy(dataset, files=paths):
        yield batch


def _check_sizes(image_size: int | None, crop_size: int | None, target_pixels: int | None,
                 batch_size: int) -> None:
    if (image_size is None) == (target_pixels is None):
        raise ValueError("give exactly one of image_size (fixed shape) or target_pixels (variable)")
    if crop_size is not None and (image_size is None or not 0 < crop_size <= image_size):
        raise ValueError(f"crop_size {crop_size} needs image_size >= crop_size > 0")
    if min(v for v in (image_size, target_pixels, batch_size) if v is not None) < 1:
        raise ValueError("image_size, target_pixels and batch_size must be positive")


def _epoch_positions(count: int, epoch: tf.Tensor, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """``(position, record index)`` pairs of one epoch: positions count on across epochs (they seed
    the augmentation), indices are shuffled per epoch with a stateless, seeded permutation."""
    epoch = tf.cast(epoch, tf.int64)
    indices = tf.range(count, dtype=tf.int64)
    if shuffle:
        indices = tf.random.experimental.stateless_shuffle(indices, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
    positions = epoch * count + tf.range(count, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((positions, indices))


def resize_fixed(image: tf.Tensor, image_size: int, crop_size: int | None) -> tf.Tensor:
    """Square resize to ``image_size``, then a central ``crop_size`` crop (R65k-FS: 256, 224)."""
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    if crop_size is not None and crop_size < image_size:
        offset = (image_size - crop_size) // 2
        image = tf.image.crop_to_bounding_box(image, offset, offset, crop_size, crop_size)
    return tf.clip_by_value(image, 0.0, 255.0)


def load_arrays(records: Sequence[Record], image_dir: str | os.PathLike, *, image_size: int,
                crop_size: int | None = None, batch_size: int = 64,
                augment: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All images of a small set as one float32 array ``(N, H, W, 3)`` plus int32 labels, in record order."""
    dataset = make_dataset(records, image_dir, image_size=image_size, crop_size=crop_size,
                           batch_size=batch_size, augment=augment, seed=seed)
    batches = list(iterate_numpy(dataset))
    images = np.concatenate([b[0] for b in batches]).astype(np.float32, copy=False)
    labels = np.concatenate([b[1] for b in batches])
    return images, labels
