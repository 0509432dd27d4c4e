"""Runs side by side (``--jobs N``, a forked process per run): dependencies respected, the same cache, the
executor recorded, a killed run's process retried or failed with its reason, and a runner stopped by Ctrl-C,
SIGTERM or SIGKILL leaving no process and no half-written run behind.

The notebooks here are two cells without TensorFlow: what is under test is the runner and its processes, real
papermill and real processes.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import psutil
import pytest

from mame import config
from mame.engine.run import folders as run_folders
from mame.engine.run import records
from mame.engine.run.processes import describe_exit
from mame.engine.run.provenance import cpu_count
from mame.engine.run.scheduler import run_plan
from mame.engine.run.status import collect
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
results.report_progress(run_dir, epoch=1, epochs=2, loss=0.5, val_accuracy=0.25, seconds=0.1)
time.sleep(hold if first else 0)
results.report_progress(run_dir, epoch=2, epochs=2, loss=0.25, val_accuracy=0.5, seconds=0.1)
results.save_result(run_dir, {"metrics": {"start": start, "end": time.time(), "inputs": sorted(inputs),
                                          "intra": os.environ.get("TF_NUM_INTRAOP_THREADS"),
                                          "blas": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}})"""
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
    m = records.read_metrics(runs_dir / run_id)["metrics"]
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
    metrics = records.read_metrics(isolated_runs / "features" / "vgg16")
    threads = cpu_count()  # as a run alone gets: TensorFlow's results depend on the thread count
    assert metrics["run"]["executor"] == {"name": "local", "jobs": 2, "attempt": 1, "gpu": None, "kernel": "forked",
                                          "threads": {"intra_op": threads, "inter_op": min(2, threads), "blas": threads}}
    assert (metrics["metrics"]["intra"], metrics["metrics"]["blas"]) == (str(threads), str(threads))  # the kernel's
    assert records.read_metrics(isolated_runs / "classify" / "vgg16")["metrics"]["inputs"] == ["features"]
    printed = out.getvalue().splitlines()
    assert sum("running..." in line for line in printed) == 6 and sum(" done " in line for line in printed) == 6
    for run_id in order:  # each epoch line the notebook wrote, once, in order, as it came
        epochs = [line.split()[2] for line in printed if line.split()[:1] == [run_id] and "epoch" in line]
        assert epochs == ["1/2", "2/2"], (run_id, printed)
    assert any("epoch 2/2  loss 0.2500  val_acc 0.500" in line for line in printed)
    again = run_plan("smoke", plan_file=plan, jobs=2, out=io.StringIO())
    assert set(states(again).values()) == {"cached"}
    assert not list(isolated_runs.glob(f"*/.*{run_folders.PARTIAL_MARK}*"))


def test_threads_per_run_can_be_set_and_reach_the_kernel(tmp_path, isolated_runs):
    plan = write_plan(tmp_path, hold=0.0)
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, threads=1, only="features/vgg16", out=io.StringIO())
    assert states(outcomes) == {"features/vgg16": "done"}
    metrics = records.read_metrics(isolated_runs / "features" / "vgg16")
    assert metrics["run"]["executor"]["threads"] == {"intra_op": 1, "inter_op": 1, "blas": 1}
    assert (metrics["metrics"]["intra"], metrics["metrics"]["blas"]) == ("1", "1")


def test_one_job_runs_in_a_process_of_its_own_too(tmp_path, isolated_runs):
    plan = write_plan(tmp_path, hold=0.0)
    outcomes = run_plan("smoke", plan_file=plan, jobs=1, only="features/vgg16", out=io.StringIO())
    assert states(outcomes) == {"features/vgg16": "done"}
    metrics = records.read_metrics(isolated_runs / "features" / "vgg16")
    info = metrics["run"]["executor"]
    assert (info["name"], info["jobs"], info["attempt"], info["kernel"]) == ("local", 1, 1, "forked")
    assert metrics["metrics"]["pid"] != os.getpid()


def kill_worker_when_held(runs_dir: Path, marker: Path, killed: list) -> None:
    """Once the notebook is holding (its marker written), SIGKILL the process running it: the pid in its
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
    metrics = records.read_metrics(runs_dir / "features" / "vgg16")
    if retries:
        assert states(outcomes) == {"features/vgg16": "done", "classify/vgg16": "done"}, printed
        assert metrics["run"]["executor"]["attempt"] == 2
        assert "lost" in printed and "starting it again (attempt 2 of 2)" in printed
    else:
        assert states(outcomes) == {"features/vgg16": "failed", "classify/vgg16": "skipped"}, printed
        assert metrics["run"]["status"] == "failed" and metrics["run"]["error"]["type"] == "WorkerLost"
        assert outcomes[1].detail == "needs features/vgg16, which failed"
    assert not list(runs_dir.glob(f"*/.*{run_folders.PARTIAL_MARK}*"))  # the lost attempt's folder is gone
    wait_for(lambda: not processes_in(runs_dir), 15, "nothing to keep running in the runs folder")
    return outcomes, printed, metrics


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_is_retried_or_fails_with_the_reason(tmp_path, isolated_runs, retries):
    outcomes, printed, metrics = run_with_the_worker_killed(tmp_path, isolated_runs, retries)
    assert "killed (SIGKILL)" in printed, printed
    if not retries:
        assert metrics["run"]["error"]["message"] == f"{describe_exit(-signal.SIGKILL)} (attempts: 1; retries allowed: 0)"


def start_runner(plan: Path, *extra: str) -> subprocess.Popen:
    """``python -m mame run`` on ``plan`` (two jobs), in a process group of its own as a terminal would start it: with
    SIGINT's default disposition (a test worker may ignore SIGINT, and an ignored signal stays ignored across exec)."""
    return subprocess.Popen([sys.executable, "-m", "mame", "run", "--profile", "smoke", "--plan", str(plan), "--jobs", "2",
                             *extra], cwd=config.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigkill"])
def test_a_stopped_or_killed_runner_takes_every_process_it_started_with_it_and_nothing_else(tmp_path, isolated_runs, how):
    """Ctrl-C (SIGINT to the runner's process group, as a terminal sends it), SIGTERM or SIGKILL to the runner while
    two runs hold: the runner, the forkserver and the runs' processes all end, unrelated processes go on, nothing
    looks done, and the next start runs everything."""
    marker = tmp_path / "holding"
    plan = write_plan(tmp_path, hold=60, marker=str(marker))
    bystander = subprocess.Popen(["sleep", "120"])  # an unrelated process of the same user
    driver = start_runner(plan)
    try:
        wait_for(lambda: len(list(tmp_path.glob("holding-*"))) == 2, 120, "two notebooks to start holding")
        family = psutil.Process(driver.pid).children(recursive=True)
        holding = [int(p.read_text()) for p in tmp_path.glob("holding-*")]
        assert set(holding) <= {p.pid for p in family} and len(family) >= 3, family  # forkserver + two runs
        if how == "ctrl-c":
            os.killpg(driver.pid, signal.SIGINT)
        else:
            driver.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)  # the runner alone
        printed = driver.communicate(timeout=60)[0].decode(errors="replace")
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family), 20,
                 f"every process the runner started to end ({how})")
        assert bystander.poll() is None  # nothing unrelated was killed
        if how != "sigkill":
            assert driver.returncode == 130 and "interrupted" in printed, printed
            assert not list(isolated_runs.glob(f"*/.*{run_folders.PARTIAL_MARK}*"))  # its runs' folders are gone
    finally:
        bystander.kill()
        if driver.poll() is None:
            driver.kill()
    assert {e.state for e in collect("smoke", plan)} == {"missing"}  # nothing looks done
    for backbone in ("vgg16", "resnet50", "efficientnetb0"):
        Path(f"{marker}-{backbone}").touch()  # no more holding
    outcomes = run_plan("smoke", plan_file=plan, jobs=2, out=io.StringIO())  # the next start goes through
    failed = {o.run.id: o.detail for o in outcomes if o.state != "done"}
    assert not failed, failed


def test_the_default_is_one_run_per_gpu_else_two(monkeypatch):
    from mame.engine.run.environment import default_jobs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert default_jobs() == 3  # one per GPU this process may use
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert default_jobs() == min(2, cpu_count())
    assert default_jobs("ray") > 8  # Ray starts what its resources allow
