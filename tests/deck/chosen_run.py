"""An evaluate run that chose among given scratch and fine-tuning deck entries, written by the real stage code.

Each entry's validation accuracy becomes a ``predictions_val.npz`` in a run folder handed to
``mame.stages.evaluate.choose_models`` as the runner hands it (``PlannedRun.identity``), so the choice is the
stage's own (``mame.stages.support.selection``); made-up test predictions go through ``ensembles``, ``compare`` and
``save``, whose result becomes the run's metrics.json. Each handed folder has the metrics.json the stage reads
(the run's shape and settings: a variable-shape step's twin is the fixed-shape step of the same settings).
``val=`` gives some runs another validation accuracy than their metrics say, so that the stage chooses what the
deck's own numbers would not: a deck that follows it reads the record rather than choosing again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES
from mame.deck.sections.slide_parts import split_accuracy
from mame.engine.plan.load import PlannedRun
from mame.stages import evaluate
from tests.deck.evaluate_run import run_block
from tests.helpers import FakeEntry

N = 1000  # validation images per run: accuracies to 0.1 %


def predictions(accuracy: float, n: int = N, seed: int = 0) -> dict:
    """Labels and probabilities whose argmax is right on ``round(accuracy * n)`` rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASS_NAMES)
    predicted = np.where(np.arange(n) < round(accuracy * n), y, (y + 1) % len(CLASS_NAMES))
    p = rng.random((n, len(CLASS_NAMES))) * 0.01
    p[np.arange(n), predicted] += 1
    return {"y_true": y, "probabilities": (p / p.sum(axis=1, keepdims=True)).astype(np.float32),
            "files": np.array([f"v{i}.png" for i in range(n)])}


def handed_metrics(entry) -> dict:
    """What the stage reads of a handed run's metrics.json: its input shape and its recorded config (the settings a
    variable-shape step shares with its fixed-shape twin), here its planned parameters when the metrics have none."""
    m = entry.metrics["metrics"]
    config = m.get("config") or {k: v for k, v in entry.run.planned.items() if k not in ("shape", "placement")}
    return {"shape": m.get("shape", "fixed"), "config": json.loads(json.dumps(config, default=str))}


def evaluate_entry(tmp_path: Path, entries: list, *, select: str = "best-per-backbone", test: float | dict = 0.5,
                   val: dict | None = None, run_dir: Path | None = None) -> FakeEntry:
    """A done evaluate/default run over the usable scratch and finetune ``entries`` (each seed's run of a
    folded entry handed on its own); ``test``: every model's test accuracy (or model -> its own, 0.5 for the
    rest); ``val``: run id -> the validation accuracy of the predictions it hands evaluate (default: its
    metrics'); ``run_dir``: the evaluate run's folder (default: ``tmp_path/evaluate/default``)."""
    inputs: dict = {}
    for entry in entries:
        for member in (entry.combined.members if entry.combined else [entry]):
            if member.metrics is None or member.run.stage not in ("scratch", "finetune"):
                continue
            folder = tmp_path / "handed" / member.run.stage / member.run.name
            folder.mkdir(parents=True)
            accuracy = (val or {}).get(member.run.id, split_accuracy(member.metrics, "val"))
            np.savez(folder / "predictions_val.npz", **predictions(accuracy))
            (folder / "metrics.json").write_text(json.dumps({"metrics": handed_metrics(member)}))
            inputs.setdefault(member.run.stage, {})[member.run.name] = member.run.identity(folder)
    chosen = evaluate.choose_models(inputs, select=select, include_classify=False)
    for i, c in enumerate(chosen):
        made = predictions(test.get(c.name, 0.5) if isinstance(test, dict) else test, n=200, seed=i)
        c.test = {**made, "y_pred": made["probabilities"].argmax(axis=1).astype(np.int32)}
    ensemble = evaluate.ensembles(chosen)
    table = evaluate.compare(chosen, ensemble, bootstrap=20)
    run_dir = run_dir or tmp_path / "evaluate" / "default"
    run_dir.mkdir(parents=True)
    result = json.loads(evaluate.save(run_dir, chosen, ensemble, table, [], CLASS_NAMES).read_text())
    metrics = {key: result[key] for key in ("headline", "metrics", "classification", "artifacts", "notes")}
    metrics.update(history={}, run=run_block(tmp_path, []))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return FakeEntry(PlannedRun("evaluate", None, "default", Path("06_evaluate.ipynb"), {}), "done", metrics, path=run_dir)
