"""Grad-CAM heatmaps (Selvaraju et al., 2017; after F. Chollet's keras.io example), computed apart from
any drawing (``mame.plots.images.overlay_heatmap`` draws them).

Works on every classifier built here: the transfer models keep the backbone's layers in one flat
graph, so the registry's last conv layer (VGG16 ``block5_conv3``, ResNet50 ``conv5_block3_out``,
EfficientNet ``top_activation``) is reachable without "graph disconnected"; the scratch CNNs use
their last Conv2D (``builders.last_conv_layer_name``).
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from mame.models.builders import last_conv_layer_name

_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {layer: its Grad-CAM model}, built once


def gradcam_model(model: keras.Model, layer_name: str | None = None) -> keras.Model:
    """``images -> (last conv activations, class probabilities)`` (a variable-shape model keeps its
    ``{"image", "valid_size"}`` inputs); built once per model and layer, then reused batch after batch."""
    name = layer_name or last_conv_layer_name(model)
    built = _BUILT.setdefault(model, {})
    if name not in built:
        built[name] = keras.Model(model.input, [model.get_layer(name).output, model.output])
    return built[name]


def is_variable(model: keras.Model) -> bool:
    """A variable-shape model (``builders.variable_inputs``): images with their valid sizes."""
    return isinstance(model.input, dict) and "valid_size" in model.input


def heatmaps(model: keras.Model, images: np.ndarray, *, class_index: np.ndarray | None = None,
             layer_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of ``images`` (raw 0-255, ``(n, H, W, 3)``) for ``class_index`` (default: the predicted
    class). Returns ``(maps, class_index)``: maps ``(n, H, W)`` in [0, 1] at the input's size (a map with
    no positive evidence is all zeros)."""
    maps, class_index, _ = heatmaps_with_probabilities(model, images, class_index=class_index, layer_name=layer_name)
    return maps, class_index


def heatmaps_with_probabilities(model: keras.Model, images: np.ndarray, *, class_index: np.ndarray | None = None,
                                layer_name: str | None = None,
                                valid_size: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``heatmaps`` plus the model's class probabilities ``(n, classes)`` from the same forward pass. A variable-shape
    model takes each image's valid (height, width) from ``valid_size`` (default: all of it)."""
    import tensorflow as tf

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected (n, height, width, 3), got {images.shape}")
    if class_index is not None:
        class_index = np.asarray(class_index)
        if class_index.shape != (len(images),) or not np.issubdtype(class_index.dtype, np.integer):
            raise ValueError(f"class_index: expected one integer class per image ({len(images)},), got "
                             f"{class_index.dtype} of shape {class_index.shape}")
    grad_model = gradcam_model(model, layer_name)
    x = tf.constant(images)
    if is_variable(model):
        valid = np.tile(images.shape[1:3], (len(images), 1)) if valid_size is None else np.asarray(valid_size)
        x = {"image": x, "valid_size": tf.constant(valid, tf.int32)}
    with tf.GradientTape() as tape:
        conv, probabilities = grad_model(x, training=False)
        tape.watch(conv)
        probabilities = tf.cast(probabilities, tf.float32)
        if class_index is None:
            class_index = tf.argmax(probabilities, axis=-1).numpy()
        elif class_index.size and not 0 <= class_index.min() <= class_index.max() < probabilities.shape[-1]:
            raise ValueError(f"class_index: classes {sorted(set(class_index.tolist()))} asked for, the model has "
                             f"{probabilities.shape[-1]} (0-{probabilities.shape[-1] - 1})")
        picked = tf.gather(probabilities, np.asarray(class_index), axis=1, batch_dims=1)
    grads = tape.gradient(picked, conv)  # the layer's own output (bfloat16 in a mixed-precision model), then cast
    if grads is None:
        raise ValueError(f"no gradient reaches {layer_name or last_conv_layer_name(model)!r} from the output")
    conv, grads = tf.cast(conv, tf.float32), tf.cast(grads, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)          # one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))              # (n, h, w)
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    maps = tf.where(peak > 0, cam / tf.maximum(peak, 1e-12), tf.zeros_like(cam)).numpy()
    return np.clip(maps, 0.0, 1.0).astype(np.float32), np.asarray(class_index), probabilities.numpy()


def mass_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's heat inside its object mask (``masks`` boolean, same shape): 1 = all on the object."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps and masks: expected the same shape, got {maps.shape} and {masks.shape}")
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.maximum(total, 1e-12), np.nan)


def hot_area(maps: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Share of each map's pixels at or above ``level`` of its peak: small = a focused map (NaN for an
    all-zero map, which has no peak)."""
    maps = np.asarray(maps, dtype=np.float64)
    peak = maps.max(axis=(1, 2))
    share = (maps >= level * peak[:, None, None]).mean(axis=(1, 2))
    return np.where(peak > 0, share, np.nan)
