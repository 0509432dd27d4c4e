"""Where runs execute, behind one interface: in the runner's process one at a time (``serial``), up to N
side by side in worker processes on this machine (``local``, ``--jobs N``), or as Ray tasks on a local Ray
instance or a cluster (``ray``, ``mame.engine.ray_executor``).

The runner decides what runs and when (its needs and reads done, cache skip, dependants of a failure
skipped); an executor only starts a job and says how it ended. Every executor runs a job through
``mame.engine.execute.execute``, so atomic run folders, failure records and resume are the same for all.

``wait`` hands back :class:`Ended` jobs: ``metrics`` when the run wrote its metrics.json (done or failed),
else ``lost`` says why the process running it ended without one (killed, crashed); the runner retries or
records the failure.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mame import config
from mame.engine import execute, run_folders, runs
from mame.engine.kernel_protocol import SERVER_ENV
from mame.engine.kernels import Kernels, kernel_environment, kernel_options
from mame.engine.plan import PlannedRun
from mame.engine.provenance import cpu_count
from mame.engine.run_folders import metrics_stamp, remove_partials
from mame.engine.worker import PARENT_ENV

EXECUTORS = ("local", "ray")
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STOP_GRACE_S = 5.0
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
    lost: str = ""         # why no metrics.json was written: the worker was killed, crashed...


def gpu_count() -> int:
    """GPUs nvidia-smi lists (0 without one), honouring a CUDA_VISIBLE_DEVICES already set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    from mame.engine.provenance import gpu_names

    return len(gpu_names())


def thread_env(threads: int) -> dict[str, str]:
    """What caps a run's CPU threads: TensorFlow's intra-op pool, OpenMP and the BLAS libraries; two
    inter-op threads (TensorFlow overlaps a few ops at once; more only oversubscribe the cores)."""
    env = dict.fromkeys(THREAD_VARS, str(threads))
    env["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
    return env


def threads_of(env: dict) -> dict:
    """The thread settings in ``env`` as provenance records them (None: the libraries' own default)."""
    def value(name: str):
        return int(env[name]) if env.get(name, "").isdigit() else None
    return {"intra_op": value("TF_NUM_INTRAOP_THREADS"), "inter_op": value("TF_NUM_INTEROP_THREADS"),
            "blas": value("OMP_NUM_THREADS")}


class SerialExecutor:
    """One run at a time, in this process (``--jobs 1``): exactly the runner of before executors."""

    name = "serial"

    def __init__(self, on_progress: Callable[[str, dict], None], *, fresh_kernels: bool = False):
        self.capacity = 1
        self.on_progress = on_progress
        self._queued: list[Job] = []
        self.kernels = Kernels(fresh_kernels or bool(gpu_count()))  # see LocalExecutor

    def submit(self, job: Job) -> None:
        info = {"name": self.name, "jobs": 1, "attempt": job.attempt, "threads": threads_of(dict(os.environ)),
                "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}
        self._queued.append(replace(job, ctx=replace(job.ctx, executor=info)))

    def running(self) -> int:
        return len(self._queued)

    def wait(self, timeout: float) -> list[Ended]:
        if not self._queued:
            return []
        job = self._queued.pop(0)
        server = self.kernels.path(kernel_environment(dict(os.environ)), kernel_options())
        saved = os.environ.get(SERVER_ENV)
        if server:
            os.environ[SERVER_ENV] = server
        try:
            metrics = execute.execute(job.run, job.ctx, job.final_dir,
                                      progress=lambda line: self.on_progress(job.run.id, line))
        finally:
            os.environ.pop(SERVER_ENV, None)
            if saved is not None:
                os.environ[SERVER_ENV] = saved
        return [Ended(job.run.id, metrics)]

    def close(self) -> None:
        self._queued.clear()
        self.kernels.stop()


@dataclass
class _Worker:
    job: Job
    proc: subprocess.Popen
    slot: int
    reader: threading.Thread
    before: tuple | None = None  # the run's metrics.json when it started (metrics_stamp)


class LocalExecutor:
    """Up to ``jobs`` runs side by side, each in a worker process of its own (``python -m mame.engine.worker``)
    with ``threads`` CPU threads and, where GPUs exist, one GPU through CUDA_VISIBLE_DEVICES (slot i gets GPU i
    mod the GPU count).

    ``threads`` defaults to every core, as a run alone gets: TensorFlow's CPU results depend on its thread
    count (a 3-epoch demo rung trained with 1 thread and with 2 ended 0.30 and 0.41 on validation), so runs
    side by side must keep it to give the numbers one run at a time gives. The cores are oversubscribed
    instead; that still pays, because much of a run is single-threaded (kernel start, imports, tracing)."""

    name = "local"

    def __init__(self, jobs: int, on_progress: Callable[[str, dict], None], *, threads: int | None = None,
                 out=sys.stdout, fresh_kernels: bool = False):
        if jobs < 1:
            raise ValueError(f"--jobs must be 1 or more, not {jobs}")
        self.capacity = jobs
        self.on_progress = on_progress
        self.out = out
        self.threads = threads or cpu_count()
        self.gpus = gpu_count()
        self._workers: dict[str, _Worker] = {}
        self._events: queue.Queue = queue.Queue()
        # CUDA cannot be used in a process forked after it started, and TensorFlow may start it at import: where
        # there are GPUs, kernels start fresh (their runs are long; the seconds of import matter less there)
        self.kernels = Kernels(fresh_kernels or bool(self.gpus))

    def env_for(self, slot: int) -> dict[str, str]:
        env = dict(os.environ, **thread_env(self.threads))
        env[PARENT_ENV] = str(os.getpid())
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        # the worker imports this checkout's mame (the code the cache key hashed), wherever it starts
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config.ROOT), os.environ.get("PYTHONPATH")]))
        env.pop(SERVER_ENV, None)
        server = self.kernels.path(kernel_environment(env), kernel_options())
        if server:
            env[SERVER_ENV] = server
        return env

    def submit(self, job: Job) -> None:
        slot = min(set(range(self.capacity)) - {w.slot for w in self._workers.values()})
        env = self.env_for(slot)
        info = {"name": self.name, "jobs": self.capacity, "attempt": job.attempt, "threads": threads_of(env),
                "gpu": env.get("CUDA_VISIBLE_DEVICES")}
        job = replace(job, ctx=replace(job.ctx, executor=info))
        # its own session: a Ctrl-C typed at the runner reaches the runner, which stops the workers itself
        proc = subprocess.Popen([sys.executable, "-m", "mame.engine.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=config.ROOT,
                                start_new_session=True)
        try:
            proc.stdin.write(pickle.dumps({"run": job.run, "ctx": job.ctx, "final_dir": job.final_dir}))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: its exit status says so
        reader = threading.Thread(target=self._read, args=(job.run.id, proc), name=f"worker-{job.run.id}", daemon=True)
        self._workers[job.run.id] = _Worker(job, proc, slot, reader, metrics_stamp(job.final_dir))
        reader.start()

    def _read(self, run_id: str, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                line = json.loads(text)
            except ValueError:
                line = None
            if isinstance(line, dict) and isinstance(line.get("progress"), dict):
                self._events.put(("progress", run_id, line["progress"]))
            elif text.strip():
                self._events.put(("print", run_id, text))
        proc.wait()
        self._events.put(("exit", run_id, proc.returncode))

    def running(self) -> int:
        return len(self._workers)

    def wait(self, timeout: float) -> list[Ended]:
        ended, deadline = [], time.monotonic() + timeout
        while not ended:
            try:
                kind, run_id, value = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if kind == "progress":
                self.on_progress(run_id, value)
            elif kind == "print":
                print(f"      {run_id:<34} {value}", file=self.out, flush=True)
            else:
                worker = self._workers.pop(run_id)
                ended.append(self._ended(worker, value))
        return ended

    def _ended(self, worker: _Worker, returncode: int) -> Ended:
        job = worker.job
        metrics = finished_on_disk(job, worker.before)
        if metrics is not None:
            return Ended(job.run.id, metrics)
        remove_partials(job.final_dir, worker.proc.pid)
        return Ended(job.run.id, None, lost=describe_exit(returncode))

    def close(self) -> None:
        """Stop every worker still running (Ctrl-C at the runner): SIGTERM, then SIGKILL after a grace."""
        for worker in self._workers.values():
            _signal_group(worker.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self._workers.values():
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(worker.proc, signal.SIGKILL)
                worker.proc.wait()
            remove_partials(worker.job.final_dir, worker.proc.pid)
        self._workers.clear()
        self.kernels.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the worker process running it was killed ({name}) before it wrote its metrics.json"
    return f"the worker process running it exited with status {returncode} without writing its metrics.json"


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
    core). Measured on 2 cores, whole demo plan from cold, each run with every core as threads (README,
    "Running side by side"): --jobs 1 554 s, 2 408 s, 3 419 s. Two runs overlap one's single-threaded
    work (kernel start, imports, graph tracing) with the other's compute; a third only oversubscribes."""
    if kind == "ray":
        return RAY_IN_FLIGHT
    gpus = gpu_count()
    if gpus:
        return gpus
    return min(2, cpu_count())
