"""The Grad-CAM slides' text from explain metrics without object masks (the real MAMe has none), and the
conclusion's verdict both ways; the ladder test renders the slides of a real explain run."""

from __future__ import annotations

from pathlib import Path

from mame.deck.render import templating
from mame.deck.sections.explain import explain_conclusions
from mame.deck.sections.explain import section as explain_section
from mame.engine.plan.load import PlannedRun
from tests.helpers import MAME_SETUP, FakeEntry, deck_inputs


def row(model: str, label: str, stage: str, mass, reference: bool) -> dict:
    return {"model": model, "label": label, "stage": stage, "run": model.split("/")[1], "backbone": None,
            "layer": "block5_conv3", "grid": [7, 7], "image_size": 224, "val_accuracy": 0.7, "sample_accuracy": 0.6,
            "mass_inside": mass, "mass_ci": [None if mass is None else mass - 0.05, None if mass is None else mass + 0.05],
            "chance": None if mass is None else 0.3, "hot_area": 0.2, "n_measured": 0 if mass is None else 40,
            "n_empty": 1, "per_class_mass": {}, "reference": reference}


def entry(metrics: dict) -> FakeEntry:
    return FakeEntry(PlannedRun("explain", None, "default", Path("07_explain.ipynb"), {}), "done",
                     {"metrics": metrics, "run": {"cache_key": "e" * 20}}, path=Path("/nowhere"))


def test_without_masks_the_slides_say_so_and_show_the_hot_area_only():
    metrics = {"target": "true", "per_class": 8, "n_images": 232, "n_masked": 0, "shown": [], "comparison": None,
               "models": [row("finetune/vgg16-step3", "VGG16 #3 (fine-tuned)", "finetune", None, True),
                          row("scratch/r7-gap", "Scratch r7-gap", "scratch", None, False)]}
    section = explain_section([entry(metrics)], deck_inputs())
    assert section["ready"] and section["comparison"] is None and explain_conclusions(section) == []
    text = templating.render("sections/explain.md.j2", {"setup": MAME_SETUP, "explain": section, "planned": {"explain": True},
                                                        "not_planned": {"explain": {}}})
    assert "has no object masks" in text and "None" not in text
    assert "VGG16 \\#3 (fine-tuned)" in text and "block5\\_conv3 (7×7)" in text


def test_the_conclusion_follows_the_paired_test():
    comparison = {"scratch": "scratch/r7-gap", "finetuned": "finetune/vgg16-step3", "scratch_label": "Scratch r7-gap",
                  "finetuned_label": "VGG16 #3 (fine-tuned)",
                  "mass": {"delta_pp": 12.0, "p_value": 0.001, "n": 40, "mean_a": 0.40, "mean_b": 0.52},
                  "hot_area": {"delta_pp": -5.0, "p_value": 0.2, "n": 40, "mean_a": 0.3, "mean_b": 0.25}}
    metrics = {"target": "true", "per_class": 8, "n_images": 232, "n_masked": 120, "shown": [], "comparison": comparison,
               "models": [row("finetune/vgg16-step3", "VGG16 #3 (fine-tuned)", "finetune", 0.52, True),
                          row("scratch/r7-gap", "Scratch r7-gap", "scratch", 0.40, False)]}
    said = explain_conclusions(explain_section([entry(metrics)], deck_inputs()))
    assert said == ["Grad-CAM: the fine-tuned model looks more on the object than the scratch model: VGG16 #3 "
                    "(fine-tuned) puts 52% of its Grad-CAM heat on the object, Scratch r7-gap 40% (a uniform map: "
                    "30%; the same 40 validation images, +12.0 pp, p=0.001, Wilcoxon)."]
    comparison["mass"]["p_value"] = 0.3
    assert explain_conclusions(explain_section([entry(metrics)], deck_inputs()))[0].startswith(
        "Grad-CAM: no significant difference in where the models look")
