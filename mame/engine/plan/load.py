"""The experiment plan: ``experiments/plan.yaml`` expanded into runs for one profile.

A stage declares its notebook, the backbones it runs for, its variants (each holding only what differs
from the notebook's ``parameters`` cell) and the stages it ``needs``. A profile sets the data and the
scale (``mame.engine.plan.profiles``). Parameters resolve as: notebook defaults < profile ``params`` < the profile's
``stages.<stage>.params`` < variant < profile ``force`` < ``stages.<stage>.force``, with a stage's ``pretrained``
settings on top of its own for runs whose backbone starts from ImageNet weights (``mame.engine.plan.weights_rules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mame import config
from mame.engine.plan.check import YAML_LOADER, schema_errors
from mame.engine.plan.profiles import RUNNER_PARAMS, PlanError, Profile, parse_profile, resolve_params  # noqa: F401  (re-exported)
from mame.engine.plan.rules import notebook_parameters, notebook_path, plan_problems
from mame.engine.plan.seeds import expand_seeds
from mame.engine.plan.weights_rules import LeftOut, leave_out_dependants, weights_outlook

# What a notebook is told about each run it needs or reads (``PlannedRun.identity``): no stage parses a
# backbone, variant or step out of a run's name.
IDENTITY_KEYS = ("stage", "backbone", "variant", "name", "seed", "folder", "step")


def run_name(backbone: str | None, variant: str) -> str:
    """``vgg16`` for a default variant, ``vgg16-lr-small`` otherwise, the variant alone without a backbone."""
    if backbone is None:
        return variant
    return backbone if variant == "default" else f"{backbone}-{variant}"


@dataclass
class PlannedRun:
    stage: str
    backbone: str | None
    variant: str
    notebook: Path
    params: dict
    needs: dict[str, str] = field(default_factory=dict)  # stage -> run name
    reads: dict[str, list[str]] = field(default_factory=dict)  # stage -> the runs of it this run reads whole
    about: str = ""       # the variant's own words: what it changes and why (shown on the slides)
    overrides: dict = field(default_factory=dict)  # what the variant sets, as written in the plan
    planned: dict = field(default_factory=dict)  # the params before the profile's force layers (what the plan asks)
    seed: int = 0         # the run's seed, which the runner hands the notebook (the profile's unless ``seeds:`` say)
    # Whether its name carries ``-s<seed>``: its ``seeds:`` (or those of the runs it needs) are other than the
    # profile's one seed. ``seeds``: every seed its stage/backbone/variant runs (the deck's mean ± std over them).
    seeded: bool = False
    seeds: tuple[int, ...] = ()
    # 1-based position among the variants of its stage that its backbone runs, in plan order (set by ``expand``):
    # finetune VGG16 step1..step6 -> 1..6, another backbone's step1 -> 1; scratch rungs r1..r8 -> 1..8.
    step: int = 1
    # ImageNet or random init, as the plan foresaw it (``mame.models.weight_files.Outlook``), where the profile
    # asks (``pretrained:`` settings or ``random_weights: skip`` on the stage); None elsewhere.
    weights: object = None
    # whether its notebook declares ``checkpoint_dir`` (read with its parameters when the plan is expanded): the
    # runner then hands it the run's resume folder
    checkpoints: bool = False

    @property
    def base_name(self) -> str:
        """The name without the seed: what the runs of one stage/backbone/variant share."""
        return run_name(self.backbone, self.variant)

    @property
    def name(self) -> str:
        return f"{self.base_name}-s{self.seed}" if self.seeded else self.base_name

    @property
    def base_id(self) -> str:
        return f"{self.stage}/{self.base_name}"

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.name}"

    def identity(self, folder: str | Path) -> dict:
        """What a notebook is handed for this run (keys ``IDENTITY_KEYS``), its results in ``folder``."""
        return {"stage": self.stage, "backbone": self.backbone, "variant": self.variant, "name": self.name,
                "seed": self.seed, "folder": str(folder), "step": self.step}


@dataclass
class Plan:
    path: Path
    stages: dict[str, dict]
    profiles: dict[str, Profile]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise PlanError(f"{self.path}: unknown profile {name!r}; known: {', '.join(self.profiles)}")
        return self.profiles[name]


def load_plan(path: Path | None = None) -> Plan:
    """The plan in ``path`` (default ``experiments/plan.yaml``), checked whole before anything uses it: its JSON
    Schema (``mame.engine.plan.schema_build``), then what only the notebooks know (``mame.engine.plan.rules``). A
    ``PlanError`` lists every problem, one line each."""
    path = Path(path or config.plan_path())
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=YAML_LOADER)
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    problems = schema_errors(raw, path, text) or plan_problems(path, text, raw)
    if problems:
        raise PlanError("\n".join(problems))
    stages = {name: _with_defaults(spec) for name, spec in raw["stages"].items()}
    profiles = {name: parse_profile(name, spec) for name, spec in raw["profiles"].items()}
    return Plan(path=path, stages=stages, profiles=profiles)


def check_plan(path: Path | None = None) -> str:
    """``python -m mame check``: the plan loaded and every profile expanded (nothing run or written); a ``PlanError``
    names every problem, else one line per profile says what it would run."""
    plan = load_plan(path)
    lines = [f"{plan.path}: valid ({len(plan.stages)} stages, {len(plan.profiles)} profiles)"]
    for name, profile in plan.profiles.items():
        if profile.size_from_data:
            lines.append(f"  {name}: sized from the dataset (--data) and the machine when a command starts")
            continue
        left_out: list[LeftOut] = []
        runs = expand(plan, name, left_out=left_out)
        note = f", {len(left_out)} left out without ImageNet weights here" if left_out else ""
        lines.append(f"  {name}: {len(runs)} runs{note}")
    return "\n".join(lines)


def _with_defaults(spec: dict) -> dict:
    spec.setdefault("variants", {"default": {}})
    spec.setdefault("needs", [])
    spec.setdefault("reads", [])
    return spec


def expand(plan: Plan, profile_name: str, only: str | None = None, *,
           left_out: list[LeftOut] | None = None) -> list[PlannedRun]:
    """Every run of the plan under a profile, in dependency order; ``only`` = 'stage' or 'stage/backbone'.
    Runs the profile leaves out (``random_weights: skip`` for a backbone without ImageNet weights, and
    what needs them) are appended to ``left_out`` when given."""
    profile = plan.profile(profile_name)
    runs, dropped, outlooks = [], [], {}
    for stage, spec in plan.stages.items():
        notebook = notebook_path(spec)
        declared = notebook_parameters(notebook)
        backbones = [b for b in spec.get("backbones", [None]) if profile.runs_backbone(stage, b)]
        for variant, overrides in spec["variants"].items():
            overrides = dict(overrides or {})
            needs_variants = overrides.pop("needs", {}) or {}
            reads = list(overrides.pop("reads", []) or [])
            about = str(overrides.pop("about", "") or "")
            overrides.pop("seeds", None)  # read by _expand_seeds
            only_backbones = overrides.pop("backbones", None)
            for backbone in backbones:
                if only_backbones is not None and backbone not in only_backbones:
                    continue
                if not profile.runs_variant(stage, variant, backbone):
                    continue
                weights = weights_outlook(profile, stage, backbone, resolve_params(declared, profile, stage, overrides), outlooks)
                if weights is not None and not weights.pretrained and profile.weights_rule(stage) == "skip":
                    dropped.append(LeftOut(f"{stage}/{run_name(backbone, variant)}", stage, backbone, variant,
                                           f"no ImageNet weights for it here ({weights.reason})", weights.how_to))
                    continue
                pretrained = bool(weights and weights.pretrained)
                params = resolve_params(declared, profile, stage, overrides, pretrained=pretrained)
                planned = resolve_params(declared, profile, stage, overrides, forced=False, pretrained=pretrained)
                run = PlannedRun(stage, backbone, variant, notebook, params, about=about, overrides=dict(overrides),
                                 planned=planned, seed=profile.seed, weights=weights,
                                 checkpoints="checkpoint_dir" in declared)
                run.needs = {need: run_name(backbone, needs_variants.get(need, "default")) for need in spec["needs"]}
                run.reads = dict.fromkeys(list(dict.fromkeys(spec["reads"] + reads)), [])
                runs.append(run)
    for run in runs:
        run.reads = {stage: [r.name for r in runs if r.stage == stage and _same_backbone(run, r)] for stage in run.reads}
    runs = leave_out_dependants(runs, dropped)
    _number_steps(runs)
    runs = expand_seeds(plan, profile, runs)
    for run in runs:
        run.reads = {stage: [r.name for r in runs if r.stage == stage and _same_backbone(run, r)] for stage in run.reads}
    _check_needs(plan.path, runs)
    runs = dependency_order(plan.path, runs)
    if left_out is not None:
        left_out.extend(dropped)
    return select(runs, only) if only else runs


def _number_steps(runs: list[PlannedRun]) -> None:
    """Each run's ``step``: its position among the runs of its stage and backbone, in plan order (``runs`` as
    ``expand`` built them, before the seeds and the dependency sort)."""
    seen: dict[tuple[str, str | None], int] = {}
    for run in runs:
        key = (run.stage, run.backbone)
        seen[key] = run.step = seen.get(key, 0) + 1


def _same_backbone(reader: PlannedRun, run: PlannedRun) -> bool:
    """A run with a backbone reads that backbone's runs of a stage; one without reads them all."""
    return reader.backbone is None or run.backbone is None or run.backbone == reader.backbone


def dependency_order(path: Path, runs: list[PlannedRun]) -> list[PlannedRun]:
    """``runs`` with every run after the runs it ``needs`` and ``reads`` (a stable topological sort:
    plan order wherever the dependencies allow it); a cycle is a PlanError naming its runs."""
    deps = {run.id: {f"{s}/{n}" for s, n in run.needs.items()} | {f"{s}/{n}" for s, names in run.reads.items()
                                                                   for n in names} for run in runs}
    ordered, done, pending = [], set(), list(runs)
    while pending:
        ready = next((run for run in pending if deps[run.id] <= done), None)
        if ready is None:
            raise PlanError(f"{path}: these runs depend on each other in a cycle (through needs/reads): "
                            f"{', '.join(r.id for r in pending if deps[r.id] - done)}")
        ordered.append(ready)
        done.add(ready.id)
        pending.remove(ready)
    return ordered


def _check_needs(path: Path, runs: list[PlannedRun]) -> None:
    ids = {r.id for r in runs}
    for run in runs:
        for stage, name in run.needs.items():
            if f"{stage}/{name}" not in ids:
                raise PlanError(f"{path}: {run.id} needs {stage}/{name}, which the plan does not define")


def select(runs: list[PlannedRun], only: str) -> list[PlannedRun]:
    """Keep runs matching any of the comma-separated 'stage' or 'stage/backbone' or 'stage/name', or
    '=stage/name': exactly the run with that id (``features/vgg16`` also selects ``features/vgg16-finetuned``,
    whose backbone is VGG16; ``=features/vgg16`` selects that one run)."""
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    def matches(run: PlannedRun, w: str) -> bool:
        if w.startswith("="):
            return run.id == w[1:]
        stage, _, rest = w.partition("/")
        return run.stage == stage and (not rest or rest in (run.backbone, run.name))
    chosen = [r for r in runs if any(matches(r, w) for w in wanted)]
    if not chosen:
        raise PlanError(f"--only {only!r} matches no run; runs are like {runs[0].id if runs else '(none)'}")
    return chosen
