"""Preprocessing layers put in front of a Keras application, so that every model takes raw 0-255 images."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mame")
class CaffePreprocess(keras.layers.Layer):  # pragma: no mutate block (Keras reads its methods' signatures)
    """VGG16/ResNet50 ``preprocess_input`` ("caffe") as a layer: RGB->BGR, minus the ImageNet mean.

    Runs in float32 even under a mixed precision policy.
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        mean = keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=self.compute_dtype)
        return keras.ops.flip(inputs, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape
