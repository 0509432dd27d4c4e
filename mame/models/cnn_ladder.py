"""CNNs trained from scratch: the baseline ladder's models, one switch per idea.

Each rung of the ladder (``experiments/plan.yaml``, stage ``scratch``) turns on one more of: depth
(``filters``, ``convs_per_block``), batch normalisation, dropout, L2, global average pooling instead
of flattening. Data augmentation lives in the tf.data pipeline (``mame.data.pipeline``).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
from keras import layers

from mame.models.builders import HEAD_PREFIX, dense_head

POOLINGS = ("flatten", "avg")
# Keras' default 0.99 left the running mean/variance far from the data after the demo's ~160 steps:
# validation accuracy collapsed to chance (0.07) for every batch-normalised rung.
BN_MOMENTUM = 0.9


def build_scratch_cnn(*, num_classes: int, image_size: int, filters: Iterable[int] = (32, 64, 128),
                      convs_per_block: int = 1, batch_norm: bool = False, pooling: str = "avg",
                      dense_units: Iterable[int] | int = (128,), dropout_rate: float = 0.3,
                      l2: float = 0.0) -> keras.Model:
    """Raw 0-255 images -> class probabilities: [conv3x3 (+BN) -relu] x convs_per_block + maxpool per
    entry of ``filters``, then ``pooling`` ("flatten" or "avg": global average), then the dense head."""
    filters = tuple(filters)
    if not filters or image_size < 2 ** len(filters):
        raise ValueError(f"{len(filters)} conv blocks need images of at least "
                         f"{2 ** len(filters)} px, got {image_size} px")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if convs_per_block < 1:
        raise ValueError(f"convs_per_block must be >= 1, got {convs_per_block}")
    units = (dense_units,) if isinstance(dense_units, int) else tuple(dense_units)
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, count in enumerate(filters, start=1):
        for j in range(1, convs_per_block + 1):
            x = layers.Conv2D(count, 3, padding="same", use_bias=not batch_norm, kernel_regularizer=regularizer,
                              name=f"block{i}_conv{j}")(x)
            if batch_norm:  # momentum 0.9: the running statistics settle within a short run's few hundred steps
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn{j}")(x)
            x = layers.Activation("relu", name=f"block{i}_relu{j}")(x)
        x = layers.MaxPooling2D(name=f"block{i}_pool")(x)
    pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.Flatten
    x = pool(name=f"{HEAD_PREFIX}pool")(x)
    outputs = dense_head(x, [u for u in units if u], dropout_rate, l2, num_classes)
    return keras.Model(inputs, outputs, name="scratch_cnn")
