"""The resumable training loop on a tiny real Keras model: phases, checkpoints, best epoch, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mame import config, results
from mame.models import training

N, SIZE, CLASSES, BATCH = 48, 8, 3, 16


def data(first_epoch: int = 0):
    """A repeated stream of N small images whose class is visible (mean brightness), reshuffled per epoch."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % CLASSES
    x = (rng.uniform(0, 0.3, (N, SIZE, SIZE, 3)) + y[:, None, None, None] * 0.35).astype("float32")
    x, y = tf.constant(x), tf.constant(y)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(N), seed=tf.stack([tf.constant(0, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).map(lambda i: (tf.gather(x, i), tf.gather(y, i))).batch(BATCH)

    return tf.data.Dataset.counter(start=first_epoch).flat_map(one_epoch)


def val_data():
    return data().take(N // BATCH)


def build():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x))


def compile_at(rate):
    def prepare(model):
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return prepare


PHASES = [training.Phase("head", 2, compile_at(0.05)), training.Phase("finetune", 2, compile_at(0.01))]


class Killed(Exception):
    """Not KeyboardInterrupt: Keras' fit() swallows that one and returns as if training had ended."""


class KillAfter(keras.callbacks.Callback):
    """Stands in for a SIGKILL between epochs: the process stops after ``epochs`` completed epochs."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if self.epochs == 0:
            raise Killed(f"killed after epoch {epoch + 1} of this fit")
        self.epochs -= 1


def run(ckpt, tmp_path, **kwargs):
    return training.train(build, PHASES, data, val_data(), checkpoint_dir=ckpt, steps_per_epoch=N // BATCH,
                          run_dir=tmp_path, label="tiny", **kwargs)


def test_phases_history_best_epoch_and_progress_lines(tmp_path):
    result = run(tmp_path / "ckpt", tmp_path)
    history = result.history
    assert len(history["loss"]) == len(history["val_accuracy"]) == 4 and history["phase"] == ["head"] * 2 + ["finetune"] * 2
    assert result.phases == [{"name": "head", "epochs": 2}, {"name": "finetune", "epochs": 2}]
    assert result.best_epoch == int(np.argmax(history["val_accuracy"])) + 1  # the first of equal bests
    assert result.best_value == max(history["val_accuracy"])
    assert (result.epochs_run, result.resumed_from, result.stopped_early) == (4, 0, False)
    lines = [json.loads(line) for line in (tmp_path / results.PROGRESS_FILE).read_text().splitlines()]
    assert [(l["epoch"], l["epochs"], l["phase"]) for l in lines] == [(1, 4, "head"), (2, 4, "head"),
                                                                      (3, 4, "finetune"), (4, 4, "finetune")]
    assert lines[-1]["val_accuracy"] == pytest.approx(history["val_accuracy"][-1])
    state = training.load_state(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(
        {training.STATE_FILE, state["model_file"], state["best_file"]})  # earlier epochs pruned
    assert state["model_file"] == "epoch-0004.keras" and state["best_file"] == f"best-epoch-{result.best_epoch:04d}.weights.h5"
    best = build()
    best.load_weights(tmp_path / "ckpt" / state["best_file"])
    np.testing.assert_allclose(best.get_weights()[0], result.model.get_weights()[0])  # the best epoch restored


@pytest.mark.parametrize("killed_after", [2, 3])  # a kill inside a one-phase run: tests/stages/test_resume.py
def test_a_killed_run_resumes_after_its_last_epoch_with_history_and_optimizer(tmp_path, killed_after):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        training.train(build, PHASES, data, val_data(), checkpoint_dir=ckpt, steps_per_epoch=N // BATCH,
                       run_dir=tmp_path, extra_callbacks=[KillAfter(killed_after - 1)])
    state = training.load_state(ckpt)
    assert state["epoch"] == killed_after and len(state["history"]["loss"]) == killed_after
    first_losses = list(state["history"]["loss"])
    resumed = run(ckpt, tmp_path)
    assert resumed.resumed_from == killed_after and resumed.epochs_run == 4 - killed_after
    assert len(resumed.history["loss"]) == 4 and resumed.history["loss"][:killed_after] == first_losses
    assert resumed.history["phase"] == ["head"] * 2 + ["finetune"] * 2
    steps_in_phase = (4 - 2 if killed_after >= 2 else 2) * (N // BATCH)
    assert int(resumed.model.optimizer.iterations) == steps_in_phase  # the finetune phase's own optimizer
    if killed_after == 3:  # resumed inside the finetune phase: its Adam state came back with the model
        assert float(resumed.model.optimizer.learning_rate) == pytest.approx(0.01)
    epochs = [json.loads(l)["epoch"] for l in (tmp_path / results.PROGRESS_FILE).read_text().splitlines()]
    assert epochs == list(range(1, killed_after + 1)) + list(range(killed_after + 1, 5))


def test_patience_stops_a_phase_and_the_next_phase_still_runs(tmp_path):
    flat = [training.Phase("head", 5, compile_at(0.0)), training.Phase("finetune", 4, compile_at(0.0))]
    result = training.train(build, flat, data, val_data(), checkpoint_dir=tmp_path / "c", steps_per_epoch=N // BATCH,
                            patience=2)
    # a learning rate of 0 never improves on epoch 1: each phase stops after 2 epochs without a better val
    assert result.history["phase"] == ["head"] * 3 + ["finetune"] * 2 and result.stopped_early


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    code = f"""
import sys, json
sys.path.insert(0, {str(config.ROOT)!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mame.stages.support import common
from tests.stages.test_training import PHASES, build, data, val_data, N, BATCH
from mame.models import training
strategy, replicas = common.distribution(["/cpu:0", "/cpu:1"])
result = training.train(build, PHASES[:1], data, val_data(), checkpoint_dir={str(tmp_path / 'ckpt')!r},
                        steps_per_epoch=N // BATCH, strategy=strategy)
print(json.dumps({{"replicas": replicas, "strategy": type(strategy).__name__, "epochs": len(result.history["loss"]),
                  "replicas_in_sync": strategy.num_replicas_in_sync}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"replicas": 2, "strategy": "MirroredStrategy", "epochs": 2, "replicas_in_sync": 2}


def test_a_kill_between_the_model_and_the_state_resumes_from_the_older_consistent_pair(tmp_path, monkeypatch):
    """The model of epoch 2 is on disk but its state is not: the resume must use epoch 1's model and
    state together (never epoch 2's weights under epoch 1's history)."""
    ckpt, real_write = tmp_path / "ckpt", results.atomic_write_json

    def dies_at_epoch_2(path, data):
        if path.name == training.STATE_FILE and data.get("epoch") == 2:
            raise Killed("killed after writing the model, before the state")
        return real_write(path, data)

    monkeypatch.setattr(results, "atomic_write_json", dies_at_epoch_2)
    with pytest.raises(Killed):
        run(ckpt, tmp_path)
    monkeypatch.setattr(results, "atomic_write_json", real_write)
    assert (ckpt / "epoch-0002.keras").is_file() and training.load_state(ckpt)["model_file"] == "epoch-0001.keras"
    resumed = run(ckpt, tmp_path)
    assert resumed.resumed_from == 1 and len(resumed.history["loss"]) == 4
    assert not (ckpt / "epoch-0002.keras").exists()


def data_turning_wrong(from_epoch: int):
    """``data``, except that from global epoch ``from_epoch`` on every training label is the next class: the
    model unlearns, so its best validation epoch comes before its last."""
    def for_epoch(first_epoch: int):
        turned = lambda epoch, x, y: (x, tf.where(epoch >= from_epoch, (y + 1) % CLASSES, y))
        counted = tf.data.Dataset.counter(start=first_epoch).flat_map(
            lambda epoch: data(0).take(N // BATCH).map(lambda x, y: turned(epoch, x, y)))
        return counted
    return for_epoch


def test_the_best_validation_epoch_is_restored_not_the_last(tmp_path):
    phases = [training.Phase("head", 2, compile_at(0.1)), training.Phase("finetune", 3, compile_at(0.1))]
    result = training.train(build, phases, data_turning_wrong(4), val_data(), checkpoint_dir=tmp_path / "ckpt",
                            steps_per_epoch=N // BATCH)
    accuracy = result.history["val_accuracy"]
    assert result.best_epoch == int(np.argmax(accuracy)) + 1 < 5 and accuracy[-1] < result.best_value  # a best before the last
    last = keras.models.load_model(tmp_path / "ckpt" / training.load_state(tmp_path / "ckpt")["model_file"])
    assert not np.allclose(last.get_weights()[0], result.model.get_weights()[0])
    _, restored = result.model.evaluate(val_data(), verbose=0)
    assert restored == pytest.approx(result.best_value)  # the model handed back scores what its best epoch scored


def test_a_state_whose_random_number_states_do_not_fit_the_model_is_refused_naming_it(tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        training.train(build, PHASES, data, val_data(), checkpoint_dir=ckpt, steps_per_epoch=N // BATCH,
                       extra_callbacks=[KillAfter(0)])
    state = training.load_state(ckpt)
    assert state["seed_states"] == []  # the toy model draws no random numbers
    results.atomic_write_json(ckpt / training.STATE_FILE, {**state, "seed_states": [[1, 2]]})
    with pytest.raises(ValueError, match=r"state\.json: records 1 random-number states, the model has 0 generators"):
        run(ckpt, tmp_path)


def test_each_phase_traces_its_training_step_once_with_the_numbers_unchanged(tmp_path, monkeypatch):
    """The optimizer's and the metrics' variables exist before fit traces the step (``build_before_tracing``),
    so TensorFlow traces it once per phase, not twice; the weights trained are the same to the last bit."""
    def counted(traces):
        def make():
            model = build()
            step = model.train_step

            def train_step(batch):
                traces.append(1)  # runs once per trace, not per batch
                return step(batch)
            model.train_step = train_step
            return model
        return make

    once, twice = [], []
    built = training.train(counted(once), PHASES, data, val_data(), checkpoint_dir=tmp_path / "a", steps_per_epoch=N // BATCH)
    monkeypatch.setattr(training, "build_before_tracing", lambda model, data: None)
    lazy = training.train(counted(twice), PHASES, data, val_data(), checkpoint_dir=tmp_path / "b", steps_per_epoch=N // BATCH)
    assert (len(once), len(twice)) == (len(PHASES), 2 * len(PHASES))
    for a, b in zip(built.model.get_weights(), lazy.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert built.history["val_accuracy"] == lazy.history["val_accuracy"]
