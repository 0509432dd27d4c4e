"""Runs in processes forked from the preloading forkserver, their notebooks executed in that process by papermill's
in-process engine: a run gives the metrics a fresh Jupyter kernel gives, sees nothing a run before it left behind,
records its outputs as a kernel's would be recorded, and fails a cell that runs too long.

Real papermill, real processes, real Keras (the smoke profile's runs).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import nbformat

from mame.engine.plan.load import PlannedRun
from mame.engine.plan.profiles import Profile
from mame.engine.run import execute
from mame.engine.run import records as runs
from mame.engine.run.scheduler import run_plan
from tests.helpers import write_smoke_plan

PARAMS = 'run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0'
# what a run finds when it starts, then the state it leaves behind (a global, the environment, a Keras policy,
# every random seed, a module), then what it draws once seeded
LEAKY = """import builtins, os, random, sys, types
import numpy as np, keras, tensorflow as tf
from mame import results

def draws():
    return {"np": int(np.random.randint(2**31)), "py": random.random(), "tf": float(tf.random.uniform(()))}

seen = {"global": getattr(builtins, "LEFT_BEHIND", None), "env": os.environ.get("MAME_LEFT_BEHIND"),
        "policy": keras.mixed_precision.global_policy().name, "module": "left_behind" in sys.modules,
        "draws": draws()}
builtins.LEFT_BEHIND = backbone
os.environ["MAME_LEFT_BEHIND"] = backbone
keras.mixed_precision.set_global_policy("mixed_bfloat16")
sys.modules["left_behind"] = types.ModuleType("left_behind")
keras.utils.set_random_seed(123)
results.save_result(run_dir, {"metrics": {"seen": seen, "seeded": draws(), "pid": os.getpid()}})"""
STAGES = """
stages:
  features:
    notebook: {notebook}
    backbones: [vgg16, resnet50]
    variants:
      default: {{}}
"""
TIMES = ("started", "ended", "duration_s", "executor", "peak_rss_mb", "fit_seconds", "predict_seconds", "seconds", "per_s")


def leaky_plan(tmp_path: Path) -> Path:
    notebook = tmp_path / "leaky.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(LEAKY)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    return write_smoke_plan(tmp_path / "plan.yaml", STAGES.format(notebook=notebook))


def test_a_run_in_a_forked_process_sees_nothing_the_run_before_it_left(tmp_path, isolated_runs):
    plan = leaky_plan(tmp_path)
    outcomes = run_plan("smoke", plan_file=plan, jobs=1, out=io.StringIO())  # one after the other, one forkserver
    assert [o.state for o in outcomes] == ["done", "done"]
    first, second = (runs.read_metrics(isolated_runs / "features" / b) for b in ("vgg16", "resnet50"))
    assert first["run"]["executor"]["kernel"] == second["run"]["executor"]["kernel"] == "forked"
    assert first["metrics"]["pid"] != second["metrics"]["pid"] and os.getpid() not in (first["metrics"]["pid"],
                                                                                      second["metrics"]["pid"])
    assert first["run"]["peak_rss_mb"] > 200  # TensorFlow and Keras imported: hundreds of MB
    for metrics in (first, second):
        seen = metrics["metrics"]["seen"]
        assert (seen["global"], seen["env"], seen["policy"], seen["module"]) == (None, None, "float32", False)
    # the seeds the first run set are not the second's: its first draws are not the seeded ones...
    seeded, drawn = first["metrics"]["seeded"], second["metrics"]["seen"]["draws"]
    assert all(seeded[k] != drawn[k] for k in ("np", "py", "tf")), (seeded, drawn)
    # ...nor are they the first run's own first draws: each process's generators are seeded afresh
    assert first["metrics"]["seen"]["draws"]["np"] != drawn["np"]


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not any(t in k for t in TIMES)}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_a_forked_run_gives_the_metrics_a_fresh_kernel_gives_and_two_side_by_side_give_them_too(tmp_path, monkeypatch):
    """A training run and a prediction run with random (seeded) weights, once each in a forked process (its cells
    run there), once each in a fresh Jupyter kernel, and both at once (``--jobs 2``, forked): the same metrics.json,
    but for times and how it ran."""
    only = "scratch/r1-plain,similarity/vgg16"
    got = {}
    for how, fresh, jobs in (("forked", False, 1), ("fresh", True, 1), ("side-by-side", False, 2)):
        runs_dir = tmp_path / how
        monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
        outcomes = run_plan("smoke", only=only, jobs=jobs, fresh_kernels=fresh, out=io.StringIO())
        assert [o.state for o in outcomes] == ["done", "done"], [o.detail for o in outcomes]
        got[how] = {run: runs.read_metrics(runs_dir / run) for run in only.split(",")}
        assert {m["run"]["executor"]["kernel"] for m in got[how].values()} == {"fresh" if fresh else "forked"}
        assert {m["run"]["executor"]["jobs"] for m in got[how].values()} == {jobs}
        assert all(m["run"]["peak_rss_mb"] > 200 for m in got[how].values())
    for run in only.split(","):
        forked, fresh, side = (_without_times(got[how][run]) for how in ("forked", "fresh", "side-by-side"))
        assert json.dumps(forked, sort_keys=True) == json.dumps(fresh, sort_keys=True), run
        assert json.dumps(forked, sort_keys=True) == json.dumps(side, sort_keys=True), run


def _tiny_run(tmp_path: Path, name: str, body: str = "from mame import results\n"
              "results.save_result(run_dir, {'metrics': {'x': 1}})") -> tuple[PlannedRun, execute.RunContext]:
    notebook = tmp_path / "tiny.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(body)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    profile = Profile("smoke", {}, {}, {}, None, 0, 120, 300)
    ctx = execute.RunContext(profile, {"source": "synthetic", "path": str(tmp_path), "fingerprint": "b" * 16},
                             "a" * 16, {}, executor={"name": "serial", "jobs": 1, "attempt": 1, "threads": {}, "gpu": None})
    return PlannedRun("tiny", None, name, notebook, {}), ctx


OUTPUTS = """import sys
from IPython.display import Markdown, display
print("to stdout")
print("to stderr", file=sys.stderr)
display(Markdown("**shown**"))
{"returned": 42}"""


def test_a_cell_s_outputs_are_recorded_in_the_executed_notebook_as_a_kernel_records_them(tmp_path):
    """What a cell prints, displays and returns, in order, and a failing cell's error: the outputs a kernel gives."""
    outputs = {}
    for fresh in (False, True):
        run, ctx = _tiny_run(tmp_path, f"outputs-{fresh}", "from mame import results\n"
                             "results.save_result(run_dir, {'metrics': {'x': 1}})\n" + OUTPUTS)
        execute.execute(run, ctx, tmp_path / "runs" / run.name, fresh_kernel=fresh)
        notebook = nbformat.read(tmp_path / "runs" / run.name / runs.NOTEBOOK_FILE, as_version=4)
        nbformat.validate(notebook)
        cell = notebook.cells[-1]
        outputs[fresh] = [(o.output_type, o.get("name"), o.get("text") or dict(o.get("data", {})))
                          for o in cell.outputs]
        assert cell.execution_count is not None
    assert outputs[False] == outputs[True] == [
        ("stream", "stdout", "to stdout\n"), ("stream", "stderr", "to stderr\n"),
        ("display_data", None, {"text/markdown": "**shown**", "text/plain": "<IPython.core.display.Markdown object>"}),
        ("execute_result", None, {"text/plain": "{'returned': 42}"})]


def test_a_fresh_kernel_talks_over_ipc_files_so_kernels_starting_together_never_race_for_a_port(tmp_path):
    run, ctx = _tiny_run(tmp_path, "transport", "from ipykernel.kernelapp import IPKernelApp\nfrom mame import results\n"
                         "app = IPKernelApp.instance()\n"
                         "results.save_result(run_dir, {'metrics': {'transport': app.transport, 'ip': app.ip}})")
    metrics = execute.execute(run, ctx, tmp_path / "runs" / run.name, fresh_kernel=True)
    assert metrics["run"]["status"] == "done", metrics["run"]["error"]
    assert metrics["metrics"]["transport"] == "ipc" and metrics["metrics"]["ip"].endswith("-ipc"), metrics["metrics"]


def test_a_failing_cell_fails_the_run_with_its_error_and_a_cell_past_its_time_is_stopped(tmp_path):
    run, ctx = _tiny_run(tmp_path, "fails", "x = 1\nraise ValueError('no such layer: block9')")
    metrics = execute.execute(run, ctx, tmp_path / "runs" / "fails")
    error = metrics["run"]["error"]
    assert metrics["run"]["status"] == "failed"
    assert (error["type"], error["message"]) == ("ValueError", "no such layer: block9")
    assert "raise ValueError" in error["traceback"] and "\x1b[" not in error["traceback"]
    notebook = nbformat.read(tmp_path / "runs" / "fails" / runs.NOTEBOOK_FILE, as_version=4)
    assert notebook.cells[-1].outputs[-1].output_type == "error"  # recorded in the notebook, as a kernel's would be
    run, ctx = _tiny_run(tmp_path, "slow", "import time\nfor _ in range(600):\n    time.sleep(0.05)")
    ctx.profile = Profile("smoke", {}, {}, {}, None, 0, 120, 2)  # two seconds a cell
    metrics = execute.execute(run, ctx, tmp_path / "runs" / "slow")
    assert metrics["run"]["error"]["type"] == "CellTimeoutError" and metrics["run"]["duration_s"] < 10
