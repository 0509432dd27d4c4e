"""Runs side by side (``--jobs N``, worker processes): dependencies respected, the same cache, the executor
recorded, a killed worker retried or failed with its reason, a killed runner leaving nothing behind.

The notebooks here are two cells without TensorFlow (a kernel start each, about a second): what is under
test is the runner and its workers, real papermill and real processes.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest

from mame import config
from mame.engine import execute, run_folders, runs
from mame.engine.executors import cpu_count, describe_exit
from mame.engine.kernel_protocol import FOLDER_PREFIX
from mame.engine.kernel_reaper import REAPER_GRACE_S
from mame.engine.runner import run_plan
from mame.engine.status import collect
from tests.helpers import wait_for, write_smoke_plan

PARAMS = 'run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0\nhold = 0.0\nmarker = ""'
# holds ``hold`` seconds; with a ``marker``, only the first time for its backbone (a retry goes straight through)
BODY = """import os, time
from mame import results
start = time.time()
mine = f"{marker}-{backbone}" if marker else ""
first = not mine or not os.path.exists(mine)
if mine and first:
    with open(mine, "w") as handle:
        handle.write(str(os.getpid()))
time.sleep(hold if first else 0)
results.save_result(run_dir, {"metrics": {"start": start, "end": time.time(), "inputs": sorted(inputs),
                                          "intra": os.environ.get("TF_NUM_INTRAOP_THREADS"),
                                          "blas": os.environ.get("OMP_NUM_THREADS")}})"""
STAGES = """
stages:
  features:
    notebook: {notebook}
    backbones: [vgg16, resnet50, efficientnetb0]
    variants:
      default: {{hold: {hold}, marker: "{marker}"}}
  classify:
    notebook: {notebook}
    needs: [features]
    backbones: [vgg16, resnet50, efficientnetb0]
    variants:
      default: {{}}
"""


def write_plan(tmp_path: Path, hold: float = 1.5, marker: str = "") -> Path:
    notebook = tmp_path / "hold.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(BODY)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    return write_smoke_plan(tmp_path / "plan.yaml", STAGES.format(notebook=notebook, hold=hold, marker=marker))


def states(outcomes) -> dict[str, str]:
    return {o.run.id: o.state for o in outcomes}


def span(runs_dir: Path, run_id: str) -> tuple[float, float]:
    m = runs.read_metrics(runs_dir / run_id)["metrics"]
    return m["start"], m["end"]


def processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is inside ``folder`` (a kernel runs in its run's private folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_two_jobs_run_side_by_side_in_dependency_order_and_the_cache_holds(tmp_path, isolated_runs):
    plan = write_plan(tmp_path)
    out = io.StringIO()
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, out=out)
    order = ["features/vgg16", "features/resnet50", "features/efficientnetb0", "classify/vgg16", "classify/resnet50",
             "classify/efficientnetb0"]
    assert [o.run.id for o in outcomes] == order  # plan order, whatever order they ended in
    assert set(states(outcomes).values()) == {"done"}, out.getvalue()
    spans = {run_id: span(isolated_runs, run_id) for run_id in order}
    # two of the three holds overlap: two ran side by side; never three (two jobs)
    firsts = sorted(spans[r] for r in order[:3])
    assert firsts[1][0] < firsts[0][1], firsts
    assert not (firsts[2][0] < firsts[0][1] and firsts[2][0] < firsts[1][1]), firsts
    for backbone in ("vgg16", "resnet50", "efficientnetb0"):  # a run starts after the run it needs ended
        assert spans[f"classify/{backbone}"][0] >= spans[f"features/{backbone}"][1]
    metrics = runs.read_metrics(isolated_runs / "features" / "vgg16")
    threads = cpu_count()  # as a run alone gets: TensorFlow's results depend on the thread count
    assert metrics["run"]["executor"] == {"name": "local", "jobs": 2, "attempt": 1, "gpu": None, "kernel": "forked",
                                          "threads": {"intra_op": threads, "inter_op": min(2, threads), "blas": threads}}
    assert (metrics["metrics"]["intra"], metrics["metrics"]["blas"]) == (str(threads), str(threads))  # the kernel's
    assert runs.read_metrics(isolated_runs / "classify" / "vgg16")["metrics"]["inputs"] == ["features"]
    printed = out.getvalue().splitlines()
    assert sum("running..." in line for line in printed) == 6 and sum(" done " in line for line in printed) == 6
    again = run_plan("smoke", plan_file=plan, jobs=2, out=io.StringIO())
    assert set(states(again).values()) == {"cached"}
    assert not list(isolated_runs.glob(f"*/.*{run_folders.PARTIAL_MARK}*"))


def test_threads_per_run_can_be_set_and_reach_the_kernel(tmp_path, isolated_runs):
    plan = write_plan(tmp_path, hold=0.0)
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, threads=1, only="features/vgg16", out=io.StringIO())
    assert states(outcomes) == {"features/vgg16": "done"}
    metrics = runs.read_metrics(isolated_runs / "features" / "vgg16")
    assert metrics["run"]["executor"]["threads"] == {"intra_op": 1, "inter_op": 1, "blas": 1}
    assert (metrics["metrics"]["intra"], metrics["metrics"]["blas"]) == ("1", "1")


def test_one_job_runs_in_this_process_as_before(tmp_path, isolated_runs):
    plan = write_plan(tmp_path, hold=0.0)
    outcomes = run_plan("smoke", plan_file=plan, jobs=1, only="features/vgg16", out=io.StringIO())
    assert states(outcomes) == {"features/vgg16": "done"}
    info = runs.read_metrics(isolated_runs / "features" / "vgg16")["run"]["executor"]
    assert (info["name"], info["jobs"], info["attempt"]) == ("serial", 1, 1)


def kill_worker_when_held(runs_dir: Path, marker: Path, killed: list) -> None:
    """Once the notebook is holding (its marker written), SIGKILL the worker running it: the pid in its
    private folder's name."""
    wait_for(Path(f"{marker}-vgg16").exists, 120, "the notebook to start holding")
    partial = wait_for(lambda: list((runs_dir / "features").glob(f".vgg16{run_folders.PARTIAL_MARK}*")), 30, "its folder")
    pid = int(partial[0].name.rsplit("-", 1)[1])
    killed.append(pid)
    os.kill(pid, signal.SIGKILL)


def run_with_the_worker_killed(tmp_path: Path, runs_dir: Path, retries: int, **executor) -> tuple[list, str, dict]:
    """``features/vgg16`` (holding 60 s the first time) and ``classify/vgg16`` (which needs it), with the worker
    running ``features/vgg16`` SIGKILLed while it holds: the outcomes, what the runner printed, its metrics."""
    marker = tmp_path / "holding"
    plan = write_plan(tmp_path, hold=60, marker=str(marker))
    killed: list = []
    killer = threading.Thread(target=kill_worker_when_held, args=(runs_dir, marker, killed))
    killer.start()
    out = io.StringIO()
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, only="features/vgg16,classify/vgg16", retries=retries, out=out,
                        **executor)
    killer.join()
    assert killed and not alive(killed[0])
    printed = out.getvalue()
    metrics = runs.read_metrics(runs_dir / "features" / "vgg16")
    if retries:
        assert states(outcomes) == {"features/vgg16": "done", "classify/vgg16": "done"}, printed
        assert metrics["run"]["executor"]["attempt"] == 2
        assert "lost" in printed and "starting it again (attempt 2 of 2)" in printed
    else:
        assert states(outcomes) == {"features/vgg16": "failed", "classify/vgg16": "skipped"}, printed
        assert metrics["run"]["status"] == "failed" and metrics["run"]["error"]["type"] == "WorkerLost"
        assert outcomes[1].detail == "needs features/vgg16, which failed"
    assert not list(runs_dir.glob(f"*/.*{run_folders.PARTIAL_MARK}*"))  # the lost attempt's folder is gone
    # the killed worker's kernel ends too (it polls its parent): nothing keeps running in the runs folder
    wait_for(lambda: not processes_in(runs_dir), 15, "the orphaned kernel to end")
    return outcomes, printed, metrics


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_is_retried_or_fails_with_the_reason(tmp_path, isolated_runs, retries):
    outcomes, printed, metrics = run_with_the_worker_killed(tmp_path, isolated_runs, retries)
    assert "killed (SIGKILL)" in printed, printed
    if not retries:
        assert metrics["run"]["error"]["message"] == f"{describe_exit(-signal.SIGKILL)} (attempts: 1; retries allowed: 0)"


def test_a_killed_runner_takes_its_workers_and_kernels_with_it_and_nothing_else(tmp_path, isolated_runs):
    marker = tmp_path / "holding"
    plan = write_plan(tmp_path, hold=60, marker=str(marker))
    bystander = subprocess.Popen(["sleep", "120"])  # an unrelated process of the same user
    scratch = Path(tempfile.mkdtemp(dir="/tmp"))  # the runner's temporary folders (its kernel server's) go here
    driver = subprocess.Popen([sys.executable, "-m", "mame", "run", "--profile", "smoke", "--plan", str(plan), "--jobs", "2"],
                              cwd=config.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              env={**os.environ, "TMPDIR": str(scratch)})
    try:
        wait_for(lambda: len(list(tmp_path.glob("holding-*"))) == 2, 120, "two notebooks to start holding")
        workers = [int(p.name.rsplit("-", 1)[1]) for p in isolated_runs.glob(f"*/.*{run_folders.PARTIAL_MARK}*")]
        assert len(workers) == 2, workers
        driver.kill()  # the runner alone, not its group
        driver.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in workers), 15, "the workers to die with the runner")
        wait_for(lambda: not processes_in(isolated_runs), 15, "their kernels to end")
        # the server removes it when its death signal arrives; its reaper, when the server has not REAPER_GRACE_S later
        try:
            wait_for(lambda: not list(scratch.glob(f"{FOLDER_PREFIX}*")), REAPER_GRACE_S + 25, "the kernel server's folder to go")
        except AssertionError as exc:
            logs = {str(log): log.read_text(errors="replace")[-3000:] for log in scratch.glob(f"{FOLDER_PREFIX}*/*.log")}
            raise AssertionError(f"{exc}; what is left: {sorted(map(str, scratch.rglob('*')))}; its logs: {logs}") from None
        assert bystander.poll() is None  # nothing unrelated was killed
    finally:
        bystander.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    assert {e.state for e in collect("smoke", plan)} == {"missing"}  # nothing looks done
    for backbone in ("vgg16", "resnet50", "efficientnetb0"):
        Path(f"{marker}-{backbone}").touch()  # no more holding
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, out=io.StringIO())  # the next start goes through
    failed = {o.run.id: (isolated_runs / o.run.id / execute.KERNEL_LOG) for o in outcomes if o.state != "done"}
    assert not failed, {run: (next(o.detail for o in outcomes if o.run.id == run),
                              log.read_text()[-2000:] if log.is_file() else "no kernel.log") for run, log in failed.items()}


def test_the_default_is_one_run_per_gpu_else_two(monkeypatch):
    from mame.engine.executors import default_jobs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert default_jobs() == 3  # one per GPU this process may use
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert default_jobs() == min(2, cpu_count())
    assert default_jobs("ray") > 8  # Ray starts what its resources allow
