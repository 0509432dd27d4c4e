"""Where runs execute, behind one interface: up to N side by side on this machine, each in a process of its own
(``local``, ``--jobs N``; ``mame.engine.run.processes``), or as Ray tasks on a local Ray instance or a cluster
(``ray``, ``mame.engine.run.ray_executor``).

The runner decides what runs and when (its needs and reads done, cache skip, dependants of a failure
skipped); an executor only starts a job and says how it ended. Every executor runs a job through
``mame.engine.run.execute.execute``, so atomic run folders, failure records and resume are the same for all.
Progress has one channel: the ``progress.jsonl`` a training notebook appends to in its private folder, which
the executor follows from the runner's side (:class:`Progress`).

``wait`` hands back :class:`Ended` jobs: ``metrics`` when the run wrote its metrics.json (done or failed),
else ``lost`` says why the process running it ended without one (killed, crashed); the runner retries or
records the failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mame.engine.plan.load import PlannedRun
from mame.engine.run import execute, processes
from mame.engine.run import folders as run_folders
from mame.engine.run import records as runs
from mame.engine.run.environment import run_environment, threads_of
from mame.engine.run.folders import metrics_stamp, remove_partials
from mame.engine.run.provenance import cpu_count
from mame.results import PROGRESS_FILE

EXECUTORS = ("local", "ray")
RAY_IN_FLIGHT = 256  # runs handed to Ray at once by default: Ray starts each when its resources are free


@dataclass
class Job:
    run: PlannedRun
    ctx: execute.RunContext
    final_dir: Path
    attempt: int = 1


@dataclass
class Ended:
    run_id: str
    metrics: dict | None   # what the run wrote (status done or failed); None when lost
    lost: str = ""         # why no metrics.json was written: the process was killed, crashed...


def gpu_count() -> int:
    """GPUs nvidia-smi lists (0 without one), honouring a CUDA_VISIBLE_DEVICES already set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    from mame.engine.run.provenance import gpu_names

    return len(gpu_names())


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

    def forget(self, job: Job) -> None:
        self._at.pop(job.run.id, None)


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
    """Up to ``jobs`` runs side by side, each in a process of its own forked from the preloading forkserver
    (``mame.engine.run.processes``), with ``threads`` CPU threads and, where GPUs exist, one GPU through
    CUDA_VISIBLE_DEVICES (slot i gets GPU i mod the GPU count).

    ``threads`` defaults to every core, as a run alone gets: TensorFlow's CPU results depend on its thread
    count (a 3-epoch demo rung trained with 1 thread and with 2 ended 0.30 and 0.41 on validation), so runs
    side by side must keep it to give the numbers one run at a time gives. The cores are oversubscribed
    instead; that still pays, because much of a run is single-threaded (imports, tracing, data loading).
    ``fresh_kernels``: each notebook in a fresh Jupyter kernel instead of the run's forked process."""

    name = "local"

    def __init__(self, jobs: int, on_progress: Callable[[str, dict], None], *, threads: int | None = None,
                 out=sys.stdout, fresh_kernels: bool = False):
        if jobs < 1:
            raise ValueError(f"--jobs must be 1 or more, not {jobs}")
        self.capacity = jobs
        self.out = out
        self.threads = threads or cpu_count()
        self.gpus = gpu_count()
        self.fresh_kernels = fresh_kernels
        self.progress = Progress(on_progress)
        self._running: dict[str, _Running] = {}

    def env_for(self, slot: int) -> dict[str, str]:
        env = run_environment(dict(os.environ), self.threads)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        return env

    def submit(self, job: Job) -> None:
        slot = min(set(range(self.capacity)) - {r.slot for r in self._running.values()})
        env = self.env_for(slot)
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
        ended = []
        for running in [r for r in self._running.values() if r.proc in ended_procs]:
            del self._running[running.job.run.id]
            ended.append(self._ended(running))
            self.progress.forget(running.job)
        return ended

    def _ended(self, running: _Running) -> Ended:
        job = running.job
        metrics = finished_on_disk(job, running.before)
        if metrics is not None:
            self.progress.follow(job, swapped=True)  # the lines it wrote since the last look
            return Ended(job.run.id, metrics)
        remove_partials(job.final_dir, running.proc.pid)
        return Ended(job.run.id, None, lost=processes.describe_exit(running.proc.exitcode))

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


def default_jobs(kind: str = "local") -> int:
    """Runs at once when --jobs is not given: one per GPU where GPUs exist; on CPUs two (one on a single
    core): two runs overlap one's single-threaded work (imports, graph tracing, data loading) with the other's
    compute; a third only oversubscribes the cores (docs/running.md)."""
    if kind == "ray":
        return RAY_IN_FLIGHT
    gpus = gpu_count()
    if gpus:
        return gpus
    return min(2, cpu_count())
