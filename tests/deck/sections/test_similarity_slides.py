"""The task-similarity slides from similarity metrics made by the stage's own functions: numbers only for
trained ImageNet heads, "not meaningful" for random ones, the scratch panel from the best rung's own
validation predictions. (The stage itself runs through the runner in tests/stages/test_similarity.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES
from mame.deck.render import templating
from mame.deck.sections import similarity
from mame.engine.plan.load import PlannedRun
from mame.metrics import classification_result
from mame.stages import similarity as similarity_stage
from tests.helpers import FakeEntry, deck_inputs

EXAMPLES = [{"file": "a.jpg", "class": "Bronze", "top": [{"label": "necklace", "p": 0.39}]},
            {"file": "b.jpg", "class": "Albumen photograph", "top": [{"label": "mousetrap", "p": 0.21}]}]


def similarity_entry(backbone: str, name: str, weights: str, informative: bool) -> FakeEntry:
    labels = np.repeat(np.arange(29), 4)
    top1 = 3 * labels if informative else np.zeros_like(labels)
    predicted = {split: similarity_stage.Predicted(labels, [f"{i}.jpg" for i in range(len(labels))],
                                             np.stack([top1, top1 + 1], axis=1), np.full((len(labels), 2), 0.4), 1.0,
                                             CLASS_NAMES)
                 for split in ("train", "val")}
    metrics = {"name": name, "weights": weights, "meaningful": weights != "random", "image_size": 224, "top_k": 2,
               "similarity": similarity_stage.measure(predicted), "examples": EXAMPLES}
    return FakeEntry(PlannedRun("similarity", backbone, "default", Path("03_similarity.ipynb"), {}), "done",
                     {"metrics": metrics, "run": {"dataset": {"path": "/nowhere"}}, "artifacts": {}})


def scratch_entry(tmp_path: Path, rung: str, guess: int) -> FakeEntry:
    """A scratch run whose saved validation predictions say ``guess`` for both example images (class 7)."""
    folder = tmp_path / rung
    folder.mkdir()
    probabilities = np.full((2, 29), 0.01, dtype=np.float32)
    probabilities[:, guess] = 0.72
    np.savez(folder / "predictions_val.npz", files=np.array(["a.jpg", "b.jpg"]), probabilities=probabilities,
             y_true=np.array([7, 7]), class_names=np.array(CLASS_NAMES))
    val = classification_result([7, 7], [guess, guess], class_names=CLASS_NAMES)
    return FakeEntry(PlannedRun("scratch", None, rung, Path("01_scratch.ipynb"), {}), "done",
                     {"metrics": {}, "classification": {"val": val}, "artifacts": {"predictions_val": "predictions_val.npz"}},
                     path=folder)


def evaluate_record(chosen_rung: str) -> FakeEntry:
    """An evaluate run whose ``chosen`` record names ``chosen_rung`` as its scratch model."""
    chosen = [{"stage": "scratch", "run": chosen_rung, "backbone": None, "variant": chosen_rung, "step": 1,
               "val_accuracy": 0.0, "why": "named by the test", "reference": False}]
    return FakeEntry(PlannedRun("evaluate", None, "default", Path("06_evaluate.ipynb"), {}), "done",
                     {"metrics": {"chosen": chosen, "models": []}})


def render(section: dict) -> str:
    return templating.render("sections/similarity.md.j2", {
        "similarity": section, "planned": {"similarity": True}, "not_planned": {"similarity": {}}})


def test_trained_heads_get_numbers_random_ones_say_not_meaningful(tmp_path):
    entries = [similarity_entry("vgg16", "VGG16", "imagenet", True),
               similarity_entry("resnet50", "ResNet50", "random", False)]
    scratch = [scratch_entry(tmp_path, "r1-plain", guess=4), scratch_entry(tmp_path, "r2-deeper", guess=7)]
    assert similarity.section(entries, deck_inputs(entries + scratch))["scratch"] is None  # no rung chosen before evaluate
    section = similarity.section(entries, deck_inputs(entries + scratch + [evaluate_record("r2-deeper")]))
    assert section["ready"] and section["best"]["backbone"] == "VGG16" and section["best"]["map_accuracy"] == 1.0
    assert section["scratch"]["run"] == "scratch/r2-deeper"  # the rung the evaluate run chose
    assert [e["top"][0]["label"] for e in section["scratch"]["examples"]] == [CLASS_NAMES[7]] * 2
    text = render(section)
    vgg = next(line for line in text.splitlines() if line.startswith("| VGG16"))
    resnet = next(line for line in text.splitlines() if line.startswith("| ResNet50"))
    assert "**100.0%**" in vgg and "not meaningful" not in vgg
    assert "not meaningful" in resnet and "%" not in resnet
    assert "## What VGG16 sees in each class" in text
    assert f"| {templating.md(CLASS_NAMES[0])} |" in text  # the class table, from VGG16's labels
    assert similarity.conclusions({"similarity": section}) == [
        "Task similarity: VGG16's ImageNet labels alone give 100% of the validation images their class "
        "(29.0× chance, NMI 1.00)."]


def test_the_scratch_panel_shows_the_rung_the_evaluate_run_chose(tmp_path):
    """The evaluate run's ``chosen`` record decides, even against the validation numbers the deck sees."""
    entries = [similarity_entry("vgg16", "VGG16", "imagenet", True)]
    scratch = [scratch_entry(tmp_path, "r1-plain", guess=4), scratch_entry(tmp_path, "r2-deeper", guess=7)]
    section = similarity.section(entries, deck_inputs(entries + scratch + [evaluate_record("r1-plain")]))
    assert section["scratch"]["run"] == "scratch/r1-plain"
    assert [e["top"][0]["label"] for e in section["scratch"]["examples"]] == [CLASS_NAMES[4]] * 2


def test_with_random_weights_only_no_number_and_no_class_table():
    section = similarity.section([similarity_entry("vgg16", "VGG16", "random", True)], deck_inputs())
    text = render(section)
    assert section["best"] is None and section["scratch"] is None
    assert "not meaningful" in text and "No backbone ran with ImageNet weights" in text
    assert "sees in each class" not in text and "100.0%" not in text
    assert "not measured" in similarity.conclusions({"similarity": section})[0]


def test_a_failed_similarity_run_is_a_placeholder():
    failed = FakeEntry(PlannedRun("similarity", "vgg16", "default", Path("03_similarity.ipynb"), {}), "failed", None,
                       detail="kernel died")
    section = similarity.section([failed], deck_inputs())
    assert not section["ready"]
    assert "similarity/vgg16 failed: kernel died" in render(section)
