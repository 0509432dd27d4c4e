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
    shape: str = "fixed"           # how its images were shown: fixed | variable (the run's metrics.shape)
    twin_of: str = ""              # a fixed-shape step taken only as the like-for-like partner of this variable one
    twin: str = ""                 # a variable-shape step: its fixed-shape twin (same settings), chosen or taken as one

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


def run_metrics(run_dir: Path) -> dict:
    """A run's ``metrics.json["metrics"]``, or a ValueError naming the file."""
    import json

    try:
        return dict(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{run_dir / 'metrics.json'}: cannot read the run's metrics: {exc}") from None


def run_shape(run_dir: Path) -> str:
    """``fixed`` or ``variable``: the input shape a run recorded (runs from before shapes existed were fixed)."""
    return str(run_metrics(run_dir).get("shape", "fixed"))


def shape_said(shape: str) -> str:
    """`` variable-shape`` for a variable-shape choice, nothing for a fixed one (the plan's default)."""
    return " variable-shape" if shape == "variable" else ""


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
                                   variant=identity["variant"], step=identity["step"], seed=identity["seed"],
                                   shape=run_shape(folder)))
    return found


def choose_models(inputs: dict[str, dict[str, dict]], *, select: str = "best-per-backbone",
                  include_scratch: bool = True) -> list[Candidate]:
    """The models to score on test, chosen on validation only: the best step of each fine-tuned backbone and
    input shape (fixed and variable shape are compared on test, not chosen between; ``select="all"``: every step,
    the best of each still marked ``best_step``) and the best scratch rung, each with a one-line ``why``."""
    if select not in ("best-per-backbone", "all"):
        raise ValueError(f"select must be 'best-per-backbone' or 'all', not {select!r}")
    pool = candidates(inputs)
    check_same_validation(pool, "choosing the fine-tuning steps and the scratch rung")
    tuned = [c for c in pool if c.stage == "finetune"]
    per_backbone: dict[tuple, list[Candidate]] = {}
    for c in tuned:
        per_backbone.setdefault((c.backbone, c.shape), []).append(c)
    for steps in per_backbone.values():  # ties keep the earlier step (max keeps the first, in plan order)
        max(steps, key=lambda c: c.val_accuracy).best_step = True
    if select == "best-per-backbone":
        tuned = [c for c in tuned if c.best_step]
    for c in tuned:
        c.why = _why_tuned(c, per_backbone[(c.backbone, c.shape)], select)
    chosen = sorted(tuned, key=lambda c: -c.val_accuracy)
    chosen += twins(chosen, [c for c in pool if c.stage == "finetune"])
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


def _settings(c: Candidate) -> dict:
    """A training run's recorded config, without its input shape."""
    config = run_metrics(c.path).get("config") or {}
    from mame.data.input_shape import SETTINGS

    return {k: v for k, v in config.items() if k not in SETTINGS}


def twins(chosen: list[Candidate], tuned: list[Candidate]) -> list[Candidate]:
    """For each chosen variable-shape fine-tuning run, the fixed-shape run of its backbone with the same settings
    (same seed) when it was not chosen itself: the MAMe paper's FS vs VS question compares the two on test, like
    for like. Marked ``twin_of``; they are scored on test but never the reference nor in an ensemble."""
    out, names = [], {c.name for c in chosen}
    for c in [c for c in chosen if c.shape == "variable"]:
        mine = _settings(c)
        twin = next((t for t in tuned if t.shape == "fixed" and t.backbone == c.backbone and t.seed == c.seed
                     and _settings(t) == mine), None)
        if twin is None:
            continue
        c.twin = twin.name
        if twin.name not in names:
            twin.twin_of, twin.why = c.name, (f"the fixed-shape twin of {c.name} (same settings), scored on test to "
                                              f"compare the shapes like for like")
            out.append(twin)
            names.add(twin.name)
    return out


def _why_tuned(c: Candidate, runs: list[Candidate], select: str) -> str:
    name, n_steps = display_name(c.backbone) + shape_said(c.shape), len({r.step for r in runs})
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
