"""Extracting features from models built by ``builders``: running a model over a dataset (the one loop,
with its throughput figures), several feature layers from one pass (VGG16 fc1 and fc2), and a trained
classifier cut below its softmax (fine-tuned features)."""

from __future__ import annotations

import time
from typing import Iterable

import keras
import numpy as np
from keras import layers

from mame.models import builders
from mame.models.backbones import WeightsChoice, get_backbone


def layers_above(key: str, feature_layer: str | None = None) -> list[str]:
    """The backbone's feature layers above ``feature_layer`` (VGG16 fc1 -> [fc2]; none for the others)."""
    spec = get_backbone(key)
    layer = feature_layer or spec.feature_layers[0]
    if layer not in spec.feature_layers:
        raise ValueError(f"feature layer {layer!r} is not available for {spec.name}; "
                         f"expected one of {', '.join(spec.feature_layers)}")
    return list(spec.feature_layers[spec.feature_layers.index(layer) + 1:])


def build_extractor(key: str, *, image_size: int | None = None, weights_choice: WeightsChoice | str = "random",
                    feature_layer: str | None = None, extra_layers: Iterable[str] = ()) -> tuple[keras.Model, dict]:
    """``builders.build_feature_extractor`` and its info; with ``extra_layers`` (other feature layers, e.g.
    VGG16 fc2 beside fc1) the model returns ``{"features": ..., "<layer>": ...}`` from one pass, and its info
    counts the parameters up to ``feature_layer`` only, as the extractor alone (``extra_layers``: dims and
    the backbone's feature layers each one keeps)."""
    spec = get_backbone(key)
    layer = feature_layer or spec.feature_layers[0]
    extra = [name for name in extra_layers if name != layer]
    for name in extra:
        if name not in spec.feature_layers:
            raise ValueError(f"extra layer {name!r} is not a feature layer of {spec.name} ({', '.join(spec.feature_layers)})")
    order = spec.feature_layers.index
    highest = max([layer, *extra], key=order)
    top = builders.build_feature_extractor(key, image_size=image_size, weights_choice=weights_choice, feature_layer=highest)
    info = builders.backbone_info(top)
    if not extra:
        return top, {**info, "extra_layers": {}}
    as_float = lambda name: top.output if name == highest else layers.Activation(
        "linear", dtype="float32", name=f"out_{name}")(top.get_layer(name).output)
    model = keras.Model(top.inputs, {"features": as_float(layer), **{name: as_float(name) for name in extra}},
                        name=f"{key}_features_{'_'.join([layer, *extra])}")
    above = sum(top.get_layer(name).count_params() for name in spec.feature_layers[order(layer) + 1: order(highest) + 1])
    dims = {name: int(top.get_layer(name).output.shape[-1]) for name in [layer, *extra]}
    info.update({"n_params": info["n_params"] - above, "n_params_top": info["n_params_top"] - above,
                 "feature_dim": dims[layer], "feature_layer": layer,
                 "extra_layers": {name: {"dim": dims[name], "kept": list(spec.feature_layers[: order(name) + 1])}
                                  for name in extra}})
    return model, info


def _split_batch(batch, with_labels: bool):
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if with_labels and len(batch) > 1 else None)
    if with_labels:
        raise ValueError("extract_features expected (images, labels) batches, got images only")
    return batch, None


def _outputs(out) -> dict:
    """A batch's predictions by output name: a single-output model's are its ``features``."""
    return out if isinstance(out, dict) else {"features": out}


def extract_features(model: keras.Model, dataset: Iterable, *, with_labels: bool = True,
                     stats: dict | None = None, extra: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and labels (as the dataset gives them) of every batch of ``dataset``, from a
    single-output model (``builders``) or a model from ``build_extractor`` whose other layers (name ->
    float32 array, same rows) go into ``extra``.

    ``stats``, when given, receives n_images, seconds, warmup_seconds (the first batch) and
    images_per_second (batches after the first, or all when there is one) and batch_shapes (the distinct image
    shapes of the batches: 1 for fixed shape; a variable-shape model's function is traced for each).
    """
    parts: dict[str, list[np.ndarray]] = {}
    labels, times, shapes = [], [], set()
    for batch in dataset:
        images, y = _split_batch(batch, with_labels)
        shapes.add(tuple((images["image"] if isinstance(images, dict) else images).shape[1:3]))
        start = time.perf_counter()
        out = model.predict_on_batch(images)
        times.append(time.perf_counter() - start)
        for name, values in _outputs(out).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float32))
        if y is not None:
            labels.append(np.asarray(y))
        elif with_labels:
            raise ValueError("extract_features expected (images, labels) batches, got images only")
    if not times:
        raise ValueError("extract_features got an empty dataset")
    if stats is not None:
        stats.update(_throughput(times, [len(batch) for batch in parts["features"]]), batch_shapes=len(shapes))
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    if extra is not None:
        extra.update({name: values for name, values in arrays.items() if name != "features"})
    return arrays["features"], np.concatenate(labels) if labels else np.empty(0, np.int64)


def _throughput(times: list[float], sizes: list[int]) -> dict:
    steady_t, steady_n = (times[1:], sizes[1:]) if len(times) > 1 else (times, sizes)
    return {"n_images": int(sum(sizes)), "seconds": float(sum(times)),
            "warmup_seconds": float(times[0]),
            "images_per_second": float(sum(steady_n) / max(sum(steady_t), 1e-9))}


def softmax_input_layer(model: keras.Model) -> str:
    """The layer whose output feeds a classifier's final softmax (``predictions``): the head's last
    dense layer (the pooling layer for a head without one); dropout, the identity at inference, skipped."""
    names = [layer.name for layer in model.layers]
    if builders.OUTPUT_LAYER not in names:
        raise ValueError(f"model {model.name!r} has no {builders.OUTPUT_LAYER!r} layer (not a classifier built here)")
    below = [layer for layer in model.layers[: names.index(builders.OUTPUT_LAYER)] if not isinstance(layer, layers.Dropout)]
    if not below:
        raise ValueError(f"model {model.name!r} has nothing below its {builders.OUTPUT_LAYER!r} layer")
    return below[-1].name


def penultimate_extractor(model: keras.Model) -> tuple[keras.Model, str]:
    """A trained classifier cut below its softmax: raw images -> float32 features of
    ``softmax_input_layer`` (same input size and preprocessing); returns (extractor, layer name)."""
    layer = softmax_input_layer(model)
    features = layers.Activation("linear", dtype="float32", name="features")(model.get_layer(layer).output)
    return keras.Model(model.inputs, features, name=f"{model.name}_penultimate"), layer
