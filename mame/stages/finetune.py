"""Stage ``finetune``: an ImageNet backbone fine-tuned on MAMe, one step of the ladder per variant.

Notebook ``05_finetune.ipynb`` calls ``load_splits`` -> ``train`` -> ``predict`` -> ``save``. Two phases:
the new dense head first with the whole backbone frozen (``head_epochs`` at ``head_learning_rate``),
then the backbone from ``trainable_from`` on unfrozen at the step's ``learning_rate``; BatchNorm stays
in inference mode throughout. The best val epoch is restored and saved as ``model.keras`` for the
``evaluate`` and ``explain`` stages; val predictions and probabilities go to ``predictions_val.npz``.
Resumes after a kill from ``checkpoint_dir``. The run itself (data, training, predictions, result) is
``mame.stages.support.trainer``'s, shared with ``scratch``. Never reads the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mame.data.input_shape import PLACEMENT_DOC, SHAPE_DOC, InputShape
from mame.stages.support import trainer
from mame.stages.support.common import Splits, load_splits  # noqa: F401  (the notebook calls finetune.load_splits)
from mame.stages.support.parameters import Notebook, param
from mame.stages.support.trainer import Trained, predict, save, summary  # noqa: F401  (and predict, summary, save)


@dataclass
class FinetuneConfig(trainer.StageConfig):
    """The stage parameters of ``05_finetune.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    image_size: int | None = param(None, "None: the backbone's default (224; EfficientNetB3 300)")
    shape: str = param("fixed", SHAPE_DOC)
    placement: str = param("corner", PLACEMENT_DOC)
    weights: str = param("imagenet-if-cached", "random | imagenet-if-cached | imagenet-if-available | imagenet | "
                                               "path to a weights file")
    batch_size: int = param(128)
    head_epochs: int = param(2, "phase 1: the new head only, backbone frozen")
    head_learning_rate: float = param(1e-3)
    epochs: int = param(20, "phase 2: the backbone from trainable_from on, unfrozen")
    learning_rate: float = param(1e-4)
    trainable_from: str | None = param("auto", "auto: the registry's layer (VGG16 block4_conv1); None: keep the backbone frozen")
    dense_units: list[int] = param([512, 512])
    dropout_rate: float = param(0.0)
    l2: float = param(0.0)
    augment: bool = param(False)
    patience: int | None = param(None, "early stopping on val accuracy (None: never)")
    precision: str = param("auto", "auto | float32 | mixed_bfloat16")
    devices: list[str] | None = param(None, "MirroredStrategy over these devices (None: every visible GPU; one device: no strategy)")


NOTEBOOK = Notebook("05_finetune.ipynb", FinetuneConfig, backbone="vgg16", checkpoints=True,
                    outside=trainer.DataParameters)


def image_size(backbone: str, config: FinetuneConfig) -> int:
    from mame.models import backbones

    return config.image_size or backbones.get_backbone(backbone).default_size


def input_shape(backbone: str, config: FinetuneConfig) -> InputShape:
    """How the run shows images to its model (variable shape: about ``image_size``² pixels, aspect ratio kept)."""
    return InputShape(config.shape, image_size(backbone, config), config.placement)


def build_model(backbone: str, config: FinetuneConfig, num_classes: int, *, weights_choice="random"):
    """Backbone + the config's dense head for ``num_classes`` classes, backbone frozen (also what
    ``python -m mame estimate`` counts)."""
    from mame.models import builders

    shape = input_shape(backbone, config)
    return builders.build_transfer_model(backbone, num_classes=num_classes, image_size=shape.image_size,
                                         variable=shape.variable, placement=shape.placement,
                                         weights_choice=weights_choice, dense_units=config.dense_units,
                                         dropout_rate=config.dropout_rate, l2=config.l2, trainable_from=None)


def train(splits: Splits, backbone: str, config: FinetuneConfig, *, checkpoint_dir: str | Path | None,
          run_dir: str | Path, seed: int = 0, label: str = "finetune") -> Trained:
    """Build backbone + head and train it in two phases (resumes from ``checkpoint_dir``)."""
    from mame.models import backbones, builders

    spec = backbones.get_backbone(backbone)
    unfreeze = spec.finetune_from if config.trainable_from == "auto" else config.trainable_from
    choice = backbones.resolve_weights(backbone, config.weights, include_top=False)
    trainable: dict = {}  # the trainable/frozen parameter counts of each phase

    def unfrozen_from(name: str, first_layer: str | None):
        def unfreeze_and_count(model):
            trainable[name] = builders.set_trainable(model, first_layer)
        return unfreeze_and_count

    phases = [trainer.phase("head", config.head_epochs, config.head_learning_rate, trainable=unfrozen_from("head", None))]
    if unfreeze is not None and config.epochs > 0:
        phases.append(trainer.phase("finetune", config.epochs, config.learning_rate,
                                    trainable=unfrozen_from("finetune", unfreeze)))
    trained = trainer.fit(splits, config, lambda: build_model(backbone, config, len(splits.classes), weights_choice=choice), phases,
                          image_size=input_shape(backbone, config), checkpoint_dir=checkpoint_dir, run_dir=run_dir,
                          seed=seed, label=label, devices=config.devices)
    if "finetune" not in trainable and len(phases) > 1:  # resumed in (or after) the fine-tuning phase
        trainable["finetune"] = builders.set_trainable(trained.model, unfreeze)
    trained.details.update(backbone=backbone, trainable=trainable, trainable_from=unfreeze, weights=choice.used,
                           weights_reason=choice.reason, weights_source=choice.source)
    trained.notes += [choice.reason] if choice.reason else []
    return trained
