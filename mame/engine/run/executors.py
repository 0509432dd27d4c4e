"""Where runs execute, behind one interface: up to N side by side here, each in a process of its own
(``local``, ``--jobs N``; ``mame.engine.run.processes``), or as Ray tasks (``ray``, ``mame.engine.run.ray_executor``).

The runner decides what runs and when; an executor starts a job and says how it ended (:class:`Ended`: the
metrics.json the run wrote, or why its process ended without one). Every executor runs a job through
``execute.execute`` (atomic run folders, failure records, resume) and follows its ``progress.jsonl``
(:class:`Progress`, the one progress channel).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mame.engine.plan.load import PlannedRun
from mame.engine.run import execute, processes
from mame.engine.run import folders as run_folders
from mame.engine.run import records as runs
from mame.engine.run.environment import run_environment, threads_of
from mame.engine.run.folders import metrics_stamp, remove_partials
from mame.engine.run.provenance import cpu_count, gpu_count
from mame.results import PROGRESS_FILE

EXECUTORS = ("local", "ray")


@dataclass
class Job:
    run: PlannedRun
    ctx: execute.RunContext
    final_dir: Path
    attempt: int = 1


@dataclass
class Ended:
    run_id: str
    metrics: dict | None   # what the run wrote (done or failed); None when lost
    lost: str = ""         # why it wrote no metrics.json


class Progress:
    """The epoch lines of running jobs, read from their ``progress.jsonl`` wherever the run is being written (its
    private ``.partial-*`` folder, or its run folder once swapped into place) and handed to ``on_progress``."""

    def __init__(self, on_progress: Callable[[str, dict], None]):
        self.on_progress = on_progress
        self._at: dict[str, tuple[Path | None, int]] = {}

    def follow(self, job: Job, swapped: bool = False) -> None:
        """Hand on the job's new lines; ``swapped``: the run has ended and its folder is in place (read there)."""
        path, offset = self._at.get(job.run.id, (None, 0))
        if path is None or not path.exists():
            name = f".{job.final_dir.name}{run_folders.PARTIAL_MARK}*/{PROGRESS_FILE}"
            found = sorted(job.final_dir.parent.glob(name))
            if swapped and not found:
                found = [job.final_dir / PROGRESS_FILE]
            if not found:
                return
            path = found[0]
        offset = execute.read_new_lines(path, offset, lambda line: self.on_progress(job.run.id, line))
        self._at[job.run.id] = (path, offset)

    def forget(self, run_id: str) -> None:
        self._at.pop(run_id, None)


def run_job(job: Job, fresh_kernel: bool) -> None:
    """A run's process: execute the job (the metrics.json it writes says how it ended)."""
    execute.execute(job.run, job.ctx, job.final_dir, fresh_kernel=fresh_kernel, own_process=True)


@dataclass
class _Running:
    job: Job
    proc: object               # the multiprocessing Process running it
    slot: int
    before: tuple | None       # the run's metrics.json when it started (metrics_stamp)


class LocalExecutor:
    """Up to ``jobs`` runs side by side, each forked from the preloading forkserver, with ``threads`` CPU threads
    (default every core, as a run alone gets: TensorFlow's CPU results depend on the thread count, so runs side by
    side oversubscribe the cores rather than change their numbers) and, where GPUs exist, GPU ``slot mod count``.
    ``fresh_kernels``: each notebook in a fresh Jupyter kernel instead of the run's forked process."""

    name = "local"

    def __init__(self, jobs: int, on_progress: Callable[[str, dict], None], *, threads: int | None = None,
                 fresh_kernels: bool = False):
        if jobs < 1:
            raise ValueError(f"--jobs must be 1 or more, not {jobs}")
        self.capacity = jobs
        self.threads = threads or cpu_count()
        self.gpus = gpu_count()
        self.fresh_kernels = fresh_kernels
        self.progress = Progress(on_progress)
        self._running: dict[str, _Running] = {}

    def submit(self, job: Job) -> None:
        slot = min(set(range(self.capacity)) - {r.slot for r in self._running.values()})
        env = run_environment(dict(os.environ), self.threads) | (
            {"CUDA_VISIBLE_DEVICES": str(slot % self.gpus)} if self.gpus else {})
        info = {"name": self.name, "jobs": self.capacity, "attempt": job.attempt, "threads": threads_of(env),
                "gpu": env.get("CUDA_VISIBLE_DEVICES"), "kernel": "fresh" if self.fresh_kernels else "forked"}
        job = replace(job, ctx=replace(job.ctx, executor=info))
        before = metrics_stamp(job.final_dir)
        proc = processes.start(run_job, (job, self.fresh_kernels), env=env, threads=self.threads)
        self._running[job.run.id] = _Running(job, proc, slot, before)

    def running(self) -> int:
        return len(self._running)

    def wait(self, timeout: float) -> list[Ended]:
        ended_procs = processes.wait_any([r.proc for r in self._running.values()], timeout)
        for running in self._running.values():
            self.progress.follow(running.job)
        return [self._ended(self._running.pop(r.job.run.id)) for r in list(self._running.values())
                if r.proc in ended_procs]

    def _ended(self, running: _Running) -> Ended:
        job = running.job
        metrics = finished_on_disk(job, running.before)
        if metrics is not None:
            self.progress.follow(job, swapped=True)  # the lines it wrote since the last look
        else:
            remove_partials(job.final_dir, running.proc.pid)
        self.progress.forget(job.run.id)
        return Ended(job.run.id, metrics, "" if metrics is not None else processes.describe_exit(running.proc.exitcode))

    def close(self) -> None:
        """Stop every run still going (Ctrl-C at the runner), its processes' trees with it."""
        for running in self._running.values():
            processes.stop_tree(running.proc.pid)
            running.proc.join()
            remove_partials(running.job.final_dir, running.proc.pid)
        self._running.clear()


def finished_on_disk(job: Job, before: tuple | None) -> dict | None:
    """The metrics.json (done or failed) the process running ``job`` swapped into place before it ended, even if it
    was lost just after (a swap the kill interrupted is put back first, ``run_folders.recover``); None where the run
    folder holds none, or the one it held when the job started (``before``, a ``metrics_stamp``), or another key's."""
    run_folders.recover(job.final_dir)
    if metrics_stamp(job.final_dir) == before:
        return None
    try:
        metrics = runs.try_read_metrics(job.final_dir)
    except runs.MetricsError:
        return None
    return metrics if metrics is not None and metrics["run"]["cache_key"] == job.ctx.cache_key else None
