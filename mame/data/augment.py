"""Seeded image augmentation in the tf.data graph: random flip, zoom, brightness and contrast."""

from __future__ import annotations

from mame.data.decode import tf

_ZOOM_MIN = 0.85        # random crop keeps 85-100 % of each side, then resizes back
_BRIGHTNESS = 25.0      # max brightness shift, in 0-255 units
_CONTRAST = (0.8, 1.2)  # contrast factor range


def augment_image(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Seeded random flip, zoom (crop 85-100 % and resize back), brightness and contrast."""
    static_shape, image = image.shape, tf.cast(image, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[0])
    shape = tf.shape(image)
    zoom = tf.random.stateless_uniform([], seeds[1], _ZOOM_MIN, 1.0)
    crop = tf.maximum(tf.cast(tf.cast(shape[:2], tf.float32) * zoom, tf.int32), 1)
    image = tf.image.stateless_random_crop(image, tf.concat([crop, [3]], 0), seed=seeds[2])
    image = tf.image.resize(image, shape[:2])
    image = tf.image.stateless_random_brightness(image, _BRIGHTNESS, seed=seeds[3])
    image = tf.image.stateless_random_contrast(image, *_CONTRAST, seed=seeds[4])
    image.set_shape(static_shape)
    return tf.clip_by_value(image, 0.0, 255.0)
