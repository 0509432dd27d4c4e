"""EfficientNet-Lite0 as a Keras 3 functional model, called like ``keras.applications.EfficientNetB0``.

Lite0 is EfficientNet-B0 made for mobile accelerators: no squeeze-excitation, ReLU6 instead of swish,
a fixed 32-filter stem and 1280-filter head. Layers carry the Keras EfficientNet names (``stem_conv``,
``block1a_dwconv``, ``block2a_expand_conv``, ..., ``top_activation``, ``avg_pool``, ``predictions``),
so code written for the Keras applications (feature layer, Grad-CAM layer, fine-tuning from a block)
works unchanged. Padding is TensorFlow's "SAME" (Keras ``padding="same"``: at stride 2 the extra row
and column go bottom-right), as the original TensorFlow model was trained. Preprocessing is inside:
the model takes RGB floats 0-255 and rescales them to ``(x - 127) / 128``.

``weights`` is None (random initialisation) or a Keras ``.weights.h5`` file saved from this model with
or without its top; a file that does not fit raises ``WeightsMismatchError``, it is never half-loaded.
The ImageNet file comes from ``mame.models.lite0_weights``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import keras
from keras import layers

DEFAULT_SIZE = 224
MIN_SIZE = 32
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON = 1e-3
DROPOUT_RATE, DROP_CONNECT_RATE = 0.2, 0.2
# (repeats, kernel, stride, expand ratio, output filters), one row per stage (block1 ... block7)
BLOCKS = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# Keras EfficientNet's initialisers, as configs (as Keras' own EfficientNet has them) so that each layer
# makes its own initialiser when built and a seed set before building (keras.utils.set_random_seed) holds:
# an initialiser object made at import draws from an unseeded state (random init could not be rebuilt).
CONV_INIT = {"class_name": "VarianceScaling",
             "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


class WeightsMismatchError(ValueError):
    """A weights file whose variables are not exactly this model's."""


def block_names() -> list[str]:
    """The 16 blocks' name prefixes in order: ``block1a_``, ``block2a_``, ``block2b_``, ..."""
    return [f"block{stage}{chr(97 + j)}_" for stage, row in enumerate(BLOCKS, 1) for j in range(row[0])]


def _relu6(name: str):
    return layers.ReLU(max_value=6.0, name=name)


def _bn(name: str):
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _block(x, name: str, kernel: int, stride: int, expand: int, filters_out: int, drop_rate: float):
    """An inverted residual block without squeeze-excitation, named like Keras' EfficientNet ``block``."""
    inputs, filters_in = x, int(x.shape[-1])
    if expand != 1:
        x = layers.Conv2D(filters_in * expand, 1, padding="same", use_bias=False, kernel_initializer=CONV_INIT,
                          name=f"{name}expand_conv")(x)
        x = _relu6(f"{name}expand_activation")(_bn(f"{name}expand_bn")(x))
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               depthwise_initializer=CONV_INIT, name=f"{name}dwconv")(x)
    x = _relu6(f"{name}activation")(_bn(f"{name}bn")(x))
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, kernel_initializer=CONV_INIT,
                      name=f"{name}project_conv")(x)
    x = _bn(f"{name}project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def _features(x):
    """Rescaling, stem, the 16 blocks and the 1x1 head convolution (``top_activation``)."""
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, dtype="float32", name="rescaling")(x)
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, kernel_initializer=CONV_INIT,
                      name="stem_conv")(x)
    x = _relu6("stem_activation")(_bn("stem_bn")(x))
    names = iter(block_names())
    count, total = 0, sum(row[0] for row in BLOCKS)
    for repeats, kernel, stride, expand, filters in BLOCKS:
        for j in range(repeats):
            x = _block(x, next(names), kernel, stride if j == 0 else 1, expand, filters,
                       DROP_CONNECT_RATE * count / total)
            count += 1
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, kernel_initializer=CONV_INIT,
                      name="top_conv")(x)
    return _relu6("top_activation")(_bn("top_bn")(x))


def _input_shape(input_shape, include_top: bool) -> tuple:
    default = (DEFAULT_SIZE, DEFAULT_SIZE, 3) if include_top else (None, None, 3)  # as Keras' applications
    shape = tuple(input_shape) if input_shape is not None else default
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"EfficientNet-Lite0 takes (height, width, 3) RGB images, got input_shape={input_shape}")
    if any(d is not None and d < MIN_SIZE for d in shape[:2]):
        raise ValueError(f"EfficientNet-Lite0 needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {shape}")
    return shape


def EfficientNetLite0(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="efficientnetlite0") -> keras.Model:
    """EfficientNet-Lite0 on raw 0-255 RGB images (any size >= 32), arguments as Keras' EfficientNetB0."""
    shape = _input_shape(input_shape, include_top)
    if input_tensor is None:
        img_input = layers.Input(shape=shape)
    else:
        img_input = input_tensor if keras.backend.is_keras_tensor(input_tensor) else layers.Input(
            tensor=input_tensor, shape=shape)
    x = _features(img_input)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(DROPOUT_RATE, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_INIT,
                         name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights, include_top=include_top)
    return model


def _inventory(path) -> dict[str, tuple]:
    """Every variable a Keras weights file holds: its path in the file -> its shape."""
    found: dict[str, tuple] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda key, obj: found.__setitem__(key, obj.shape) if isinstance(obj, h5py.Dataset) else None)
    return found


def _model_inventory(model: keras.Model) -> dict[str, tuple]:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model.weights.h5"
        model.save_weights(target)
        return _inventory(target)


def _mismatch(path, model: keras.Model, want: dict, have: dict) -> WeightsMismatchError:
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    shapes = [f"{k} {have[k]} (model {want[k]})" for k in sorted(set(want) & set(have)) if want[k] != have[k]]
    what = "; ".join(f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                     for label, items in (("missing", missing), ("unexpected", extra), ("shapes", shapes)) if items)
    return WeightsMismatchError(f"{path}: does not fit {model.name} ({what}); expected a .weights.h5 file "
                                "saved from EfficientNetLite0")


def load_weights(model: keras.Model, path, *, include_top: bool) -> None:
    """Load ``path`` into ``model`` only when every variable matches, by name and shape. A model without its
    top also takes a file saved with the 1000-class ImageNet top: loaded into a twin with that top, then
    copied layer by layer."""
    try:
        have = _inventory(path)
    except OSError as err:
        raise WeightsMismatchError(f"{path}: not a readable Keras weights file ({err})") from None
    want = _model_inventory(model)
    if have == want:
        model.load_weights(path)
        return
    if include_top:
        raise _mismatch(path, model, want, have)
    twin = EfficientNetLite0(include_top=True, input_shape=(None, None, 3))
    twin_want = _model_inventory(twin)
    if have != twin_want:
        raise _mismatch(path, model, want, have)
    twin.load_weights(path)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(twin.get_layer(layer.name).get_weights())
