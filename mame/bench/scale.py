"""``make bench SCALE=1``: how each step's time and peak memory grow with the image count, up to the real MAMe's
37,407 images, on a full-size synthetic MAMe (``python -m mame data synth --like-mame``, made here if absent).

Each step (``mame.bench.scale_steps``) runs alone in a fresh process on a subset of the synthetic MAMe (each split
and class keeping its share; the images are links to the full set's), at 1k, 4k, 16k and 37k images. A size whose
time, predicted from the sizes measured so far, would pass ``cap_s`` is not run: its time is extrapolated and
labelled so. The growth exponent is the slope of log time against log images (1: linear) over the sizes measured.
Written: ``runs/bench/scale-<time>.json``, ``docs/scale.md`` (the table) and ``docs/scale.png`` (one log-log panel a
step); never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mame import config

SIZES = (1_000, 4_000, 16_000, 37_407)
STEPS = ("check", "cache", "pipeline", "features", "classify-logistic_regression", "classify-linear_svm",
         "classify-knn", "classify-rbf_svc", "classify-random_forest", "classify-mlp", "projection-pca",
         "projection-tsne", "projection-umap", "evaluate", "deck", "share")
CAP_S = 300.0


def subset(full: Path, images: int, into: Path) -> tuple[int, Path]:
    """A folder reading as a MAMe of about ``images`` images of ``full``: its own CSVs, links to ``full``'s images."""
    from mame.data.synthetic.like_mame import IMAGE_FOLDER, official_rows, write_tables

    full = Path(full).resolve()  # links that hold wherever they are read from
    header, rows = official_rows(images)
    folder = into / f"mame-{len(rows)}"
    (folder / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    for row in rows:
        link = folder / IMAGE_FOLDER / row[0]
        if not link.is_symlink():
            link.symlink_to(full / IMAGE_FOLDER / row[0])
    write_tables(folder, header, rows)
    return len(rows), folder


def measure(step: str, folder: Path, timeout: float) -> dict:
    """One step in a fresh process: its JSON line (a step that fails or runs past ``timeout`` says so)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run([sys.executable, "-m", "mame.bench.scale_steps", step, str(folder)], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=config.ROOT)
    except subprocess.TimeoutExpired:
        return {"step": step, "error": f"ran past {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"step": step, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth(points: list[tuple[int, float]]) -> float | None:
    """The slope of log(value) against log(images) over ``points``, the smallest size left out where three or more
    were measured (a step's fixed start-up, a model built or a graph traced, would bend the line there); None with
    fewer than two sizes."""
    points = sorted((n, v) for n, v in points if n > 0 and v > 0)
    points = points[1:] if len(points) >= 3 else points
    if len({n for n, _ in points}) < 2:
        return None
    slope, _ = np.polyfit(np.log([n for n, _ in points]), np.log([v for _, v in points]), 1)
    return round(float(slope), 2)


def predict(points: list[tuple[int, float]], images: int) -> float:
    """The time at ``images`` from the sizes measured: their growth, at least linear, from the largest."""
    n, seconds = max(points)
    return seconds * (images / n) ** max(1.0, growth(points) or 1.0)


def scale_step(step: str, folders: dict[int, Path], cap_s: float, say) -> dict:
    """``step`` at each size, smallest first; sizes predicted past ``cap_s`` extrapolated."""
    rows, measured = [], []
    for size, folder in folders.items():
        if measured and predict(measured, size) > cap_s:
            rows.append({"size": size, "extrapolated": True, "seconds": round(predict(measured, size), 1)})
            say(f"scale   {step:<30} {size:>6,} images: about {rows[-1]['seconds']:,.0f} s (extrapolated)")
            continue
        found = measure(step, folder, timeout=max(4 * cap_s, 120))
        if "error" in found:
            rows.append({"size": size, "error": found["error"]})
            say(f"scale   {step:<30} {size:>6,} images: {found['error']}")
            break
        measured.append((size, found["seconds"]))
        rows.append({"size": size, "extrapolated": False, **{k: v for k, v in found.items() if k != "step"}})
        say(f"scale   {step:<30} {size:>6,} images ({found['images']:,} handled): {found['seconds']:8.2f} s, peak "
            f"{found['peak_mb']:,.0f} MB")
    return {"step": step, "rows": rows, "time_exponent": growth(measured),
            "memory_exponent": growth([(r["size"], r["peak_mb"] - r["start_mb"]) for r in rows
                                       if not r.get("extrapolated") and "error" not in r])}


def table(found: list[dict]) -> str:
    sizes = sorted({r["size"] for s in found for r in s["rows"]})
    head = "| step | " + " | ".join(f"{n:,}" for n in sizes) + " | time exponent | memory exponent |"
    lines = [head, "|---|" + "---:|" * (len(sizes) + 2)]
    for s in found:
        cells = {r["size"]: ("failed" if "error" in r else f"~{r['seconds']:,.0f} s (extrapolated)" if r["extrapolated"]
                             else f"{r['seconds']:,.1f} s, {r['peak_mb']:,.0f} MB") for r in s["rows"]}
        lines.append(f"| {s['step']} | " + " | ".join(cells.get(n, "") for n in sizes)
                     + f" | {s['time_exponent'] if s['time_exponent'] is not None else ''} "
                       f"| {s['memory_exponent'] if s['memory_exponent'] is not None else ''} |")
    return "\n".join(lines)


def plot(found: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    fig, axes = plt.subplots(-(-len(found) // cols), cols, figsize=(4 * cols, 3 * -(-len(found) // cols)), squeeze=False)
    for ax, s in zip(axes.flat, found):
        done = [r for r in s["rows"] if "error" not in r]
        for extrapolated, marker in ((False, "o"), (True, "x")):
            xs = [r["size"] for r in done if r["extrapolated"] == extrapolated]
            if xs:  # a panel's legend names only what it shows
                ax.loglog(xs, [r["seconds"] for r in done if r["extrapolated"] == extrapolated], marker, linestyle="-",
                          label="extrapolated" if extrapolated else "measured")
        ax.set_title(f"{s['step']}  (exponent {s['time_exponent']})", fontsize=9)
        ax.set_xlabel("images in the dataset", fontsize=8)
        ax.set_ylabel("seconds", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(found):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def full_set(folder: Path | None = None, say=print) -> Path:
    """The full-size synthetic MAMe (``MAME_SCALE_DIR``, default data/like-mame), generated or finished here."""
    from mame.data.synthetic.generator import read_manifest
    from mame.data.synthetic.like_mame import generate_like_mame

    folder = folder or Path(os.environ.get("MAME_SCALE_DIR", config.ROOT / "data" / "like-mame"))
    if not (read_manifest(folder) or {}).get("complete"):
        generate_like_mame(folder, say=say)
    return folder


def main(sizes=SIZES, steps=STEPS, *, full: Path | None = None, cap_s: float = CAP_S, out: Path | None = None,
         say=print) -> dict:
    import tempfile

    from mame.bench import cpu_flags
    from mame.engine.run.provenance import cpu_count, device_info, now_iso
    from mame.files import atomic_write

    full = full_set(full, say)
    found = {"started": now_iso(), "machine": device_info()["name"], "cores": cpu_count(), "cpu_flags": cpu_flags(),
             "sizes": list(sizes), "cap_s": cap_s, "steps": []}
    out = out or config.runs_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    kept = {s["step"]: s for s in previous(out, sizes) if s["step"] not in steps}
    with tempfile.TemporaryDirectory(prefix="mame-scale-") as tmp:
        folders = dict(subset(full, n, Path(tmp)) for n in sizes)
        measured = {step: scale_step(step, folders, cap_s, say) for step in steps}
    found["steps"] = [measured.get(s) or kept[s] for s in STEPS if s in measured or s in kept]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    atomic_write(out / f"scale-{stamp}.json", json.dumps(found, indent=2))
    doc = out if out != config.runs_dir() / "bench" else config.ROOT / "docs"
    picture = plot(found["steps"], doc / "scale.png")
    text = "\n".join(["# How each step grows with the image count", "",
                      "Written by `make bench SCALE=1` (`python -m mame.bench.scale`): each step alone in a fresh process "
                      "on subsets of a full-size synthetic MAMe; time and peak resident memory per size, the growth "
                      "exponent of time (1: linear) and of memory above the process's start.", "",
                      f"- date: {found['started']}", f"- machine: {found['machine']}, {found['cores']} cores",
                      f"- CPU flags: {' '.join(found['cpu_flags'])}", "", table(found["steps"]), "",
                      f"![log-log time per step]({picture.name})", ""])
    atomic_write(doc / "scale.md", text)
    say("\n" + table(found["steps"]))
    return found


def previous(out: Path, sizes) -> list[dict]:
    """The steps of the latest scale figures in ``out`` measured at the same ``sizes`` ([] if none)."""
    for path in sorted(out.glob("scale-*.json"), reverse=True):
        found = json.loads(path.read_text())
        return found["steps"] if found.get("sizes") == list(sizes) else []
    return []


def cli(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mame.bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of: {', '.join(STEPS)}; the "
                                                                 "latest figures of the others are kept")
    parser.add_argument("--cap", type=float, default=CAP_S, help="seconds past which a size is extrapolated")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {', '.join(unknown)}; known: {', '.join(STEPS)}")
    main(steps=steps, cap_s=args.cap)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
