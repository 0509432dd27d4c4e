"""The README's promise, proven directly at smoke scale: a training run killed after an epoch and started
again sees the batches an uninterrupted run sees and ends with the same weights. The scratch stage's own
``train`` (``mame.stages.support.trainer.fit``: the data pipeline with shuffling and augmentation, dropout, batch
normalisation, Adam, checkpoints) on smoke-sized synthetic MAMe."""

from __future__ import annotations

import numpy as np
import pytest

from mame import results
from mame.data import pipeline
from mame.data.synthetic.generator import SynthSpec, ensure
from mame.stages import scratch
from mame.stages.support import common

EPOCHS, KILLED_AFTER = 2, 1


class Killed(Exception):
    """Stands in for a SIGKILL between epochs (not KeyboardInterrupt, which Keras' fit() swallows)."""


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> common.Splits:
    data_dir = ensure(tmp_path_factory.mktemp("resume") / "smoke", SynthSpec(4, 2, 0.004, 48))
    return common.load_splits(data_dir)


def config() -> scratch.ScratchConfig:
    """A regularised rung at smoke size: everything that draws random numbers is on."""
    return scratch.ScratchConfig(image_size=32, batch_size=32, epochs=EPOCHS, learning_rate=3e-3, filters=[8, 16],
                                 batch_norm=True, dense_units=[16], dropout_rate=0.5, l2=1e-4, augment=True,
                                 patience=None, precision="float32")


def record_batches(monkeypatch) -> list:
    """Every training batch the run takes from the real pipeline, in order: (labels, a checksum of the images)."""
    seen, make = [], pipeline.make_dataset

    def recording(*args, **kwargs):
        import tensorflow as tf

        dataset = make(*args, **kwargs)
        if not kwargs.get("shuffle"):  # validation and prediction data
            return dataset

        def note(images, labels):
            seen.append((labels.numpy().tolist(), round(float(tf.reduce_sum(images)), 2)))
            return labels

        def noted(images, labels):
            return images, tf.ensure_shape(tf.py_function(note, [images, labels], tf.int32), labels.shape)

        return dataset.map(noted)

    monkeypatch.setattr(pipeline, "make_dataset", recording)
    return seen


def kill_after(epoch: int, monkeypatch) -> None:
    """The process dies right after epoch ``epoch``'s checkpoint and state are on disk."""
    report = results.report_progress

    def dies(run_dir, **fields):
        report(run_dir, **fields)
        if fields.get("epoch") == epoch:
            raise Killed(f"killed after epoch {epoch}")

    monkeypatch.setattr(results, "report_progress", dies)


def test_a_killed_and_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(splits, tmp_path, monkeypatch):
    straight_batches = record_batches(monkeypatch)
    straight = scratch.train(splits, config(), checkpoint_dir=tmp_path / "straight", run_dir=tmp_path, seed=3)
    steps = common.steps_per_epoch(len(splits.records["train"]), 32)
    assert len(straight_batches) >= EPOCHS * steps

    monkeypatch.undo()
    first_batches = record_batches(monkeypatch)
    kill_after(KILLED_AFTER, monkeypatch)
    ckpt = tmp_path / "killed"
    with pytest.raises(Killed):
        scratch.train(splits, config(), checkpoint_dir=ckpt, run_dir=tmp_path, seed=3)
    monkeypatch.undo()
    resumed_batches = record_batches(monkeypatch)
    resumed = scratch.train(splits, config(), checkpoint_dir=ckpt, run_dir=tmp_path, seed=3)

    assert resumed.result.resumed_from == KILLED_AFTER and resumed.result.epochs_run == EPOCHS - KILLED_AFTER
    cut = KILLED_AFTER * steps
    assert first_batches[:cut] == straight_batches[:cut]
    assert resumed_batches[:(EPOCHS - KILLED_AFTER) * steps] == straight_batches[cut:EPOCHS * steps]
    assert resumed.result.history["loss"] == pytest.approx(straight.result.history["loss"], rel=1e-5)
    assert resumed.result.best_epoch == straight.result.best_epoch
    for a, b in zip(resumed.model.get_weights(), straight.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
