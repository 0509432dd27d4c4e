"""Stage ``similarity``: how close MAMe is to ImageNet, seen through each backbone's own ImageNet head.

Notebook ``03_similarity.ipynb`` calls ``load_splits`` → ``build_model`` → ``predict`` → ``measure`` →
``examples`` → ``save``. Train and validation images only (never test). Class names come from
``mame.models.imagenet_labels`` (a file in the package: nothing is fetched).

The similarity measure, in [0, 1] (``similarity_measure``):

- **map accuracy**: every train image gets the backbone's top-1 ImageNet label; each ImageNet label is
  mapped to the MAMe class most of its train images belong to (many-to-one; a tie goes to the lower class
  index); a label never seen on train maps to the most frequent train class. The measure is the
  validation accuracy of that map: 1.0 when each MAMe class has ImageNet labels of its own, about the
  majority-class share (``chance``) when the labels say nothing about the class.
- **NMI**: normalised mutual information (scikit-learn, arithmetic mean) between the top-1 labels and
  the MAMe classes on validation, 1.0 for a one-to-one correspondence; **AMI** is its chance-adjusted
  version (0 for independent labels), since NMI grows with the number of distinct labels on few images.

With random weights the ImageNet head is random too: the numbers are computed (the pipeline is the same)
but recorded as not meaningful, and the run has no headline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame import results
from mame.stages.support import common
from mame.stages.support.common import Splits, load_splits  # noqa: F401  (the notebook calls similarity.load_splits)
from mame.stages.support.parameters import Notebook, StageConfig, param

PREDICTIONS_FILE = "imagenet_predictions_{split}.npz"
LABELS_PER_CLASS = 2   # ImageNet labels listed per MAMe class


@dataclass
class SimilarityConfig(StageConfig):
    """The stage parameters of ``03_similarity.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    image_size: int | None = param(None, "None: the backbone's default; ImageNet weights always use it (their head is fixed)")
    batch_size: int = param(32)
    weights: str = param("imagenet-if-cached", "random | imagenet-if-cached | imagenet-if-available | imagenet | "
                                               "path to a weights file")
    top_k: int = param(5, "ImageNet classes kept per image")
    max_per_class: int | None = param(None, "subsample the training split per class (None: every image; validation stays whole)")
    examples: int = param(6, "validation images shown with their labels (one per class, seeded: the same for every backbone)")
    precision: str = param("float32", "float32 | mixed_bfloat16")


NOTEBOOK = Notebook("03_similarity.ipynb", SimilarityConfig, backbone="vgg16")


@dataclass
class ImagenetModel:
    model: object
    info: dict
    weights: object  # backbones.WeightsChoice

    @property
    def meaningful(self) -> bool:
        """ImageNet predictions mean something only with trained (not random) weights."""
        return self.info["weights"] != "random"


@dataclass
class Predicted:
    labels: np.ndarray          # the dataset's class per image
    files: list[str]
    top_indices: np.ndarray     # (n, k) ImageNet class indices, most probable first
    top_probabilities: np.ndarray
    seconds: float
    classes: tuple[str, ...] = ()  # the dataset's class names, in label order

    @property
    def top1(self) -> np.ndarray:
        return self.top_indices[:, 0]


def build_model(backbone: str, *, image_size: int | None = SimilarityConfig.image_size,
                weights: str = SimilarityConfig.weights, precision: str = SimilarityConfig.precision,
                seed: int | None = None) -> ImagenetModel:
    """The backbone with its ImageNet top. ImageNet weights need the backbone's default input size
    (224 px; EfficientNetB3 300 px): ``image_size`` applies to random weights only, and the notes say so.
    ``seed`` seeds random weights (the same run gives the same numbers again)."""
    from mame.models import builders

    builders.configure_precision(precision)
    spec = builders.get_backbone(backbone)
    choice = builders.resolve_weights(backbone, weights, include_top=True)
    size = image_size or spec.default_size
    notes = [choice.reason] if choice.reason else []
    if choice.used != "random" and size != spec.default_size:
        notes.append(f"image_size {size} ignored: {spec.name}'s ImageNet head takes {spec.default_size} px")
        size = spec.default_size
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    model = builders.build_imagenet_classifier(backbone, image_size=size, weights_choice=choice)
    info = builders.model_info(model)
    info.update({"precision": precision, "image_size": size, "notes": notes})
    return ImagenetModel(model=model, info=info, weights=choice)


def predict(model: ImagenetModel, splits: Splits, *, batch_size: int = SimilarityConfig.batch_size,
            top_k: int = SimilarityConfig.top_k) -> dict[str, Predicted]:
    """The ``top_k`` ImageNet classes and their probabilities for every image of every split."""
    from mame.data import pipeline
    from mame.models import extraction

    if not 1 <= top_k <= 1000:
        raise ValueError(f"top_k must be between 1 and 1000, got {top_k}")
    size = model.info["image_size"]
    out = {}
    for split, records in splits.records.items():
        dataset = pipeline.make_dataset(records, splits.image_dir, image_size=size, batch_size=batch_size)
        stats: dict = {}
        probabilities, labels = extraction.extract_features(model.model, dataset, stats=stats)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        out[split] = Predicted(labels.astype(np.int32), [r.image_file for r in records], order.astype(np.int32),
                               np.take_along_axis(probabilities, order, axis=1).astype(np.float32),
                               float(stats["seconds"]), splits.classes)
    return out


def many_to_one_map(top1: np.ndarray, labels: np.ndarray) -> tuple[dict[int, int], int]:
    """ImageNet label -> the MAMe class most of its images belong to (ties: the lower class index), and
    the class for labels not in the map (the most frequent class)."""
    top1, labels = np.asarray(top1), np.asarray(labels)
    if top1.shape != labels.shape or top1.ndim != 1 or len(top1) == 0:
        raise ValueError(f"expected two equally long non-empty 1-d arrays, got {top1.shape} and {labels.shape}")
    mapping = {}
    for label in np.unique(top1):
        mapping[int(label)] = int(np.bincount(labels[top1 == label]).argmax())
    return mapping, int(np.bincount(labels).argmax())


def similarity_measure(train_top1, train_labels, val_top1, val_labels) -> dict:
    """The map accuracy (learned on train, scored on validation), its chance level, NMI and AMI (module
    docstring). Deterministic: no randomness is involved."""
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    mapping, fallback = many_to_one_map(train_top1, train_labels)
    val_top1, val_labels = np.asarray(val_top1), np.asarray(val_labels)
    if val_top1.shape != val_labels.shape or len(val_top1) == 0:
        raise ValueError(f"validation arrays differ in shape or are empty: {val_top1.shape}, {val_labels.shape}")
    mapped = np.array([mapping.get(int(label), fallback) for label in val_top1])
    return {"map_accuracy": float(np.mean(mapped == val_labels)),
            "chance": float(np.mean(val_labels == fallback)),
            "nmi": float(normalized_mutual_info_score(val_labels, val_top1)),
            "ami": float(adjusted_mutual_info_score(val_labels, val_top1)),
            "distinct_labels": int(len(np.unique(np.concatenate([np.asarray(train_top1), val_top1])))),
            "unseen_val_labels": int(sum(int(label) not in mapping for label in val_top1)),
            "n_train": int(len(train_labels)), "n_val": int(len(val_labels))}


def measure(predicted: dict[str, Predicted]) -> dict:
    """``similarity_measure`` on the predicted splits, and the ImageNet labels each class of the dataset gets."""
    from mame.models.imagenet_labels import class_names

    names = class_names()
    train, val = predicted["train"], predicted["val"]
    result = similarity_measure(train.top1, train.labels, val.top1, val.labels)
    top1 = np.concatenate([train.top1, val.top1])
    p1 = np.concatenate([train.top_probabilities[:, 0], val.top_probabilities[:, 0]])
    labels = np.concatenate([train.labels, val.labels])
    per_class = []
    for cls in np.unique(labels):
        mine = labels == cls
        found, counts = np.unique(top1[mine], return_counts=True)
        order = np.lexsort((found, -counts))[:LABELS_PER_CLASS]
        per_class.append({"class": train.classes[cls], "n": int(mine.sum()), "labels": [
            {"label": names[found[i]], "share": float(counts[i] / mine.sum()),
             "p": float(p1[mine & (top1 == found[i])].mean())} for i in order]})
    mapping, _ = many_to_one_map(train.top1, train.labels)
    result["per_class"] = per_class
    result["map_size"] = len(mapping)
    return result


def examples(predicted: Predicted, *, n: int = SimilarityConfig.examples, seed: int = 0) -> list[dict]:
    """``n`` validation images of ``n`` different classes (seeded: every backbone's run shows the same
    images) with their top ImageNet labels."""
    from mame.models.imagenet_labels import class_names

    names = class_names()
    rng = np.random.default_rng(seed)
    present = np.unique(predicted.labels)
    chosen = np.sort(rng.choice(present, size=min(n, len(present)), replace=False))
    out = []
    for cls in chosen:
        index = int(rng.choice(np.flatnonzero(predicted.labels == cls)))
        out.append({"file": predicted.files[index], "class": predicted.classes[cls],
                    "top": [{"label": names[j], "p": float(p)} for j, p in
                            zip(predicted.top_indices[index], predicted.top_probabilities[index])]})
    return out


def save(run_dir: str | Path, model: ImagenetModel, predicted: dict[str, Predicted], measured: dict,
         shown: list[dict], *, top_k: int) -> Path:
    """The top-k predictions per split, the measure and the examples, for the runner."""
    run_dir = Path(run_dir)
    artifacts = {}
    for split, p in predicted.items():
        name = PREDICTIONS_FILE.format(split=split)
        np.savez_compressed(run_dir / name, y_true=p.labels, files=np.array(p.files), top_indices=p.top_indices,
                            top_probabilities=p.top_probabilities)
        artifacts[f"imagenet_predictions_{split}"] = name
    info = {k: v for k, v in model.info.items() if k != "notes"}
    metrics = {**info, **common.tensorflow_gpus(),
               "meaningful": model.meaningful, "top_k": top_k, "similarity": measured, "examples": shown,
               "images_per_second": {s: round(len(p.labels) / p.seconds, 2) if p.seconds else None
                                     for s, p in predicted.items()}}
    headline = ({"name": "similarity_map_accuracy", "value": measured["map_accuracy"], "split": "val"}
                if model.meaningful else None)
    notes = list(model.info.get("notes", []))
    if not model.meaningful:
        notes.append("random weights: the ImageNet head is untrained, so the similarity measure is not meaningful")
    result = {"headline": headline, "metrics": metrics, "classification": {}, "artifacts": artifacts, "notes": notes}
    return results.save_result(run_dir, result)
