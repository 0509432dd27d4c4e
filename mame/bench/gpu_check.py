"""``make gpu-check``: is this GPU machine ready for the full study? One command, at most about 8 minutes on one GPU.

1. The smoke plan (every stage, fixed and variable shape: EfficientNet-Lite0's features and classifiers, VGG16's
   fine-tuning step 1) from nothing, in a private runs and data folder; every run must finish, and each run that
   used TensorFlow must say in its metrics.json that TensorFlow saw the GPU (``metrics.tensorflow_gpus``).
2. The bench's shapes section at the paper's R65k (256 px): images/s fixed against variable shape per backbone,
   the traced shapes, the padding gap (``mame.bench.shape_speed``).

Prints one summary table and exits 0 when every check passed, 1 when one failed, 2 without a GPU
(``--allow-cpu`` runs it anyway, to try the command: the GPU checks then fail, as they should).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TENSORFLOW_STAGES = ("scratch", "features", "similarity", "finetune", "evaluate", "explain")


def _gpus() -> list[str]:
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def check_runs(outcomes, runs_dir: Path) -> list[dict]:
    """One row per run: its state, seconds, shape, and whether TensorFlow saw a GPU in it."""
    rows = []
    for outcome in outcomes:
        stage, run_id = outcome.run.stage, outcome.run.id
        path = runs_dir / run_id / "metrics.json"
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        inner = metrics.get("metrics") or {}
        gpus = inner.get("tensorflow_gpus")
        ok = outcome.state == "done" and (stage not in TENSORFLOW_STAGES or bool(gpus))
        rows.append({"run": run_id, "state": outcome.state,
                     "seconds": (metrics.get("run") or {}).get("duration_s"), "shape": inner.get("shape", "fixed"),
                     "tensorflow_gpus": gpus, "ok": ok})
    return rows


def summary(rows: list[dict], shapes: dict | None, gpus: list[str], seconds: float) -> str:
    lines = [f"gpu-check on {', '.join(gpus) or 'no GPU'}: {seconds:.0f} s", "",
             f"{'run':<36} {'state':<8} {'s':>7} {'shape':<9} {'TF GPUs':>7}  ok"]
    for r in rows:
        secs = f"{r['seconds']:.1f}" if isinstance(r["seconds"], (int, float)) else "-"
        lines.append(f"{r['run']:<36} {r['state']:<8} {secs:>7} {r['shape']:<9} {str(r['tensorflow_gpus']):>7}  "
                     f"{'yes' if r['ok'] else 'NO'}")
    if shapes:
        epoch = shapes["epoch"]
        lines += ["", f"R65k, {shapes['images']} images of MAMe shapes, batch {shapes['batch']}; one epoch of MAMe's shapes: "
                      f"{epoch['paper_shapes']} batch shapes with the paper's padding, {epoch['bucket_shapes']} with buckets",
                  f"{'backbone':<18} {'weights':<8} {'FS img/s':>9} {'VS img/s':>9} {'VS/FS':>6} {'traced':>6} {'pad gap':>8}"]
        for b in shapes["backbones"]:
            gap = f"{b['padding_gap_median']:.3f}" if b["padding_gap_median"] is not None else "-"
            lines.append(f"{b['backbone']:<18} {b['weights']:<8} {b['fixed_per_s']:>9.1f} {b['variable_per_s']:>9.1f} "
                         f"{b['variable_over_fixed']:>6} {b['variable_traces']:>6} {gap:>8}")
    failed = [r["run"] for r in rows if not r["ok"]]
    lines += ["", "every run finished with TensorFlow on the GPU" if not failed else
              f"FAILED: {len(failed)} run(s) did not finish on the GPU: {', '.join(failed)}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mame.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to try the command; checks fail)")
    parser.add_argument("--no-bench", action="store_true", help="the smoke plan only")
    args = parser.parse_args(argv)
    gpus = _gpus()
    if not gpus and not args.allow_cpu:
        print("gpu-check: TensorFlow sees no GPU here (tf.config.list_physical_devices('GPU') is empty): run it on "
              "the GPU machine (check nvidia-smi and that the tensorflow[and-cuda] wheel is installed)", file=sys.stderr)
        return 2
    from mame.bench import shape_speed as shapes
    from mame.engine.run.scheduler import run_plan

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mame-gpu-check-") as tmp:
        saved = {k: os.environ.get(k) for k in ("MAME_RUNS_DIR", "MAME_DATA_HOME")}
        os.environ.update(MAME_RUNS_DIR=str(Path(tmp) / "runs"), MAME_DATA_HOME=str(Path(tmp) / "data"))
        try:
            outcomes = run_plan("smoke", out=sys.stdout)
            rows = check_runs(outcomes, Path(tmp) / "runs")
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None)
                if value is not None:
                    os.environ[key] = value
        found = None if args.no_bench else shapes.measure(io.StringIO(), Path(tmp) / "bench", image_size=256,
                                                             images=64, batch=16)
    print(summary(rows, found, gpus, time.perf_counter() - start))
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
