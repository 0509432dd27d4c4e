"""Figures about runs and the deck: the runner's per-run fixed cost (each design of starting a run), peak
memory of the feature and fine-tuning stages, and a warm ``make report`` split into its steps."""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from mame import config

PARAMS = 'run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0'
# what every stage's notebook does before its own work: import the stage (TensorFlow, Keras) and save a result
BODY = ("import tensorflow, keras\nfrom mame.stages import features, finetune, scratch\nfrom mame import results\n"
        "results.save_result(run_dir, {'metrics': {'x': 1}})")
STEP_LINE = re.compile(r"^deck  (.*?) \.{2,} +([0-9.]+) s$")


def _notebook(path: Path) -> Path:
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(BODY)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), path)
    return path


DESIGNS = {
    "forked": "process forked from the forkserver, cells run in it (kept)",
    "provisioner": "kernel forked by a KernelProvisioner, papermill's engine",
    "fresh": "fresh Jupyter kernel per run",
}


def fixed_cost(repeats: int = 4) -> dict:
    """Seconds per run of a notebook that only imports a stage and saves a result, for each design of starting a
    run (``DESIGNS``), measured one after the other in this process: the kept one (the default executor), a kernel
    forked by a provisioner (``mame.bench.provisioner``) and a fresh kernel. The first run of a forked design
    also waits for the forkserver's own imports: the median is of the later ones."""
    from mame.engine.plan.load import PlannedRun
    from mame.engine.plan.profiles import Profile
    from mame.engine.run import execute, executors

    found = {}
    with tempfile.TemporaryDirectory(prefix="mame-bench-runs-") as tmp:
        notebook = _notebook(Path(tmp) / "fixed.ipynb")
        profile = Profile("smoke", {}, {}, {}, None, 0, 120, 300)
        dataset = {"source": "synthetic", "path": tmp, "fingerprint": "0" * 16}
        for how in DESIGNS:
            seconds = []
            for i in range(repeats):
                run = PlannedRun("bench", None, f"{how}{i}", notebook, {})
                ctx = execute.RunContext(profile, dataset, "0" * 16, {})
                final_dir = Path(tmp) / "runs" / how / str(i)
                start = time.perf_counter()
                metrics = _one_run(how, executors.Job(run, ctx, final_dir))
                if metrics is None or metrics["run"]["status"] != "done":
                    raise RuntimeError(f"the fixed-cost notebook failed ({how}): {metrics and metrics['run']['error']}")
                seconds.append(time.perf_counter() - start)
            found[how] = {"median_s": round(statistics.median(seconds[1:]), 2), "first_s": round(seconds[0], 2),
                          "runs": len(seconds), "design": DESIGNS[how]}
    for how in ("provisioner", "fresh"):
        found[f"{how}_over_forked"] = round(found[how]["median_s"] / found["forked"]["median_s"], 1)
    return found


def _one_run(how: str, job) -> dict | None:
    from mame.engine.run import execute, executors

    if how == "provisioner":
        from mame.bench.provisioner import forked_kernels

        with forked_kernels():
            return execute.execute(job.run, job.ctx, job.final_dir, fresh_kernel=True)
    pool = executors.LocalExecutor(1, lambda *_: None, fresh_kernels=how == "fresh")
    try:
        pool.submit(job)
        ended = []
        while not ended:
            ended = pool.wait(1.0)
        return ended[0].metrics
    finally:
        pool.close()


def peak_memory(out) -> dict:
    """Peak resident memory of the smoke profile's feature and fine-tuning runs (a private runs folder), and of
    the runs of that kind in ``runs/`` that recorded it (the demo's, after ``make report``)."""
    from mame.engine.run import records
    from mame.engine.run.scheduler import run_plan

    found: dict = {"smoke": {}, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="mame-bench-rss-") as tmp:
        saved = os.environ.get("MAME_RUNS_DIR")
        os.environ["MAME_RUNS_DIR"] = str(Path(tmp) / "runs")
        try:
            only = "features/vgg16,finetune/vgg16-step1"
            for outcome in run_plan("smoke", only=only, jobs=1, out=io.StringIO()):
                metrics = records.try_read_metrics(Path(tmp) / "runs" / outcome.run.id)
                if metrics and "peak_rss_mb" in metrics["run"]:
                    found["smoke"][outcome.run.id] = metrics["run"]["peak_rss_mb"]
        finally:
            os.environ.pop("MAME_RUNS_DIR", None)
            if saved is not None:
                os.environ["MAME_RUNS_DIR"] = saved
    for stage in ("features", "finetune"):
        for path in sorted((config.runs_dir() / stage).glob("*/metrics.json")):
            metrics = records.try_read_metrics(path.parent)
            if metrics and "peak_rss_mb" in metrics["run"]:
                found["runs"][f"{stage}/{path.parent.name}"] = metrics["run"]["peak_rss_mb"]
    for where, values in found.items():
        for run_id, mb in values.items():
            print(f"memory  {where:<5} {run_id:<32} peak RSS {mb:7.0f} MB", file=out, flush=True)
    return found


def report_split(out, profile: str = "demo") -> dict | None:
    """``make report`` with nothing new (the deck left as it is), and a forced render of the same deck in a
    private copy of the build folders (figures kept, as after a run), split into its steps. None without a
    deck of ``profile`` to render (run ``make report`` first)."""
    from mame.deck.render.build import build, build_dirs

    dirs = build_dirs()
    if not (dirs["output"] / "deck.html").is_file() or not config.runs_dir().is_dir():
        print(f"report  no {profile} deck yet (make report first): skipped", file=out, flush=True)
        return None
    start = time.perf_counter()
    build(profile, out=io.StringIO())
    warm = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="mame-bench-deck-") as tmp:
        for name, path in dirs.items():
            if path.is_dir():
                shutil.copytree(path, Path(tmp) / path.name, symlinks=True)
        saved = os.environ.get("MAME_REPORT_BUILD")
        os.environ["MAME_REPORT_BUILD"] = tmp
        printed = io.StringIO()
        try:
            start = time.perf_counter()
            build(profile, out=printed, rerender=True)
            total = time.perf_counter() - start
        finally:
            os.environ.pop("MAME_REPORT_BUILD", None)
            if saved is not None:
                os.environ["MAME_REPORT_BUILD"] = saved
    split = {"collect": 0.0, "figures": 0.0, "jinja": 0.0, "pandoc": 0.0, "pdf": 0.0, "check": 0.0}
    for line in printed.getvalue().splitlines():
        match = STEP_LINE.match(line.rstrip())
        if match and not match.group(1).startswith(" "):  # an indented line is part of the step above it
            split[_step_kind(match.group(1))] += float(match.group(2))
    found = {"nothing_new_s": round(warm, 2), "rerender_s": round(total, 1),
             "rerender_split_s": {k: round(v, 1) for k, v in split.items()}}
    print(f"report  nothing new: {warm:.2f} s; forced render {total:.1f} s = "
          + ", ".join(f"{k} {v:.1f} s" for k, v in found["rerender_split_s"].items()), file=out, flush=True)
    return found


def _step_kind(step: str) -> str:
    """The part of the split a build step belongs to (the context is computed for Jinja)."""
    lowered = step.lower()
    for word, kind in (("collect", "collect"), ("context", "jinja"), ("jinja", "jinja"), ("pandoc", "pandoc"),
                       ("pdf", "pdf"), ("browser", "check")):
        if word in lowered:
            return kind
    return "figures"
