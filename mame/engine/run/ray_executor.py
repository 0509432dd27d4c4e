"""``--executor ray``: each run a Ray task, on a local Ray instance (loopback only, no dashboard, no usage
reporting) or on the cluster at ``--address``.

A task asks for the profile's ``resources`` for its stage (on a local instance without them: a CPU slot, every core
as threads), runs ``execute.execute`` in the Ray worker with a fresh kernel, and returns the metrics it wrote. The
runs folder must be one path every node sees: a run the runner cannot see where the task wrote it fails, saying
so. Ray retries nothing (``max_retries=0``): a lost task goes back to the runner, unless its run was swapped into
place before it was lost (its metrics.json is then taken from the disk).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

from mame import config
from mame.engine.run import execute
from mame.engine.run.environment import thread_env, threads_of
from mame.engine.run.executors import Ended, Job, Progress, finished_on_disk
from mame.engine.run.folders import metrics_stamp, remove_partials
from mame.engine.run.provenance import cpu_count, gpu_count

# what a local instance must not do: listen beyond loopback, start a dashboard, report usage
LOCAL_INIT = {"include_dashboard": False, "log_to_driver": False, "object_store_memory": 256 * 1024 * 1024}
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
# Ray turns 127.0.0.1 given as the node address into the machine's own IP, except where it runs without
# clusters (its switch for Windows and macOS): then its node, GCS and workers use the loopback address.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# how long a run a task wrote may take to appear here before the runs folder is said not to be shared (an NFS
# client caches what a folder holds, found or not, for up to a minute by default: acdirmax)
SHARED_GRACE_S = 60.0


def run_task(job: Job, threads: int | None) -> dict:
    """The body of a Ray task: execute the run here with ``threads`` CPU threads; the metrics it wrote."""
    saved = dict(os.environ)
    if threads:
        os.environ.update(thread_env(threads))
    try:
        info = dict(job.ctx.executor or {}, threads=threads_of(dict(os.environ)),
                    gpu=os.environ.get("CUDA_VISIBLE_DEVICES"), host=os.uname().nodename)
        # a Ray worker runs task after task: each notebook gets a fresh kernel, so nothing of one run meets the next
        return execute.execute(job.run, replace(job.ctx, executor=info), job.final_dir, fresh_kernel=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)


class RayExecutor:
    name = "ray"

    def __init__(self, jobs: int, on_progress: Callable[[str, dict], None], *, address: str | None = None):
        import ray

        self.ray = ray
        self.capacity = jobs
        self._owned = not ray.is_initialized()
        self._saved_env = dict(os.environ) if self._owned else None
        self._cluster_switch = None
        os.environ.update(QUIET)
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(config.ROOT), os.environ.get("PYTHONPATH")])),
                                    **QUIET}}
        if self._owned:
            if address:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            else:
                from ray._private import ray_constants

                self._cluster_switch = ray_constants.ENABLE_RAY_CLUSTER
                os.environ.update(LOOPBACK_ONLY)  # for the processes Ray starts
                ray_constants.ENABLE_RAY_CLUSTER = False  # for this one, whose constants were read at import
                # a CPU slot per job at least: runs go side by side as with the local executor
                ray.init(num_cpus=max(cpu_count(), jobs), num_gpus=gpu_count(), runtime_env=runtime_env, **LOCAL_INIT)
        self.local = not address
        self._task = ray.remote(run_task)
        self._active: dict = {}  # object ref -> job
        self.progress = Progress(on_progress)
        self._before: dict[str, tuple | None] = {}  # run id -> its metrics.json when its task was submitted
        self._unshared = False  # a run a task wrote was not seen here: the runs folder is not shared

    def resources(self, job: Job) -> tuple[dict, int]:
        """What the task asks Ray for, and its CPU threads: the profile's ``resources`` for the stage, threads =
        their ``num_cpus``; on a local instance without them, a CPU slot, a GPU where there are GPUs, and every
        core as threads, as a run alone gets (TensorFlow's CPU results depend on the thread count)."""
        asked = job.ctx.profile.resources_for(job.run.stage)
        if asked or not self.local:
            asked = {"num_cpus": 1, **asked}
            return asked, max(1, int(asked["num_cpus"]))
        return {"num_cpus": 1, **({"num_gpus": 1} if gpu_count() else {})}, cpu_count()

    def submit(self, job: Job) -> None:
        resources, threads = self.resources(job)
        info = {"name": self.name, "jobs": self.capacity, "attempt": job.attempt, "threads": {}, "gpu": None,
                "kernel": "fresh"}
        job = replace(job, ctx=replace(job.ctx, executor=info))
        self._before[job.run.id] = metrics_stamp(job.final_dir)
        ref = self._task.options(max_retries=0, **resources).remote(job, threads)
        self._active[ref] = job

    def running(self) -> int:
        return len(self._active)

    def wait(self, timeout: float) -> list[Ended]:
        ready, _ = self.ray.wait(list(self._active), num_returns=1, timeout=timeout) if self._active else ([], [])
        for job in self._active.values():
            self.progress.follow(job)
        ended = [self._ended(self._active.pop(ref), ref) for ref in ready]
        for done in ended:
            self.progress.forget(done.run_id)
        return ended

    def _ended(self, job: Job, ref) -> Ended:
        """How the task of ``job`` ended: the metrics it wrote, from its return or, where it was lost after its
        swap, from the disk (as the local executor takes them); else lost, with the reason. A run this process
        does not see where the task wrote it within ``SHARED_GRACE_S`` fails: the runs folder is not shared
        (once one was not seen, the next ones are not waited for)."""
        before = self._before.pop(job.run.id, None)
        try:
            metrics = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            metrics = finished_on_disk(job, before)
            if metrics is None:
                remove_partials(job.final_dir)
                return Ended(job.run.id, None, lost=lost_reason(exc))
        deadline = time.monotonic() + (0 if self._unshared else SHARED_GRACE_S)
        while finished_on_disk(job, before) is None:
            if time.monotonic() >= deadline:
                self._unshared = True
                return Ended(job.run.id, not_shared(job, metrics))
            time.sleep(0.5)
        self.progress.follow(job, swapped=True)  # the lines it wrote since the last look
        return Ended(job.run.id, metrics)

    def close(self) -> None:
        for ref, job in list(self._active.items()):
            self.ray.cancel(ref, force=True)
            self.ray.wait([ref], timeout=10)
            remove_partials(job.final_dir)
        self._active.clear()
        if self._owned:
            self.ray.shutdown()
        if self._cluster_switch is not None:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = self._cluster_switch
        if self._saved_env is not None:  # the settings of the instance it started go with it
            os.environ.clear()
            os.environ.update(self._saved_env)


def not_shared(job: Job, metrics: dict) -> dict:
    """The run as failed, saying why: the Ray worker wrote its folder where the runner cannot see it."""
    host = (metrics["run"].get("executor") or {}).get("host", "a Ray worker")
    message = (f"{job.final_dir}: the Ray worker on {host} wrote this run there, but the runner does not see it: the "
               f"runs folder is not shared with the Ray workers; put it on storage every node mounts at the same path "
               f"(MAME_RUNS_DIR={config.runs_dir()})")
    error = {"type": "RunsFolderNotShared", "message": message, "cell": None}
    return {**metrics, "run": {**metrics["run"], "status": "failed", "error": error}}


def lost_reason(exc: Exception) -> str:
    """A lost task's reason, in one line: the worker died (killed, out of memory) or the task raised."""
    text, kind = " ".join(str(exc).split()), type(exc).__name__
    died = "WorkerCrashed" in kind or "died" in text.lower() or "killed" in text.lower()
    what = "the Ray worker running it died before it wrote its metrics.json" if died else \
        "the Ray task failed outside the notebook"
    return f"{what} ({kind}: {text[:300]})"
