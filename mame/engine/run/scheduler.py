"""``python -m mame run``: expand the plan, decide what is stale, execute it, summarise. Make never decides
staleness; this does, so ``make run`` / ``make report`` are always safe to type."""

from __future__ import annotations

import fcntl
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mame import config
from mame.engine.plan.load import PlannedRun
from mame.engine.run import execute, executors, folders, provenance, records
from mame.engine.run.study import Study, StudyError
from mame.names import check_name, inside

DEFAULT_RETRIES = 1  # a run whose process is lost (killed, crashed) is started once more


class RunnerError(StudyError):
    """The runner cannot start (no dataset, another runner holds the lock...)."""


@dataclass
class Outcome:
    run: PlannedRun
    state: str          # done | cached | failed | skipped
    cache_key: str
    seconds: float = 0.0
    detail: str = ""


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
             out=sys.stdout, jobs: int = 1, executor: str = "local", address: str | None = None,
             retries: int = DEFAULT_RETRIES, threads: int | None = None, fresh_kernels: bool = False,
             study: Study | None = None) -> list[Outcome]:
    """Run every stale selected run, up to ``jobs`` at once (``executor``: a local process per run, or Ray at
    ``address``); a run starts once every run it needs or reads is settled. A run whose worker is lost
    (killed, crashed) is started again up to ``retries`` times, then failed with the reason. ``threads``: CPU
    threads per run when runs go side by side (default: every core, as a run alone gets). ``fresh_kernels``: each
    notebook in a fresh Jupyter kernel (``mame.engine.run.execute``). ``study``: the command's plan, runs and keys
    (``mame.engine.run.study``; built here from ``plan_file`` when not given). Outcomes come back in plan order."""
    study = (study or Study.load(profile_name, plan_file)).prepare()
    profile, dataset, keys = study.profile, study.dataset, study.keys
    planned = {r.id: r for r in study.runs}
    runs_dir = config.runs_dir()
    todo = study.selected(only)
    with runner_lock(runs_dir):
        for stage in study.plan.stages:
            folders.clean_leftovers(inside(runs_dir, check_name(stage, "stage"), what="stage folder"))
        def show(run_id: str, line: dict) -> None:
            print(format_progress(run_id, line), file=out, flush=True)

        pool = make_executor(executor, jobs, show, address=address, threads=threads,
                             fresh_kernels=fresh_kernels)
        try:
            outcomes = _schedule(todo, pool, profile, dataset, keys, runs_dir, force, planned, retries, out)
        finally:
            pool.close()
    return [outcomes[r.id] for r in todo if r.id in outcomes]


def make_executor(kind: str, jobs: int, on_progress: Callable[[str, dict], None], *,
                  address: str | None = None, threads: int | None = None, fresh_kernels: bool = False):
    """The executor for ``--executor kind --jobs N`` (Ray's runs get fresh kernels)."""
    if kind == "local":
        return executors.LocalExecutor(jobs, on_progress, threads=threads, fresh_kernels=fresh_kernels)
    if kind == "ray":
        from mame.engine.run.ray_executor import RayExecutor

        return RayExecutor(jobs, on_progress, address=address)
    raise ValueError(f"--executor must be one of {', '.join(executors.EXECUTORS)}, not {kind!r}")


def _schedule(todo, pool, profile, dataset, keys, runs_dir, force, planned, retries, out) -> dict[str, Outcome]:
    """Start runs as their dependencies settle and the executor has room; collect how each ended."""
    number = {run.id: f"[{i}/{len(todo)}] {run.id:<34}" for i, run in enumerate(todo, 1)}
    waiting_on = {run.id: {dep for dep in _dependency_ids(run) if dep in number} for run in todo}
    chain = chain_lengths(todo, waiting_on)
    # the run heading the longest chain of runs waiting on it first (plan order among equals): the VGG16 steps
    # that the fine-tuned features wait for start before the scratch rungs that only evaluate waits for; one at
    # a time, plan order
    pending = sorted(todo, key=lambda r: -chain[r.id]) if pool.capacity > 1 else list(todo)
    active, outcomes = {}, {}

    def settle(outcome: Outcome) -> None:
        outcomes[outcome.run.id] = outcome
        print(f"{number[outcome.run.id]} {outcome.state:<8} {outcome.detail}", file=out, flush=True)

    while pending or active:
        for run in list(pending):
            if pool.running() >= pool.capacity:
                break
            if waiting_on[run.id] - set(outcomes):
                continue
            pending.remove(run)
            prepared = _prepare(run, profile, dataset, keys, outcomes, runs_dir, force, planned)
            if isinstance(prepared, Outcome):
                settle(prepared)
                continue
            print(f"{number[run.id]} running...", file=out, flush=True)
            active[run.id] = (prepared, time.monotonic())
            pool.submit(prepared)
        if not active:
            if pending and not any(not (waiting_on[r.id] - set(outcomes)) for r in pending):
                raise RunnerError(f"no run can start: {', '.join(r.id for r in pending)} wait on runs that never "
                                  "end (a dependency cycle the plan should have refused)")
            continue
        for ended in pool.wait(timeout=1.0):
            job, t0 = active.pop(ended.run_id)
            if ended.metrics is None and job.attempt <= retries:
                print(f"{number[ended.run_id]} lost     {ended.lost}; starting it again "
                      f"(attempt {job.attempt + 1} of {retries + 1})", file=out, flush=True)
                retry = executors.Job(job.run, job.ctx, job.final_dir, attempt=job.attempt + 1)
                active[ended.run_id] = (retry, t0)
                pool.submit(retry)
                continue
            metrics = ended.metrics
            if metrics is None:  # lost on every attempt: recorded as failed, with the reason
                metrics = _record_lost(job, ended.lost, t0, retries)
            settle(_outcome(job.run, keys[job.run.id], metrics, time.monotonic() - t0))
    return outcomes


def chain_lengths(todo: list[PlannedRun], waiting_on: dict[str, set[str]]) -> dict[str, int]:
    """For each run, the number of runs in the longest chain that starts with it and follows what waits on
    what (``todo`` in dependency order)."""
    waiters: dict[str, list[str]] = {run.id: [] for run in todo}
    for run in todo:
        for dep in waiting_on[run.id]:
            waiters[dep].append(run.id)
    length: dict[str, int] = {}
    for run in reversed(todo):
        length[run.id] = 1 + max((length[w] for w in waiters[run.id]), default=0)
    return length


def _prepare(run, profile, dataset, keys, outcomes, runs_dir, force, planned) -> Outcome | executors.Job:
    """The run's outcome when it need not execute (skipped: a dependency is missing; cached), else its job."""
    key, final_dir = keys[run.id], folders.run_folder(runs_dir, run.stage, run.name)
    inputs, problem = _inputs(run, keys, outcomes, runs_dir, planned)
    if problem:
        return Outcome(run, "skipped", key, detail=problem)
    existing = _existing(final_dir)
    if not force and existing and existing["run"]["cache_key"] == key and existing["run"]["status"] == "done":
        return Outcome(run, "cached", key, detail=_headline(existing))
    ctx = execute.RunContext(profile=profile, dataset=dataset, cache_key=key, inputs=inputs)
    return executors.Job(run, ctx, final_dir)


def _outcome(run, key: str, metrics: dict, seconds: float) -> Outcome:
    if metrics["run"]["status"] == "done":
        return Outcome(run, "done", key, seconds, f"{seconds:6.1f}s  {_headline(metrics)}")
    err = metrics["run"]["error"]
    return Outcome(run, "failed", key, seconds, f"{seconds:6.1f}s  {err['type']}: {_first_line(err['message'])}")


def _record_lost(job, reason: str, t0: float, retries: int) -> dict:
    """A failed metrics.json for a run whose every attempt was lost, in place of whatever it replaced."""
    error = {"type": "WorkerLost", "message": f"{reason} (attempts: {job.attempt}; retries allowed: {retries})",
             "cell": None}
    work = folders.private_dir(job.final_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    metrics = execute.build_metrics(job.run, job.ctx, None, error, provenance.now_iso(), time.monotonic() - t0)
    records.write_metrics(work, metrics)
    folders.swap_into_place(work, job.final_dir)
    return metrics


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


def _dependency_ids(run) -> list[str]:
    return [f"{stage}/{name}" for stage, name in run.needs.items()] + _read_ids(run)


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
        dep_dir = folders.run_folder(runs_dir, stage, name)
        if dep_id in outcomes and outcomes[dep_id].state in ("failed", "skipped"):
            return {}, f"needs {dep_id}, which {outcomes[dep_id].state}"
        existing = _existing(dep_dir)
        if not existing or existing["run"]["status"] != "done" or existing["run"]["cache_key"] != keys[dep_id]:
            return {}, f"needs {dep_id}, which is not done and current (run it, or drop --only)"
        inputs[key] = {**planned[dep_id].identity(dep_dir), "cache_key": keys[dep_id]}
    return inputs, ""


def _existing(run_dir: Path) -> dict | None:
    try:
        return records.try_read_metrics(run_dir)
    except records.MetricsError:
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
