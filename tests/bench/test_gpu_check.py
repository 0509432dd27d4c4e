"""``make gpu-check`` on a machine without a GPU: it says so and fails, rather than passing on the CPU."""

from __future__ import annotations

import subprocess
import sys

from mame import config
from mame.bench import gpu_check


def test_without_a_gpu_it_refuses_and_names_what_to_check():
    done = subprocess.run([sys.executable, "-m", "mame.bench.gpu_check"], capture_output=True, text=True, cwd=config.ROOT,
                          env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "TensorFlow sees no GPU here" in done.stderr


def test_a_run_that_finished_on_the_cpu_fails_the_check(tmp_path):
    import json
    from types import SimpleNamespace

    for run_id, gpus in (("features/vgg16", 0), ("finetune/vgg16-step1-vs", 1), ("classify/vgg16", None)):
        (tmp_path / run_id).mkdir(parents=True)
        metrics = {"run": {"duration_s": 1.0}, "metrics": {"shape": "variable" if "vs" in run_id else "fixed",
                                                           **({"tensorflow_gpus": gpus} if gpus is not None else {})}}
        (tmp_path / run_id / "metrics.json").write_text(json.dumps(metrics))
    outcomes = [SimpleNamespace(run=SimpleNamespace(stage=r.split("/")[0], id=r), state="done")
                for r in ("features/vgg16", "finetune/vgg16-step1-vs", "classify/vgg16")]
    rows = {r["run"]: r for r in gpu_check.check_runs(outcomes, tmp_path)}
    assert [rows[r]["ok"] for r in ("features/vgg16", "finetune/vgg16-step1-vs", "classify/vgg16")] == [False, True, True]
    table = gpu_check.summary(list(rows.values()), None, ["/physical_device:GPU:0"], 3.0)
    assert "FAILED: 1 run(s) did not finish on the GPU: features/vgg16" in table
