"""Variable-shape batches for ``mame.data.pipeline.make_dataset(..., target_pixels=P)``: each image resized with
its aspect ratio kept to about P pixels, batches grouped by aspect ratio into the fixed padded shapes of
``mame.data.aspect_buckets.Buckets``, each batch given with its images' valid (unpadded) sizes.

A batch is ``({"image": uint8 (B, H, W, 3), "valid_size": int32 (B, 2)}, labels)``: the padded images (pad
mid-grey, the image top-left, or centred with ``placement="centre"``) and each image's (height, width) before
padding. The image sizes come from the files' headers (Pillow reads no pixels), so an epoch's batches are planned
before anything is decoded: ``aspect_buckets.batch_plan``, seeded by (seed, epoch) as the fixed-shape order is.

Decoded pixels go to the decoded-image cache as fixed-shape ones do (ragged: each image at its own size,
``mame.data.image_cache.RaggedImageCache``), so a second stage or epoch decodes nothing; without the cache each
batch is decoded in the graph, to the same bits. Without shuffling, the batches come bucket by bucket, each
bucket's images in record order: ``mame.data.pipeline.record_order`` gives the permutation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mame.data import aspect_buckets, decode
from mame.data.augment import augment_image
from mame.data.decode import decode_checked, iterate_numpy, tf
from mame.data.metadata import DataError

ELEMENT = {"image": (None, None, None, 3), "valid_size": (None, 2)}


def header_sizes(paths: Sequence[str]) -> np.ndarray:
    """(width, height) of each image from its header (no pixels decoded); ``DataError`` naming an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    sizes = np.empty((len(paths), 2), dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                sizes[i] = image.size
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise DataError(f"{path}: corrupt image: {error}") from None
    return sizes


class Layout:
    """Where each record's image goes: its size after resizing, its bucket, and the padded shape of that bucket."""

    def __init__(self, paths: Sequence[str], target_pixels: int, placement: str = "corner"):
        if placement not in aspect_buckets.PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(aspect_buckets.PLACEMENTS)}, not {placement!r}")
        self.buckets, self.placement = aspect_buckets.Buckets(int(target_pixels)), placement
        original = header_sizes(paths)
        self.bucket = self.buckets.bucket(original[:, 0], original[:, 1])
        self.size = self.buckets.resized(original[:, 0], original[:, 1])  # (height, width)
        self.box = np.array(self.buckets.shapes, dtype=np.int64)[self.bucket]

    def plan(self, batch_size: int, *, shuffle: bool, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's batches as an ``(n_batches, batch_size)`` matrix of record indices (-1 after a short batch's
        last) and the images' positions in the whole stream (they seed the augmentation)."""
        batches = aspect_buckets.batch_plan(self.bucket, batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
        indices = np.full((len(batches), batch_size), -1, dtype=np.int64)
        for row, batch in enumerate(batches):
            indices[row, :len(batch)] = batch
        positions = np.where(indices >= 0, epoch * len(self.bucket) + np.arange(indices.size).reshape(indices.shape), -1)
        return indices, positions

    def order(self, batch_size: int) -> np.ndarray:
        """The record indices in the order an unshuffled dataset yields them."""
        indices, _ = self.plan(batch_size, shuffle=False, seed=0, epoch=0)
        return indices[indices >= 0]

    def offsets(self) -> np.ndarray:
        """(top, left) of each image inside its padded shape."""
        if self.placement == "corner":
            return np.zeros_like(self.size)
        return (self.box - self.size) // 2


def decode_resized(path: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """One image decoded and resized to ``size`` (height, width), rounded to uint8, as the cache keeps it."""
    image = tf.image.resize(decode_checked(path), tf.cast(size, tf.int32), antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def unpadded(path: str, target_pixels: int) -> np.ndarray:
    """One image as a variable-shape batch holds it, without its pad: resized with its aspect ratio kept to about
    ``target_pixels`` (its bucket's ``resized``), uint8 ``(height, width, 3)``."""
    width, height = header_sizes([path])[0]
    size = aspect_buckets.Buckets(int(target_pixels)).resized(np.array([width]), np.array([height]))[0]
    return np.asarray(decode_resized(tf.constant(path), tf.constant(size, tf.int64)), dtype=np.uint8)


def place(image: tf.Tensor, box: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """``image`` (uint8) inside a mid-grey ``box`` (height, width) at ``offset`` (top, left)."""
    size = tf.shape(image, out_type=tf.int64)[:2]
    after = box - size - offset
    paddings = tf.stack([tf.stack([offset[0], after[0]]), tf.stack([offset[1], after[1]]), tf.zeros([2], tf.int64)])
    pad = tf.constant(aspect_buckets.PAD_RGB, tf.int32)
    return tf.cast(tf.pad(tf.cast(image, tf.int32) - pad, paddings) + pad, tf.uint8)


def padded_reader(layout: Layout, read_images) -> callable:
    """A numpy function from record indices (one bucket) to the padded batch and the valid sizes, the images
    taken from ``read_images(indices)`` (a list of uint8 arrays at their resized sizes)."""
    pad = np.array(aspect_buckets.PAD_RGB, dtype=np.uint8)
    offsets = layout.offsets()

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = layout.box[indices[0]]
        batch = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        batch[:] = pad
        for slot, (index, image) in enumerate(zip(indices, read_images(indices))):
            top, left = offsets[index]
            batch[slot, top:top + image.shape[0], left:left + image.shape[1]] = image
        return batch, layout.size[indices].astype(np.int32)

    return read


def batch_loader(layout: Layout, paths: Sequence[str], image_dir: Path, cache: bool):
    """A graph function from a batch's record indices to (padded uint8 images, int32 valid sizes)."""
    cached = _cached_images(layout, paths, image_dir) if cache else None
    if cached is not None:
        read = padded_reader(layout, cached)

        def load(indices: tf.Tensor):
            images, valid = tf.numpy_function(read, [indices], (tf.uint8, tf.int32), stateful=False)
            images.set_shape(ELEMENT["image"])
            valid.set_shape(ELEMENT["valid_size"])
            return images, valid

        return load
    path_table, size_table = tf.constant(list(paths)), tf.constant(layout.size)
    box_table, offset_table = tf.constant(layout.box), tf.constant(layout.offsets())

    def load_one(index: tf.Tensor) -> tf.Tensor:
        image = decode_resized(tf.gather(path_table, index), tf.gather(size_table, index))
        return place(image, tf.gather(box_table, index), tf.gather(offset_table, index))

    def load(indices: tf.Tensor):
        images = tf.map_fn(load_one, indices, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        return images, tf.cast(tf.gather(size_table, indices), tf.int32)

    return load


def _cached_images(layout: Layout, paths: Sequence[str], image_dir: Path):
    """A function from record indices to their cached images (uint8 arrays at their resized sizes), or None
    without a cache (switched off, or the set would pass its bound)."""
    from mame.data import image_cache

    root = image_cache.cache_root()
    if root is None:
        return None
    stamp = image_cache.code_stamp(decode, decode_resized, aspect_buckets)
    store = image_cache.RaggedImageCache(root, Path(image_dir), layout.buckets.target_pixels, stamp)
    entries = store.fill(list(paths), lambda missing: _decoded(missing, layout, paths),
                         [int(h) * int(w) * 3 for h, w in layout.size])
    if entries is None:
        return None
    read_entries = store.reader()
    return lambda indices: read_entries(entries[np.asarray(indices)])


def _decoded(missing: list[str], layout: Layout, paths: Sequence[str]) -> Iterator[list[np.ndarray]]:
    """The images of ``missing`` at their layout sizes, decoded side by side, in batches (lists of arrays)."""
    from mame.data.image_cache import FILL_BATCH

    where = {p: i for i, p in enumerate(paths)}
    sizes = layout.size[[where[p] for p in missing]]
    dataset = tf.data.Dataset.from_tensor_slices((missing, sizes)).map(
        lambda path, size: (decode_resized(path, size),), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).prefetch(FILL_BATCH)
    batch: list[np.ndarray] = []
    for (image,) in iterate_numpy(dataset, files=missing):
        batch.append(image)
        if len(batch) == FILL_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def augment_padded(images: tf.Tensor, valid: tf.Tensor, offsets: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    """``mame.data.augment.augment_image`` applied to each image's valid region only, the pad left mid-grey;
    float32 out, as the fixed-shape augmentation gives."""
    pad = tf.constant(aspect_buckets.PAD_RGB, tf.float32)

    def one(item):
        image, size, offset, seed = item
        region = tf.slice(image, tf.concat([offset, [0]], 0), tf.concat([size, [3]], 0))
        changed = augment_image(region, seed)
        after = tf.shape(image, out_type=tf.int64)[:2] - size - offset
        paddings = tf.stack([tf.stack([offset[0], after[0]]), tf.stack([offset[1], after[1]]), tf.zeros([2], tf.int64)])
        return tf.pad(changed - pad, paddings) + pad

    return tf.map_fn(one, (tf.cast(images, tf.float32), tf.cast(valid, tf.int64), offsets, seeds),
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))


def make_batches(paths: Sequence[str], labels: Sequence[int], image_dir: Path, *, target_pixels: int, placement: str,
                 batch_size: int, shuffle: bool, seed: int, augment: bool, repeat: bool, first_epoch: int,
                 cache: bool) -> tuple[tf.data.Dataset, np.ndarray]:
    """Batches ``({"image", "valid_size"}, labels, paths)`` and the record order of an unshuffled epoch."""
    layout = Layout(paths, target_pixels, placement)
    load = batch_loader(layout, paths, image_dir, cache)
    path_table, label_table = tf.constant(list(paths)), tf.constant(list(labels), dtype=tf.int32)
    offset_table = tf.constant(layout.offsets())

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        plan = lambda e: layout.plan(batch_size, shuffle=shuffle, seed=seed, epoch=int(e))  # noqa: E731
        indices, positions = tf.numpy_function(plan, [epoch], (tf.int64, tf.int64), stateful=False)
        return tf.data.Dataset.from_tensor_slices((tf.ensure_shape(indices, (None, batch_size)),
                                                   tf.ensure_shape(positions, (None, batch_size))))

    def load_batch(indices: tf.Tensor, positions: tf.Tensor):
        keep = indices >= 0
        indices, positions = tf.boolean_mask(indices, keep), tf.boolean_mask(positions, keep)
        images, valid = load(indices)
        if augment:
            seeds = tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)), positions], 1)
            images = augment_padded(images, valid, tf.gather(offset_table, indices), seeds)
        return {"image": images, "valid_size": valid}, tf.gather(label_table, indices), tf.gather(path_table, indices)

    epochs = tf.data.Dataset.counter(start=first_epoch) if repeat else tf.data.Dataset.range(first_epoch, first_epoch + 1)
    dataset = epochs.flat_map(epoch_batches).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset, layout.order(batch_size)
