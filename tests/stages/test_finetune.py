"""The fine-tuning stage's functions on smoke data: the two phases' trainable sets, and training under
MirroredStrategy on two logical CPU devices (what two GPUs would do), batch scaled and said."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mame import config, results
from mame.engine.plan import load_plan
from mame.engine.runner import prepare_dataset
from tests.helpers import TEST_DATA_HOME

pytestmark = pytest.mark.slow


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
finetune.save({str(tmp_path)!r}, trained, finetune.evaluate(trained, splits))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / results.RESULT_FILE).read_text())
    m = result["metrics"]
    assert (m["replicas"], m["batch_size_global"]) == (2, 16)
    assert any("MirroredStrategy" in note and "global batch 16" in note for note in result["notes"])
    head, tuned = m["trainable"]["head"], m["trainable"]["finetune"]
    assert head["trainable_params"] == 512 * 16 + 16 + 16 * 29 + 29  # only the new head in phase 1
    assert tuned["frozen_params"] == 1_735_488  # VGG16 blocks 1-3 stay frozen in phase 2
    assert m["phases"] == [{"name": "head", "epochs": 1}, {"name": "finetune", "epochs": 1}]
    assert (tmp_path / "model.keras").is_file() and set(result["classification"]) == {"train", "val"}
