import re
from pathlib import Path

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.deck.render.context import appendix_section, load_references, paper_section
from mame.deck.sections import classify
from mame.deck.sections.choices import Choices
from mame.deck.sections.classify import classifier_pivot
from mame.deck.sections.history import compare, snapshot
from mame.deck.sections.slide_parts import entry_placeholder, overfitting, report_rows
from mame.engine.plan.load import PlannedRun
from mame.metrics import classification_result
from tests.helpers import FakeEntry, deck_inputs


def classify_entry(backbone, accs, chosen=None):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 29, 200)
    classification, rows = {}, []
    for name, acc in accs.items():
        pred = np.where(rng.random(200) < acc, y, (y + 1) % 29)
        classification[f"{name}/val"] = classification_result(y, pred, class_names=CLASS_NAMES)
        rows.append({"classifier": name, "train_accuracy": 1.0, "val_accuracy": float(np.mean(pred == y))})
    best = chosen or max(rows, key=lambda r: r["val_accuracy"])["classifier"]  # as the stage records it
    metrics = {"metrics": {"classifiers": rows, "best_classifier": best}, "classification": classification, "notes": [],
               "headline": {"name": "best_val_accuracy", "value": max(r["val_accuracy"] for r in rows)},
               "run": {"cache_key": "k" * 20}}
    return FakeEntry(PlannedRun("classify", backbone, "default", Path("nb"), {}), "done", metrics)


def test_report_rows_two_columns_with_summary_at_the_bottom_right():
    y = np.arange(29).repeat(3)
    table = report_rows(classification_result(y, y, class_names=CLASS_NAMES)["report"])
    assert table["n_classes"] == 29
    left = [r["left"]["name"] for r in table["rows"] if r["left"]]
    right = [r["right"]["name"] for r in table["rows"] if r["right"]]
    assert left + right[:-3] == list(CLASS_NAMES)
    assert right[-3:] == ["accuracy", "macro avg", "weighted avg"]
    assert len(table["rows"]) == 17  # fits one slide


def test_classify_section_picks_the_best_classifier_and_backbone():
    entries = [classify_entry("vgg16", {"knn": 0.3, "logistic_regression": 0.6}),
               classify_entry("resnet50", {"knn": 0.8, "logistic_regression": 0.5})]
    names = {"vgg16": "VGG16", "resnet50": "ResNet50"}
    section = classify.section(entries, deck_inputs(entries, names=names))
    assert len(section["rows"]) == 4
    assert section["best"]["backbone_name"] == "ResNet50" and section["best"]["classifier"] == "knn"
    said = classify.conclusions({"classify": section, "names": names})
    assert said[0].startswith("Best features + classifier: ResNet50 + knn")
    assert "Backbones by best validation accuracy: ResNet50" in said[1]


def test_classify_section_shows_each_runs_recorded_choice_and_never_chooses_again():
    entries = [classify_entry("vgg16", {"knn": 0.9, "logistic_regression": 0.6}, chosen="logistic_regression"),
               classify_entry("resnet50", {"knn": 0.7, "logistic_regression": 0.5})]
    section = classify.section(entries, deck_inputs(entries, names={"vgg16": "VGG16", "resnet50": "ResNet50"}))
    assert (section["best"]["backbone"], section["best"]["classifier"]) == ("resnet50", "knn")  # vgg16's pick: 0.6


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
    chosen = [{"model": "classify/resnet50/knn", "stage": "classify", "backbone": "resnet50", "variant": "default",
               "val_accuracy": 0.8}]
    section = paper_section(refs, Choices("evaluate/default", chosen, {"classify/resnet50/knn": 0.78}))
    rows = {r["architecture"]: r for r in section["rows"]}
    assert rows["ResNet50"]["fs"] == 0.8429 and rows["EfficientNet-B3"]["vs"] == 0.8348
    assert rows["ResNet50"]["features_fs"] == 0.78 and rows["VGG16"]["features_fs"] is None and section["has_ours"]
    assert rows["ResNet50"]["features_vs"] is None  # no variable-shape pipeline compared
    before = paper_section(refs, Choices())  # no evaluate run yet: nothing chosen, only the cited numbers
    assert not before["chosen"] and not before["has_ours"] and [r["fs"] for r in before["rows"]] == [r["fs"] for r in section["rows"]]


def test_appendix_chunks_runs_to_fit_slides():
    entries = [classify_entry(f"b{i}", {"knn": 0.5}) for i in range(23)]
    for e in entries:
        e.metrics = None  # not run yet: the row still lists the run
    chunks = appendix_section(entries)
    assert [len(c) for c in chunks] == [10, 10, 3]


def test_stage_parameters_are_those_all_runs_share():
    from mame.deck.render.context import stage_parameters

    a, b = classify_entry("vgg16", {"knn": 0.5}), classify_entry("resnet50", {"knn": 0.5})
    a.run.params, b.run.params = {"C": 1.0, "max_iter": 100}, {"C": 0.1, "max_iter": 100}
    assert stage_parameters([a, b]) == [{"stage": "classify", "runs": 2, "params": "max_iter=100"}]


def test_history_compare_reports_deltas_only_for_changed_runs():
    a = snapshot([classify_entry("vgg16", {"knn": 0.5})])
    b = {k: dict(v, value=v["value"] + 0.1) for k, v in a.items()}
    changes = compare({"rendered_at": "then", "runs": a}, b)
    assert changes["since"] == "then" and len(changes["rows"]) == 1
    assert abs(changes["rows"][0]["delta"] - 0.1) < 1e-9
    assert compare({"rendered_at": "then", "runs": a}, a)["rows"] == []
    assert compare(None, a)["first"]


def training_entry(stage, variant, accs, tmp_path, about=""):
    """A finished training run as the stage contract describes it: per-split entries and history."""
    rng = np.random.default_rng(len(variant))
    classification = {}
    for split, acc in accs.items():
        y = rng.integers(0, 29, 120)
        classification[split] = classification_result(y, np.where(rng.random(120) < acc, y, (y + 3) % 29), class_names=CLASS_NAMES)
    history = {"loss": [2.0, 1.2, 0.9], "val_loss": [2.1, 1.5, 1.3], "accuracy": [0.3, 0.6, 0.7],
               "val_accuracy": [0.25, 0.5, 0.55]}
    path = tmp_path / stage / f"vgg16-{variant}"
    path.mkdir(parents=True)
    (path / "metrics.json").write_text("{}")  # the figures compare their age with this file's
    metrics = {"metrics": {}, "classification": classification, "history": history, "notes": [],
               "headline": {"name": "val_accuracy", "value": accs.get("val", 0)}, "artifacts": {},
               "run": {"cache_key": "f" * 20, "dataset": {"source": "synthetic", "path": "", "fingerprint": "x"},
                       "git": {"commit": "abc", "dirty": False}, "device": {"kind": "cpu", "name": "test"},
                       "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1",
                                    "scikit-learn": "1.9.1"},
                       "duration_s": 1.0, "test_split_reads": [{"what": "test", "n_images": 120}]}}
    run = PlannedRun(stage, "vgg16", variant, Path("nb"), {"learning_rate": 1e-4}, about=about,
                     overrides={"learning_rate": 1e-4, "dense_units": [256]})
    return FakeEntry(run, "done", metrics, path=path)


def test_training_sections_render_into_a_deck_that_fits(tmp_path):
    """Scratch table, fine-tuning ladder and test report, through the real templates, pandoc and Chromium."""
    from mame.deck.check.browser import check_deck
    from mame.deck.render import templating
    from mame.deck.render.build import _relative
    from mame.deck.render.context import build_context
    from mame.deck.render.figures import run_figures
    from mame.deck.render.html import render_html
    from mame.engine.plan.load import Profile
    from tests.deck.evaluate_run import evaluate_entry

    entries = [training_entry("scratch", "small-cnn", {"train": 0.9, "val": 0.4, "test": 0.38}, tmp_path),
               training_entry("finetune", "lr-1e-4", {"train": 0.8, "val": 0.7}, tmp_path,
                              about="Smaller learning rate | and <b>L2</b>"),
               evaluate_entry(tmp_path / "evaluated")]
    figures = {e.run.id: run_figures(e) for e in entries}
    assert "training_curves" in figures["finetune/vgg16-lr-1e-4"] and "confusion_test" in figures["evaluate/default"]
    generated = tmp_path / "_generated"
    profile = Profile("smoke", {"source": "synthetic"}, {}, {}, None, 0, 60, 60)
    context = build_context(entries, profile, ["scratch", "finetune", "evaluate"], figures=_relative(figures, generated),
                            changes={"first": True, "rows": [], "since": None}, rendered_at="now")
    generated.mkdir()
    source = templating.render("deck.qmd.j2", context)
    assert "| small-cnn | 0." in source and "| High |" in source  # not the rung the evaluate run chose: not bold
    assert "Not shown: the evaluate run evaluate/default chose scratch/r7-gap as the best scratch rung" in source
    assert "## vgg16 fine-tuning #1: lr-1e-4" in source  # display names come from features runs
    assert r"Smaller learning rate \| and &lt;b&gt;L2&lt;/b&gt;" in source
    assert "## Classification report (test)" in source and "Final model (best single model on validation)" in source
    lines = source.splitlines()
    assert not [lines[i] for i in range(1, len(lines)) if lines[i].startswith("## ") and lines[i - 1].strip()]
    qmd = generated / "deck.qmd"
    qmd.write_text(source)
    check = check_deck(render_html(qmd, tmp_path / "deck.html"))
    assert check.ok, check.summary()


def test_classifier_pivot_marks_the_best_per_backbone_and_compares_the_spreads():
    rows = [{"backbone_name": b, "classifier": c, "val_accuracy": acc, "converged": True}
            for b, accs in (("VGG16", {"knn": 0.30, "mlp": 0.34}), ("ResNet50", {"knn": 0.60, "mlp": 0.58}))
            for c, acc in accs.items()]
    out = classifier_pivot(rows)
    assert out["backbones"] == ["VGG16", "ResNet50"] and [r["classifier"] for r in out["pivot"]] == ["knn", "mlp"]
    assert [[c["best"] for c in r["cells"]] for r in out["pivot"]] == [[False, True], [True, False]]
    # across classifiers: (0.04 + 0.02) / 2 = 0.03; across backbones: (0.30 + 0.24) / 2 = 0.27
    assert out["spread"]["across_classifiers"] == pytest.approx(0.03)
    assert out["spread"]["across_backbones"] == pytest.approx(0.27) and out["spread"]["features_matter_more"]
    assert classifier_pivot(rows[:2])["spread"] is None  # one backbone: nothing to compare


def test_dense_head_and_fine_tuned_features_are_their_own_columns_beside_the_backbones_features():
    def entry(variant, accs, needs, **extra):
        e = classify_entry("vgg16", accs)
        e.run = PlannedRun("classify", "vgg16", variant, Path("nb"), {}, needs={"features": needs})
        e.metrics["metrics"].update(extra)
        return e
    tuned = {"run": "finetune/vgg16-step4", "val_accuracy": 0.7, "layer": "head_dense_2", "dim": 256}
    features = [FakeEntry(PlannedRun("features", "vgg16", variant, Path("nb"), {}), "done", {"metrics": m}) for variant, m in (
        ("default", {"feature_layer": "fc1", "weights": "imagenet", "extra_layers": {"fc2": {"dim": 4096, "kept": ["fc1", "fc2"]}}}),
        ("finetuned", {"feature_layer": "head_dense_2", "weights": "fine-tuned (finetune/vgg16-step4)", "source": "finetune",
                       "finetune": tuned}))]
    entries = [entry("default", {"linear_svm": 0.4, "knn": 0.3}, "vgg16", feature_layer="fc1", standardize=True),
               classify_entry("resnet50", {"linear_svm": 0.5, "knn": 0.45}),
               entry("dense-head", {"logistic_regression": 0.45}, "vgg16", feature_layer="fc2", standardize=False),
               entry("finetuned", {"linear_svm": 0.8, "knn": 0.6}, "vgg16-finetuned", feature_layer="head_dense_2", standardize=True)]
    names = {"vgg16": "VGG16", "resnet50": "ResNet50"}
    section = classify.section(entries, deck_inputs(entries + features, names=names))
    assert section["backbones"] == ["VGG16", "ResNet50"]  # the spread compares the backbones' own features only
    assert {r["run"] for r in section["own_rows"]} == {"classify/vgg16", "classify/resnet50"}
    (vgg,) = section["variants"]
    assert vgg["backbones"] == ["VGG16 ImageNet fc1", "VGG16 dense head (ImageNet fc1+fc2 kept, new softmax)",
                                "VGG16 fine-tuned features (finetune/vgg16-step4)"]
    assert [r["classifier"] for r in vgg["pivot"]] == ["linear_svm", "knn", "logistic_regression"]
    (svm,) = [c for c in vgg["changes"] if c["classifier"] == "linear_svm"]
    said = classify.conclusions({"classify": section, "names": names})
    assert "Backbones by best validation accuracy: ResNet50" in said[1] and "VGG16 8" not in said[1]
    assert any(line.startswith(f"Linear SVM on VGG16 features: {svm['before']:.1%} (VGG16 ImageNet fc1) → {svm['after']:.1%} "
                               "(VGG16 fine-tuned features (finetune/vgg16-step4))") for line in said), said
    assert any(line.startswith("VGG16 dense head (ImageNet fc1+fc2 kept, new softmax): ") for line in said)


def test_the_references_are_the_seed_decks_six():
    """Parés 2022, Shorten 2019, Chollet 2021, Shima 2018, Yang & Min 2019, Sun et al. 2017, in the seed's order."""
    refs = load_references()["references"]
    assert [(r.split(",")[0], re.search(r"\((?:[^()]*\s)?(\d{4})\)", r).group(1)) for r in refs] == [
        ("Parés", "2022"), ("Shorten", "2019"), ("Chollet", "2021"), ("Shima", "2018"), ("Yang", "2019"), ("Sun", "2017")]


def test_the_subtitle_names_the_backbones_the_runs_used():
    from mame.deck.render.context import subtitle

    assert subtitle({}) == "Transfer learning with ImageNet backbones"
    assert subtitle({"efficientnetlite0": "EfficientNet-Lite0"}) == "Transfer learning with EfficientNet-Lite0"
    assert subtitle({"vgg16": "VGG16", "resnet50": "ResNet50", "efficientnetlite0": "EfficientNet-Lite0"}) == (
        "Transfer learning with VGG16, ResNet50 and EfficientNet-Lite0")


def test_a_classifier_fitted_on_a_sample_is_marked_and_its_caption_says_how_many_of_how_many():
    from mame.deck.render import templating

    entry = classify_entry("vgg16", {"knn": 0.4, "rbf_svc": 0.5})
    entry.metrics.update(history={}, artifacts={})
    for row in entry.metrics["metrics"]["classifiers"]:
        row["train_images"] = [5_000, 20_300] if row["classifier"] == "rbf_svc" else [20_300, 20_300]
    rows = classify.section([entry], deck_inputs([entry]))["rows"]
    assert {r["classifier"]: r["sampled"] for r in rows} == {"knn": None, "rbf_svc": [5_000, 20_300]}
    section = classify.section([entry], deck_inputs([entry]))
    source = templating.render("sections/classify.md.j2", {"classify": section, "setup": {"n_classes": 29}})
    assert "^‡^" in source.split("\n| rbf svc ", 1)[1].split("\n", 1)[0]
    assert "‡ fitted on a class-balanced sample of 5,000 of the 20,300 training images" in source
