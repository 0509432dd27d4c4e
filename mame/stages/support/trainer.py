"""The one training run of the training stages (``scratch``, ``finetune``): they differ only in the model they
build and its phases; everything else is here.

A stage module declares its parameters once, as a ``StageConfig`` dataclass (``mame.stages.support.parameters``: the
notebook's ``parameters`` cell is generated from it); its notebook builds the config with
``<Config>.from_parameters(globals())``. The stage builds its model and ``phase``s, then calls ``fit``
(seed, precision, devices, the training and validation data, ``mame.models.training.train`` with its
checkpoints and resume); ``predict``, ``summary`` and ``save`` are the same for both stages.
Never reads the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mame import results
from mame.data.input_shape import InputShape, as_shape
from mame.stages.support import common
from mame.stages.support.common import Splits
from mame.stages.support.parameters import StageConfig, param


@dataclass
class DataParameters(StageConfig):
    """Notebook parameters of the training stages that choose the data (``load_splits``), not the model: not in
    their config (nor in the config their runs record)."""
    max_per_class: int | None = param(None, "subsample the training split per class (None: every image; validation "
                                            "stays whole); chooses the data, not in the config")


DATA_PARAMETERS = tuple(f.name for f in fields(DataParameters))


@dataclass
class Trained:
    model: object
    config: StageConfig
    input_shape: InputShape
    precision: str
    replicas: int
    result: object                                        # models.training.TrainResult
    details: dict = field(default_factory=dict)           # the stage's own metrics (backbone, weights, trainable sets)
    notes: list[str] = field(default_factory=list)        # the stage's own notes, before the run's
    classes: tuple[str, ...] = ()                         # the dataset's class names, in label order


def phase(name: str, epochs: int, learning_rate: float, *, trainable: Callable[[object], None] | None = None):
    """A ``mame.models.training.Phase``: ``trainable(model)`` sets what trains (when given), then Adam at
    ``learning_rate`` on sparse categorical cross-entropy, with accuracy."""
    import keras

    from mame.models import training

    def prepare(model):
        if trainable is not None:
            trainable(model)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    return training.Phase(name, epochs, prepare)


def fit(splits: Splits, config: StageConfig, build: Callable[[], object], phases: list, *, image_size,
        checkpoint_dir: str | Path | None, run_dir: str | Path, seed: int, label: str,
        devices: list[str] | None = None) -> Trained:
    """Train ``build()`` through ``phases`` on train, monitoring val accuracy, with ``config``'s batch size
    (per device), augmentation, patience and precision; resumes from ``checkpoint_dir`` (None: inside
    ``run_dir``). ``image_size``: a side in pixels or an ``InputShape`` (variable shape). ``devices``:
    MirroredStrategy over these (None: every visible GPU)."""
    import keras

    from mame.data import pipeline
    from mame.models import builders, training

    keras.utils.set_random_seed(seed)
    precision = common.choose_precision(config.precision)
    builders.configure_precision(precision)
    strategy, replicas = common.distribution(devices)
    batch = config.batch_size * replicas
    train_records = splits.records["train"]
    shape = as_shape(image_size)

    def train_data(first_epoch: int):
        return pipeline.make_dataset(train_records, splits.image_dir, batch_size=batch, **shape.dataset_args(),
                                     shuffle=True, seed=seed, augment=config.augment, repeat=True,
                                     first_epoch=first_epoch)

    val_data = pipeline.make_dataset(splits.records["val"], splits.image_dir, batch_size=batch, **shape.dataset_args())
    result = training.train(build, phases, train_data, val_data,
                            checkpoint_dir=checkpoint_dir or Path(run_dir) / "checkpoints",
                            steps_per_epoch=common.steps_per_epoch(len(train_records), batch),
                            patience=config.patience, run_dir=run_dir, label=label, strategy=strategy)
    return Trained(result.model, config, shape, precision, replicas, result, classes=splits.classes)


def predict(trained: Trained, splits: Splits) -> dict[str, dict]:
    """Predictions of the restored best model on train (no augmentation) and val, with probabilities."""
    return {split: common.predict(trained.model, splits.records[split], splits.image_dir,
                                  image_size=trained.input_shape, batch_size=trained.config.batch_size)
            for split in ("train", "val")}


def summary(trained: Trained, predictions: dict[str, dict]) -> dict:
    """The run's row: accuracy per split, model size and how the training went."""
    res = trained.result
    accuracies = {f"{split}_accuracy": float((p["y_true"] == p["y_pred"]).mean()) for split, p in predictions.items()}
    return {**accuracies, "n_params": int(trained.model.count_params()),
            "epochs_run": len(res.history.get("loss", [])), "best_epoch": res.best_epoch,
            "seconds_per_epoch": round(res.seconds_per_epoch, 2), "stopped_early": res.stopped_early,
            "resumed_from_epoch": res.resumed_from, "phases": res.phases}


def notes(trained: Trained) -> list[str]:
    """The stage's notes, then the devices it ran on (when more than one) and the resume, if any."""
    said = list(trained.notes)
    if trained.replicas > 1:
        said.append(f"trained on {trained.replicas} devices (MirroredStrategy), global batch "
                    f"{trained.config.batch_size * trained.replicas}")
    if trained.result.resumed_from:
        said.append(f"resumed after epoch {trained.result.resumed_from} from the checkpoints of a killed run")
    return said


def save(run_dir: str | Path, trained: Trained, predictions: dict[str, dict]) -> Path:
    """Predictions, the model (``model.keras``) and the result: headline val accuracy, the summary row, the
    stage's details, precision, devices and config, the history and the notes."""
    run_dir = Path(run_dir)
    classification, artifacts = common.score(run_dir, predictions, trained.classes)
    artifacts["model"] = common.save_model(trained.model, run_dir)
    row = summary(trained, predictions)
    metrics = {**trained.details, **row, **trained.input_shape.record(), **common.tensorflow_gpus(), "precision": trained.precision,
               "replicas": trained.replicas, "batch_size_global": trained.config.batch_size * trained.replicas,
               "config": asdict(trained.config)}
    result = {"headline": {"name": "val_accuracy", "value": row["val_accuracy"], "split": "val"},
              "metrics": metrics, "classification": classification, "artifacts": artifacts,
              "history": common.history_for_metrics(trained.result.history), "notes": notes(trained)}
    return results.save_result(run_dir, result)
