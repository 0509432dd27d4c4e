"""Global average pooling over the valid (unpadded) region of a padded batch (variable shape).

Keras' ``GlobalAveragePooling2D`` ignores masks, so over a padded image it averages the pad's feature cells too,
and a model's output depends on which bucket, and how much pad, an image got. ``ValidRegionPooling`` takes the
feature map, each image's valid (height, width) in input pixels (``mame.data.padded_batches``: the image sits at the
top-left of its padded shape) and the padded input itself, and averages each map over the cells whose centre
lies inside the valid region: with the backbone's total ``stride`` S (32 for every backbone here), cell i covers
pixels S i to S (i + 1), so the first max(1, ceil(h / S - 1/2)) rows and as many columns by w. A cell counted
for a sliver of image (a 128-pixel-high image in a 129-pixel bucket has a fifth row of cells) would otherwise
bring a row of pad into the mean. Convolutions still see the pad at the valid
region's bottom and right border (mid-grey: about zero after preprocessing, as a convolution's own padding).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mame")
class ValidRegionPooling(keras.layers.Layer):  # pragma: no mutate block (Keras reads its methods' signatures)
    """``[feature_map (B, fh, fw, C), valid_size (B, 2) int, image (B, H, W, 3)]`` -> ``(B, C)``: the mean of each
    map over the cells that see the image's valid region."""

    def __init__(self, stride: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}

    def call(self, inputs):
        features, valid_size, _image = inputs
        fh, fw = ops.shape(features)[1], ops.shape(features)[2]
        valid = ops.cast(valid_size, "float32") / float(self.stride) - 0.5
        rows, cols = ops.maximum(ops.ceil(valid[:, 0]), 1.0), ops.maximum(ops.ceil(valid[:, 1]), 1.0)
        inside = ops.logical_and(ops.arange(fh, dtype="float32")[None, :, None] < rows[:, None, None],
                                 ops.arange(fw, dtype="float32")[None, None, :] < cols[:, None, None])
        mask = ops.cast(inside, features.dtype)[..., None]
        return ops.sum(features * mask, axis=(1, 2)) / ops.maximum(ops.sum(mask, axis=(1, 2)), 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])
