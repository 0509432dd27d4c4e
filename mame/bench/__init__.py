"""``make bench``: speed figures measured in one process, printed as they come and as one table at the end
(never asserted), written as JSON to ``runs/bench/bench-<time>.json`` with the CPU flags they ran on, and as a
table to ``docs/benchmarks.md`` (machine, CPU flags, date: the latest run's figures).

- runs: the runner's per-run fixed cost for each design of starting a run: the kept one (a process forked from
  the preloading forkserver, cells run in it), a kernel forked by a jupyter_client provisioner, a fresh kernel
  (``mame.bench.runs``);
- images: decode-only images/s at 224 px, cold and from the decoded-image cache; per backbone, images/s of
  ``model.predict`` on in-memory arrays (the ceiling) and through our pipeline cold and warm, fp32 and bf16
  where the hardware has it; VGG16 fine-tuning train steps (``mame.bench.models``);
- shapes: fixed against variable shape per backbone (images/s, traced shapes, the padding gap) and the batch
  shapes of one epoch of the real MAMe's shapes, the paper's padding against the buckets (``mame.bench.shape_speed``);
- memory: peak RSS of the feature and fine-tuning stages;
- report: ``make report`` with nothing new, and a forced render split into collect / figures / Jinja /
  pandoc / PDF (with a demo deck at hand);
- runner: the smoke plan from nothing, then again with nothing stale (the ratio the cache must keep
  under 1/10), in a private runs folder;
- data: reading the official metadata CSV and fingerprinting a dataset, when the files are at hand.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

from mame import config, machine


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_runner(profile: str = "smoke") -> dict:
    from mame.engine.run.scheduler import run_plan

    saved = os.environ.get("MAME_RUNS_DIR")
    with tempfile.TemporaryDirectory(prefix="mame-bench-") as tmp:
        os.environ["MAME_RUNS_DIR"] = str(Path(tmp) / "runs")
        try:
            first, outcomes = _timed(run_plan, profile, out=io.StringIO())
            again, cached = _timed(run_plan, profile, out=io.StringIO())
        finally:
            os.environ.pop("MAME_RUNS_DIR", None)
            if saved is not None:
                os.environ["MAME_RUNS_DIR"] = saved
    executed = sum(o.state == "done" for o in outcomes)
    skipped = sum(o.state == "cached" for o in cached)
    print(f"runner  {profile}: first run {first:7.1f} s ({executed} notebooks executed)")
    print(f"runner  {profile}: rerun     {again:7.2f} s ({skipped} cached, "
          f"{len(cached) - skipped} executed)  ratio {again / first:.4f}")
    return {"profile": profile, "first_s": round(first, 1), "executed": executed, "rerun_s": round(again, 2),
            "cached": skipped, "ratio": round(again / first, 4)}


def bench_data() -> None:
    from mame.data import metadata, official

    with tempfile.TemporaryDirectory() as tmp:  # the official metadata, shipped with the package
        csv_path = Path(tmp) / config.METADATA_CSV
        csv_path.write_bytes(official.read_bytes(config.METADATA_CSV))
        seconds, meta = _timed(metadata.read_metadata, csv_path)
    print(f"data    read_metadata official CSV: {seconds:.3f} s for {len(meta.records):,} rows")
    synth = config.synthetic_dir("smoke")
    if (synth / config.METADATA_CSV).is_file():
        seconds, _ = _timed(metadata.dataset_fingerprint, synth)
        print(f"data    dataset_fingerprint smoke synthetic set: {seconds * 1000:.1f} ms")


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix flags that decide TensorFlow's speed here (AVX2, AVX-512, AMX)."""
    return sorted(f for f in machine.cpu_flags() if f.startswith(("avx", "amx", "fma")))


def table(found: dict) -> str:
    """The figures that answer the speed targets, one per line."""
    lines = ["", "what                                               figure"]
    fixed = found["fixed_cost"]
    for how in ("forked", "provisioner", "fresh"):
        ratio = f" ({fixed[f'{how}_over_forked']}x)" if how != "forked" else ""
        lines.append(f"per-run fixed cost, {how:<12} (median)          {fixed[how]['median_s']:.2f} s{ratio}"
                     f"  {fixed[how]['design']}")
    decode = found["images"]["decode"]
    lines.append(f"decode-only 224 px, cold -> cached                 {decode['cold_per_s']:,.0f} -> "
                 f"{decode['warm_per_s']:,.0f} images/s ({decode['warm_over_cold']}x)")
    for rates in found["images"]["backbones"]:
        name = f"{rates['backbone']} {rates['precision']}"
        lines.append(f"{name:<35} ceiling {rates['in_memory_per_s']:7.1f}  cold {rates['pipeline_cold_per_s']:7.1f}  "
                     f"warm {rates['pipeline_warm_per_s']:7.1f} images/s  warm/ceiling {rates['warm_over_ceiling']:.2f}")
    for rate in found["images"]["finetune"]:
        lines.append(f"fine-tuning train steps {rate['precision']:<26} {rate['train_per_s']:.1f} images/s "
                     f"(VGG16 {rate['size']} px, batch {rate['batch']})")
    shapes = found.get("shapes")
    if shapes:
        epoch = shapes["epoch"]
        lines.append(f"batch shapes, one epoch of MAMe's shapes at R65k    paper's padding {epoch['paper_shapes']} in "
                     f"{epoch['batches']} batches ({epoch['paper_padded_fraction']:.0%} pad), buckets "
                     f"{epoch['bucket_shapes']} ({epoch['bucket_padded_fraction']:.0%} pad)")
        for row in shapes["backbones"]:
            lines.append(f"FS vs VS {row['backbone']:<18} {row['target_pixels']:>6,} px   FS {row['fixed_per_s']:6.1f}  VS "
                         f"{row['variable_per_s']:6.1f} images/s ({row['variable_over_fixed']}x), VS traced "
                         f"{row['variable_traces']} shapes, padding gap {row['padding_gap_median']} ({row['weights']})")
    for where, values in found["memory"].items():
        for run_id, mb in values.items():
            lines.append(f"peak RSS {where} {run_id:<40} {mb:,.0f} MB")
    report = found.get("report")
    if report:
        split = ", ".join(f"{k} {v:.1f}" for k, v in report["rerender_split_s"].items())
        lines.append(f"warm make report (nothing new)                     {report['nothing_new_s']:.2f} s")
        lines.append(f"forced render {report['rerender_s']:.1f} s                           {split} s")
    runner = found.get("runner")
    if runner:
        lines.append(f"smoke plan from nothing / again                    {runner['first_s']:.1f} s / "
                     f"{runner['rerun_s']:.2f} s (ratio {runner['ratio']})")
    return "\n".join(lines)


def write_doc(found: dict, path: Path) -> Path:
    """The figures as the Markdown page ``docs/benchmarks.md``: written by ``make bench``, never by hand."""
    from mame.files import atomic_write

    text = "\n".join([
        "# Benchmarks", "",
        "Written by `make bench` (`python -m mame.bench`); run it again to measure this machine. Each run also leaves its",
        "figures as JSON in `runs/bench/`.", "",
        f"- date: {found['started']}",
        f"- machine: {found['machine']['name']}, {found['cores']} cores, Python {found['python']}",
        f"- CPU flags: {' '.join(found['cpu_flags']) or 'none of avx/amx/fma'}", "",
        "```text", table(found).strip("\n"), "```", ""])
    return atomic_write(path, text)


def main() -> int:
    import json
    import platform
    import sys

    from mame.bench import models, runs
    from mame.engine.run.provenance import cpu_count, device_info, now_iso

    started, t0 = now_iso(), time.perf_counter()
    out_dir = config.runs_dir() / "bench"  # the user's runs folder (the runner part uses a private one)
    flags = cpu_flags()
    print(f"machine: {device_info()['name']}, {cpu_count()} cores; flags: {' '.join(flags)}", flush=True)
    found: dict = {"started": started, "machine": device_info(), "cores": cpu_count(), "cpu_flags": flags,
                   "python": platform.python_version()}
    found["fixed_cost"] = runs.fixed_cost()
    fixed = found["fixed_cost"]
    print("runs    per-run fixed cost: " + ", ".join(f"{how} {fixed[how]['median_s']:.2f} s" for how in
                                                  ("forked", "provisioner", "fresh"))
          + f" (median of {fixed['forked']['runs'] - 1})", flush=True)
    found["images"] = models.measure(sys.stdout)
    from mame.bench import shape_speed as shapes
    from mame.engine.run.provenance import gpu_names

    with tempfile.TemporaryDirectory(prefix="mame-bench-shapes-") as tmp:  # R65k on a GPU, 128 px on a CPU
        found["shapes"] = shapes.measure(sys.stdout, Path(tmp), image_size=256 if gpu_names() else 128)
    found["memory"] = runs.peak_memory(sys.stdout)
    found["report"] = runs.report_split(sys.stdout)
    found["runner"] = bench_runner()
    bench_data()
    found["total_s"] = round(time.perf_counter() - t0, 1)
    print(table(found))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{started.replace(':', '').replace('+0000', 'Z')}.json"
    path.write_text(json.dumps(found, indent=1))
    write_doc(found, config.ROOT / "docs" / "benchmarks.md")
    print(f"\nbench: {found['total_s']:.0f} s; written to {path} and docs/benchmarks.md")
    return 0

