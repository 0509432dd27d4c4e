"""``python -m mame run``: expand the plan, decide what is stale, execute it, summarise.

Make never decides staleness; this does, so ``make run`` / ``make report`` are always safe to type.
"""

from __future__ import annotations

import fcntl
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mame import config
from mame.engine import cache, execute, runs
from mame.engine.plan import PlannedRun, Profile, expand, load_plan


class RunnerError(RuntimeError):
    """The runner cannot start (no dataset, another runner holds the lock...)."""


@dataclass
class Outcome:
    run: PlannedRun
    state: str          # done | cached | failed | skipped
    cache_key: str
    seconds: float = 0.0
    detail: str = ""


def dataset_location(profile: Profile) -> Path | None:
    """Where the profile's data lives: its synthetic folder, or MAME_DIR (else the profile's data.path)."""
    if profile.data.get("source") == "synthetic":
        return config.synthetic_dir(profile.name)
    path = profile.data.get("path")
    return config.real_data_dir() or (Path(path).expanduser().resolve() if path else None)


def prepare_dataset(profile: Profile) -> dict:
    """Generate the profile's synthetic data if needed, or locate the real MAMe; return its description."""
    from mame.data import metadata

    source = profile.data.get("source")
    path = dataset_location(profile)
    if source == "synthetic":
        from mame.data.synthetic import generator

        spec_fields = {k: v for k, v in profile.data.items() if k != "source"}
        spec = generator.SynthSpec.from_dict({"seed": profile.seed, **spec_fields})
        generator.ensure(path, spec)
    elif source == "mame":
        if path is None:
            raise RunnerError(f"profile {profile.name!r} reads the real MAMe: set MAME_DIR to the folder holding "
                              f"{config.METADATA_CSV} and data_256/ or data/ (python -m mame data download fetches it)")
        if not (path / config.METADATA_CSV).is_file():
            raise RunnerError(f"{path}: no {config.METADATA_CSV} here; MAME_DIR must point at the MAMe folder")
    else:
        raise RunnerError(f"profile {profile.name!r}: data source must be 'synthetic' or 'mame', not {source!r}")
    return {"source": source, "path": str(path), "fingerprint": metadata.dataset_fingerprint(path)}


def compute_keys(planned: list[PlannedRun], profile: Profile, dataset: dict) -> dict[str, str]:
    """Cache key of every planned run, each including the keys of the runs it needs and reads (so a new
    dependency result makes it stale); ``planned`` must come in dependency order, as ``expand`` returns it."""
    keys: dict[str, str] = {}
    for run in planned:
        missing = [dep for dep in [f"{s}/{n}" for s, n in run.needs.items()] + _read_ids(run) if dep not in keys]
        if missing:
            raise RunnerError(f"{run.id} depends on {', '.join(missing)}, whose cache key is not known yet: "
                              "runs must come in dependency order (mame.engine.plan.expand)")
        dep_keys = {stage: keys[f"{stage}/{name}"] for stage, name in run.needs.items()}
        dep_keys.update({dep: keys[dep] for dep in _read_ids(run)})
        keys[run.id] = cache.cache_key(stage=run.stage, name=run.name, params=run.params, profile=profile.name,
                                       dataset_fingerprint=dataset["fingerprint"], notebook=run.notebook,
                                       dependency_keys=dep_keys)
    return keys


@contextmanager
def runner_lock(runs_dir: Path):
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunnerError(f"{runs_dir}: another runner is working here; wait for it to finish") from None
        yield


def run_plan(profile_name: str, *, only: str | None = None, force: bool = False, plan_file: Path | None = None,
             out=sys.stdout) -> list[Outcome]:
    plan = load_plan(plan_file)
    profile = plan.profile(profile_name)
    everything = expand(plan, profile_name)
    selected = {r.id for r in (expand(plan, profile_name, only) if only else everything)}
    dataset = prepare_dataset(profile)
    keys = compute_keys(everything, profile, dataset)
    planned = {r.id: r for r in everything}
    runs_dir = config.runs_dir()
    outcomes: dict[str, Outcome] = {}
    with runner_lock(runs_dir):
        for stage in plan.stages:
            execute.clean_leftovers(runs_dir / stage)
        todo = [r for r in everything if r.id in selected]
        for i, run in enumerate(todo, 1):
            progress = f"[{i}/{len(todo)}] {run.id:<34}"
            outcome = _run_one(run, profile, dataset, keys, outcomes, runs_dir, force, planned,
                               announce=lambda line=f"{progress} running...": print(line, file=out, flush=True),
                               progress=lambda line, run=run: print(format_progress(run.id, line), file=out, flush=True))
            outcomes[run.id] = outcome
            print(f"{progress} {outcome.state:<8} {outcome.detail}", file=out, flush=True)
    return list(outcomes.values())


def format_progress(run_id: str, line: dict) -> str:
    """One epoch of a training notebook, as the runner prints it."""
    parts = [f"      {run_id:<34} epoch {line.get('epoch', '?')}/{line.get('epochs', '?')}"]
    if line.get("phase"):
        parts.append(f"{line['phase']:<8}")
    for key, label, digits in (("loss", "loss", 4), ("val_accuracy", "val_acc", 3)):
        if isinstance(line.get(key), (int, float)):
            parts.append(f"{label} {line[key]:.{digits}f}")
    if isinstance(line.get("seconds"), (int, float)):
        parts.append(f"{line['seconds']:.1f}s")
    return "  ".join(parts)


def _run_one(run, profile, dataset, keys, outcomes, runs_dir, force, planned, announce=lambda: None,
             progress=None) -> Outcome:
    """``planned``: every planned run by id (the runs this one needs or reads among them)."""
    key, final_dir = keys[run.id], runs_dir / run.stage / run.name
    inputs, problem = _inputs(run, keys, outcomes, runs_dir, planned)
    if problem:
        return Outcome(run, "skipped", key, detail=problem)
    existing = _existing(final_dir)
    if not force and existing and existing["run"]["cache_key"] == key and existing["run"]["status"] == "done":
        return Outcome(run, "cached", key, detail=_headline(existing))
    ctx = execute.RunContext(profile=profile, dataset=dataset, cache_key=key, inputs=inputs)
    announce()
    t0 = time.monotonic()
    metrics = execute.execute(run, ctx, final_dir, progress=progress)
    seconds = time.monotonic() - t0
    if metrics["run"]["status"] == "done":
        return Outcome(run, "done", key, seconds, f"{seconds:6.1f}s  {_headline(metrics)}")
    err = metrics["run"]["error"]
    return Outcome(run, "failed", key, seconds, f"{seconds:6.1f}s  {err['type']}: {_first_line(err['message'])}")


def _read_ids(run) -> list[str]:
    return [f"{stage}/{name}" for stage, names in run.reads.items() for name in names]


def _inputs(run, keys, outcomes, runs_dir, planned) -> tuple[dict, str]:
    """The dependency runs this run reads, or why it cannot run: ``{stage: info}`` for ``needs`` and
    ``{"stage/name": info}`` for each run of a stage it ``reads`` whole; ``info`` is the run's identity
    (``PlannedRun.identity``: stage, backbone, variant, name, seed, folder, step) and its ``cache_key``."""
    inputs = {}
    wanted = [(stage, f"{stage}/{name}") for stage, name in run.needs.items()] + [(dep, dep) for dep in _read_ids(run)]
    for key, dep_id in wanted:
        stage, name = dep_id.split("/", 1)
        dep_dir = runs_dir / stage / name
        if dep_id in outcomes and outcomes[dep_id].state in ("failed", "skipped"):
            return {}, f"needs {dep_id}, which {outcomes[dep_id].state}"
        existing = _existing(dep_dir)
        if not existing or existing["run"]["status"] != "done" or existing["run"]["cache_key"] != keys[dep_id]:
            return {}, f"needs {dep_id}, which is not done and current (run it, or drop --only)"
        inputs[key] = {**planned[dep_id].identity(dep_dir), "cache_key": keys[dep_id]}
    return inputs, ""


def _existing(run_dir: Path) -> dict | None:
    try:
        return runs.try_read_metrics(run_dir)
    except runs.MetricsError:
        return None  # unreadable or off-schema: treated as absent, so the run executes again


def _headline(metrics: dict) -> str:
    head = metrics.get("headline")
    return f"{head['name']} {head['value']:.3f}" if head else ""


def _first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "")[:120]


def summary_table(outcomes: list[Outcome]) -> str:
    counts = {s: sum(o.state == s for o in outcomes) for s in ("done", "cached", "failed", "skipped")}
    lines = ["", f"{'run':<34} {'state':<8} detail", "-" * 78]
    lines += [f"{o.run.id:<34} {o.state:<8} {o.detail}" for o in outcomes]
    lines.append("-" * 78)
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)
