"""Stage ``features``: an ImageNet backbone used as a fixed feature extractor.

Notebook ``02_features.ipynb`` calls, in order: ``load_splits`` → ``build_extractor`` → ``extract`` →
``centroid_probe`` → ``structure`` → ``save``. Writes ``features_<split>.npz`` (features, labels, files, layer)
that the ``classify`` stage and the feature visualisations read, and ``features_<layer>_<split>.npz`` for each
extra layer saved from the same pass (VGG16: fc2 beside fc1, for the dense-head comparison).

``source="finetune"``: the features of the fine-tuned model instead (``mame.stages.support.finetuned_extractor``): the best
fine-tuning run of the backbone on validation, cut below its softmax. Never reads the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mame import results
from mame.data.input_shape import PLACEMENT_DOC, SHAPE_DOC, InputShape, from_record
from mame.metrics import classification_result
from mame.stages.support import common
from mame.stages.support.common import Splits, load_splits  # noqa: F401  (the notebook calls features.load_splits)
from mame.stages.support.parameters import IDENTITY, Notebook, StageConfig, param

SOURCES = ("imagenet", "finetune")


@dataclass
class FeaturesConfig(StageConfig):
    """The stage parameters of ``02_features.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    image_size: int | None = param(None, "None: the backbone's default (224; EfficientNetB3 300)")
    shape: str = param("fixed", SHAPE_DOC + " (VGG16: its block5 maps pooled; fc1 and fc2 need 224 x 224)")
    placement: str = param("corner", PLACEMENT_DOC)
    batch_size: int = param(32)
    weights: str = param("imagenet-if-cached", "random | imagenet-if-cached | imagenet-if-available | imagenet | "
                                               "path to a weights file")
    feature_layer: str | None = param(None, "VGG16: fc1 (default) or fc2")
    extra_layers: str | list[str] = param("above", "also saved from the same pass: above (the feature layers above "
                                                   "feature_layer, VGG16 fc1 to fc2) or a list")
    source: str = param("imagenet", "imagenet: the backbone built with `weights` | finetune: the best fine-tuning run "
                                    "read (plan: reads: [finetune]), below its softmax")
    max_per_class: int | None = param(None, "subsample the training split per class (None: every image; validation stays whole)")
    precision: str = param("float32", "float32 | mixed_bfloat16")
    n_groups: int = param(6, "clusters of class centroids whose linear separability is measured")


NOTEBOOK = Notebook("02_features.ipynb", FeaturesConfig, backbone="vgg16",
                    inputs_doc='{"finetune": {run name: identity}} when source is "finetune"; identity: ' + IDENTITY)


@dataclass
class Extractor:
    model: object
    info: dict
    weights: object  # builders.WeightsChoice


@dataclass
class Extracted:
    features: np.ndarray
    labels: np.ndarray
    files: list[str]
    seconds: float
    extra: dict = field(default_factory=dict)
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # extra layers from the same pass
    classes: tuple[str, ...] = ()  # the dataset's class names, in label order

    @property
    def images_per_second(self) -> float:
        if "images_per_second" in self.extra:  # measured after the first (warm-up) batch
            return float(self.extra["images_per_second"])
        return len(self.labels) / self.seconds if self.seconds > 0 else float("nan")


def build_extractor(backbone: str, *, image_size: int | None = FeaturesConfig.image_size, weights=FeaturesConfig.weights,
                    feature_layer: str | None = FeaturesConfig.feature_layer, precision: str = FeaturesConfig.precision,
                    extra_layers=FeaturesConfig.extra_layers, source: str = FeaturesConfig.source, inputs: dict | None = None,
                    seed: int | None = None, shape: str = FeaturesConfig.shape,
                    placement: str = FeaturesConfig.placement) -> Extractor:
    """``source="imagenet"``: the backbone as built with ``weights`` (a policy or weights file, resolved
    here, or a ``WeightsChoice`` already resolved: ImageNet or, as the policy allows, random init) at
    ``feature_layer``, plus ``extra_layers`` from the same pass ("above": the backbone's feature layers
    above it, VGG16 fc1 -> fc2; or a list). ``seed``: Keras' random seed, set just before building, so a
    random init can be built again identically (the evaluate stage rebuilds the extractor from the run's
    record: ``weights_choice``, ``seed``, ``image_size``, ``feature_layer``, ``extra_layers``, ``precision``).
    ``source="finetune"``: the best fine-tuning run of ``backbone`` among ``inputs["finetune"]`` (chosen
    on validation), below its softmax. ``shape="variable"``: the backbone's last convolutional map pooled over each
    image's valid region (``placement`` corner) or all of it (centre), images at about ``image_size``² pixels with
    their aspect ratio kept; no extra layers (VGG16's fc1/fc2 need a fixed 224 px input)."""
    from mame.models import builders

    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    builders.configure_precision(precision)
    if source == "finetune":
        from mame.stages.support import finetuned_extractor

        if shape != "fixed":
            raise ValueError("source='finetune' takes the fine-tuned model's own input shape; leave shape at 'fixed'")
        model, info, choice = finetuned_extractor.build_extractor(backbone, inputs or {}, image_size=image_size)
        info["precision"] = precision
        return Extractor(model=model, info=info, weights=choice)
    from mame.models import extraction

    spec = builders.get_backbone(backbone)
    size = image_size or spec.default_size
    input_shape = InputShape(shape, size, placement)
    if input_shape.variable:
        return _variable_extractor(backbone, input_shape, weights, precision, seed)
    extra = extraction.layers_above(backbone, feature_layer) if extra_layers == "above" else list(extra_layers or [])
    choice = weights if isinstance(weights, builders.WeightsChoice) else builders.resolve_weights(
        backbone, weights, include_top=spec.features_need_top)
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    model, info = extraction.build_extractor(backbone, image_size=size, weights_choice=choice,
                                             feature_layer=feature_layer, extra_layers=extra)
    info.update({"precision": precision, **input_shape.record(), "source": source, "seed": seed,
                 "weights_choice": choice.as_dict()})
    return Extractor(model=model, info=info, weights=choice)


def _variable_extractor(backbone: str, input_shape: InputShape, weights, precision: str, seed: int | None) -> Extractor:
    from mame.models import builders

    choice = weights if isinstance(weights, builders.WeightsChoice) else builders.resolve_weights(
        backbone, weights, include_top=False)
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    model = builders.build_variable_extractor(backbone, weights_choice=choice, placement=input_shape.placement)
    info = {**builders.backbone_info(model), "extra_layers": {}, "precision": precision, **input_shape.record(),
            "source": "imagenet", "seed": seed, "weights_choice": choice.as_dict()}
    return Extractor(model=model, info=info, weights=choice)


def extract(extractor: Extractor, splits: Splits, *, batch_size: int = FeaturesConfig.batch_size) -> dict[str, Extracted]:
    """Features of every image of every split, in the metadata's order."""
    from mame.data import pipeline
    from mame.models import extraction

    shape = from_record(extractor.info)
    out = {}
    for split, records in splits.records.items():
        dataset = pipeline.make_dataset(records, splits.image_dir, batch_size=batch_size, **shape.dataset_args())
        stats, extra = {}, {}
        feats, labels = extraction.extract_features(extractor.model, dataset, stats=stats, extra=extra)
        feats, labels = pipeline.in_record_order(dataset, feats), pipeline.in_record_order(dataset, labels)
        extra = {name: pipeline.in_record_order(dataset, values) for name, values in extra.items()}
        out[split] = Extracted(feats.astype(np.float32), labels.astype(np.int32),
                               [r.image_file for r in records], stats["seconds"], stats, extra, splits.classes)
    return out


def centroid_probe(extracted: dict[str, Extracted], *, fit: str = "train", score: str = "val") -> dict:
    """How separable the classes are in feature space: nearest class centroid (cosine) on ``score``."""
    train, val = extracted[fit], extracted[score]
    mean, std = train.features.mean(axis=0), train.features.std(axis=0) + 1e-6
    def unit(x):
        z = (x - mean) / std
        return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)
    ztrain, zval = unit(train.features), unit(val.features)
    n_classes = len(train.classes)
    centroids = np.zeros((n_classes, ztrain.shape[1]), dtype=np.float32)
    present = np.unique(train.labels)
    for label in present:
        centroids[label] = ztrain[train.labels == label].mean(axis=0)
    scores = zval @ centroids.T
    scores[:, np.setdiff1d(np.arange(n_classes), present)] = -np.inf
    predicted = scores.argmax(axis=1)
    return {"y_true": val.labels, "y_pred": predicted, "split": score, "classes": train.classes}


def structure(extracted: dict[str, Extracted], *, n_groups: int = FeaturesConfig.n_groups) -> dict:
    """Groups of classes, nearest classes and outliers in these features (``mame.stages.support.structure``)."""
    from mame.stages.support import structure as analysis

    train, val = extracted["train"], extracted["val"]
    return analysis.analyse(train.features, train.labels, val.features, val.labels, val.files, train.classes,
                            n_groups=n_groups)


def save(run_dir: str | Path, extractor: Extractor, extracted: dict[str, Extracted], probe: dict,
         structure: dict | None = None) -> Path:
    """Write the feature arrays and the stage result for the runner."""
    run_dir = Path(run_dir)
    artifacts = {}
    layer = str(extractor.info.get("feature_layer"))
    for split, ex in extracted.items():
        name = f"features_{split}.npz"
        np.savez_compressed(run_dir / name, features=ex.features, labels=ex.labels, files=np.array(ex.files),
                            layer=np.array(layer), class_names=np.array(ex.classes))
        artifacts[f"features_{split}"] = name
        for extra, values in ex.layers.items():
            name = f"features_{extra}_{split}.npz"
            np.savez_compressed(run_dir / name, features=values, labels=ex.labels, files=np.array(ex.files),
                                layer=np.array(extra), class_names=np.array(ex.classes))
            artifacts[f"features_{extra}_{split}"] = name
    np.savez_compressed(run_dir / "probe_predictions.npz", y_true=probe["y_true"], y_pred=probe["y_pred"])
    artifacts["probe_predictions"] = "probe_predictions.npz"
    entry = classification_result(probe["y_true"], probe["y_pred"], class_names=probe["classes"],
                                  predictions="probe_predictions.npz")
    metrics = {**{k: v for k, v in extractor.info.items() if k != "notes"}, **common.tensorflow_gpus()}
    metrics["n_images"] = {split: int(len(ex.labels)) for split, ex in extracted.items()}
    metrics["images_per_second"] = {split: round(ex.images_per_second, 2) for split, ex in extracted.items()}
    metrics["batch_shapes"] = {split: int(ex.extra.get("batch_shapes", 1)) for split, ex in extracted.items()}
    if structure is not None:
        metrics["structure"] = structure
    result = {
        "headline": {"name": "centroid_val_accuracy", "value": entry["report"]["accuracy"], "split": probe["split"]},
        "metrics": metrics,
        "classification": {f"nearest-centroid/{probe['split']}": entry},
        "artifacts": artifacts,
        "notes": [extractor.weights.reason] if getattr(extractor.weights, "reason", None) else [],
    }
    result["notes"] += extractor.info.get("notes", [])
    return results.save_result(run_dir, result)
