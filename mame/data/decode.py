"""Decoding one image file in the tf.data graph, checked first: an empty file, an unknown format, a JPEG or PNG cut
short, or a decompression bomb (read from the header, before its pixels exist) fails with an error whose message
names the file, also inside ``model.fit`` (``mame.data.pipeline`` turns it into a ``DataError``)."""

from __future__ import annotations

from mame.data.dataset_check import MAX_IMAGE_PIXELS


class _TensorFlow:
    """``tensorflow``, imported on first use, so importing the data layer stays light (no TF)."""

    def __getattr__(self, name: str):
        import tensorflow

        return getattr(tensorflow, name)


tf = _TensorFlow()


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
