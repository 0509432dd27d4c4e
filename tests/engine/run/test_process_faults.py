"""Run folders are built from names at the point of use (runner, executors, execute): a run name that would lead
outside the runs folder is refused (``UnsafePathError``) before anything there is read, written or removed, whatever
the plan's own check let through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mame.engine.plan.load import PlannedRun
from mame.engine.plan.profiles import Profile
from mame.engine.run import execute
from mame.engine.run import scheduler as runner
from mame.engine.run.executors import Job
from mame.names import UnsafePathError

PROFILE = Profile("smoke", {}, {}, {}, None, 0, 120, 300)
DATASET = {"source": "synthetic", "path": "/nowhere", "fingerprint": "b" * 16}


def sentinel(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder outside the runs folder, where ``runs/<stage>/../../victim`` leads, with what it holds."""
    victim = tmp_path / "victim"
    (victim / "inside").mkdir(parents=True)
    files = {"precious.txt": "keep me", "inside/metrics.json": '{"not": "a run"}'}
    for name, text in files.items():
        (victim / name).write_text(text)
    return victim, files


def untouched(victim: Path, files: dict[str, str]) -> bool:
    found = {str(p.relative_to(victim)): p.read_text() for p in victim.rglob("*") if p.is_file()}
    return found == files and sorted(p.name for p in victim.parent.iterdir()) == ["runs", "victim"]


def prepare(run: PlannedRun, runs_dir: Path, planned: dict | None = None):
    keys = {r.id: "a" * 16 for r in [run, *(planned or {}).values()]}
    return runner._prepare(run, PROFILE, DATASET, keys, {}, runs_dir, True, planned or {run.id: run})


def test_a_run_name_leading_outside_the_runs_folder_is_refused_before_anything_is_touched(tmp_path):
    runs_dir = tmp_path / "runs"
    (runs_dir / "features").mkdir(parents=True)
    victim, files = sentinel(tmp_path)
    run = PlannedRun("features", None, "../../victim", tmp_path / "nb.ipynb", {})
    assert (runs_dir / run.stage / run.name).resolve() == victim  # where a plain join leads
    with pytest.raises(UnsafePathError, match="victim"):
        prepare(run, runs_dir)
    assert untouched(victim, files)


def test_a_needed_run_whose_name_leads_outside_the_runs_folder_is_refused_before_it_is_read(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    victim, files = sentinel(tmp_path)
    needed = PlannedRun("features", None, "../../victim", tmp_path / "nb.ipynb", {})
    run = PlannedRun("classify", "vgg16", "default", tmp_path / "nb.ipynb", {}, needs={"features": needed.name})
    with pytest.raises(UnsafePathError, match="victim"):
        prepare(run, runs_dir, {needed.id: needed, run.id: run})
    assert untouched(victim, files)


def test_a_stage_name_leading_outside_the_runs_folder_is_refused(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    victim, files = sentinel(tmp_path)
    run = PlannedRun("../victim", None, "inside", tmp_path / "nb.ipynb", {})
    with pytest.raises(UnsafePathError):
        prepare(run, runs_dir)
    assert untouched(victim, files)


def test_execute_and_a_lost_runs_record_refuse_a_run_folder_named_by_a_path(tmp_path):
    """Handed a run folder that is not ``<stage folder>/<safe name>`` (here ``runs/stage/..``: the runs folder
    itself), neither executing it nor recording it lost creates, swaps or removes anything."""
    runs_dir = tmp_path / "runs"
    (runs_dir / "stage").mkdir(parents=True)
    victim, files = sentinel(tmp_path)
    run = PlannedRun("stage", None, "default", tmp_path / "nb.ipynb", {})
    ctx = execute.RunContext(PROFILE, DATASET, "a" * 16, {})
    final_dir = runs_dir / "stage" / ".."
    with pytest.raises(UnsafePathError):
        execute.execute(run, ctx, final_dir)
    with pytest.raises(UnsafePathError):
        runner._record_lost(Job(run, ctx, final_dir), "killed", 0.0, 1)
    assert untouched(victim, files) and sorted(p.name for p in runs_dir.rglob("*")) == ["stage"]
