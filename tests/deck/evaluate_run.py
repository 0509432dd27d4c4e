"""An evaluate run built by the real stage code on made-up predictions, for the deck's tests.

A tiny dataset folder (MAMe-shaped CSV, one small PNG per test image whose colour encodes its index) is
read with ``evaluate.load_test``; the reference model's test predictions follow a hand-designed
confusion matrix (so its per-class precision and recall are known); ``evaluate.ensembles``,
``evaluate.compare`` and ``evaluate.save`` write the run's arrays and result.json, which becomes
metrics.json with the run block the runner adds. No Keras: the models' predictions are made up.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mame.classes import CLASS_NAMES
from mame.engine.plan.load import PlannedRun
from mame.stages import evaluate, feature_pipelines
from tests.helpers import FakeEntry

N = len(CLASS_NAMES)
HEADER = ["Image file", "Medium", "Museum", "Museum-based instance ID", "Subset", "Width", "Height",
          "Product size", "Aspect ratio"]
# Off-diagonal cells (true, predicted) -> images, beyond one error per class to the next class: the
# three largest are the pairs the gallery must show, in this order.
CONFUSIONS = {(0, 7): 40, (3, 5): 8, (10, 2): 6}
LARGE = {0: 100}  # a large class with many errors: the accuracy (0.84) differs from the macro F1 (0.86)


def designed_counts() -> np.ndarray:
    """29x29 counts: class c has 16 + 4*(c % 3) images (or LARGE[c]); c % 4 of them (at least one, except
    class 0) go to class c+1, plus CONFUSIONS. Every class is predicted at least once."""
    counts = np.zeros((N, N), dtype=int)
    for c in range(N):
        support = LARGE.get(c, 16 + 4 * (c % 3))
        wrong = 0 if c == 0 else max(1, c % 4)
        counts[c, (c + 1) % N] += wrong
        counts[c, c] = support - wrong
    for (true, pred), n in CONFUSIONS.items():
        counts[true, pred] += n
        counts[true, true] -= n
    assert counts.min() >= 0
    return counts


def color_of(index: int) -> tuple[int, int, int]:
    return (index % 256, (index // 256) * 40 % 256, 200)


def index_of(pixel) -> int:
    return int(pixel[0]) + 256 * (int(pixel[1]) // 40)


def write_dataset(folder: Path, y_true: np.ndarray) -> list[str]:
    """MAMe_dataset.csv with one test row per image, and data/<file> PNGs coloured by index."""
    (folder / "data").mkdir(parents=True)
    files = [f"t{i:04d}.png" for i in range(len(y_true))]
    with (folder / "MAMe_dataset.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for name, label in zip(files, y_true):
            writer.writerow([name, CLASS_NAMES[label], "Met", "1", "test", "64.0", "48.0", "3072.0", "1.33"])
    for i, name in enumerate(files):
        Image.new("RGB", (32, 24), color_of(i)).save(folder / "data" / name)
    return files


def probabilities_for(y_pred: np.ndarray, rng) -> np.ndarray:
    """Rows whose argmax is ``y_pred``, with varied confidence."""
    p = rng.random((len(y_pred), N)) * 0.02
    p[np.arange(len(y_pred)), y_pred] += 0.3 + 0.6 * rng.random(len(y_pred))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def flip(y_true: np.ndarray, y_pred: np.ndarray, rate: float, rng) -> np.ndarray:
    """``y_pred`` with a fraction ``rate`` of its rows replaced by a wrong class."""
    out = y_pred.copy()
    rows = rng.random(len(out)) < rate
    out[rows] = (y_true[rows] + 1 + rng.integers(0, N - 1, rows.sum())) % N
    return out


def candidate(stage, run, tmp_path, val_accuracy, y_true, y_pred, files, rng) -> evaluate.Candidate:
    """A chosen model with made-up validation and test predictions; ``classify`` runs are named
    ``<backbone>/<classifier>`` here and become a feature-extraction pipeline of that run."""
    y_val = np.arange(58) % N
    val_pred = np.where(rng.random(58) < val_accuracy, y_val, (y_val + 1) % N)
    val = {"y_true": y_val, "probabilities": probabilities_for(val_pred, rng)}
    accuracy, backbone = float(np.mean(val_pred == y_val)), run.split("-")[0].split("/")[0]
    if stage == "classify":
        run, classifier = run.split("/")
        c = feature_pipelines.Pipeline(stage, run, tmp_path / stage / run, accuracy, val, backbone,
                                       classifier=classifier, features_name=backbone, layer="avg_pool",
                                       probabilities_from=feature_pipelines.PROBA)
    else:
        c = evaluate.Candidate(stage, run, tmp_path / stage / run, accuracy, val, backbone if stage == "finetune" else None,
                               variant=run.split("-", 1)[1] if stage == "finetune" else run,
                               best_step=stage == "finetune")  # one step per backbone: its best
    c.test = {"y_true": y_true, "y_pred": y_pred.astype(np.int32), "probabilities": probabilities_for(y_pred, rng),
              "files": np.array(files)}
    return c


# More backbones, for a models table as long as the full profile's (five backbones, two approaches each).
MORE = ("efficientnetb0", "efficientnetb3", "efficientnetlite0")


def evaluate_entry(tmp_path: Path, *, seed: int = 0, more: bool = False) -> FakeEntry:
    """A done evaluate/default run: four single models, one per approach and a second fine-tuned one (the
    reference follows ``designed_counts``), one ensemble, the ledger, a dataset folder with the test images;
    ``more``: three more backbones, each fine-tuned and with a classifier on its features, and a feature
    pipeline for VGG16 and ResNet50 too (12 rows)."""
    rng = np.random.default_rng(seed)
    counts = designed_counts()
    pairs = [(t, p) for t in range(N) for p in range(N) for _ in range(counts[t, p])]
    order = rng.permutation(len(pairs))
    y_true = np.array([pairs[i][0] for i in order], dtype=np.int32)
    y_ref = np.array([pairs[i][1] for i in order], dtype=np.int32)
    dataset = tmp_path / "dataset"
    write_dataset(dataset, y_true)
    ledger: list = []
    records, _, classes = evaluate.load_test(dataset, ledger)
    files = [r.image_file for r in records]
    assert [r.label for r in records] == y_true.tolist()
    made = lambda stage, run, val, rate: candidate(stage, run, tmp_path, val, y_true, flip(y_true, y_ref, rate, rng),
                                                   files, rng)
    chosen = [candidate("finetune", "vgg16-step2", tmp_path, 0.9, y_true, y_ref, files, rng),
              made("finetune", "resnet50-step1", 0.6, 0.3)]
    chosen += [made("finetune", f"{b}-step1", 0.5, 0.4) for b in MORE] if more else []
    chosen.append(made("classify", "efficientnetb0/logistic_regression", 0.7, 0.25))
    chosen += [made("classify", f"{b}/mlp", 0.45, 0.5) for b in ("vgg16", "resnet50", *MORE[1:])] if more else []
    chosen.append(made("scratch", "r7-gap", 0.3, 0.7))
    for c in chosen:
        ledger.append({"what": f"evaluate: test predictions of {c.name}", "n_images": len(records),
                       "model": c.name if c.stage == "classify" else f"{c.name}/model.keras"})
    ensemble = evaluate.ensembles(chosen)
    table = evaluate.compare(chosen, ensemble, bootstrap=200)
    run_dir = tmp_path / "evaluate" / "default"
    run_dir.mkdir(parents=True)
    result = json.loads(evaluate.save(run_dir, chosen, ensemble, table, ledger, classes).read_text())
    metrics = {key: result[key] for key in ("headline", "metrics", "classification", "artifacts", "notes")}
    metrics.update(history={}, run=run_block(dataset, result["test_split_reads"]))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return FakeEntry(PlannedRun("evaluate", None, "default", Path("06_evaluate.ipynb"), {}), "done", metrics,
                     path=run_dir)


def run_block(dataset: Path, reads: list) -> dict:
    return {"cache_key": "e" * 20, "dataset": {"source": "synthetic", "path": str(dataset), "fingerprint": "x"},
            "git": {"commit": "abc", "dirty": False}, "device": {"kind": "cpu", "name": "test"},
            "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1", "scikit-learn": "1.9.1"},
            "duration_s": 1.0, "test_split_reads": reads}
