"""A backbone with its own ImageNet head (the ``similarity`` stage). A module of its own, beside
``builders``, so that the code the training stages run, and with it their cache keys, does not change
when this does."""

from __future__ import annotations

import keras
from keras import layers

from mame.models.backbones import WeightsChoice, build_base, get_backbone
from mame.models.builders import _INFO, _as_choice, _image_input


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
                    "weights_reason": choice.reason, "n_params": model.count_params(),
                    "n_outputs": int(model.output.shape[-1])}
    return model
