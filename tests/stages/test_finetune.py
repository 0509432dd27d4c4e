"""The training stages' functions on smoke data: fine-tuning's two phases' trainable sets, and training under
MirroredStrategy on two logical CPU devices (what two GPUs would do), batch scaled and said; the scratch
stage through the same run (``mame.stages.support.trainer``), its metrics and its resume note."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mame import config, results
from mame.engine.plan.load import load_plan
from mame.engine.run.study import prepare_dataset
from mame.stages import scratch
from tests.helpers import TEST_DATA_HOME

pytestmark = pytest.mark.slow

# What the deck and the later stages read from every training run's metrics (plus the stage's own keys).
SHARED_KEYS = {"train_accuracy", "val_accuracy", "n_params", "epochs_run", "best_epoch", "seconds_per_epoch",
               "stopped_early", "resumed_from_epoch", "phases", "image_size", "precision", "replicas",
               "batch_size_global", "config", "shape", "tensorflow_gpus"}


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    path = prepare_dataset(load_plan(config.EXPERIMENTS_DIR / "plan.yaml").profile("smoke"))["path"]
    mp.undo()
    return path


def test_two_phases_train_the_head_then_the_chosen_blocks_and_mirror_over_two_devices(smoke_dir, tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(config.ROOT)!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mame.stages import finetune
splits = finetune.load_splits({smoke_dir!r}, max_per_class=2, seed=0)
config = finetune.FinetuneConfig(image_size=32, weights="random", batch_size=8, head_epochs=1, epochs=1,
                                 dense_units=[16], precision="float32", devices=["/cpu:0", "/cpu:1"])
trained = finetune.train(splits, "vgg16", config, checkpoint_dir=None, run_dir={str(tmp_path)!r})
finetune.save({str(tmp_path)!r}, trained, finetune.predict(trained, splits))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / results.RESULT_FILE).read_text())
    m = result["metrics"]
    assert set(m) == SHARED_KEYS | {"backbone", "trainable", "trainable_from", "weights", "weights_reason",
                                    "weights_source"}
    assert (m["replicas"], m["batch_size_global"], m["image_size"], m["stopped_early"]) == (2, 16, 32, False)
    assert any("MirroredStrategy" in note and "global batch 16" in note for note in result["notes"])
    head, tuned = m["trainable"]["head"], m["trainable"]["finetune"]
    assert head["trainable_params"] == 512 * 16 + 16 + 16 * 29 + 29  # only the new head in phase 1
    assert tuned["frozen_params"] == 1_735_488  # VGG16 blocks 1-3 stay frozen in phase 2
    assert m["phases"] == [{"name": "head", "epochs": 1}, {"name": "finetune", "epochs": 1}]
    assert (tmp_path / "model.keras").is_file() and set(result["classification"]) == {"train", "val"}


def test_scratch_trains_saves_and_notes_a_resume_through_the_shared_run(smoke_dir, tmp_path):
    splits = scratch.load_splits(smoke_dir, max_per_class=2, seed=0)
    config = scratch.ScratchConfig(image_size=16, batch_size=8, epochs=1, filters=[4], dense_units=[8],
                                   precision="float32")
    for attempt in ("first", "again"):  # the second run finds the first one's finished checkpoints
        run_dir = tmp_path / attempt
        run_dir.mkdir()
        trained = scratch.train(splits, config, checkpoint_dir=tmp_path / "ckpt", run_dir=run_dir)
        scratch.save(run_dir, trained, scratch.predict(trained, splits))
    first, again = (json.loads((tmp_path / a / results.RESULT_FILE).read_text()) for a in ("first", "again"))
    m = again["metrics"]
    assert set(m) == SHARED_KEYS and m["config"] == first["metrics"]["config"]
    assert (m["image_size"], m["epochs_run"], m["phases"]) == (16, 1, [{"name": "train", "epochs": 1}])
    assert (first["metrics"]["resumed_from_epoch"], m["resumed_from_epoch"]) == (0, 1)
    assert first["notes"] == ["trained from scratch (random initialisation), float32"]
    assert again["notes"] == first["notes"] + ["resumed after epoch 1 from the checkpoints of a killed run"]
    assert m["val_accuracy"] == again["headline"]["value"] == first["metrics"]["val_accuracy"]
