"""``python -m mame status``: every plan entry as done / stale / failed / missing, with headline and age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mame import config
from mame.engine.plan.load import PlannedRun
from mame.engine.run import records
from mame.engine.run.provenance import parse_iso
from mame.engine.run.study import Study
from mame.names import inside


@dataclass
class Entry:
    run: PlannedRun
    state: str      # done | stale | failed | missing | unreadable
    headline: str
    age: str
    detail: str
    path: Path
    metrics: dict | None = None
    combined: object = None  # the deck's: ``mame.deck.sections.seed_groups.Combined`` for an entry folding several seeds' runs


def collect(profile_name: str, plan_file: Path | None = None, *, left_out: list | None = None,
            study: Study | None = None) -> list[Entry]:
    """An entry per planned run; the runs the profile leaves out (no ImageNet weights for their backbone,
    ``engine.plan.LeftOut``) are appended to ``left_out`` when given. ``study``: the command's plan, runs and keys
    (``mame.engine.run.study``; built from ``plan_file`` when not given)."""
    study = study or Study.load(profile_name, plan_file)
    if left_out is not None:
        left_out.extend(study.left_out)
    now = datetime.now(timezone.utc)
    return [_entry(run, study.keys.get(run.id), now) for run in study.runs]


def _entry(run: PlannedRun, key: str | None, now: datetime) -> Entry:
    run_dir = inside(config.runs_dir(), run.stage, run.name, what=f"run {run.id}")
    try:
        metrics = records.try_read_metrics(run_dir)
    except records.MetricsError as exc:
        return Entry(run, "unreadable", "", "", str(exc), run_dir)
    if metrics is None:
        return Entry(run, "missing", "", "", "", run_dir)
    info = metrics["run"]
    head = metrics.get("headline")
    headline = f"{head['name']}={head['value']:.3f}" if head else ""
    age = _age(now - parse_iso(info["ended"]))
    if info["status"] == "failed":
        err = info["error"] or {}
        message = " ".join(str(err.get("message", "")).split())[:100]
        return Entry(run, "failed", headline, age, f"{err.get('type', 'Error')}: {message}", run_dir, metrics)
    if key is None:
        return Entry(run, "stale", headline, age, "dataset not generated yet", run_dir, metrics)
    if info["cache_key"] != key:
        return Entry(run, "stale", headline, age, "params, code, data or an input changed", run_dir, metrics)
    return Entry(run, "done", headline, age, "", run_dir, metrics)


def _age(delta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_status(entries: list[Entry], profile: str, left_out: list | None = None) -> str:
    lines = [f"profile {profile}: runs in {config.runs_dir()}", "",
             f"{'run':<34} {'state':<10} {'headline':<28} {'age':>5}  detail", "-" * 96]
    for e in entries:
        lines.append(f"{e.run.id:<34} {e.state:<10} {e.headline:<28} {e.age:>5}  {e.detail}")
    counts = {}
    for e in entries:
        counts[e.state] = counts.get(e.state, 0) + 1
    for d in left_out or []:
        lines.append(f"{d.id:<34} {'left out':<10} {'':<28} {'':>5}  {d.reason}")
    if left_out:
        counts["left out"] = len(left_out)
        hows = list(dict.fromkeys(d.how_to for d in left_out if d.how_to))
        lines += ["", "left out: the profile runs these only with ImageNet weights; to get them:",
                  *(f"  {h}" for h in hows)]
    lines += ["-" * 96, ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    return "\n".join(lines)
