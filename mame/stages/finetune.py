"""Stage ``finetune``: an ImageNet backbone fine-tuned on MAMe, one step of the ladder per variant.

Notebook ``05_finetune.ipynb`` calls ``load_splits`` -> ``train`` -> ``evaluate`` -> ``save``. Two phases:
the new dense head first with the whole backbone frozen (``head_epochs`` at ``head_learning_rate``),
then the backbone from ``trainable_from`` on unfrozen at the step's ``learning_rate``; BatchNorm stays
in inference mode throughout. The best val epoch is restored and saved as ``model.keras`` for the
``evaluate`` and ``explain`` stages; val predictions and probabilities go to ``predictions_val.npz``.
Resumes after a kill from ``checkpoint_dir``. Never reads the test split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mame import results
from mame.classes import CLASS_NAMES
from mame.stages import common
from mame.stages.common import Splits, load_splits  # noqa: F401  (the notebook calls finetune.load_splits)


@dataclass
class FinetuneConfig:
    image_size: int | None = None          # None: the backbone's default (224; EfficientNetB3 300)
    weights: str = "imagenet-if-cached"
    batch_size: int = 128
    head_epochs: int = 2
    head_learning_rate: float = 1e-3
    epochs: int = 20
    learning_rate: float = 1e-4
    trainable_from: str | None = "auto"    # auto: the registry's choice; None: backbone stays frozen
    dense_units: list[int] = field(default_factory=lambda: [512, 512])
    dropout_rate: float = 0.0
    l2: float = 0.0
    augment: bool = False
    patience: int | None = None
    precision: str = "auto"
    devices: list[str] | None = None       # MirroredStrategy over these; None: every visible GPU


@dataclass
class Trained:
    model: object
    backbone: str
    config: FinetuneConfig
    image_size: int
    trainable_from: str | None
    weights: object                        # backbones.WeightsChoice
    precision: str
    replicas: int
    params: dict
    result: object                         # models.training.TrainResult


def train(splits: Splits, backbone: str, config: FinetuneConfig, *, checkpoint_dir: str | Path | None,
          run_dir: str | Path, seed: int = 0, label: str = "finetune") -> Trained:
    """Build backbone + head and train it in two phases (resumes from ``checkpoint_dir``)."""
    import keras

    from mame.data import pipeline
    from mame.models import backbones, builders, training

    keras.utils.set_random_seed(seed)
    spec = backbones.get_backbone(backbone)
    size = config.image_size or spec.default_size
    unfreeze = spec.finetune_from if config.trainable_from == "auto" else config.trainable_from
    precision = common.choose_precision(config.precision)
    builders.configure_precision(precision)
    strategy, replicas = common.distribution(config.devices)
    batch = config.batch_size * replicas
    choice = backbones.resolve_weights(backbone, config.weights, include_top=False)
    params: dict = {}

    def build():
        return builders.build_transfer_model(backbone, num_classes=len(CLASS_NAMES), image_size=size,
                                             weights_choice=choice, dense_units=config.dense_units,
                                             dropout_rate=config.dropout_rate, l2=config.l2, trainable_from=None)

    def head(model):
        params["head"] = builders.set_trainable(model, None)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.head_learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def finetune(model):
        params["finetune"] = builders.set_trainable(model, unfreeze)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def train_data(first_epoch: int):
        return pipeline.make_dataset(splits.records["train"], splits.image_dir, image_size=size, batch_size=batch,
                                     shuffle=True, seed=seed, augment=config.augment, repeat=True,
                                     first_epoch=first_epoch)

    phases = [training.Phase("head", config.head_epochs, head)]
    if unfreeze is not None and config.epochs > 0:
        phases.append(training.Phase("finetune", config.epochs, finetune))
    val_data = pipeline.make_dataset(splits.records["val"], splits.image_dir, image_size=size, batch_size=batch)
    result = training.train(build, phases, train_data, val_data,
                            checkpoint_dir=checkpoint_dir or Path(run_dir) / "checkpoints",
                            steps_per_epoch=common.steps_per_epoch(len(splits.records["train"]), batch),
                            patience=config.patience, run_dir=run_dir, label=label, strategy=strategy)
    if "finetune" not in params and len(phases) > 1:  # resumed in (or after) the fine-tuning phase
        params["finetune"] = builders.set_trainable(result.model, unfreeze)
    return Trained(result.model, backbone, config, size, unfreeze, choice, precision, replicas, params, result)


def evaluate(trained: Trained, splits: Splits) -> dict[str, dict]:
    """Predictions of the restored best model on train (no augmentation) and val, with probabilities."""
    return {split: common.predict(trained.model, splits.records[split], splits.image_dir,
                                  image_size=trained.image_size, batch_size=trained.config.batch_size)
            for split in ("train", "val")}


def summary(predictions: dict[str, dict]) -> dict[str, float]:
    """Accuracy per split."""
    return {f"{split}_accuracy": float((p["y_true"] == p["y_pred"]).mean()) for split, p in predictions.items()}


def save(run_dir: str | Path, trained: Trained, predictions: dict[str, dict]) -> Path:
    run_dir = Path(run_dir)
    classification, artifacts = common.score(run_dir, predictions)
    artifacts["model"] = common.save_model(trained.model, run_dir)
    acc = summary(predictions)
    res = trained.result
    metrics = {"backbone": trained.backbone, **acc,
               "n_params": int(trained.model.count_params()), "trainable": trained.params,
               "image_size": trained.image_size, "trainable_from": trained.trainable_from,
               "weights": trained.weights.used, "weights_reason": trained.weights.reason,
               "epochs_run": len(res.history.get("loss", [])), "best_epoch": res.best_epoch,
               "seconds_per_epoch": round(res.seconds_per_epoch, 2), "phases": res.phases,
               "resumed_from_epoch": res.resumed_from, "precision": trained.precision, "replicas": trained.replicas,
               "batch_size_global": trained.config.batch_size * trained.replicas, "config": asdict(trained.config)}
    notes = [trained.weights.reason] if trained.weights.reason else []
    if trained.replicas > 1:
        notes.append(f"trained on {trained.replicas} devices (MirroredStrategy), global batch "
                     f"{metrics['batch_size_global']}")
    if res.resumed_from:
        notes.append(f"resumed after epoch {res.resumed_from} from the checkpoints of a killed run")
    result = {"headline": {"name": "val_accuracy", "value": acc["val_accuracy"], "split": "val"},
              "metrics": metrics, "classification": classification, "artifacts": artifacts,
              "history": common.history_for_metrics(res.history), "notes": notes}
    return results.save_result(run_dir, result)
