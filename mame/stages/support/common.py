"""What the training stages (``scratch``, ``finetune``) share: splits, datasets, device and precision
choice, scoring a trained model on train and val, and saving the model and its predictions (the training
run built from these is ``mame.stages.support.trainer``).

Never reads the test split: ``load_splits`` refuses it (only the ``evaluate`` stage reads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame.data import metadata
from mame.files import atomic_path
from mame.machine import cpu_bf16
from mame.metrics import classification_result

PREDICTIONS_FILE = "predictions_{split}.npz"
MODEL_FILE = "model.keras"


@dataclass
class Splits:
    image_dir: Path
    records: dict[str, list]
    classes: tuple[str, ...]  # the dataset's class names, in label order

    def summary(self) -> dict[str, int]:
        return {split: len(recs) for split, recs in self.records.items()}


def load_splits(data_dir: str | Path, splits=("train", "val"), *, max_per_class: int | None = None,
                seed: int = 0, subsampled: tuple[str, ...] = ("train",)) -> Splits:
    """Records of the requested splits, those in ``subsampled`` optionally a seeded subsample of at most
    ``max_per_class`` images a class. Validation stays whole by default: every run that a later choice compares
    (a rung, a step, a classifier) is scored on the same validation images."""
    if "test" in splits:
        raise ValueError("this stage does not read the test split; only the evaluate stage does")
    meta = metadata.read_metadata(data_dir)
    rng = np.random.default_rng(seed)
    chosen = {}
    for split in splits:
        records = meta.split(split)
        if not records:
            raise ValueError(f"{meta.path}: split {split!r} has no rows")
        chosen[split] = subsample(records, max_per_class, rng) if max_per_class and split in subsampled else records
    return Splits(image_dir=metadata.find_image_dir(data_dir), records=chosen, classes=meta.classes)


def subsample(records: list, per_class: int, rng: np.random.Generator) -> list:
    """At most ``per_class`` records of each class, drawn with ``rng``, in their original order."""
    by_class: dict[int, list] = {}
    for rec in records:
        by_class.setdefault(rec.label, []).append(rec)
    kept = []
    for label in sorted(by_class):
        group = by_class[label]
        idx = rng.permutation(len(group))[:per_class]
        kept += [group[i] for i in sorted(idx)]
    return kept


def choose_precision(precision: str) -> str:
    """``auto``: mixed_bfloat16 on a GPU or a CPU with native bf16 (measured: VGG16 fine-tuning 4x faster
    with AMX, 1.3x with AVX512-BF16 on 2 cores), float32 elsewhere; other values as given."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_bfloat16" if tf.config.list_physical_devices("GPU") or cpu_bf16() else "float32"


def distribution(devices: list[str] | None = None):
    """``(strategy, replicas)``: MirroredStrategy over ``devices`` (default: every GPU) when there are
    two or more, else TensorFlow's default strategy and 1."""
    import tensorflow as tf

    if devices is None:
        devices = [d.name.replace("/physical_device:", "/") for d in tf.config.list_physical_devices("GPU")]
    if len(devices) >= 2:
        return tf.distribute.MirroredStrategy(devices=devices), len(devices)
    return tf.distribute.get_strategy(), 1


def tensorflow_gpus() -> dict:
    """``{"tensorflow_gpus": n}``: the GPUs TensorFlow computes on in this process (0 on a CPU), for the metrics of a
    stage that used TensorFlow (``make gpu-check`` reads it)."""
    import tensorflow as tf

    return {"tensorflow_gpus": len(tf.config.list_logical_devices("GPU"))}


def steps_per_epoch(count: int, batch_size: int) -> int:
    return max(1, math.ceil(count / batch_size))


def predict(model, records: list, image_dir: Path, *, image_size, batch_size: int,
            allow_test: bool = False) -> dict:
    """Class probabilities (float32) and labels of ``records`` in order (no augmentation). ``image_size``: a side
    in pixels (fixed shape) or a ``mame.data.input_shape.InputShape`` (variable shape: batches come bucket by
    bucket, put back in record order here).

    ``model.predict`` rather than ``predict_on_batch``: under MirroredStrategy the latter returned one
    row per replica and image (2 x 58 rows for 58 images on two devices)."""
    from mame.data import pipeline
    from mame.data.input_shape import as_shape

    shape = as_shape(image_size)
    dataset = pipeline.make_dataset(records, image_dir, batch_size=batch_size, allow_test=allow_test,
                                    **shape.dataset_args())
    probabilities = np.asarray(model.predict(dataset.map(lambda images, labels: images), verbose=0), dtype=np.float32)
    if len(probabilities) != len(records):
        raise ValueError(f"{image_dir}: predicted {len(probabilities)} rows for {len(records)} images")
    probabilities = pipeline.in_record_order(dataset, probabilities)
    return {"y_true": np.array([r.label for r in records], dtype=np.int32),
            "y_pred": probabilities.argmax(axis=1).astype(np.int32),
            "probabilities": probabilities, "files": np.array([r.image_file for r in records])}


def score(run_dir: str | Path, predictions: dict[str, dict], classes: tuple[str, ...]) -> tuple[dict, dict]:
    """Save each split's predictions (with the class names); return (classification entries, artifacts)."""
    run_dir = Path(run_dir)
    classification, artifacts = {}, {}
    for split, pred in predictions.items():
        name = PREDICTIONS_FILE.format(split=split)
        np.savez_compressed(run_dir / name, **pred, class_names=np.array(classes))
        artifacts[f"predictions_{split}"] = name
        classification[split] = classification_result(pred["y_true"], pred["y_pred"], class_names=classes, predictions=name)
    return classification, artifacts


def save_model(model, run_dir: str | Path) -> str:
    """The trained model, uncompiled, as ``model.keras`` in the run folder (for evaluate, explain, fine-tuned
    features)."""
    import keras

    bare = keras.models.clone_model(model)  # without the optimizer's state (a .keras file keeps it: 2.8x larger)
    bare.set_weights(model.get_weights())
    with atomic_path(Path(run_dir) / MODEL_FILE, suffix=".tmp.keras", fsync=False) as tmp:  # Keras wants .keras
        bare.save(tmp)
    return MODEL_FILE


def history_for_metrics(history: dict) -> dict:
    """The numeric per-epoch series of a training history (the schema's ``history``); the phase of
    each epoch goes to the metrics as phase lengths instead."""
    return {key: [float(v) for v in values] for key, values in history.items()
            if all(isinstance(v, (int, float)) for v in values)}
