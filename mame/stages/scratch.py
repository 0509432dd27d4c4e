"""Stage ``scratch``: the baseline ladder, CNNs trained from scratch on MAMe.

Notebook ``01_scratch.ipynb`` calls ``load_splits`` -> ``train`` -> ``evaluate`` -> ``save``. Each rung of
the ladder is a variant in ``experiments/plan.yaml`` that turns on one more idea (depth, batch
normalisation, dropout, augmentation, L2, global average pooling). Early stopping on val accuracy
with the best epoch restored; training resumes after a kill from ``checkpoint_dir``. Never reads the
test split (the ``evaluate`` stage scores the best rung on it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mame import results
from mame.classes import CLASS_NAMES
from mame.stages import common
from mame.stages.common import Splits, load_splits  # noqa: F401  (the notebook calls scratch.load_splits)


@dataclass
class ScratchConfig:
    image_size: int = 64
    batch_size: int = 32
    epochs: int = 30
    learning_rate: float = 1e-3
    filters: list[int] = field(default_factory=lambda: [32, 64])
    convs_per_block: int = 1
    batch_norm: bool = False
    pooling: str = "flatten"
    dense_units: list[int] = field(default_factory=lambda: [128])
    dropout_rate: float = 0.0
    l2: float = 0.0
    augment: bool = False
    patience: int | None = 5
    precision: str = "auto"


@dataclass
class Trained:
    model: object
    config: ScratchConfig
    precision: str
    replicas: int
    result: object  # models.training.TrainResult


def train(splits: Splits, config: ScratchConfig, *, checkpoint_dir: str | Path | None, run_dir: str | Path,
          seed: int = 0, label: str = "scratch") -> Trained:
    """Build the rung's CNN and train it on train, monitoring val accuracy (resumes from ``checkpoint_dir``)."""
    import keras

    from mame.data import pipeline
    from mame.models import builders, training
    from mame.models.scratch import build_scratch_cnn

    keras.utils.set_random_seed(seed)
    precision = common.choose_precision(config.precision)
    builders.configure_precision(precision)
    strategy, replicas = common.distribution()
    batch = config.batch_size * replicas
    train_records, val_records = splits.records["train"], splits.records["val"]

    def build():
        model = build_scratch_cnn(num_classes=len(CLASS_NAMES), image_size=config.image_size, filters=config.filters,
                                  convs_per_block=config.convs_per_block, batch_norm=config.batch_norm,
                                  pooling=config.pooling, dense_units=config.dense_units,
                                  dropout_rate=config.dropout_rate, l2=config.l2)
        return model

    def prepare(model):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def train_data(first_epoch: int):
        return pipeline.make_dataset(train_records, splits.image_dir, image_size=config.image_size, batch_size=batch,
                                     shuffle=True, seed=seed, augment=config.augment, repeat=True,
                                     first_epoch=first_epoch)

    val_data = pipeline.make_dataset(val_records, splits.image_dir, image_size=config.image_size, batch_size=batch)
    result = training.train(build, [training.Phase("train", config.epochs, prepare)], train_data, val_data,
                            checkpoint_dir=checkpoint_dir or Path(run_dir) / "checkpoints",
                            steps_per_epoch=common.steps_per_epoch(len(train_records), batch),
                            patience=config.patience, run_dir=run_dir, label=label, strategy=strategy)
    return Trained(result.model, config, precision, replicas, result)


def evaluate(trained: Trained, splits: Splits) -> dict[str, dict]:
    """Predictions of the restored best model on train (no augmentation) and val."""
    return {split: common.predict(trained.model, splits.records[split], splits.image_dir,
                                  image_size=trained.config.image_size, batch_size=trained.config.batch_size)
            for split in ("train", "val")}


def summary(trained: Trained, predictions: dict[str, dict]) -> dict:
    """The rung's row of the baseline table."""
    acc = {split: float((p["y_true"] == p["y_pred"]).mean()) for split, p in predictions.items()}
    res = trained.result
    return {"train_accuracy": acc["train"], "val_accuracy": acc["val"], "n_params": int(trained.model.count_params()),
            "epochs_run": len(res.history.get("loss", [])), "best_epoch": res.best_epoch,
            "seconds_per_epoch": round(res.seconds_per_epoch, 2), "stopped_early": res.stopped_early,
            "resumed_from_epoch": res.resumed_from, "phases": res.phases}


def save(run_dir: str | Path, trained: Trained, predictions: dict[str, dict]) -> Path:
    run_dir = Path(run_dir)
    classification, artifacts = common.score(run_dir, predictions)
    artifacts["model"] = common.save_model(trained.model, run_dir)
    row = summary(trained, predictions)
    metrics = {**row, "config": asdict(trained.config), "precision": trained.precision,
               "replicas": trained.replicas, "batch_size_global": trained.config.batch_size * trained.replicas}
    notes = [f"trained from scratch (random initialisation), {trained.precision}"]
    if row["resumed_from_epoch"]:
        notes.append(f"resumed after epoch {row['resumed_from_epoch']} from the checkpoints of a killed run")
    result = {"headline": {"name": "val_accuracy", "value": row["val_accuracy"], "split": "val"},
              "metrics": metrics, "classification": classification, "artifacts": artifacts,
              "history": common.history_for_metrics(trained.result.history), "notes": notes}
    return results.save_result(run_dir, result)
