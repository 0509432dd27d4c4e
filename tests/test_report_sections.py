from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES
from mame.metrics import classification_result
from mame.plan import PlannedRun
from mame.report_context import appendix_section, conclusions, paper_section, load_references
from mame.report_history import compare, snapshot
from mame.report_sections import classify_section, entry_placeholder, overfitting, report_rows


@dataclass
class FakeEntry:
    """The shape of mame.status.Entry, built from real metrics dicts."""
    run: PlannedRun
    state: str
    metrics: dict | None
    detail: str = ""
    path: Path = field(default_factory=lambda: Path("/nowhere"))


def classify_entry(backbone, accs):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 29, 200)
    classification, rows = {}, []
    for name, acc in accs.items():
        pred = np.where(rng.random(200) < acc, y, (y + 1) % 29)
        classification[f"{name}/val"] = classification_result(y, pred)
        rows.append({"classifier": name, "train_accuracy": 1.0, "val_accuracy": float(np.mean(pred == y))})
    metrics = {"metrics": {"classifiers": rows}, "classification": classification, "notes": [],
               "headline": {"name": "best_val_accuracy", "value": max(r["val_accuracy"] for r in rows)},
               "run": {"cache_key": "k" * 20}}
    return FakeEntry(PlannedRun("classify", backbone, "default", Path("nb"), {}), "done", metrics)


def test_report_rows_two_columns_with_summary_at_the_bottom_right():
    y = np.arange(29).repeat(3)
    table = report_rows(classification_result(y, y)["report"])
    assert table["n_classes"] == 29
    left = [r["left"]["name"] for r in table["rows"] if r["left"]]
    right = [r["right"]["name"] for r in table["rows"] if r["right"]]
    assert left + right[:-3] == list(CLASS_NAMES)
    assert right[-3:] == ["accuracy", "macro avg", "weighted avg"]
    assert len(table["rows"]) == 17  # fits one slide


def test_classify_section_picks_the_best_classifier_and_backbone():
    entries = [classify_entry("vgg16", {"knn": 0.3, "logistic_regression": 0.6}),
               classify_entry("resnet50", {"knn": 0.8, "logistic_regression": 0.5})]
    section = classify_section(entries, {}, {"vgg16": "VGG16", "resnet50": "ResNet50"})
    assert len(section["rows"]) == 4
    assert section["best"]["backbone_name"] == "ResNet50" and section["best"]["classifier"] == "knn"
    said = conclusions({"flags": []}, {"rows": []}, section, {"rows": []}, {"best": None}, 0,
                       {"vgg16": "VGG16", "resnet50": "ResNet50"})
    assert said[0].startswith("Best features + classifier: ResNet50 + knn")
    assert "Backbones by best validation accuracy: ResNet50" in said[1]


def test_failed_and_missing_runs_become_placeholders():
    run = PlannedRun("features", "vgg16", "default", Path("nb"), {})
    failed = entry_placeholder(FakeEntry(run, "failed", {}, detail="ValueError: boom"))
    assert failed["kind"] == "failed" and "features/vgg16 failed: ValueError: boom" in failed["message"]
    assert failed["path"] == "runs/features/vgg16/notebook.ipynb"
    assert entry_placeholder(FakeEntry(run, "missing", None))["kind"] == "missing"
    assert entry_placeholder(FakeEntry(run, "done", {})) is None


def test_overfitting_levels():
    assert overfitting(0.97, 0.31) == "High" and overfitting(0.72, 0.58) == "Medium"
    assert overfitting(0.54, 0.52) == "Low" and overfitting(None, 0.5) == "—"


def test_paper_table_is_the_cited_numbers_with_ours_beside_them():
    refs = load_references()
    section = paper_section(refs, {"classify": [classify_entry("resnet50", {"knn": 0.8})]})
    rows = {r["architecture"]: r for r in section["rows"]}
    assert rows["ResNet50"]["fs"] == 0.8429 and rows["EfficientNet-B3"]["vs"] == 0.8348
    assert rows["ResNet50"]["classify"] > 0.7 and rows["VGG16"]["classify"] is None


def test_appendix_chunks_runs_to_fit_slides():
    entries = [classify_entry(f"b{i}", {"knn": 0.5}) for i in range(23)]
    for e in entries:
        e.metrics["run"] = None
        e.metrics = None
    chunks = appendix_section(entries)
    assert [len(c) for c in chunks] == [10, 10, 3]


def test_history_compare_reports_deltas_only_for_changed_runs():
    a = snapshot([classify_entry("vgg16", {"knn": 0.5})])
    b = {k: dict(v, value=v["value"] + 0.1) for k, v in a.items()}
    changes = compare({"rendered_at": "then", "runs": a}, b)
    assert changes["since"] == "then" and len(changes["rows"]) == 1
    assert abs(changes["rows"][0]["delta"] - 0.1) < 1e-9
    assert compare({"rendered_at": "then", "runs": a}, a)["rows"] == []
    assert compare(None, a)["first"]
