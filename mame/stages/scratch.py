"""Stage ``scratch``: the baseline ladder, CNNs trained from scratch on MAMe.

Notebook ``01_scratch.ipynb`` calls ``load_splits`` -> ``train`` -> ``predict`` -> ``save``. Each rung of
the ladder is a variant in ``experiments/plan.yaml`` that turns on one more idea (depth, batch
normalisation, dropout, augmentation, L2, global average pooling). One phase; early stopping on val
accuracy with the best epoch restored; training resumes after a kill from ``checkpoint_dir``. The run
itself (data, training, predictions, result) is ``mame.stages.support.trainer``'s, shared with ``finetune``.
Never reads the test split (the ``evaluate`` stage scores the best rung on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mame.stages.support import trainer
from mame.stages.support.common import Splits, load_splits  # noqa: F401  (the notebook calls scratch.load_splits)
from mame.stages.support.parameters import Notebook, param
from mame.stages.support.trainer import Trained, predict, save, summary  # noqa: F401  (and predict, summary, save)


@dataclass
class ScratchConfig(trainer.StageConfig):
    """The stage parameters of ``01_scratch.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    image_size: int = param(64)
    batch_size: int = param(32)
    epochs: int = param(30)
    learning_rate: float = param(1e-3)
    filters: list[int] = param([32, 64], "one conv block per entry")
    convs_per_block: int = param(1)
    batch_norm: bool = param(False)
    pooling: str = param("flatten", "flatten | avg (global average pooling)")
    dense_units: list[int] = param([128])
    dropout_rate: float = param(0.0)
    l2: float = param(0.0)
    augment: bool = param(False, "flips, crops, brightness and contrast jitter in the tf.data pipeline")
    patience: int | None = param(5, "early stopping on val accuracy (None: never)")
    precision: str = param("auto", "auto | float32 | mixed_bfloat16")


NOTEBOOK = Notebook("01_scratch.ipynb", ScratchConfig, checkpoints=True, outside=trainer.DataParameters)


def build_model(config: ScratchConfig, num_classes: int):
    """The rung's CNN for ``num_classes`` classes (also what ``python -m mame estimate`` counts)."""
    from mame.models.cnn_ladder import build_scratch_cnn

    return build_scratch_cnn(num_classes=num_classes, image_size=config.image_size, filters=config.filters,
                             convs_per_block=config.convs_per_block, batch_norm=config.batch_norm,
                             pooling=config.pooling, dense_units=config.dense_units,
                             dropout_rate=config.dropout_rate, l2=config.l2)


def train(splits: Splits, config: ScratchConfig, *, checkpoint_dir: str | Path | None, run_dir: str | Path,
          seed: int = 0, label: str = "scratch") -> Trained:
    """Build the rung's CNN and train it on train in one phase, monitoring val accuracy (resumes from
    ``checkpoint_dir``)."""
    phases = [trainer.phase("train", config.epochs, config.learning_rate)]
    trained = trainer.fit(splits, config, lambda: build_model(config, len(splits.classes)), phases, image_size=config.image_size,
                          checkpoint_dir=checkpoint_dir, run_dir=run_dir, seed=seed, label=label)
    trained.notes.append(f"trained from scratch (random initialisation), {trained.precision}")
    return trained
