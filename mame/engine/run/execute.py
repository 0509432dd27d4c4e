"""Execute one planned run with papermill, in a private folder swapped into place at the end.

The notebook runs in ``runs/<stage>/.<name>.partial-<pid>``; only after the executed notebook and
``metrics.json`` (done or failed) are written does that folder replace ``runs/<stage>/<name>``. A run
killed midway leaves only a ``.partial`` folder, which the next runner start removes: it is never
mistaken for a finished run, and it executes again.

The notebook's cells run in this process (``mame.engine.run.notebook_engine``: the process the executor started
for the run, forked with TensorFlow already imported), or in a fresh Jupyter kernel (``fresh_kernel``).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mame.data import ledger as test_ledger
from mame.engine.plan.load import IDENTITY_KEYS, PlannedRun, Profile
from mame.engine.run import provenance, records
from mame.engine.run.environment import fresh_kernel_options, run_environment
from mame.engine.run.folders import drop_other_resume_dirs, private_dir, resume_dir, swap_into_place
from mame.engine.run.notebook_engine import register as in_process_engine

KERNEL_LOG = "kernel.log"  # what the run's libraries wrote outside the notebook (TensorFlow's C++ runtime...)
TEST_READS_FILE = "test_split_reads.jsonl"  # the data layer's journal of the run's test-split reads (mame.data.ledger)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class RunContext:
    """What the runner knows about a run beyond the plan: where its data and inputs are, its key."""
    profile: Profile
    dataset: dict            # source, path, fingerprint
    cache_key: str
    inputs: dict[str, dict]  # stage (needs) or stage/name (reads) -> the run's identity + its "cache_key"
    executor: dict | None = None  # how it is executed (mame.engine.run.executors): recorded in provenance


@contextmanager
def run_process_state(log_path: Path, extra_env: dict[str, str]):
    """What the notebook (or its fresh kernel) runs under, restored afterwards: the run's environment
    (``mame.engine.run.environment.run_environment`` and ``extra_env``), and fd 1 and 2 pointed at ``log_path``."""
    saved_env = dict(os.environ)
    os.environ.update(run_environment(saved_env), **extra_env)
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        for target, copy in enumerate(saved, 1):
            os.dup2(copy, target)
            os.close(copy)
        os.environ.clear()
        os.environ.update(saved_env)


def execute(run: PlannedRun, ctx: RunContext, final_dir: Path, *, fresh_kernel: bool = False,
            own_process: bool = False) -> dict:
    """Run the notebook; return the metrics written (status done or failed). Never raises for a notebook error.

    ``fresh_kernel``: in a fresh Jupyter kernel, not in this process. ``own_process``: this process exists for
    this run alone (the executors' run processes), so its peak memory (and its kernel's) is the run's."""
    final_dir = Path(final_dir)
    work = private_dir(final_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    resume = resume_dir(final_dir, ctx.cache_key)
    drop_other_resume_dirs(final_dir, keep=resume)
    started, t0 = provenance.now_iso(), time.monotonic()
    error = _run_notebook(run, ctx, work, resume, fresh_kernel)
    peak = peak_rss_mb() if own_process else None
    result = None
    if error is None:
        try:
            result = records.load_result(work)
        except records.MetricsError as exc:
            error = {"type": "MetricsError", "message": str(exc), "cell": None}
    metrics = build_metrics(run, ctx, result, error, started, time.monotonic() - t0, peak, test_reads=journaled_reads(work))
    try:
        records.write_metrics(work, metrics)
    except records.MetricsError as exc:  # a stage returned something off-schema: record it as a failure
        error = {"type": "MetricsError", "message": str(exc), "cell": None}
        metrics = build_metrics(run, ctx, None, error, started, time.monotonic() - t0, peak, test_reads=journaled_reads(work))
        records.write_metrics(work, metrics)
    swap_into_place(work, final_dir)
    if metrics["run"]["status"] == "done":
        shutil.rmtree(resume, ignore_errors=True)  # kept after a failure or a kill, so the rerun resumes
    return metrics


def peak_rss_mb() -> float:
    """Peak resident memory of this process or of a child it waited for (a fresh kernel), in MB; pages shared with
    the forkserver it came from count, as a fresh process's would."""
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(kb / 1024, 1)


def read_new_lines(path: Path, offset: int, progress) -> int:
    """Hand each complete JSON line of ``path`` after byte ``offset`` to ``progress``; the offset after them
    (a line still being written waits for the next call; a missing file is no line yet)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.splitlines():
        try:
            progress(json.loads(line))
        except ValueError:
            continue
    return offset + len(complete)


def notebook_inputs(inputs: dict[str, dict]) -> dict:
    """The ``inputs`` parameter: ``{stage: identity}`` for a needed run, ``{stage: {name: identity}}`` for
    the runs of a stage read whole (keys ``stage/name`` in ``inputs``). An identity is
    ``{"stage", "backbone", "variant", "name", "seed", "folder", "step"}`` (``PlannedRun.identity``)."""
    out: dict = {}
    for key, info in inputs.items():
        identity = {k: info[k] for k in IDENTITY_KEYS}
        if "/" in key:
            out.setdefault(key.split("/", 1)[0], {})[info["name"]] = identity
        else:
            out[key] = identity
    return out


def _run_notebook(run: PlannedRun, ctx: RunContext, work: Path, resume: Path, fresh_kernel: bool) -> dict | None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    parameters = dict(run.params, run_dir=str(work), data_dir=ctx.dataset["path"], profile=ctx.profile.name,
                      backbone=run.backbone, seed=run.seed, inputs=notebook_inputs(ctx.inputs))
    if run.checkpoints:
        parameters["checkpoint_dir"] = str(resume)
    if fresh_kernel:
        how = fresh_kernel_options(ctx.profile.start_timeout)
    else:
        how = {"engine_name": in_process_engine(), "kernel_name": "python3"}
    try:
        with run_process_state(work / KERNEL_LOG, {test_ledger.JOURNAL_ENV: str(work / TEST_READS_FILE)}):
            papermill.execute_notebook(str(run.notebook), str(work / records.NOTEBOOK_FILE), parameters=parameters,
                                       execution_timeout=ctx.profile.execution_timeout, progress_bar=False,
                                       log_output=False, cwd=str(work), **how)
    except PapermillExecutionError as exc:
        return {"type": exc.ename, "message": str(exc.evalue), "cell": exc.exec_count,
                "traceback": ANSI.sub("", "\n".join(exc.traceback))[-4000:]}
    except Exception as exc:  # kernel died, timeout, unreadable notebook...
        return {"type": type(exc).__name__, "message": str(exc) or repr(exc), "cell": None,
                "traceback": traceback.format_exc()[-4000:]}
    return None


def journaled_reads(work: Path) -> list[dict] | None:
    """Every read of the test split the run's kernel made, as the data layer journaled them where they happened
    (``mame.data.ledger``: whatever read them, a stage or a cell of the notebook); None when the kernel never
    started. A line the kernel was killed while writing is left out."""
    path = work / TEST_READS_FILE
    if not path.is_file():
        return None
    reads = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("what"), str) and isinstance(entry.get("n_images"), int):
            reads.append(entry)
    return reads


def build_metrics(run: PlannedRun, ctx: RunContext, result: dict | None, error: dict | None,
                  started: str, duration: float, peak_rss_mb: float | None = None, *,
                  test_reads: list[dict] | None = None) -> dict:
    """The run's metrics.json. ``test_reads``: the test-split reads the data layer journaled in the run's kernel
    (``journaled_reads``), which stand for the run's ``test_split_reads`` whatever the stage reported."""
    result = result or {}
    return {
        "schema_version": records.SCHEMA_VERSION,
        "run": {
            "stage": run.stage, "name": run.name, "backbone": run.backbone, "variant": run.variant,
            "cache_key": ctx.cache_key, "params": run.params, "profile": ctx.profile.name,
            "seed": run.seed, "dataset": ctx.dataset, "git": provenance.git_info(),
            "versions": provenance.versions(), "device": provenance.device_info(),
            **({"executor": ctx.executor} if ctx.executor else {}),
            "started": started, "ended": provenance.now_iso(), "duration_s": round(duration, 3),
            **({"peak_rss_mb": peak_rss_mb} if peak_rss_mb is not None else {}),
            "status": "failed" if error else "done", "error": error,
            "depends_on": {s: {"name": i["name"], "cache_key": i["cache_key"]} for s, i in ctx.inputs.items()},
            "test_split_reads": test_reads if test_reads is not None else result.get("test_split_reads", []),
        },
        "headline": result.get("headline"),
        "metrics": result.get("metrics", {}),
        "classification": result.get("classification", {}),
        "history": result.get("history", {}),
        "artifacts": {**result.get("artifacts", {}), "notebook": records.NOTEBOOK_FILE, "kernel_log": KERNEL_LOG},
        "notes": result.get("notes", []),
    }
