"""Figures of the evaluate run, drawn into its ``figures/`` folder: the reference model's (best single model
on validation) per-class test recall, and the error gallery of its most confused class pairs, with
thumbnails of the test images named in its predictions file (``files``), opened from the run's dataset.
Showing them is no test-split read by a model: the images were already scored, this only displays them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mame import plots
from mame.data import metadata

MAX_RECALL_BARS = 30  # classes in the per-class recall figure; past it, the best and the worst

THUMBNAIL = 200  # px, longest side
MATRIX_FONT = 8.5  # pt: the 29 class names of the final confusion matrix
PER_PAIR = 4
N_PAIRS = 3


def reference_key(metrics: dict) -> str | None:
    """``<model>/test`` of the reference model, or None when the run has no model table."""
    name = metrics["metrics"].get("best_single")
    key = f"{name}/test"
    return key if name and key in metrics["classification"] else None


def evaluation_figures(entry, draw) -> dict[str, Path]:
    """Per-class recall bars and the error gallery; ``draw(name, make)`` draws unless up to date."""
    key = reference_key(entry.metrics)
    if key is None:
        return {}
    cls = entry.metrics["classification"][key]
    found = {"per_class_recall": draw("per_class_recall", lambda: plots.draw_per_class_bars(
        plots.per_class_data(cls["report"], metric="recall", keep=MAX_RECALL_BARS)))}
    if gallery_sources(entry, cls) is not None:
        gallery = draw("error_gallery", lambda: gallery_figure(entry, cls))
        if gallery.is_file():
            found["error_gallery"] = gallery
    return found


def gallery_sources(entry, cls: dict) -> tuple[Path, Path] | None:
    """(predictions file, image folder) when the gallery can be drawn: errors, predictions, images."""
    block = cls["confusion_matrix"]
    errors = np.asarray(block["matrix"]).sum() - np.trace(np.asarray(block["matrix"]))
    predictions = entry.path / cls["predictions"] if cls.get("predictions") else None
    image_dir = _image_dir(entry.metrics["run"]["dataset"].get("path", ""))
    if errors <= 0 or predictions is None or not predictions.is_file() or image_dir is None:
        return None
    return predictions, image_dir


def gallery_figure(entry, cls: dict):
    """The error gallery of a classification entry of ``entry`` (the figure, or None without any image)."""
    sources = gallery_sources(entry, cls)
    if sources is None:
        return None
    block = cls["confusion_matrix"]
    examples, images = gallery_inputs(*sources, plots.confused_pairs(block["matrix"], block["labels"], top=N_PAIRS))
    return plots.draw_error_gallery(examples, images, per_pair=PER_PAIR) if images else None


def _image_dir(dataset_path: str) -> Path | None:
    if not dataset_path:
        return None
    try:
        return metadata.find_image_dir(dataset_path)
    except (metadata.DataError, OSError):
        return None


def gallery_inputs(predictions: Path, image_dir: Path, pairs: list[dict]) -> tuple[list[dict], dict]:
    """The misclassified examples of each pair and their thumbnails (index -> RGB array); an example whose
    image file cannot be opened is left out."""
    with np.load(predictions) as arrays:
        y_true, y_pred, probs, files = (arrays[k] for k in ("y_true", "y_pred", "probabilities", "files"))
    examples = plots.error_examples(y_true, y_pred, probs, pairs, per_pair=PER_PAIR)
    images = {}
    for example in examples:
        for item in example["items"]:
            picture = thumbnail(image_dir / str(files[item["index"]]))
            if picture is not None:
                images[item["index"]] = picture
        example["items"] = [i for i in example["items"] if i["index"] in images]
    return examples, images


def thumbnail(path: Path, size: int = THUMBNAIL) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            return np.asarray(image)
    except OSError:
        return None
