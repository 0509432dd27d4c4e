"""Decoding one image file in the tf.data graph, checked first: an empty file, an unknown format, a JPEG or PNG cut
short, or a decompression bomb (read from the header, before its pixels exist) fails with an error whose message
names the file, also inside ``model.fit``; ``iterate_numpy`` turns it into a ``DataError``."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mame.data.dataset_check import MAX_IMAGE_PIXELS, find_corrupt
from mame.data.metadata import DataError


class _TensorFlow:
    """``tensorflow``, imported on first use, so importing the data layer stays light (no TF)."""

    def __getattr__(self, name: str):
        import tensorflow

        return getattr(tensorflow, name)


tf = _TensorFlow()
DATASET_FILES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dataset -> the files it reads
_ASSERT_RE = re.compile(r"\[corrupt image file:\] \[(.*?)\] \[(.*?)\]")


def decode_checked(path: tf.Tensor) -> tf.Tensor:
    """Read and decode one image to float32 ``(H, W, 3)``, failing with a message naming the file
    when it is empty, of unknown format, or a JPEG/PNG cut short."""
    data = tf.io.read_file(path)
    reason = _structure_problem(data)
    check = tf.debugging.Assert(tf.equal(reason, ""), ["corrupt image file:", path, reason])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.float32)


def _structure_problem(data: tf.Tensor) -> tf.Tensor:
    """Empty string if the bytes look like a whole image, else the reason."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 12), "\0" * 12]), 0, 12)

    def starts(magic: bytes, at: int = 0) -> tf.Tensor:
        return tf.equal(tf.strings.substr(head, at, len(magic)), magic)

    is_jpeg, is_png = starts(b"\xff\xd8\xff"), starts(b"\x89PNG\r\n\x1a\n")
    known = tf.reduce_any(tf.stack([
        is_jpeg, is_png, starts(b"GIF8"), starts(b"BM"), starts(b"RIFF") & starts(b"WEBP", 8),
        starts(b"\xff\x0a"), starts(b"\x00\x00\x00\x0cJXL \r\n\x87\n"),  # JPEG XL
    ]))
    has_eoi = tf.size(tf.strings.split(data, sep=b"\xff\xd9")) > 1
    has_iend = tf.size(tf.strings.split(data, sep=b"IEND")) > 1
    height, width = _header_size(data, is_png, is_jpeg & has_eoi)
    too_big = tf.strings.join([tf.strings.as_string(width), " x ", tf.strings.as_string(height),
                               f" pixels, over the cap of {MAX_IMAGE_PIXELS:,} (a decompression bomb?)"])
    reason = tf.where(height * width > MAX_IMAGE_PIXELS, too_big, "")
    reason = tf.where(is_png & ~has_iend, "truncated PNG (no IEND chunk)", reason)
    reason = tf.where(is_jpeg & ~has_eoi, "truncated JPEG (no end-of-image marker)", reason)
    reason = tf.where(known, reason, "not a JPEG, PNG, GIF, BMP, WebP or JPEG XL image")
    return tf.where(tf.equal(tf.strings.length(data), 0), "empty file", reason)


def _header_size(data: tf.Tensor, is_png: tf.Tensor, is_whole_jpeg: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) as int64 from a PNG's IHDR or a JPEG's frame header, read before decoding (0 for other
    formats): a decompression bomb is refused before its pixels exist."""
    ihdr = tf.io.decode_raw(tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 24), "\0" * 24]), 16, 8), tf.uint8)
    ihdr = tf.cast(ihdr, tf.int64) * tf.constant([1 << 24, 1 << 16, 1 << 8, 1] * 2, tf.int64)
    png = tf.stack([tf.reduce_sum(ihdr[4:]), tf.reduce_sum(ihdr[:4])])
    jpeg = tf.cond(is_whole_jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
                   lambda: tf.zeros([2], tf.int64))
    size = tf.where(is_png, png, jpeg)
    return size[0], size[1]


def iterate_numpy(dataset: tf.data.Dataset,
                  files: Sequence[str] | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Iterate a dataset as tuples of numpy arrays (paths as ``str``), raising ``DataError`` on a
    corrupt image. ``files`` (default: the files of a ``mame.data.pipeline.make_dataset`` result) are re-checked with
    Pillow when TensorFlow's error does not name the file."""
    files = files if files is not None else DATASET_FILES.get(dataset)
    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            raise _as_data_error(error, files) from None
        yield tuple(_to_numpy(t) for t in batch)


def _to_numpy(tensor: tf.Tensor | dict) -> np.ndarray | dict:
    if isinstance(tensor, dict):  # variable shape: {"image", "valid_size"}
        return {name: _to_numpy(value) for name, value in tensor.items()}
    array = tensor.numpy()
    if array.dtype == object:
        return np.array([v.decode("utf-8") for v in array.ravel()]).reshape(array.shape)
    return array


def _as_data_error(error: tf.errors.OpError, files: Sequence[str] | None) -> DataError:
    message = (error.message or str(error)).strip()
    first_line = message.splitlines()[0] if message else type(error).__name__
    match = _ASSERT_RE.search(message)
    if match:
        return DataError(f"{match.group(1)}: corrupt image: {match.group(2)}")
    if isinstance(error, tf.errors.NotFoundError):
        return DataError(f"image file disappeared while reading ({first_line})")
    bad = find_corrupt([Path(f) for f in files]) if files else []
    if bad:
        return DataError(f"{bad[0][0]}: corrupt image: {bad[0][1]}")
    return DataError(f"unreadable image in the dataset ({first_line}); "
                     "run `python -m mame data check DIR` to find it")
