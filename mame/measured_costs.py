"""Per-image costs measured by the runs in a runs folder, for ``python -m mame estimate``: seconds an image of
each backbone's forward pass (the features runs: their images and images/s) and of its fine-tuning (the finetune
runs: seconds per epoch over their training images), per device kind (``cpu``, ``gpu``) as the run recorded it.

A cost measured at one image size is carried to another by the pixel count (a CNN's FLOPs grow with it); the
largest measurement of a backbone on a device wins. A run over fewer than ``MIN_IMAGES`` images is left out: its
images/s mostly time the model's start-up (building, tracing), not its images. Light: json only, no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MIN_IMAGES = 500


@dataclass(frozen=True)
class Cost:
    kind: str  # "forward" (features) or "train" (fine-tuning, per image and epoch)
    backbone: str
    device: str  # "cpu" or "gpu"
    device_name: str
    image_size: int
    seconds_per_image: float
    images: int
    run: str  # the run that measured it, e.g. features/efficientnetlite0

    def at(self, image_size: int | None) -> float:
        """Seconds an image at ``image_size`` px (the measured size if None)."""
        return self.seconds_per_image * ((image_size or self.image_size) / self.image_size) ** 2


def _read(path: Path) -> dict | None:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and (metrics.get("run") or {}).get("status") == "done" else None


def _forward(metrics: dict, run: str) -> Cost | None:
    m = metrics.get("metrics") or {}
    counts, rates = m.get("n_images") or {}, m.get("images_per_second") or {}
    splits = [s for s in counts if rates.get(s)]
    if not splits or not m.get("key") or not m.get("image_size") or m.get("shape", "fixed") != "fixed":
        return None
    images = sum(counts[s] for s in splits)
    seconds = sum(counts[s] / rates[s] for s in splits)
    device = metrics["run"].get("device") or {}
    return Cost("forward", m["key"], device.get("kind", "cpu"), device.get("name", ""), int(m["image_size"]),
                seconds / images, images, run)


def _train(metrics: dict, run: str) -> Cost | None:
    m, r = metrics.get("metrics") or {}, metrics["run"]
    images = (metrics.get("classification", {}).get("train") or {}).get("report", {}).get("macro avg", {}).get("support")
    if not (m.get("seconds_per_epoch") and images and r.get("backbone") and m.get("image_size")) \
            or m.get("shape", "fixed") != "fixed":
        return None
    device = r.get("device") or {}
    return Cost("train", r["backbone"], device.get("kind", "cpu"), device.get("name", ""), int(m["image_size"]),
                m["seconds_per_epoch"] / images, int(images), run)


def measured_costs(runs_dir: Path) -> list[Cost]:
    """Every cost the done runs in ``runs_dir`` measured over ``MIN_IMAGES`` or more (features: forward; finetune:
    training)."""
    found = []
    for stage, read in (("features", _forward), ("finetune", _train)):
        for path in sorted(Path(runs_dir).glob(f"{stage}/*/metrics.json")):
            metrics = _read(path)
            cost = read(metrics, f"{stage}/{path.parent.name}") if metrics else None
            if cost is not None and cost.images >= MIN_IMAGES:
                found.append(cost)
    return found


def best(costs: list[Cost], kind: str, backbone: str | None, device: str) -> Cost | None:
    """The measurement of ``backbone``'s ``kind`` on ``device`` over the most images, or None."""
    matching = [c for c in costs if (c.kind, c.backbone, c.device) == (kind, backbone, device)]
    return max(matching, key=lambda c: c.images, default=None)
