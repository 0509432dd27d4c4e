"""The training slides (baseline ladder, fine-tuning ladder) from hand-built metrics in the stages' shape."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mame import config
from mame.deck import common, finetune, scratch, settings, templating
from mame.deck.figures import run_figures
from mame.deck.ladder import overfitting_rule, training_curves
from mame.engine.plan import PlannedRun, Profile, notebook_parameters, resolve_params
from mame.metrics import classification_result
from tests.helpers import FakeEntry, deck_inputs

SMOKE = Profile("smoke", {"source": "synthetic"}, {"batch_size": 16}, {"epochs": 1, "image_size": 32}, None, 0, 60, 60,
                stages={"finetune": {"force": {"batch_size": 32, "head_epochs": 1}}})
NOTHING_FORCED = Profile("full", {"source": "mame"}, {}, {}, None, 0, 60, 60)
FINETUNE_NB = config.EXPERIMENTS_DIR / "05_finetune.ipynb"
SCRATCH_NB = config.EXPERIMENTS_DIR / "01_scratch.ipynb"

RUN_BLOCK = {"cache_key": "f" * 20, "dataset": {"source": "synthetic", "path": "", "fingerprint": "x"},
             "git": {"commit": "abc", "dirty": False}, "device": {"kind": "cpu", "name": "test"},
             "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1", "scikit-learn": "1.9.1"},
             "duration_s": 1.0, "test_split_reads": []}

# The VGG16 ladder as experiments/plan.yaml writes it (a subset of its keys).
STEPS = {
    "step1": {},
    "step2": {"learning_rate": 5e-05, "dense_units": [512, 256]},
    "step3": {"learning_rate": 5e-05, "dense_units": [512, 256], "l2": 0.1, "dropout_rate": 0.5, "batch_size": 250,
              "epochs": 9},
    "step4": {"learning_rate": 1e-05, "dense_units": [512, 256], "l2": 0.1, "dropout_rate": 0.5, "batch_size": 250,
              "epochs": 30},
}


def training_metrics(train: float, val: float, *, epochs: int = 5, best: int = 3, phases=None, seed: int = 0,
                     extra: dict | None = None) -> dict:
    """metrics.json of a scratch/finetune run, as the stages write it (only what the deck reads)."""
    rng = np.random.default_rng(seed)
    classification = {}
    for split, acc in (("train", train), ("val", val)):
        y = rng.integers(0, 29, 200)
        classification[split] = classification_result(y, np.where(rng.random(200) < acc, y, (y + 1) % 29))
    history = {"loss": list(np.geomspace(3, 0.5, epochs)), "val_loss": list(np.geomspace(3.2, 1.0, epochs)),
               "accuracy": list(np.linspace(0.1, train, epochs)), "val_accuracy": list(np.linspace(0.1, val, epochs)),
               "seconds": [2.0] * epochs}
    metrics = {"train_accuracy": classification["train"]["report"]["accuracy"],
               "val_accuracy": classification["val"]["report"]["accuracy"], "n_params": 1000 + seed,
               "epochs_run": epochs, "best_epoch": best, "seconds_per_epoch": 2.0 + seed, "stopped_early": False,
               "resumed_from_epoch": 0, "phases": phases or [{"name": "train", "epochs": epochs}], **(extra or {})}
    return {"metrics": metrics, "classification": classification, "history": history, "notes": [],
            "headline": {"name": "val_accuracy", "value": metrics["val_accuracy"]}, "artifacts": {}, "run": RUN_BLOCK}


def scratch_entry(variant, overrides, train=None, val=None, *, state="done", profile=SMOKE, tmp_path=None):
    declared = notebook_parameters(SCRATCH_NB)
    run = PlannedRun("scratch", None, variant, SCRATCH_NB, resolve_params(declared, profile, "scratch", overrides),
                     about=f"About {variant}.", overrides=overrides,
                     planned=resolve_params(declared, profile, "scratch", overrides, forced=False), step=int(variant[1]))
    metrics = training_metrics(train, val, seed=len(variant)) if state in ("done", "stale") else None
    return FakeEntry(run, state, metrics, path=_run_dir(tmp_path, run))


def finetune_entry(backbone, variant, train=None, val=None, *, state="done", profile=SMOKE, tmp_path=None):
    overrides = STEPS[variant]
    declared = notebook_parameters(FINETUNE_NB)
    run = PlannedRun("finetune", backbone, variant, FINETUNE_NB, resolve_params(declared, profile, "finetune", overrides),
                     about=f"About {variant}.", overrides=overrides,
                     planned=resolve_params(declared, profile, "finetune", overrides, forced=False), step=int(variant[-1]))
    metrics = None
    if state in ("done", "stale"):
        extra = {"backbone": backbone, "trainable_from": "block4_conv1", "image_size": 32, "weights": "random",
                 "trainable": {"head": {"trainable_params": 10, "frozen_params": 90},
                               "finetune": {"trainable_params": 60, "frozen_params": 40}}}
        metrics = training_metrics(train, val, epochs=5, best=4, phases=[{"name": "head", "epochs": 2},
                                                                         {"name": "finetune", "epochs": 3}],
                                   seed=int(variant[-1]), extra=extra)
    return FakeEntry(run, state, metrics, path=_run_dir(tmp_path, run))


def _run_dir(tmp_path, run) -> Path:
    if tmp_path is None:
        return Path("/nowhere")
    path = tmp_path / run.stage / run.name
    path.mkdir(parents=True)
    (path / "metrics.json").write_text("{}")  # the figures compare their age with this file's
    return path


def ladder_entries(**kw):
    """In the plan's expansion order: variant by variant, each for its backbones."""
    return [finetune_entry("vgg16", "step1", 0.8, 0.74, **kw), finetune_entry("resnet50", "step1", 0.9, 0.81, **kw),
            finetune_entry("vgg16", "step2", 0.85, 0.76, **kw), finetune_entry("vgg16", "step3", 0.84, 0.75, **kw),
            finetune_entry("vgg16", "step4", 0.88, 0.78, **kw)]


# --- settings: changes and forced values ---------------------------------------------------------

def test_changes_are_exactly_the_keys_whose_planned_value_differs():
    keys = ["learning_rate", "dense_units", "l2", "epochs"]
    assert settings.changes(None, STEPS["step2"], keys) == {}
    assert settings.changes(STEPS["step2"], STEPS["step3"], keys) == {"l2": None, "epochs": None}
    assert settings.changes(STEPS["step3"], STEPS["step4"], keys) == {"learning_rate": 5e-05, "epochs": 9}


def test_each_step_highlights_what_changed_from_the_previous_step_of_its_backbone():
    section = finetune.section(ladder_entries(), deck_inputs(names={}, profile=SMOKE))
    vgg, resnet = section["ladders"]
    changed = {s["variant"]: {r["key"] for r in s["settings"] if r["changed"]} for s in vgg["steps"]}
    assert changed == {"step1": set(), "step2": {"learning_rate", "dense_units"},
                       "step3": {"l2", "dropout_rate", "batch_size", "epochs"}, "step4": {"learning_rate", "epochs"}}
    assert [r["changed"] for r in resnet["steps"][0]["settings"]] == [False] * len(resnet["steps"][0]["settings"])
    step4 = {r["key"]: r for r in vgg["steps"][3]["settings"]}
    assert (step4["learning_rate"]["value"], step4["learning_rate"]["was"]) == ("1e-05", "5e-05")
    assert step4["trainable_from"]["value"] == "block4_conv1 (auto)"  # what "auto" became in the run
    assert list(step4) == ["trainable_from", "dense_units", "learning_rate", "batch_size", "epochs", "l2", "dropout_rate"]


def test_slides_bold_exactly_the_changed_settings():
    section = finetune.section(ladder_entries(), deck_inputs(names={}, profile=SMOKE))
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": section,
                                                          "not_planned": {}})
    step3 = text.split("fine-tuning #3: step3")[1].split("\n## ")[0]
    bold = re.findall(r"^- \*\*(.+?):", step3, re.M)
    assert sorted(bold) == ["L2", "batch size", "dropout", "epochs"]
    assert "- **epochs: 9** (was 20)" in step3 and "- learning rate: 5e-05\n" in step3
    assert ("Forced by the profile: image size backbone default → 32, batch size 250 → 32, head epochs 2 → 1, "
            "epochs 9 → 1 (smoke profile).") in step3


def test_forced_values_say_plan_then_profile_value():
    step3 = finetune_entry("vgg16", "step3", 0.8, 0.7)
    planned = step3.run.planned
    assert (planned["epochs"], planned["batch_size"], planned["head_epochs"], planned["image_size"]) == (9, 250, 2, None)
    text = settings.forced_text(settings.forced_values(planned, step3.run.params), "smoke")
    assert text == "image size backbone default → 32, batch size 250 → 32, head epochs 2 → 1, epochs 9 → 1 (smoke profile)"
    full = finetune_entry("vgg16", "step3", 0.8, 0.7, profile=NOTHING_FORCED)
    assert settings.forced_values(full.run.planned, full.run.params) == []
    section = finetune.section([step3], deck_inputs(names={}, profile=SMOKE))
    assert section["items"][0]["forced"] == text


def test_a_forced_key_the_variant_does_not_set_takes_the_profile_params_then_the_notebook_default():
    step1 = finetune_entry("vgg16", "step1", 0.8, 0.7)
    planned = step1.run.planned
    assert planned["epochs"] == 20 and planned["batch_size"] == 16  # notebook default; profile params


# --- fine-tuning ladder --------------------------------------------------------------------------

def test_ladder_steps_follow_the_plan_one_per_step_grouped_by_backbone():
    section = finetune.section(ladder_entries(), deck_inputs(names={"vgg16": "VGG16"}, profile=SMOKE))
    assert [(s["backbone"], s["step"], s["variant"]) for s in section["items"]] == [
        ("vgg16", 1, "step1"), ("vgg16", 2, "step2"), ("vgg16", 3, "step3"), ("vgg16", 4, "step4"),
        ("resnet50", 1, "step1")]
    assert [ladder["name"] for ladder in section["multi_step"]] == ["VGG16"]
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": section,
                                                          "not_planned": {}})
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["VGG16 fine-tuning #1: step1", "VGG16 fine-tuning #2: step2", "VGG16 fine-tuning #3: step3",
                        "VGG16 fine-tuning #4: step4", "resnet50 fine-tuning #1: step1",
                        "Fine-tuning ladder: validation accuracy per step", "Fine-tuned backbones compared (best step each)"]


def test_step_numbers_equal_the_runs_metrics():
    entries = ladder_entries()
    section = finetune.section(entries, deck_inputs(names={}, profile=SMOKE))
    for entry, item in zip(sorted(entries, key=lambda e: e.run.backbone != "vgg16"), section["items"]):
        m = entry.metrics
        assert item["run"] == entry.run.id
        assert item["val"] == m["classification"]["val"]["report"]["accuracy"] == m["metrics"]["val_accuracy"]
        assert item["train"] == m["metrics"]["train_accuracy"]
        assert (item["best_epoch"], item["epochs_run"], item["seconds_per_epoch"]) == (4, 5, m["metrics"]["seconds_per_epoch"])
        assert (item["trainable_params"], item["total_params"]) == (60, 100)


def test_ladder_story_is_first_to_last_step_with_the_best_computed():
    section = finetune.section(ladder_entries(), deck_inputs(names={}, profile=SMOKE))
    vgg = section["ladders"][0]
    vals = [s["val"] for s in vgg["steps"]]
    story = vgg["story"]
    assert (story["first"]["val"], story["last"]["val"]) == (vals[0], vals[-1])
    assert story["delta"] == pytest.approx(vals[-1] - vals[0])
    assert story["best"]["val"] == max(vals) and story["best_is_last"] == (max(vals) == vals[-1])
    assert section["ladders"][1]["story"] is None  # one step: no story
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": section,
                                                          "not_planned": {}})
    first, last = (templating.pct(v) for v in (vals[0], vals[-1]))
    assert f"**vgg16: {first} → {last}** ({templating.points(vals[-1] - vals[0])} from #1 to #4)" in text


def test_backbones_are_compared_on_their_best_step_only_when_several_ran():
    section = finetune.section(ladder_entries(), deck_inputs(names={}, profile=SMOKE))
    rows = {r["backbone"]: r for r in section["comparison"]}
    vgg_best = max((s for s in section["items"] if s["backbone"] == "vgg16"), key=lambda s: s["val"])
    assert rows["vgg16"]["step"] == vgg_best["step"] and rows["vgg16"]["val"] == vgg_best["val"]
    assert rows["resnet50"]["steps"] == 1 and rows["resnet50"]["n_params"] == 1001
    assert finetune.section(ladder_entries()[2:], deck_inputs(names={}, profile=SMOKE))["comparison"] == []


def test_a_missing_step_keeps_its_slide_with_a_placeholder_and_the_next_step_still_diffs_against_it():
    entries = ladder_entries()
    entries[2] = finetune_entry("vgg16", "step2", state="missing")
    section = finetune.section(entries, deck_inputs(names={}, profile=SMOKE))
    step2, step3 = section["ladders"][0]["steps"][1:3]
    assert not step2["ran"] and step2["gap"]["kind"] == "missing" and step2["changed"] == ["dense_units", "learning_rate"]
    assert set(step3["changed"]) == {"l2", "dropout_rate", "batch_size", "epochs"}
    assert [s["step"] for s in section["ladders"][0]["steps"]] == [1, 2, 3, 4]
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": section,
                                                          "not_planned": {}})
    slide = text.split("## vgg16 fine-tuning #2: step2\n")[1].split("\n## ")[0]
    assert "{.placeholder .missing}" in slide and "finetune/vgg16-step2 has not run yet" in slide
    assert "- **learning rate: 5e-05** (was 0\\.0001)" in slide and "Validation accuracy" not in slide


# --- baseline ladder -----------------------------------------------------------------------------

def scratch_entries(**kw):
    return [scratch_entry("r1-plain", {}, 0.97, 0.31, **kw),
            scratch_entry("r2-deeper", {"filters": [32, 64, 128], "convs_per_block": 2}, 0.66, 0.45, **kw),
            scratch_entry("r3-batchnorm", {"filters": [32, 64, 128], "convs_per_block": 2, "batch_norm": True},
                          state="failed", **kw),
            scratch_entry("r4-dropout", {"filters": [32, 64, 128], "convs_per_block": 2, "batch_norm": True,
                                         "dropout_rate": 0.5}, 0.6, 0.55, **kw)]


def table_rows(text: str, header: str) -> list[list[str]]:
    lines = text.split(header, 1)[1].splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")][:20]


def test_baseline_table_equals_the_runs_metrics_in_plan_order():
    entries = scratch_entries()
    section = scratch.section(entries, deck_inputs(profile=SMOKE))
    text = templating.render("sections/scratch.md.j2", {"planned": {"scratch": True}, "scratch": section,
                                                         "not_planned": {}, "paper": {"rows": [], "what": "",
                                                                                      "citation": "", "doi": ""}})
    rows = table_rows(text, "| Model | Train |")
    assert [r[0].strip("*") for r in rows[:4]] == ["r1-plain", "r2-deeper", "r3-batchnorm", "r4-dropout"]
    for row, entry in zip(rows, entries):
        if entry.metrics is None:
            assert row[1:] == ["*failed*", "—", "—", "—", "—", "—"]
            continue
        m = entry.metrics
        train, val = (m["classification"][s]["report"]["accuracy"] for s in ("train", "val"))
        expected = [f"{train:.2f}", f"{val:.2f}", "—", common.overfitting(train, val), f"{m['metrics']['n_params']:,}",
                    f"{m['metrics']['best_epoch']} of {m['metrics']['epochs_run']}"]
        assert [c.strip("*") for c in row[1:]] == expected
    best = max((e for e in entries if e.metrics), key=lambda e: e.metrics["metrics"]["val_accuracy"])
    assert section["best"]["run"] == best.run.id and f"**{best.run.variant}**" in text
    assert "## Baseline learning curves: r4-dropout (best validation accuracy)" in text
    assert "Forced by the profile: image size 64 → 32, epochs 30 → 1 (smoke profile)." in text


def test_baseline_ladder_lists_each_rungs_idea_and_changed_settings():
    section = scratch.section(scratch_entries(), deck_inputs(profile=SMOKE))
    assert [it["changes"] for it in section["items"]] == [
        "", "filters 32, 64 → 32, 64, 128; convs per block 1 → 2", "batch norm no → yes", "dropout 0 → 0.5"]
    text = templating.render("sections/scratch.md.j2", {"planned": {"scratch": True}, "scratch": section,
                                                         "not_planned": {}, "paper": {"rows": [], "what": "",
                                                                                      "citation": "", "doi": ""}})
    rows = table_rows(text, "| Rung | Idea |")
    assert rows[0][1:3] == ["About r1-plain.", "the notebook's defaults"]
    assert rows[2][1:] == ["About r3-batchnorm.", "batch norm no → yes", "—"]


def test_overfitting_caption_comes_from_the_one_threshold_table(monkeypatch):
    assert overfitting_rule() == "High: train − val > 0.20 · Medium: train − val > 0.08 · Low: ≤ 0.08"
    monkeypatch.setattr(common, "OVERFITTING", ((0.3, "Severe"), (float("-inf"), "Fine")))
    assert overfitting_rule() == "Severe: train − val > 0.30 · Fine: ≤ 0.30"
    assert common.overfitting(0.9, 0.65) == "Fine"
    assert scratch.section(scratch_entries(), deck_inputs(profile=SMOKE))["rule"] == overfitting_rule()


# --- figures -------------------------------------------------------------------------------------

def test_training_curves_mark_the_runs_best_epoch_and_phase_boundary_on_a_log_loss():
    metrics = finetune_entry("vgg16", "step2", 0.8, 0.7).metrics
    loss_ax, acc_ax = training_curves(metrics).axes
    assert loss_ax.get_yscale() == "log" and loss_ax.get_ylabel() == "Loss" and acc_ax.get_ylabel() == "Accuracy"
    for ax in (loss_ax, acc_ax):
        marks = {a.get_gid(): a for a in ax.get_children() if a.get_gid()}
        assert list(marks["best-epoch"].get_xdata()) == [4, 4]  # metrics best_epoch, 1-based
        assert list(marks["phase-boundary"].get_xdata()) == [2.5, 2.5]  # after the 2 head epochs
    single = scratch_entry("r1-plain", {}, 0.5, 0.4).metrics
    ax = training_curves(single).axes[0]
    assert not [a for a in ax.get_children() if a.get_gid() == "phase-boundary"]


def test_run_figures_draw_training_curves_for_training_stages_only(tmp_path):
    entry = finetune_entry("vgg16", "step1", 0.8, 0.7, tmp_path=tmp_path)
    found = run_figures(entry)
    assert set(found) == {"training_curves"} and found["training_curves"].is_file()


def test_figures_are_redrawn_when_the_drawing_code_changes_not_otherwise(tmp_path):
    from mame.deck.figures import CODE_STAMP, code_stamp

    entry = finetune_entry("vgg16", "step1", 0.8, 0.7, tmp_path=tmp_path)
    path = run_figures(entry)["training_curves"]
    stamp = path.parent / CODE_STAMP
    assert stamp.read_text().strip() == code_stamp()
    drawn = path.stat().st_ino
    run_figures(entry)
    assert path.stat().st_ino == drawn  # cached: same file
    stamp.write_text("older-plotting-code\n")
    run_figures(entry)
    assert path.stat().st_ino != drawn and stamp.read_text().strip() == code_stamp()


def test_conclusions_state_the_best_rung_the_ladder_and_the_best_backbone():
    rungs = scratch.section(scratch_entries(), deck_inputs(profile=SMOKE))
    tuned = finetune.section(ladder_entries(), deck_inputs(names={"vgg16": "VGG16", "resnet50": "ResNet50"}, profile=SMOKE))
    said = scratch.conclusions({"scratch": rungs}) + finetune.conclusions({"finetune": tuned})
    story = tuned["ladders"][0]["story"]
    assert said[0] == f"Best CNN trained from scratch: r4-dropout, {rungs['best']['val']:.1%} validation accuracy."
    assert said[1] == (f"VGG16 fine-tuning ladder: {story['first']['val']:.1%} (#1) → {story['last']['val']:.1%} (#4) "
                       "validation accuracy.")
    best = max(tuned["comparison"], key=lambda r: r["val"])
    assert said[2].startswith(f"Best fine-tuned backbone: {best['name']} (step #{best['step']})")


def test_the_drawing_code_stamp_follows_the_drawing_code_not_the_engine(tmp_path):
    import shutil

    from mame import config
    from mame.deck.figures import code_stamp

    package = tmp_path / "mame"
    shutil.copytree(config.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    base = code_stamp(package)

    def edit(relative: str, old: str, new: str) -> str:
        path = package / relative
        text = path.read_text()
        assert old in text, relative
        path.write_text(text.replace(old, new, 1))
        code_stamp.cache_clear()
        return code_stamp(package)

    assert edit("engine/runs.py", 'VALID_STAMP = ".metrics.json.valid"', 'VALID_STAMP = ".valid"') == base  # reading runs
    assert edit("deck/figures.py", 'CODE_STAMP = ".drawn-by"', 'CODE_STAMP = ".drawn"') != base
    base = code_stamp(package)
    assert edit("plots/curves.py", "capsize=3", "capsize=4") != base
    base = code_stamp(package)
    assert edit("deck/classify.py", "def section(", "def section_(") != base
