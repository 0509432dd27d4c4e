"""Building the study's Keras models: feature extractors, the backbone with its own ImageNet head,
transfer models (and their trainable switch), loading a saved one, and what each records about itself.

Every model takes raw images, float 0-255, shape (batch, H, W, 3): preprocessing is inside.
Transfer models are built on the backbone's own graph, so ``last_conv_layer_name`` is reachable
for Grad-CAM. Weights are given as a ``WeightsChoice`` or a policy string (see ``mame.models.backbones``).
Running a built model over a dataset is ``mame.models.extraction``'s.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import keras
import numpy as np
from keras import layers

from mame.models.backbones import BACKBONES, BackboneSpec, WeightsChoice, build_base, get_backbone, resolve_weights
from mame.models.valid_pooling import ValidRegionPooling

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
HEAD_PREFIX = "head_"         # the layers put on top of a backbone: head_pool, head_dense_1, ...
OUTPUT_LAYER = "predictions"  # the float32 softmax of every classifier built here
_INFO: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def configure_precision(policy: str) -> str:
    """Set Keras' global dtype policy; returns the previous one. bf16 is fast on AMX CPUs."""
    if policy not in PRECISIONS:
        raise ValueError(f"unknown precision {policy!r}; expected one of {', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    return previous


def _as_choice(spec: BackboneSpec, weights: WeightsChoice | str,
               include_top: bool) -> WeightsChoice:
    if isinstance(weights, WeightsChoice):
        return weights
    return resolve_weights(spec.key, weights, include_top=include_top)


def _image_input(image_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(image_size, image_size, 3), name="image")


def variable_inputs() -> dict[str, keras.KerasTensor]:
    """The inputs of a variable-shape model: padded images of any size and each one's valid (height, width)
    (``mame.data.padded_batches`` batches)."""
    return {"image": keras.Input(shape=(None, None, 3), name="image"),
            "valid_size": keras.Input(shape=(2,), dtype="int32", name="valid_size")}


def variable_pool(feature_map, inputs: dict, placement: str = "corner", stride: int = 32, name: str | None = None):
    """Global pooling of a variable-shape batch's feature map: over each image's valid region (``corner``:
    ``ValidRegionPooling``) or, as the paper, over the whole padded map (``centre``)."""
    if placement == "corner":
        return ValidRegionPooling(stride=stride, name=name or "valid_pool")(
            [feature_map, inputs["valid_size"], inputs["image"]])
    if placement == "centre":
        return layers.GlobalAveragePooling2D(name=name or "avg_pool")(feature_map)
    raise ValueError(f"placement must be 'corner' or 'centre', not {placement!r}")


def feature_stride(base: keras.Model) -> int:
    """How many input pixels one cell of ``base``'s output map spans (32 for every backbone here)."""
    size = 256
    cells = keras.Model(base.inputs, base.output).compute_output_shape((1, size, size, 3))[1]
    return size // int(cells)


def build_variable_extractor(key: str, *, weights_choice: WeightsChoice | str = "random",
                             placement: str = "corner") -> keras.Model:
    """Variable shape: ``{"image", "valid_size"}`` -> float32 features, the backbone's last convolutional map
    pooled by ``variable_pool`` (for VGG16 its 512 block5 maps: fc1/fc2 need a 224 x 224 input)."""
    spec = get_backbone(key)
    choice = _as_choice(spec, weights_choice, include_top=False)
    inputs = variable_inputs()
    base = build_base(spec, inputs["image"], choice, include_top=False, image_size=None)
    pooled = variable_pool(base.output, inputs, placement, feature_stride(base))
    features = layers.Activation("linear", dtype="float32", name="features")(pooled)
    model = keras.Model(inputs, features, name=f"{key}_variable_features")
    _INFO[model] = {**_extractor_info(spec, model, choice, pooled._keras_history.operation.name, None),
                    "shape": "variable", "placement": placement}
    return model


def build_feature_extractor(key: str, *, image_size: int | None = None,
                            weights_choice: WeightsChoice | str = "random",
                            feature_layer: str | None = None) -> keras.Model:
    """Raw 0-255 images -> float32 feature vectors (VGG16 fc1/fc2, others global average pool)."""
    spec = get_backbone(key)
    size = image_size or spec.default_size
    layer = feature_layer or spec.feature_layers[0]
    if layer not in spec.feature_layers:
        raise ValueError(f"feature layer {layer!r} is not available for {spec.name}; "
                         f"expected one of {', '.join(spec.feature_layers)}")
    top = spec.features_need_top
    choice = _as_choice(spec, weights_choice, include_top=top)
    inputs = _image_input(size)
    base = build_base(spec, inputs, choice, include_top=top, image_size=size,
                      pooling=None if top else "avg")
    features = layers.Activation("linear", dtype="float32", name="features")(
        base.get_layer(layer).output)
    model = keras.Model(inputs, features, name=f"{key}_features")
    _INFO[model] = _extractor_info(spec, model, choice, layer, size)
    return model


def _extractor_info(spec: BackboneSpec, model: keras.Model, choice: WeightsChoice,
                    layer: str, size: int) -> dict:
    n_top = 0
    if spec.features_need_top and layer in spec.feature_layers:  # VGG16: fc1 (and fc2 when the features come from fc2)
        top_layers = spec.feature_layers[: spec.feature_layers.index(layer) + 1]
        n_top = sum(model.get_layer(name).count_params() for name in top_layers)
    n_params = model.count_params()
    return {"key": spec.key, "name": spec.name, "n_params": n_params,
            "n_params_conv": n_params - n_top, "n_params_top": n_top,
            "feature_dim": int(model.output.shape[-1]), "input_size": size,
            "feature_layer": layer, "weights": choice.used, "weights_reason": choice.reason, "weights_source": choice.source}


def backbone_info(model_or_key: keras.Model | str, *, image_size: int | None = None,
                  weights_choice: WeightsChoice | str = "random",
                  feature_layer: str | None = None) -> dict:
    """n_params, feature_dim, input_size, weights and feature_layer of a feature extractor.

    A key builds the extractor (random weights by default); a model must come from
    ``build_feature_extractor``.
    """
    if isinstance(model_or_key, str):
        model_or_key = build_feature_extractor(model_or_key, image_size=image_size,
                                               weights_choice=weights_choice,
                                               feature_layer=feature_layer)
    info = model_info(model_or_key)
    if "feature_dim" not in info:
        raise ValueError(f"model {model_or_key.name!r} was not built by build_feature_extractor")
    return info


def build_imagenet_classifier(key: str, *, image_size: int | None = None,
                              weights_choice: WeightsChoice | str = "random") -> keras.Model:
    """Raw 0-255 images -> float32 probabilities over the 1,000 ImageNet classes: the Keras application
    with its own top (``include_top=True``). With ImageNet weights it takes the backbone's default size
    only (``backbones.build_base`` refuses another); random weights take any size."""
    spec = get_backbone(key)
    size = image_size or spec.default_size
    choice = _as_choice(spec, weights_choice, include_top=True)
    inputs = _image_input(size)
    base = build_base(spec, inputs, choice, include_top=True, image_size=size)
    probabilities = layers.Activation("linear", dtype="float32", name="imagenet_probabilities")(base.output)
    model = keras.Model(inputs, probabilities, name=f"{key}_imagenet")
    _INFO[model] = {"key": key, "name": spec.name, "input_size": size, "weights": choice.used,
                    "weights_reason": choice.reason, "weights_source": choice.source, "n_params": model.count_params(),
                    "n_outputs": int(model.output.shape[-1])}
    return model


def count_params(key: str, *, image_size: int | None = None, include_top: bool = False) -> int:
    """Parameters of the bare Keras application (random init; include_top=False: conv part)."""
    spec = get_backbone(key)
    size = image_size or spec.default_size
    model = spec.constructor(include_top=include_top, weights=None,
                             input_shape=(size, size, 3), pooling=None if include_top else "avg")
    return model.count_params()


def _freeze(spec: BackboneSpec, base: keras.Model, trainable_from: str | None) -> None:
    """Freeze the layers before ``trainable_from`` (all when None); BatchNorm always frozen."""
    names = [layer.name for layer in base.layers]
    if trainable_from is not None and trainable_from not in names:
        raise ValueError(f"trainable_from={trainable_from!r} is not a layer of {spec.name} "
                         f"(e.g. {spec.last_conv_layer!r})")
    first = len(names) if trainable_from is None else names.index(trainable_from)
    for index, layer in enumerate(base.layers):
        is_bn = isinstance(layer, layers.BatchNormalization)
        layer.trainable = index >= first and not is_bn


def dense_head(x, dense_units: Iterable[int], dropout_rate: float, l2: float,
                num_classes: int):
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for i, units in enumerate(dense_units, start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                         name=f"{HEAD_PREFIX}dense_{i}")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name=f"{HEAD_PREFIX}dropout_{i}")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=OUTPUT_LAYER)(x)


def build_transfer_model(key: str, *, num_classes: int, image_size: int | None = None,
                         weights_choice: WeightsChoice | str = "random",
                         dense_units: Iterable[int] = (512,), dropout_rate: float = 0.0,
                         l2: float = 0.0, trainable_from: str | None = None,
                         pooling: str = "avg", variable: bool = False, placement: str = "corner") -> keras.Model:
    """Backbone (include_top=False) + pooling + dense head, one flat Functional graph.

    ``trainable_from``: first trainable backbone layer (e.g. VGG16 "block4_conv1"); None freezes
    the whole backbone. ``pooling``: "avg" (global average) or "flatten". ``variable``: the inputs of a
    variable-shape batch (``variable_inputs``), pooled by ``variable_pool`` with ``placement`` (``image_size`` is
    then only recorded).
    """
    if pooling not in ("avg", "flatten"):
        raise ValueError(f"pooling must be 'avg' or 'flatten', got {pooling!r}")
    if variable and pooling != "avg":
        raise ValueError("a variable-shape model pools globally (pooling='avg'); flattening needs a fixed size")
    spec = get_backbone(key)
    size = image_size or spec.default_size
    choice = _as_choice(spec, weights_choice, include_top=False)
    if variable:
        inputs = variable_inputs()
        base = build_base(spec, inputs["image"], choice, include_top=False, image_size=None)
        x = variable_pool(base.output, inputs, placement, feature_stride(base), name="head_pool")
    else:
        inputs = _image_input(size)
        base = build_base(spec, inputs, choice, include_top=False, image_size=size)
        pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.Flatten
        x = pool(name="head_pool")(base.output)
    _freeze(spec, base, trainable_from)
    outputs = dense_head(x, dense_units, dropout_rate, l2, num_classes)
    model = keras.Model(inputs, outputs, name=f"{key}_transfer")
    _INFO[model] = {"key": key, "name": spec.name, "input_size": size, "shape": "variable" if variable else "fixed",
                    "weights": choice.used, "weights_reason": choice.reason, "weights_source": choice.source,
                    "trainable_from": trainable_from, "n_params": model.count_params()}
    return model


def is_head_layer(layer) -> bool:
    return layer.name.startswith(HEAD_PREFIX) or layer.name == OUTPUT_LAYER


def set_trainable(model: keras.Model, trainable_from: str | None) -> dict:
    """Fine-tuning's switch on a transfer model: the head always trainable, backbone layers from
    ``trainable_from`` on (None: the whole backbone frozen), BatchNorm always frozen (inference mode).
    Returns the trainable/frozen parameter counts. Compile again afterwards."""
    names = [layer.name for layer in model.layers]
    if trainable_from is not None and trainable_from not in names:
        raise ValueError(f"trainable_from={trainable_from!r} is not a layer of {model.name!r}")
    first = len(names) if trainable_from is None else names.index(trainable_from)
    for index, layer in enumerate(model.layers):
        if is_head_layer(layer):
            layer.trainable = True
        else:
            layer.trainable = index >= first and not isinstance(layer, layers.BatchNormalization)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"trainable_params": trainable, "frozen_params": model.count_params() - trainable}


def last_conv_layer_name(model: keras.Model) -> str:
    """The Grad-CAM target: the backbone's last conv layer, else the model's last Conv2D."""
    names = {layer.name for layer in model.layers}
    for spec in BACKBONES.values():
        if spec.last_conv_layer in names:
            return spec.last_conv_layer
    convs = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolution layer for Grad-CAM")
    return convs[-1]


def load_model(path, *, compile: bool = True) -> keras.Model:
    """A model saved by this package: importing this module registers its custom layers
    (``backbones.CaffePreprocess``, ``valid_pooling.ValidRegionPooling``), without which Keras cannot rebuild a VGG16
    or ResNet50 model, or a variable-shape one."""
    return keras.models.load_model(path, compile=compile)


def model_info(model: keras.Model) -> dict:
    """What a model built here records about itself (weights used and why, sizes)."""
    if model not in _INFO:
        raise ValueError(f"model {model.name!r} was not built by mame.models")
    return dict(_INFO[model])
