"""Multiply-accumulate counts of the Keras models built here, layer by layer (an estimate of cost).

Counts the layers that dominate a CNN: Conv2D, DepthwiseConv2D, SeparableConv2D and Dense, from their
output shapes and kernels. Pooling, normalisation and activations are left out (a few percent).
One MAC is two FLOPs. A training step costs about three forward passes (forward + backward).
"""

from __future__ import annotations

import math

import keras
from keras import layers

TRAIN_FORWARD_RATIO = 3.0


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_macs(layer) -> int:
    """MACs of one forward pass of ``layer`` for one image (0 for layers not counted)."""
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _spatial(layer.output.shape) * kh * kw * int(layer.input.shape[-1]) * layer.depth_multiplier
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        c_in, c_out = int(layer.input.shape[-1]), int(layer.output.shape[-1])
        spatial = _spatial(layer.output.shape)
        return spatial * (kh * kw * c_in * layer.depth_multiplier + c_in * layer.depth_multiplier * c_out)
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        c_in, c_out = int(layer.input.shape[-1]) // layer.groups, int(layer.output.shape[-1])
        return _spatial(layer.output.shape) * kh * kw * c_in * c_out
    if isinstance(layer, layers.Dense):
        units_in = int(layer.input.shape[-1])
        positions = math.prod(int(d) for d in layer.output.shape[1:-1]) or 1
        return positions * units_in * layer.units
    return 0


def model_macs(model: keras.Model) -> int:
    """MACs of one forward pass of ``model`` for one image."""
    return sum(layer_macs(layer) for layer in model.layers)


def training_flops_per_image(model: keras.Model) -> float:
    """FLOPs to train on one image (forward + backward, about three forward passes)."""
    return 2.0 * model_macs(model) * TRAIN_FORWARD_RATIO
