"""One step of the scale bench, measured alone in a fresh process (``python -m mame.bench.scale_steps STEP DIR``):
it prints one JSON line with the images the step handled, its seconds, and the process's peak resident memory once
its modules are imported and after the step (``resource``). The clock starts once they are imported.

Steps on the dataset folder DIR (a synthetic MAMe, ``mame.data.synthetic.like_mame``): ``check`` (data check,
every image decoded), ``cache`` (the first pass of the input pipeline at 224 px over train and val, filling a fresh
decoded-image cache, whose bytes it reports), ``pipeline`` (a second pass, from that cache), ``features``
(EfficientNet-Lite0 feature extraction on the CPU, train and val). On arrays the size of DIR's splits, 1,280
features an image drawn around one centre per class: ``classify-<name>`` (one classifier's grid, fitted on train
and chosen on val as the classify stage does), ``projection-<method>`` (the deck's projection of its per-class
sample) and ``evaluate`` (the evaluate stage's bootstrap interval and McNemar test on the test split's size); their
clocks start once the arrays are drawn. ``deck`` and ``share``: the deck build (figures, HTML, PDF) and the share
bundle of a study run through the runner on DIR (``DECK_PLAN``: EfficientNet-Lite0 features at 32 px, a logistic
regression, evaluate on the test split, PCA on the full profile's per-class sample), its runs made first (not timed)
and kept beside DIR for the other step.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 1280  # EfficientNet-Lite0's pooled features
SIZE = 224


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _splits(folder: Path, names=("train", "val")):
    from mame.stages.support.common import load_splits

    return load_splits(folder, names)


def _check(folder: Path) -> dict:
    from mame.data.dataset_check import check_dataset

    report = check_dataset(folder)
    if not report.ok:
        raise RuntimeError(f"{folder}: the data check failed: {len(report.missing)} missing, {len(report.corrupt)} corrupt")
    return {"images": report.total_rows}


def _passes(folder: Path, passes: int) -> dict:
    from mame.data import image_cache, pipeline

    splits = _splits(folder)
    records = [r for split in splits.records.values() for r in split]
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        for _batch in pipeline.make_dataset(records, splits.image_dir, image_size=SIZE, batch_size=64):
            pass
        seconds.append(time.perf_counter() - start)
    root = image_cache.cache_root()
    return {"images": len(records), "seconds_passes": seconds,
            "cache_bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root else 0}


def _features(folder: Path) -> dict:
    from mame.stages import features

    splits = _splits(folder)
    extractor = features.build_extractor("efficientnetlite0", image_size=SIZE)
    extracted = features.extract(extractor, splits, batch_size=64)
    return {"images": sum(len(e.labels) for e in extracted.values()), "weights": str(extractor.weights.used)}


def split_sizes(folder: Path) -> dict[str, int]:
    from mame.data.metadata import read_metadata

    return {split: sum(per_class.values()) for split, per_class in read_metadata(folder).counts().items()}


def feature_arrays(n: int, seed: int, classes: int = 29) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of features around one centre per class (float32), and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, FEATURES)).astype(np.float32)
    return centres[labels] + rng.normal(scale=3.0, size=(n, FEATURES)).astype(np.float32), labels


def _classify(folder: Path, name: str) -> dict:
    from mame.stages.classify import FeatureSet, fit_all

    sizes = split_sizes(folder)
    (x_train, y_train), (x_val, y_val) = feature_arrays(sizes["train"], 0), feature_arrays(sizes["val"], 1)
    start = time.perf_counter()
    fitted = fit_all(FeatureSet(folder, {"train": x_train, "val": x_val}, {"train": y_train, "val": y_val}),
                     classifiers=(name,))
    return {"images": sizes["train"], "seconds": time.perf_counter() - start, "settings": len(fitted[name]["tried"]),
            "fitted_on": fitted[name]["train_images"][0]}


def _projection(folder: Path, method: str) -> dict:
    from mame.plots.projection import project_features

    x, y = feature_arrays(sum(split_sizes(folder).values()), 0)
    start = time.perf_counter()
    data = project_features(x, y, method=method)
    return {"images": len(y), "seconds": time.perf_counter() - start, "points": len(data["labels"])}


def _evaluate(folder: Path) -> dict:
    from mame.stages.support import significance

    n = split_sizes(folder)["test"]
    rng = np.random.default_rng(0)
    y_true = np.arange(n) % 29
    a, b = (np.where(rng.random(n) < p, y_true, rng.integers(0, 29, n)) for p in (0.6, 0.65))
    start = time.perf_counter()
    significance.accuracy_summary(y_true, a, resamples=1000)
    significance.mcnemar_test(y_true, a, b)
    return {"images": n, "seconds": time.perf_counter() - start}


# The study the deck and share steps build from: what grows with the images (the dataset's listing and figures, the
# features read for their projection sample, the classification reports, evaluate's test-split tables), its runs small
# (32 px, random weights, one classifier) so that 37k images run in minutes on 2 cores. The deck projects at most
# points_per_class images a class (the full profile's 100): t-SNE and UMAP on that sample cost what the projection
# steps measure, whatever the dataset's size, so PCA stands for them here.
DECK_PLAN = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [efficientnetlite0]
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [efficientnetlite0]
    variants:
      default: {classifiers: [logistic_regression]}
  evaluate:
    notebook: 06_evaluate.ipynb
    reads: [classify, features]
profiles:
  scale:
    data: {source: mame}
    params: {batch_size: 64}
    force: {image_size: 32, weights: random}
    timeouts: {start: 300, execution: 3600}
    report: {projections: [pca], projections_3d: [pca], points_per_class: 100}
"""


def _study(folder: Path) -> tuple[Path, float]:
    """The deck study's plan, its runs made (or found) under ``folder``'s sibling ``<name>-study``: its plan file and
    the seconds the runs took."""
    from mame.engine.run.scheduler import run_plan

    home = folder.parent / f"{folder.name}-study"
    home.mkdir(exist_ok=True)
    os.environ.update(MAME_DIR=str(folder), MAME_RUNS_DIR=str(home / "runs"), MAME_REPORT_BUILD=str(home / "report"),
                      MAME_IMAGE_CACHE=str(home / "image-cache"), MAME_DATA_HOME=str(home / "data-home"))
    plan = home / "plan.yaml"
    plan.write_text(DECK_PLAN)
    start = time.perf_counter()
    outcomes = run_plan("scale", plan_file=plan, jobs=1, out=open(os.devnull, "w"))
    failed = [f"{o.run.id} {o.state}" for o in outcomes if o.state not in ("done", "cached")]
    if failed:
        raise RuntimeError(f"{folder}: the deck study's runs did not finish: {', '.join(failed)} (see {home / 'runs'})")
    return plan, time.perf_counter() - start


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _deck(folder: Path) -> dict:
    from mame.deck.render import build

    plan, runs_seconds = _study(folder)
    start = time.perf_counter()
    result = build.build("scale", run=False, pdf=True, plan_file=plan, rerender=True, out=open(os.devnull, "w"))
    seconds = time.perf_counter() - start
    if not result.pdf or not result.pdf.is_file():
        raise RuntimeError(f"{folder}: the deck build made no PDF")
    from mame.deck.render.pdf import pdf_page_count

    return {"images": sum(split_sizes(folder).values()), "seconds": seconds, "runs_seconds": round(runs_seconds, 1),
            "pages": pdf_page_count(result.pdf), "pdf_mb": round(result.pdf.stat().st_size / 1e6, 1),
            "children_peak_mb": round(children_peak_mb(), 1)}


def _share(folder: Path) -> dict:
    from mame.deck.render import build
    from mame.deck.share.bundle import share

    plan, runs_seconds = _study(folder)
    build.build("scale", run=False, pdf=True, plan_file=plan, out=open(os.devnull, "w"))  # as the deck step left it
    start = time.perf_counter()
    shared = share("scale", plan_file=plan, out=open(os.devnull, "w"))  # the deck unchanged: the packing alone
    seconds = time.perf_counter() - start
    return {"images": sum(split_sizes(folder).values()), "seconds": seconds, "runs_seconds": round(runs_seconds, 1),
            "bundle_mb": round(shared.size / 1e6, 1), "files": len(shared.members)}


# What each step imports, imported before its clock starts (a run pays them once, whatever its size)
IMPORTS = {"check": ("mame.data.dataset_check", "PIL.Image"),
           "cache": ("mame.data.pipeline", "mame.stages.support.common"),
           "features": ("mame.stages.features", "mame.data.pipeline", "mame.models.extraction"),
           "classify": ("mame.stages.classify", "sklearn.linear_model", "sklearn.svm", "sklearn.neighbors",
                        "sklearn.ensemble", "sklearn.neural_network"),
           "projection": ("mame.plots.projection", "sklearn.manifold", "sklearn.decomposition", "umap"),
           "evaluate": ("mame.stages.support.significance", "statsmodels.stats.contingency_tables"),
           "deck": ("mame.deck.render.build", "mame.engine.run.scheduler"),
           "share": ("mame.deck.render.build", "mame.deck.share.bundle", "mame.engine.run.scheduler")}


def warm(step: str) -> None:
    import importlib

    for module in IMPORTS.get(step.split("-")[0].replace("pipeline", "cache"), ()):
        importlib.import_module(module)


def run_step(step: str, folder: Path) -> dict:
    if step == "check":
        return _check(folder)
    if step in ("cache", "pipeline"):
        with tempfile.TemporaryDirectory(prefix="mame-scale-cache-") as cache:
            os.environ["MAME_IMAGE_CACHE"] = cache
            found = _passes(folder, 1 if step == "cache" else 2)
        return {**found, "seconds": found["seconds_passes"][-1]}
    if step == "features":
        return _features(folder)
    if step.startswith("classify-"):
        return _classify(folder, step.removeprefix("classify-"))
    if step.startswith("projection-"):
        return _projection(folder, step.removeprefix("projection-"))
    if step == "evaluate":
        return _evaluate(folder)
    if step == "deck":
        return _deck(folder)
    if step == "share":
        return _share(folder)
    raise ValueError(f"unknown scale step {step!r}")


def main(argv: list[str]) -> int:
    step, folder = argv[0], Path(argv[1])
    warm(step)
    before = peak_mb()
    start = time.perf_counter()
    found = run_step(step, folder)
    found.setdefault("seconds", time.perf_counter() - start)
    print(json.dumps({"step": step, **found, "peak_mb": round(peak_mb(), 1), "start_mb": round(before, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
