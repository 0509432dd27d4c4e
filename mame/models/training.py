"""Training Keras models, resumably: phases, per-epoch checkpoints, the best epoch, progress lines.

A run trains in one or more phases (the fine-tuning stage: the head with the base frozen, then the
chosen blocks unfrozen). After every epoch the model (with its optimizer state), the epoch counter and
the history are written to ``checkpoint_dir``; ``train`` started again on the same folder resumes after
the last completed epoch, with the history continuous. The best epoch on ``monitor`` is kept (its record
survives a resume) and restored at the end. The state also holds the model's random-number state (dropout
masks), which Keras does not save with a model: a resumed run draws the masks an uninterrupted one draws.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from mame import results
from mame.files import atomic_path
from mame.models import builders

MODEL_FILE = "epoch-{epoch:04d}.keras"         # the model (with optimizer state) after that epoch
BEST_FILE = "best-epoch-{epoch:04d}.weights.h5"  # the weights of the best epoch so far
STATE_FILE = "state.json"  # written last after each epoch; names the two files above that belong to it


@dataclass
class Phase:
    """``epochs`` epochs of training after ``prepare(model)`` (set what is trainable, then compile)."""
    name: str
    epochs: int
    prepare: Callable[[keras.Model], None]


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list]          # one value per epoch over all phases, plus "phase"
    best_epoch: int                   # 1-based, over all phases
    best_value: float
    epochs_run: int                   # epochs trained in this process (0 when everything was resumed)
    resumed_from: int                 # epochs already done when this process started
    seconds_per_epoch: float
    stopped_early: bool = False
    phases: list[dict] = field(default_factory=list)


def _save_atomically(save: Callable[[Path], object], path: Path) -> None:
    """``save`` (``model.save``, ``model.save_weights``) to a temp file that keeps ``path``'s endings (Keras checks
    them: ``.keras``, ``.weights.h5``), renamed into place; no fsync: hundreds of MB every epoch."""
    with atomic_path(path, suffix=".tmp" + "".join(path.suffixes), fsync=False) as tmp:
        save(tmp)


class _EpochState(keras.callbacks.Callback):
    """After each epoch: history, checkpoint, best weights, early stopping, one progress line."""

    def __init__(self, state: dict, checkpoint_dir: Path, run_dir: Path | None, label: str,
                 total_epochs: int, monitor: str, patience: int | None):
        super().__init__()
        self.state, self.dir, self.run_dir, self.label = state, checkpoint_dir, run_dir, label
        self.total, self.monitor, self.patience = total_epochs, monitor, patience
        self.started = time.perf_counter()
        self.parent = os.getppid()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if os.getppid() != self.parent:
            # The process that started this kernel (the runner) was killed: a rerun may already be
            # resuming from these checkpoints, so stop here without writing anything.
            os._exit(1)
        seconds = time.perf_counter() - self.started
        state, history = self.state, self.state["history"]
        for key, value in (logs or {}).items():
            history.setdefault(key, []).append(float(value))
        history.setdefault("phase", []).append(state["phase_name"])
        history.setdefault("seconds", []).append(round(seconds, 3))
        state["epoch"] += 1
        state["phase_epoch"] = epoch + 1
        value = float((logs or {}).get(self.monitor, float("nan")))
        if not math.isnan(value) and value > state["best_value"]:
            state["best_value"], state["best_epoch"] = value, state["epoch"]
            state["best_file"] = BEST_FILE.format(epoch=state["epoch"])
            _save_atomically(self.model.save_weights, self.dir / state["best_file"])
        since_best = state["epoch"] - max(state["best_epoch"], state["phase_start"])
        if self.patience is not None and since_best >= self.patience:
            self.model.stop_training = True
            state["stopped_early"] = True
        state["model_file"] = MODEL_FILE.format(epoch=state["epoch"])
        state["seed_states"] = seed_states(self.model)
        _save_atomically(self.model.save, self.dir / state["model_file"])
        # The state is written last and names its files: a kill at any point leaves the previous
        # epoch's state with the files it names, never a newer model under an older history.
        results.atomic_write_json(self.dir / STATE_FILE, state)
        _prune(self.dir, keep={state["model_file"], state.get("best_file")})
        if self.run_dir is not None:
            results.report_progress(self.run_dir, run=self.label, epoch=state["epoch"], epochs=self.total,
                                    phase=state["phase_name"], loss=(logs or {}).get("loss"),
                                    val_accuracy=(logs or {}).get("val_accuracy"), seconds=round(seconds, 1))


def _seed_generators(model: keras.Model) -> list:
    """The random-number generators of the model's layers (dropout, random layers), in layer order."""
    return [generator for layer in model._flatten_layers() for generator in layer._seed_generators]


def seed_states(model: keras.Model) -> list[list[int]]:
    """Each of the model's random-number generators' state (Keras saves none of them with the model)."""
    return [[int(v) for v in generator.state.numpy().ravel()] for generator in _seed_generators(model)]


def restore_seed_states(model: keras.Model, states: list[list[int]] | None, checkpoint_dir: Path) -> None:
    """Put back the states ``seed_states`` recorded (None: a state written before they were recorded)."""
    if states is None:
        return
    generators = _seed_generators(model)
    if len(generators) != len(states):
        raise ValueError(f"{checkpoint_dir / STATE_FILE}: records {len(states)} random-number states, the model has "
                         f"{len(generators)} generators; remove the folder to train from the start")
    for generator, state in zip(generators, states):
        generator.state.assign(keras.ops.convert_to_tensor(state, dtype=generator.state.dtype))


def _prune(folder: Path, keep: set) -> None:
    """Remove the epoch files of earlier epochs (and temp files of interrupted writes)."""
    for path in folder.iterdir():
        if path.name != STATE_FILE and path.name not in keep:
            path.unlink(missing_ok=True)


def load_state(checkpoint_dir: Path) -> dict | None:
    """The state of the last completed epoch in ``checkpoint_dir``, or None."""
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    if not (Path(checkpoint_dir) / state.get("model_file", "")).is_file():
        return None
    return state


def build_before_tracing(model: keras.Model, data) -> None:
    """Create the optimizer's slots and the compiled metrics' and loss's state now, from ``data``'s element shapes
    (no batch is read), as Keras does itself only under a distribution strategy. Otherwise they are created
    while ``fit`` traces its training step, and TensorFlow traces that step a second time once they exist:
    seconds per phase for an EfficientNet (a test counts the traces). Numbers are unchanged: the variables
    start at zero either way, and no random number is drawn."""
    symbolic_build = getattr(model, "_symbolic_build", None)  # Keras 3's trainer (tests/stages/test_training.py counts the traces)
    spec = getattr(data, "element_spec", None)
    if symbolic_build is None or spec is None:
        return
    import tensorflow as tf

    def zeros(s):  # a batch of one; a variable-shape image 64 px a side (deep enough for every backbone's pooling)
        return tf.zeros([(1 if i == 0 else 64) if d is None else d for i, d in enumerate(s.shape)], s.dtype)

    batch = tf.nest.map_structure(zeros, spec)
    symbolic_build(data_batch=batch)  # only the shapes and dtypes are read


def train(build: Callable[[], keras.Model], phases: Sequence[Phase], train_data_for_epoch: Callable[[int], object],
          val_data, *, checkpoint_dir: str | os.PathLike, steps_per_epoch: int | None = None,
          monitor: str = "val_accuracy", patience: int | None = None, run_dir: str | os.PathLike | None = None,
          label: str = "", strategy=None, extra_callbacks: Sequence = (), verbose: int = 0) -> TrainResult:
    """Train ``build()`` through ``phases``, resuming from ``checkpoint_dir`` when it holds a state.

    ``train_data_for_epoch(k)`` returns the training data starting at global epoch ``k`` (0-based), so a
    resumed run sees the batches an uninterrupted one would. ``patience`` stops a phase after that many
    epochs without a better ``monitor`` (None: never). Models are built and loaded in ``strategy``'s scope.
    ``extra_callbacks`` run after the checkpoint of each epoch is written.
    """
    ckpt = Path(checkpoint_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    total = sum(p.epochs for p in phases)
    state = load_state(ckpt)
    resumed_from = state["epoch"] if state else 0
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if state is None:
            model = build()
            state = {"epoch": 0, "phase": 0, "phase_epoch": 0, "phase_start": 0, "phase_name": phases[0].name,
                     "history": {}, "best_value": float("-inf"), "best_epoch": 0, "stopped_early": False,
                     "phase_done": False}
            fresh_phase = True
        else:
            model = builders.load_model(ckpt / state["model_file"])
            restore_seed_states(model, state.get("seed_states"), ckpt)
            fresh_phase = state["phase_done"]
            if fresh_phase:
                state.update(phase=state["phase"] + 1, phase_epoch=0, phase_done=False, stopped_early=False)
        epochs_before = state["epoch"]
        for index in range(state["phase"], len(phases)):
            phase = phases[index]
            if fresh_phase:
                state.update(phase_start=state["epoch"])
                phase.prepare(model)
            state.update(phase=index, phase_name=phase.name, phase_done=False)
            fresh_phase = True
            if state["phase_epoch"] < phase.epochs and not state["stopped_early"]:
                callback = _EpochState(state, ckpt, Path(run_dir) if run_dir else None, label, total, monitor, patience)
                train_data = train_data_for_epoch(state["epoch"])
                build_before_tracing(model, train_data)
                model.fit(train_data, validation_data=val_data,
                          initial_epoch=state["phase_epoch"], epochs=phase.epochs, steps_per_epoch=steps_per_epoch,
                          callbacks=[callback, *extra_callbacks], verbose=verbose)
            state.update(phase_done=True, phase_epoch=0, stopped_early=False)
            results.atomic_write_json(ckpt / STATE_FILE, state)
        if state.get("best_file") and (ckpt / state["best_file"]).is_file():
            model.load_weights(ckpt / state["best_file"])
    run = state["epoch"] - epochs_before
    history = state["history"]
    return TrainResult(model=model, history=history, best_epoch=state["best_epoch"], best_value=state["best_value"],
                       epochs_run=run, resumed_from=resumed_from,
                       seconds_per_epoch=(sum(history.get("seconds", [])) / max(1, len(history.get("seconds", [])))),
                       stopped_early=state["epoch"] < total,
                       phases=[{"name": p.name, "epochs": history.get("phase", []).count(p.name)} for p in phases])
