"""Which trained models the later stages take, chosen on validation only: every finished scratch and
fine-tuning run the plan hands over (``inputs[stage][run] = folder``), their validation predictions, and
the best step per fine-tuned backbone plus the best scratch rung. Shared by ``evaluate`` and ``explain``,
so both look at the same models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PREDICTIONS = "predictions_{split}.npz"


@dataclass
class Candidate:
    stage: str
    run: str
    path: Path
    val_accuracy: float
    val: dict                      # y_true, probabilities (from the run's predictions_val.npz)
    backbone: str | None = None
    test: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.run}"


def _load_val(run_dir: Path) -> dict:
    path = run_dir / PREDICTIONS.format(split="val")
    if not path.is_file():
        raise ValueError(f"{path}: missing; the run saved no validation predictions")
    with np.load(path) as arrays:
        if "probabilities" not in arrays or "y_true" not in arrays:
            raise ValueError(f"{path}: expected arrays 'y_true' and 'probabilities', found {sorted(arrays.files)}")
        return {"y_true": arrays["y_true"], "probabilities": arrays["probabilities"], "files": arrays["files"]}


def candidates(inputs: dict[str, dict[str, str]]) -> list[Candidate]:
    """Every finished training run the plan handed over (``inputs[stage][run] = folder``)."""
    found = []
    for stage in ("finetune", "scratch"):
        for run, folder in sorted((inputs.get(stage) or {}).items()):
            val = _load_val(Path(folder))
            accuracy = float((val["probabilities"].argmax(axis=1) == val["y_true"]).mean())
            backbone = run.split("-")[0] if stage == "finetune" else None
            found.append(Candidate(stage, run, Path(folder), accuracy, val, backbone))
    return found


def choose_models(inputs: dict[str, dict[str, str]], *, select: str = "best-per-backbone",
                  include_scratch: bool = True) -> list[Candidate]:
    """The models to score on test, chosen on validation only: the best step of each fine-tuned backbone
    (``select="all"``: every step) and the best scratch rung."""
    if select not in ("best-per-backbone", "all"):
        raise ValueError(f"select must be 'best-per-backbone' or 'all', not {select!r}")
    pool = candidates(inputs)
    tuned = [c for c in pool if c.stage == "finetune"]
    if select == "best-per-backbone":
        best: dict[str, Candidate] = {}
        for c in tuned:  # ties keep the earlier step (plan order within a backbone is alphabetical stepN)
            if c.backbone not in best or c.val_accuracy > best[c.backbone].val_accuracy:
                best[c.backbone] = c
        tuned = list(best.values())
    chosen = sorted(tuned, key=lambda c: -c.val_accuracy)
    scratch = [c for c in pool if c.stage == "scratch"]
    if include_scratch and scratch:
        chosen.append(max(scratch, key=lambda c: c.val_accuracy))
    if not chosen:
        raise ValueError("no finished finetune or scratch run to evaluate (inputs: "
                         f"{ {k: sorted(v) for k, v in inputs.items()} })")
    return chosen


