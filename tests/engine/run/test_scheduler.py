"""The runner end to end: real papermill executions of the real stage notebooks on smoke data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mame import config
from mame.engine.run import records
from mame.engine.run.scheduler import run_plan
from mame.engine.run.status import collect
from tests.helpers import TEST_DATA_HOME, write_smoke_plan

pytestmark = pytest.mark.slow

STAGES = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [{backbones}]
    variants:
      default: {{}}
      small-batch: {{batch_size: {batch}}}
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [{backbones}]
    variants:
      default: {{}}
      on-small-batch: {{needs: {{features: small-batch}}, classifiers: [knn]}}
"""


def write_plan(path: Path, backbones="efficientnetb0", batch=8) -> Path:
    return write_smoke_plan(path, STAGES.format(backbones=backbones, batch=batch))


def states(outcomes) -> dict[str, str]:
    return {o.run.id: o.state for o in outcomes}


def notebook_mtimes(runs_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(runs_dir)): p.stat().st_mtime for p in runs_dir.rglob(records.NOTEBOOK_FILE)}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """One runs folder shared by the cache tests (first run, rerun, one variant changed)."""
    root = tmp_path_factory.mktemp("engine")
    mp = pytest.MonkeyPatch()
    mp.setenv("MAME_RUNS_DIR", str(root / "runs"))
    mp.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    plan = write_plan(root / "plan.yaml")
    environment = dict(os.environ)
    first = run_plan("smoke", plan_file=plan, jobs=2)  # as `make run` runs them
    assert dict(os.environ) == environment  # what the kernels needed was not left in this process
    yield root, plan, first
    mp.undo()


def test_first_run_executes_every_run_and_writes_valid_metrics(engine):
    root, plan, first = engine
    assert states(first) == {"features/efficientnetb0": "done", "features/efficientnetb0-small-batch": "done",
                             "classify/efficientnetb0": "done", "classify/efficientnetb0-on-small-batch": "done"}
    metrics = records.read_metrics(root / "runs" / "features" / "efficientnetb0")
    info = metrics["run"]
    assert info["status"] == "done" and info["profile"] == "smoke" and info["params"]["image_size"] == 32
    assert info["dataset"]["source"] == "synthetic" and len(info["dataset"]["fingerprint"]) == 64
    assert info["versions"]["tensorflow"] and info["device"]["kind"] in ("cpu", "gpu")
    assert metrics["metrics"]["feature_dim"] == 1280
    assert "random" in " ".join(metrics["notes"]).lower()  # the weights actually used are said
    assert (root / "runs" / "features" / "efficientnetb0" / "features_train.npz").is_file()
    classify = records.read_metrics(root / "runs" / "classify" / "efficientnetb0-on-small-batch")
    assert classify["run"]["depends_on"]["features"]["name"] == "efficientnetb0-small-batch"
    assert set(classify["classification"]) == {"knn/val"}
    executed = json.loads((root / "runs" / "features" / "efficientnetb0" / records.NOTEBOOK_FILE).read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    streams = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    assert not [o for o in streams if "absl" in "".join(o["text"]) or "cuda" in "".join(o["text"]).lower()]
    assert metrics["artifacts"]["kernel_log"] == "kernel.log"  # TensorFlow's C++ noise is kept there


def test_rerun_executes_no_notebook(engine):
    root, plan, first = engine
    before = notebook_mtimes(root / "runs")
    again = run_plan("smoke", plan_file=plan)
    assert set(states(again).values()) == {"cached"}
    assert notebook_mtimes(root / "runs") == before
    assert {e.state for e in collect("smoke", plan)} == {"done"}


def test_changing_one_variant_reruns_exactly_it_and_its_dependants(engine):
    root, plan, first = engine
    write_plan(plan, batch=4)
    assert {e.run.id: e.state for e in collect("smoke", plan)} == {
        "features/efficientnetb0": "done", "features/efficientnetb0-small-batch": "stale",
        "classify/efficientnetb0": "done", "classify/efficientnetb0-on-small-batch": "stale"}
    after = run_plan("smoke", plan_file=plan)
    assert states(after) == {"features/efficientnetb0": "cached", "features/efficientnetb0-small-batch": "done",
                             "classify/efficientnetb0": "cached", "classify/efficientnetb0-on-small-batch": "done"}


def _cli(*args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "mame", *args], env=env, cwd=config.ROOT,
                          capture_output=True, text=True, **kwargs)


def test_a_failing_notebook_is_isolated(tmp_path, isolated_runs):
    # a run that fails at run time (a feature layer the backbone does not have), and one that needs it
    plan = write_plan(tmp_path / "plan.yaml", backbones="efficientnetb0")
    plan.write_text(plan.read_text().replace("small-batch: {batch_size: 8}", "small-batch: {feature_layer: nosuchlayer}"))
    env = dict(os.environ)
    proc = _cli("run", "--profile", "smoke", "--plan", str(plan), "--only", "features,classify/efficientnetb0-on-small-batch",
                env=env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    summary = proc.stdout
    assert "features/efficientnetb0-small-batch" in summary and "failed" in summary and "nosuchlayer" in summary
    assert "classify/efficientnetb0-on-small-batch" in summary and "skipped" in summary
    assert "needs features/efficientnetb0-small-batch" in summary
    failed = records.read_metrics(isolated_runs / "features" / "efficientnetb0-small-batch")
    assert failed["run"]["status"] == "failed"
    assert "nosuchlayer" in failed["run"]["error"]["message"] and failed["run"]["error"]["type"] == "ValueError"
    assert (isolated_runs / "features" / "efficientnetb0-small-batch" / records.NOTEBOOK_FILE).is_file()  # kept for reading
    assert records.read_metrics(isolated_runs / "features" / "efficientnetb0")["run"]["status"] == "done"
    status = _cli("status", "--profile", "smoke", "--plan", str(plan), env=env, timeout=120)
    line = next(l for l in status.stdout.splitlines() if l.startswith("features/efficientnetb0-small-batch"))
    assert "failed" in line and "ValueError" in line and "nosuchlayer" in line


def test_sigkill_mid_run_leaves_nothing_that_looks_done(tmp_path, isolated_runs):
    plan = write_plan(tmp_path / "plan.yaml")
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "mame", "run", "--profile", "smoke", "--plan", str(plan),
                             "--only", "features/efficientnetb0"], env=env, cwd=config.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    stage_dir = isolated_runs / "features"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any((p / records.NOTEBOOK_FILE).exists() or p.name.count(".partial-")
                                                  for p in (stage_dir.iterdir() if stage_dir.exists() else [])):
        time.sleep(0.2)
    time.sleep(2.0)  # well inside the notebook: the kernel is up and executing
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for run_dir in stage_dir.iterdir():
        metrics = records.try_read_metrics(run_dir) if (run_dir / records.METRICS_FILE).exists() else None
        assert metrics is None, f"{run_dir} looks finished after a kill"
    assert [e.state for e in collect("smoke", plan) if e.run.id.startswith("features/efficientnetb0")] == ["missing", "missing"]
    again = run_plan("smoke", plan_file=plan, only="features/efficientnetb0")
    assert set(states(again).values()) == {"done"}
    assert sorted(p.name for p in stage_dir.iterdir()) == ["efficientnetb0", "efficientnetb0-small-batch"]


ECHO_CELLS = ('run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0',
              'from mame import results\nresults.save_result(run_dir, {"metrics": {"inputs": inputs, "seed": seed}})')
IDENTITY_STAGES = """
stages:
  finetune:
    notebook: {notebook}
    backbones: [vgg16, resnet50]
    variants:
      step1: {{}}
      step2: {{backbones: [vgg16]}}
  classify:
    notebook: {notebook}
    needs: [finetune]
    backbones: [vgg16]
    variants:
      default: {{needs: {{finetune: step2}}}}
  evaluate:
    notebook: {notebook}
    reads: [finetune]
"""


def test_a_notebook_is_handed_the_identity_of_each_run_it_needs_or_reads(tmp_path, isolated_runs):
    """A two-cell notebook that saves its ``inputs`` parameter: what the runner hands it, as it arrives."""
    import nbformat

    notebook = tmp_path / "echo.ipynb"
    cells = [nbformat.v4.new_code_cell(ECHO_CELLS[0], metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(ECHO_CELLS[1])]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    plan = write_smoke_plan(tmp_path / "plan.yaml", IDENTITY_STAGES.format(notebook=notebook))
    outcomes = run_plan("smoke", plan_file=plan)
    assert set(states(outcomes).values()) == {"done"}, [(o.run.id, o.detail) for o in outcomes]

    def handed(run_id: str) -> dict:
        return records.read_metrics(isolated_runs / run_id)["metrics"]["inputs"]

    def identity(backbone: str, variant: str, step: int) -> dict:
        name = f"{backbone}-{variant}"
        return {"stage": "finetune", "backbone": backbone, "variant": variant, "name": name, "seed": 0,
                "folder": str(isolated_runs / "finetune" / name), "step": step}

    assert handed("finetune/vgg16-step1") == {}
    assert handed("classify/vgg16") == {"finetune": identity("vgg16", "step2", 2)}  # a need: {stage: identity}
    assert handed("evaluate/default") == {"finetune": {  # a stage read whole: {stage: {name: identity}}
        "vgg16-step1": identity("vgg16", "step1", 1), "resnet50-step1": identity("resnet50", "step1", 1),
        "vgg16-step2": identity("vgg16", "step2", 2)}}
    reader = records.read_metrics(isolated_runs / "classify" / "vgg16")
    assert reader["metrics"]["seed"] == reader["run"]["seed"] == 0
    needed = records.read_metrics(isolated_runs / "finetune" / "vgg16-step2")["run"]
    assert reader["run"]["depends_on"] == {"finetune": {"name": "vgg16-step2", "cache_key": needed["cache_key"]}}
