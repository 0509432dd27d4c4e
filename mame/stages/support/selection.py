"""Which trained models the later stages take, chosen on validation only: every finished scratch and
fine-tuning run the plan hands over (``inputs[stage][run name] = identity``, the runner's
``{"stage", "backbone", "variant", "name", "seed", "folder", "step"}``), their validation predictions,
and the best step per fine-tuned backbone plus the best scratch rung. ``evaluate`` chooses with it and
records its choice (``metrics["chosen"]``, each backbone's best step marked ``best_step``), which ``explain``
and the deck take (neither chooses again); ``features/<backbone>-finetuned``, which runs before ``evaluate``,
chooses its backbone's step with it too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PREDICTIONS = "predictions_{split}.npz"


@dataclass
class Candidate:
    stage: str
    run: str                       # the run's name (its folder under runs/<stage>/)
    path: Path
    val_accuracy: float
    val: dict                      # y_true, probabilities (from the run's predictions_val.npz)
    backbone: str | None = None
    test: dict = field(default_factory=dict)
    variant: str = ""
    step: int | None = None        # its position among its backbone's variants of the stage (the plan's)
    why: str = ""                  # one line: why it was chosen (set by choose_models)
    seed: int = 0                  # the run's seed (a plan's ``seeds:`` makes one run per seed)
    best_step: bool = False        # the best step of its backbone on validation (set by choose_models)

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.run}"

    @property
    def val_set(self) -> dict:
        """The validation images it was scored on: their number and a fingerprint of their file names."""
        return validation_set(self.val.get("files", ()))


def validation_set(files) -> dict:
    """``{"n_val", "val_fingerprint"}`` of a set of validation image files (order does not count)."""
    names = sorted(str(f) for f in files)
    return {"n_val": len(names), "val_fingerprint": hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]}


def check_same_validation(candidates: list, what: str) -> None:
    """A ValueError naming the runs when ``candidates`` (anything with ``name`` and ``val_set``) were not all scored
    on the same validation images: a choice among them would compare different image sets."""
    sets: dict[tuple, list[str]] = {}
    for c in candidates:
        sets.setdefault(tuple(c.val_set.values()), []).append(c.name)
    if len(sets) > 1:
        said = "; ".join(f"{', '.join(names)}: {n} images (fingerprint {fp})" for (n, fp), names in sets.items())
        raise ValueError(f"{what}: the runs were scored on different validation images ({said}); a choice among them "
                         "would compare different image sets: rerun the runs on the older sets")


def _load_val(run_dir: Path) -> dict:
    path = run_dir / PREDICTIONS.format(split="val")
    if not path.is_file():
        raise ValueError(f"{path}: missing; the run saved no validation predictions")
    with np.load(path) as arrays:
        if "probabilities" not in arrays or "y_true" not in arrays:
            raise ValueError(f"{path}: expected arrays 'y_true' and 'probabilities', found {sorted(arrays.files)}")
        return {"y_true": arrays["y_true"], "probabilities": arrays["probabilities"], "files": arrays["files"]}


def check_identity(stage: str, name: str, identity) -> dict:
    """``identity`` when it is the runner's identity of a run (a dict), else a ValueError saying so."""
    if not isinstance(identity, dict):
        raise ValueError(f"inputs[{stage!r}][{name!r}]: expected the runner's run identity (a dict: stage, "
                         f"backbone, variant, name, seed, folder, step), got {identity!r}")
    return identity


def candidates(inputs: dict[str, dict[str, dict]]) -> list[Candidate]:
    """Every finished training run the plan handed over (``inputs[stage][name] = identity``), each
    backbone's in plan order (its steps), then the scratch rungs in plan order."""
    found = []
    for stage in ("finetune", "scratch"):
        handed = [check_identity(stage, name, identity) for name, identity in (inputs.get(stage) or {}).items()]
        for identity in sorted(handed, key=lambda i: (i["backbone"] or "", i["step"], i["name"])):
            folder = Path(identity["folder"])
            val = _load_val(folder)
            accuracy = float((val["probabilities"].argmax(axis=1) == val["y_true"]).mean())
            found.append(Candidate(stage, identity["name"], folder, accuracy, val, identity["backbone"],
                                   variant=identity["variant"], step=identity["step"], seed=identity["seed"]))
    return found


def choose_models(inputs: dict[str, dict[str, dict]], *, select: str = "best-per-backbone",
                  include_scratch: bool = True) -> list[Candidate]:
    """The models to score on test, chosen on validation only: the best step of each fine-tuned backbone
    (``select="all"``: every step, the best of each backbone still marked ``best_step``) and the best scratch
    rung, each with a one-line ``why``."""
    if select not in ("best-per-backbone", "all"):
        raise ValueError(f"select must be 'best-per-backbone' or 'all', not {select!r}")
    pool = candidates(inputs)
    check_same_validation(pool, "choosing the fine-tuning steps and the scratch rung")
    tuned = [c for c in pool if c.stage == "finetune"]
    per_backbone: dict[str, list[Candidate]] = {}
    for c in tuned:
        per_backbone.setdefault(c.backbone, []).append(c)
    for steps in per_backbone.values():  # ties keep the earlier step (max keeps the first, in plan order)
        max(steps, key=lambda c: c.val_accuracy).best_step = True
    if select == "best-per-backbone":
        tuned = [c for c in tuned if c.best_step]
    for c in tuned:
        c.why = _why_tuned(c, per_backbone[c.backbone], select)
    chosen = sorted(tuned, key=lambda c: -c.val_accuracy)
    scratch = [c for c in pool if c.stage == "scratch"]
    if include_scratch and scratch:
        best = max(scratch, key=lambda c: c.val_accuracy)
        rungs = len({c.variant for c in scratch})
        best.why = ((f"best of {rungs} scratch rungs on validation" if rungs > 1 else "the only scratch rung")
                    + seed_said(best, scratch))
        chosen.append(best)
    if not chosen:
        raise ValueError("no finished finetune or scratch run to evaluate (inputs: "
                         f"{ {k: sorted(v) for k, v in inputs.items()} })")
    return chosen


def _why_tuned(c: Candidate, runs: list[Candidate], select: str) -> str:
    name, n_steps = display_name(c.backbone), len({r.step for r in runs})
    if select == "all":
        best = f", the best of {n_steps} on validation" if c.best_step and n_steps > 1 else ""
        return f"every {name} fine-tuning step is taken (select='all'): step {c.step} of {n_steps}{best}" + seed_said(c, runs)
    if n_steps == 1:
        return f"the only {name} fine-tuning step" + seed_said(c, runs)
    return f"best of {n_steps} {name} fine-tuning steps on validation" + seed_said(c, runs)


def seed_said(c: Candidate, runs: list[Candidate]) -> str:
    """``, seed 1 of 0, 1 (best on validation)`` when ``c``'s step ran with several seeds, else nothing."""
    seeds = sorted({r.seed for r in runs if (r.variant, r.step) == (c.variant, c.step)})
    if len(seeds) < 2:
        return ""
    return f", seed {c.seed} of {', '.join(map(str, seeds))} (best on validation)"


def display_name(backbone: str | None) -> str:
    """The registry's name of a backbone (``VGG16``), the key itself when the registry does not know it."""
    from mame.models import backbones

    try:
        return backbones.get_backbone(backbone).name
    except ValueError:
        return str(backbone)
