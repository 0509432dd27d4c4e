"""The training slides (baseline ladder, fine-tuning ladder) from hand-built metrics in the stages' shape."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mame import config
from mame.classes import CLASS_NAMES
from mame.deck.render import templating
from mame.deck.render.context import approaches_conclusion, load_references, paper_section
from mame.deck.render.figures import run_figures
from mame.deck.sections import finetune, scratch, settings, slide_parts
from mame.deck.sections.choices import recorded
from mame.deck.sections.ladder import overfitting_rule, training_curves
from mame.engine.plan.load import PlannedRun, Profile, notebook_parameters, resolve_params
from mame.metrics import classification_result
from tests.deck.chosen_run import evaluate_entry
from tests.helpers import MAME_SETUP, FakeEntry, deck_inputs

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
        classification[split] = classification_result(y, np.where(rng.random(200) < acc, y, (y + 1) % 29), class_names=CLASS_NAMES)
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


def evaluated(tmp_path, entries, **kw):
    """``entries`` and the evaluate run that chose among them (``tests/deck/chosen_run.py``)."""
    return [*entries, evaluate_entry(tmp_path, entries, **kw)]


def test_ladder_story_is_first_to_last_step_with_the_best_the_evaluate_run_chose(tmp_path):
    entries = ladder_entries()
    section = finetune.section(entries, deck_inputs(evaluated(tmp_path, entries), names={}, profile=SMOKE))
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


def test_backbones_are_compared_on_their_best_step_only_when_several_ran(tmp_path):
    entries = ladder_entries()
    section = finetune.section(entries, deck_inputs(evaluated(tmp_path, entries), names={}, profile=SMOKE))
    rows = {r["backbone"]: r for r in section["comparison"]}
    vgg_best = max((s for s in section["items"] if s["backbone"] == "vgg16"), key=lambda s: s["val"])
    assert rows["vgg16"]["step"] == vgg_best["step"] and rows["vgg16"]["val"] == vgg_best["val"]
    assert rows["resnet50"]["steps"] == 1 and rows["resnet50"]["n_params"] == 1001
    assert [r["backbone"] for r in section["comparison"]] == ["vgg16", "resnet50"] and section["unchosen"] == []
    one = ladder_entries()[2:]
    assert finetune.section(one, deck_inputs(evaluated(tmp_path / "one", one), names={}, profile=SMOKE))["comparison"] == []


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


PAPER = {"rows": [], "what": "", "citation": "", "doi": "", "chosen": True, "twins": [], "ours": "synthetic data"}


def test_baseline_table_equals_the_runs_metrics_in_plan_order(tmp_path):
    entries = scratch_entries()
    section = scratch.section(entries, deck_inputs(evaluated(tmp_path, entries), profile=SMOKE))
    text = templating.render("sections/scratch.md.j2", {"setup": MAME_SETUP, "planned": {"scratch": True}, "scratch": section,
                                                         "not_planned": {}, "paper": PAPER})
    rows = table_rows(text, "| Model | Train |")
    assert [r[0].strip("*") for r in rows[:4]] == ["r1-plain", "r2-deeper", "r3-batchnorm", "r4-dropout"]
    for row, entry in zip(rows, entries):
        if entry.metrics is None:
            assert row[1:] == ["*failed*", "—", "—", "—", "—", "—"]
            continue
        m = entry.metrics
        train, val = (m["classification"][s]["report"]["accuracy"] for s in ("train", "val"))
        tested = "0.50" if entry.run.variant == "r4-dropout" else "—"  # the rung evaluate chose, scored on test
        expected = [f"{train:.2f}", f"{val:.2f}", tested, slide_parts.overfitting(train, val), f"{m['metrics']['n_params']:,}",
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
    text = templating.render("sections/scratch.md.j2", {"setup": MAME_SETUP, "planned": {"scratch": True}, "scratch": section,
                                                         "not_planned": {}, "paper": PAPER})
    rows = table_rows(text, "| Rung | Idea |")
    assert rows[0][1:3] == ["About r1-plain.", "the notebook's defaults"]
    assert rows[2][1:] == ["About r3-batchnorm.", "batch norm no → yes", "—"]


def test_overfitting_caption_comes_from_the_one_threshold_table(monkeypatch):
    assert overfitting_rule() == "High: train − val > 0.20 · Medium: train − val > 0.08 · Low: ≤ 0.08"
    monkeypatch.setattr(slide_parts, "OVERFITTING", ((0.3, "Severe"), (float("-inf"), "Fine")))
    assert overfitting_rule() == "Severe: train − val > 0.30 · Fine: ≤ 0.30"
    assert slide_parts.overfitting(0.9, 0.65) == "Fine"
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
    from mame.deck.render.figures import CODE_STAMP, code_stamp

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


def test_conclusions_state_the_best_rung_the_ladder_and_the_best_backbone(tmp_path):
    entries = scratch_entries() + ladder_entries()
    deck = deck_inputs(evaluated(tmp_path, entries), names={"vgg16": "VGG16", "resnet50": "ResNet50"}, profile=SMOKE)
    rungs = scratch.section(entries[:4], deck)
    tuned = finetune.section(entries[4:], deck)
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
    from mame.deck.render.figures import code_stamp

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

    assert edit("engine/run/records.py", 'VALID_STAMP = ".metrics.json.valid"', 'VALID_STAMP = ".valid"') == base  # reading runs
    assert edit("deck/render/figures.py", 'CODE_STAMP = ".drawn-by"', 'CODE_STAMP = ".drawn"') != base
    base = code_stamp(package)
    assert edit("plots/curves.py", "capsize=3", "capsize=4") != base
    base = code_stamp(package)
    assert edit("deck/sections/classify.py", "def section(", "def section_(") != base


# --- the best step and rung: the evaluate run's choice, read --------------------------------------

NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50"}


def test_the_deck_shows_the_best_step_and_rung_the_evaluate_run_recorded_not_its_own_maximum(tmp_path):
    """The evaluate run saw other validation predictions than the deck's numbers (as with seeds: it chooses the
    best seed's run, the deck shows the mean): the slides follow its record."""
    entries = scratch_entries() + ladder_entries()
    run = evaluate_entry(tmp_path, entries, val={"finetune/vgg16-step2": 0.95, "scratch/r2-deeper": 0.9})
    chosen = {c["model"]: c for c in run.metrics["metrics"]["chosen"]}
    assert [m for m, c in chosen.items() if c.get("best_step")] == ["finetune/vgg16-step2", "finetune/resnet50-step1"]
    deck = deck_inputs([*entries, run], names=NAMES, profile=SMOKE)
    rungs, tuned = scratch.section(entries[:4], deck), finetune.section(entries[4:], deck)
    vgg = tuned["ladders"][0]
    step2, step4 = vgg["steps"][1], vgg["steps"][3]
    assert step4["val"] > step2["val"]  # on the deck's numbers step 2 is not the best; evaluate chose it
    assert vgg["story"]["best"] == {"step": 2, "variant": "step2", "val": step2["val"]}
    assert vgg["story"]["best_is_last"]  # the last step is at least as good on these numbers: nothing more to say
    assert [(r["backbone"], r["step"], r["val"]) for r in tuned["comparison"]] == [
        ("vgg16", 2, step2["val"]), ("resnet50", 1, tuned["ladders"][1]["steps"][0]["val"])]
    assert tuned["best"]["backbone"] == "vgg16"  # best on validation as the record orders them, not by the deck's values
    assert rungs["best"]["variant"] == "r2-deeper" and rungs["best"]["test"] == 0.5
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": tuned,
                                                          "not_planned": {}})
    assert f"| VGG16 | #2/4 | {templating.pct(step2['val'])} |" in text
    said = scratch.conclusions({"scratch": rungs}) + finetune.conclusions({"finetune": tuned})
    assert said[0].startswith("Best CNN trained from scratch: r2-deeper,")
    assert said[-1] == f"Best fine-tuned backbone: VGG16 (step #2), {step2['val']:.1%} validation accuracy."
    approaches = approaches_conclusion(rungs, {}, tuned)[0]
    assert f"fine-tuning {step2['val']:.1%} (VGG16 #2)" in approaches and "(r2-deeper)" in approaches
    rows = {r["backbone"]: r for r in paper_section(load_references(), recorded(deck))["rows"]}
    assert (rows["vgg16"]["finetune_fs"], rows["vgg16"]["finetune_vs"], rows["vgg16"]["twin"]) == (0.5, None, None)
    assert rows["efficientnetb0"]["finetune_fs"] is None


def test_with_every_step_evaluated_the_deck_takes_the_step_the_record_marks_best(tmp_path):
    entries = ladder_entries()
    run = evaluate_entry(tmp_path, entries, select="all", val={"finetune/vgg16-step3": 0.99},
                         test={"finetune/vgg16-step3": 0.6, "finetune/vgg16-step1": 0.9})
    assert len([c for c in run.metrics["metrics"]["chosen"] if c["stage"] == "finetune"]) == 5  # every step chosen
    deck = deck_inputs([*entries, run], names=NAMES, profile=SMOKE)
    tuned = finetune.section(entries, deck)
    assert [(r["backbone"], r["step"]) for r in tuned["comparison"]] == [("vgg16", 3), ("resnet50", 1)]
    assert tuned["ladders"][0]["story"]["best"]["step"] == 3
    vgg = next(r for r in paper_section(load_references(), recorded(deck))["rows"] if r["backbone"] == "vgg16")
    assert vgg["finetune_fs"] == 0.6  # the step chosen on validation, not the best on test


def test_before_any_evaluate_run_the_slides_say_the_best_step_and_rung_are_not_chosen_yet():
    entries = scratch_entries() + ladder_entries()
    deck = deck_inputs(entries, names=NAMES, profile=SMOKE)
    rungs, tuned = scratch.section(entries[:4], deck), finetune.section(entries[4:], deck)
    assert rungs["best"] is None and scratch.best_rung(entries[:4], deck) is None
    assert tuned["ladders"][0]["story"]["best"] is None and tuned["comparison"] == [] and tuned["best"] is None
    assert tuned["unchosen"] == ["VGG16", "ResNet50"]
    assert tuned["best_gap"]["message"].startswith("Not chosen yet: the evaluate stage chooses each fine-tuned "
                                                   "backbone's best step on validation")
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": tuned,
                                                          "not_planned": {}})
    assert "from #1 to #4); best step not chosen yet (evaluate)\n" in text
    compared = text.split("## Fine-tuned backbones compared (best step each)\n")[1]
    assert "{.placeholder .missing}" in compared and "| Backbone |" not in compared
    baseline = templating.render("sections/scratch.md.j2", {"setup": MAME_SETUP, "planned": {"scratch": True}, "scratch": rungs,
                                                             "not_planned": {}, "paper": {**PAPER, "chosen": False}})
    assert "**" not in baseline.split("## Baseline ladder")[0] and "Baseline learning curves" not in baseline
    assert "Not chosen yet: the evaluate stage chooses the best scratch rung on validation" in baseline
    assert "Ours: the models the evaluate stage chose on validation (not chosen yet: it has not run)" in baseline
    said = scratch.conclusions({"scratch": rungs}) + finetune.conclusions({"finetune": tuned})
    assert said[0].startswith("Best CNN trained from scratch: not chosen yet")
    assert said[-1].startswith("Best fine-tuned backbone: not chosen yet")
    assert approaches_conclusion(rungs, {}, tuned) == []
    paper = paper_section(load_references(), recorded(deck))
    assert not paper["chosen"] and not paper["has_ours"]


def test_a_backbone_the_evaluate_run_did_not_see_is_said_not_chosen(tmp_path):
    entries = ladder_entries()
    run = evaluate_entry(tmp_path, [e for e in entries if e.run.backbone == "vgg16"])  # before resnet50's step ran
    tuned = finetune.section(entries, deck_inputs([*entries, run], names=NAMES, profile=SMOKE))
    assert [r["backbone"] for r in tuned["comparison"]] == ["vgg16"] and tuned["unchosen"] == ["ResNet50"]
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": tuned,
                                                          "not_planned": {}})
    assert "Step: best of the backbone's steps on validation, as the evaluate stage chose it (not chosen: ResNet50)." in text
