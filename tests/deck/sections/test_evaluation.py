"""The "Final result" slides from an evaluate run written by the real stage code on made-up predictions
(``tests/deck/evaluate_run.py``): real figures, Jinja, pandoc, reveal.js and Chromium, no mocks."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.deck.check.browser import check_deck
from mame.deck.render import templating
from mame.deck.render.context import paper_section
from mame.deck.render.figures import run_figures
from mame.deck.render.html import render_html
from mame.deck.sections import evaluate, scratch
from mame.deck.sections.choices import recorded
from mame.deck.sections.evaluate import evaluation_conclusions
from mame.deck.sections.evaluate_figures import gallery_figure
from mame.engine.plan.load import PlannedRun
from mame.metrics import describe_comparison as describe
from tests.deck.evaluate_run import CONFUSIONS, designed_counts, evaluate_entry, index_of
from tests.deck.sections.test_training_deck import table
from tests.helpers import MAME_SETUP, FakeEntry, deck_inputs, render_deck, slide

pct = lambda v: f"{100 * v:.1f}%"


@pytest.fixture(scope="module")
def deck(tmp_path_factory):
    """The evaluate run, its deck source, the HTML (pandoc) and the browser check (Chromium), once."""
    out = tmp_path_factory.mktemp("evaluate-deck")
    entry = evaluate_entry(out / "runs")
    built = render_deck([entry], out)
    built.entry = entry
    built.html_path = render_html(built.qmd, out / "deck.html")
    built.html = built.html_path.read_text()
    built.check = check_deck(built.html_path)
    return built


def test_the_new_slides_render_and_fit_in_the_browser(deck):
    assert deck.check.ok, deck.check.summary()
    for heading in ("Final result: test confusion matrix", "Classification report (test)", "Models on the test split",
                    "Test-split reads", "Per-class test accuracy: finetune/vgg16-step2",
                    "Most confused pairs: misclassified test images"):
        assert f"\n## {heading}\n" in deck.source
    figures = deck.figures["evaluate/default"]
    assert {"confusion_test", "per_class_recall", "error_gallery"} <= set(figures)
    assert all(path.is_file() for path in figures.values())


def test_report_prints_the_known_precision_and_recall_and_the_accuracy_they_imply(deck):
    counts = designed_counts()  # the reference model's test predictions follow this matrix
    hits, support, predicted = np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)
    precision, recall = hits / predicted, hits / support
    f1 = 2 * precision * recall / (precision + recall)
    shown = {}
    for row in table(deck.html, "classification-report")[1:]:
        for half in (row[:5], row[5:]):
            if half and half[0]:
                shown[half[0]] = half[1:]
    close = lambda text, value: abs(float(text) - value) <= 0.005 + 1e-9  # printed with two decimals
    for c, name in enumerate(CLASS_NAMES):
        p, r, f, n = shown[name]
        assert close(p, precision[c]) and close(r, recall[c]) and close(f, f1[c]), name
        assert n == f"{support[c]:,}", name
    assert shown["accuracy"][:2] == ["", ""] and close(shown["accuracy"][2], hits.sum() / counts.sum())
    assert shown["accuracy"][3] == f"{counts.sum():,}"
    for name, weights in (("macro avg", np.ones(len(support))), ("weighted avg", support)):
        p, r, f, n = shown[name]
        assert close(p, np.average(precision, weights=weights)) and close(r, np.average(recall, weights=weights))
        assert close(f, np.average(f1, weights=weights)) and n == f"{counts.sum():,}"
    assert len(shown) == len(CLASS_NAMES) + 3
    heading = slide(deck.source, "Classification report (test)")
    assert f"{pct(hits.sum() / counts.sum())} test accuracy" in heading


def test_models_table_equals_metrics_json(deck):
    models = deck.entry.metrics["metrics"]["models"]
    rows = table(deck.html, "models-table")
    assert rows[0] == ["Model", "Approach", "Val", "Test (95 % CI)", "Macro F1", "Against the best single model"]
    members = deck.entry.metrics["metrics"]["ensemble"]  # listed under the table, not in its row
    assert models[-1]["model"] == "ensemble: " + " + ".join(members) and len(members) == 3
    assert {m.split("/")[0] for m in members} == {"finetune", "classify"}  # the approaches mix
    shown = lambda m: "ensemble of 3 models" if m["kind"] == "ensemble" else m["model"]
    expected = [[shown(m), m["approach"], pct(m["val_accuracy"]),
                 f"{pct(m['accuracy'])} ({pct(m['ci_low'])}–{pct(m['ci_high'])})",
                 f"{m['macro_f1']:.2f}", "reference" if m["reference"] else describe(m["vs_best"])] for m in models]
    assert rows[1:] == expected
    assert [m["kind"] for m in models] == ["finetune", "finetune", "classify", "scratch", "ensemble"]
    assert [m["approach"] for m in models] == ["fine-tuning", "fine-tuning", "feature extraction", "scratch", "ensemble"]
    tried = deck.entry.metrics["metrics"]["ensembles"]
    line = slide(deck.source, "Models on the test split")
    kept = next(e for e in tried if e["members"] == members)
    assert (f"**Ensemble:** {deck.entry.metrics['metrics']['ensemble_method']}; {len(tried)} tried, best validation "
            f"accuracy {pct(kept['val_accuracy'])} (3 models)") in line


def test_the_ensemble_summary_is_the_one_the_evaluate_run_kept_not_the_first_best_on_validation():
    """On a tie evaluate keeps the smaller ensemble (``mame.stages.evaluate.ensembles``): the slide says that one."""
    tried = [{"members": ["a", "b", "c"], "val_accuracy": 0.8, "n_val": 10}, {"members": ["a", "b"], "val_accuracy": 0.8, "n_val": 10}]
    summary = evaluate.ensemble_summary({"ensembles": tried, "ensemble": ["a", "b"], "ensemble_method": "every subset"}, [])
    assert (summary["best_val"], summary["best_members"], summary["members"]) == (0.8, ["a", "b"], ["a", "b"])


def approaches_by_hand(entry) -> list[dict]:
    """Per approach, its model best on validation (metrics.models rows), highest test accuracy first."""
    singles = [r for r in entry.metrics["metrics"]["models"] if r["kind"] != "ensemble"]
    best = [max((r for r in singles if r["approach"] == a), key=lambda r: r["val_accuracy"])
            for a in {r["approach"] for r in singles}]
    return sorted(best, key=lambda r: -r["accuracy"])


def test_the_approaches_slide_puts_each_approachs_model_best_on_validation_side_by_side(deck):
    rows = table(deck.html, "approaches-table")
    assert rows[0] == ["Approach", "Its model best on validation", "Val", "Test (95 % CI)"]
    assert rows[1:] == [[r["approach"], r["model"], pct(r["val_accuracy"]),
                         f"{pct(r['accuracy'])} ({pct(r['ci_low'])}–{pct(r['ci_high'])})"]
                        for r in approaches_by_hand(deck.entry)]
    assert [r[0] for r in rows[1:]] == ["fine-tuning", "feature extraction", "scratch"]
    assert "**fine-tuning**" in slide(deck.source, "The approaches on the test split")  # the final model's approach


def test_the_full_profiles_models_table_fits_one_slide_and_a_longer_one_continues(tmp_path):
    entry = evaluate_entry(tmp_path / "runs", more=True)
    models = entry.metrics["metrics"]["models"]
    assert len(models) == 12 and sum(m["kind"] == "classify" for m in models) == 5
    built = render_deck([entry], tmp_path)
    assert built.source.count("\n## Models on the test split") == 1
    assert slide(built.source, "Models on the test split").count("\n| ") == 12 + 1  # rows and the header
    check = check_deck(render_html(built.qmd, tmp_path / "deck.html"))
    assert check.ok, check.summary()
    assert evaluate.pages(list(range(25)), per_slide=12) == [list(range(12)), list(range(12, 23)), [23, 24]]
    section = {**built.context["evaluate"], "model_pages": evaluate.pages(built.context["evaluate"]["models"], per_slide=5)}
    text = templating.render("sections/evaluate.md.j2", {"setup": MAME_SETUP, "planned": {"evaluate": True, "explain": True},
                                                          "evaluate": section, "not_planned": {}})
    pages = [slide(text, f"Models on the test split ({i}/3)") for i in (1, 2, 3)]
    assert [page.count("\n| ") - 1 for page in pages] == [5, 5, 2]  # never a lone row on the last slide
    assert all("Continued on the next slide." in page for page in pages[:2]) and "**Ensemble:**" in pages[2]


def test_ledger_slide_lists_every_read_of_the_test_split(deck):
    reads = deck.entry.metrics["run"]["test_split_reads"]
    rows = [[cell.replace("’", "'") for cell in row] for row in table(deck.html, "ledger-table")]  # smart quotes
    assert rows[1:] == [[str(i), r["what"], f"{r['n_images']:,}", r.get("model", "—")] for i, r in enumerate(reads, 1)]
    text = slide(deck.source, "Test-split reads")
    assert "5 reads: 1 of the test records" in text and "each of the 4 models was scored exactly once" in text
    assert "No other run recorded a read of the test split" in text


def test_ledger_flags_a_second_read_of_a_model_and_reads_by_other_runs(deck):
    entry = copy.deepcopy(deck.entry)
    entry.metrics["run"]["test_split_reads"].append(dict(entry.metrics["run"]["test_split_reads"][1]))
    other = FakeEntry(PlannedRun("scratch", None, "r1-plain", deck.entry.run.notebook, {}), "done",
                      {"run": {"test_split_reads": [{"what": "a peek", "n_images": 9}]}})
    section = evaluate.section([entry], deck_inputs([other, entry]))
    assert section["ledger"]["not_once"] == ["finetune/vgg16-step2"] and section["ledger"]["others"] == ["scratch/r1-plain"]
    text = templating.render("sections/evaluate.md.j2", {
        "setup": MAME_SETUP, "planned": {"evaluate": True, "explain": True}, "evaluate": section,
                                                       "not_planned": {}})
    assert "**not once per model for finetune/vgg16-step2**" in text
    assert "**Other runs recorded test-split reads: scratch/r1-plain.**" in text
    assert len(table_rows(slide(text, "Test-split reads"))) == 6


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if re.match(r"^\| \d+ \|", line)]


def test_gallery_shows_only_misclassified_images_of_the_most_confused_pairs(deck):
    entry = deck.entry
    cls = entry.metrics["classification"]["finetune/vgg16-step2/test"]
    with np.load(entry.path / cls["predictions"]) as arrays:
        y_true, y_pred, probs = arrays["y_true"], arrays["y_pred"], arrays["probabilities"]
    fig = gallery_figure(entry, cls)
    shown = {}
    for ax in fig.axes:
        if ax.images:
            index = index_of(ax.images[0].get_array()[0, 0])  # the test image's colour encodes its index
            true, pred = y_true[index], y_pred[index]
            assert true != pred
            assert ax.get_title().replace("\n", " ") == f"{CLASS_NAMES[true]} → {CLASS_NAMES[pred]} ({probs[index, pred]:.2f})"
            shown.setdefault((int(true), int(pred)), []).append(index)
    assert list(shown) == list(CONFUSIONS)  # the three largest off-diagonal cells, largest first
    assert all(len(v) == 4 for v in shown.values())
    caption = slide(deck.source, "Most confused pairs: misclassified test images")
    for (true, pred), n in CONFUSIONS.items():
        share = n / designed_counts()[true].sum()
        assert f"{CLASS_NAMES[true]} → {CLASS_NAMES[pred]}: {n} images ({100 * share:.0f}% of the class)" in caption


def test_conclusions_state_the_final_model_the_ensemble_verdict_and_the_hardest_classes(deck):
    final = deck.context["evaluate"]
    said = evaluation_conclusions(final)
    ref = deck.entry.metrics["metrics"]["models"][0]
    assert said[0] == (f"Final model (best single model on validation): finetune/vgg16-step2, {pct(ref['accuracy'])} test "
                       f"accuracy (95 % CI {pct(ref['ci_low'])}–{pct(ref['ci_high'])}, {ref['n_images']:,} images).")
    assert said[1] == "The approaches on test, each by its model best on validation: " + "; ".join(
        f"{r['approach']} {pct(r['accuracy'])} ({r['model']})" for r in approaches_by_hand(deck.entry)) + "."
    assert "is significantly worse than the best single model" in said[2]
    counts = designed_counts()
    f1 = 2 * np.diag(counts) / (counts.sum(axis=0) + counts.sum(axis=1))
    hardest = ", ".join(f"{CLASS_NAMES[c]} {f1[c]:.2f}" for c in np.argsort(f1, kind="stable")[:3])
    assert said[-1] == f"Hardest classes on test (lowest F1): {hardest}."
    for p, delta, verdict in ((0.01, 1.3, "significantly better than"), (0.2, 1.3, "not significantly different from")):
        changed = copy.deepcopy(final)
        changed["ensemble"]["row"].update(p_value=p, delta_pp=delta, significant=p < 0.05, vs=f"+{delta} pp, p={p}")
        assert f"is {verdict} the best single model on test (+{delta} pp, p={p}" in evaluation_conclusions(changed)[2]
    assert all(c in deck.context["conclusions"] for c in said)
    alone = copy.deepcopy(final)
    alone["ensemble"].update(row=None, method="none (fewer than two fine-tuned models)")
    assert "No ensemble was scored: none (fewer than two fine-tuned models)." in evaluation_conclusions(alone)


def test_missing_failed_or_imageless_runs_show_placeholders(deck, tmp_path):
    run = deck.entry.run
    for state, detail, expected in (("missing", "", "evaluate/default has not run yet"),
                                    ("failed", "ValueError: no model", "evaluate/default failed: ValueError: no model")):
        section = evaluate.section([FakeEntry(run, state, None, detail=detail)], deck_inputs())
        assert not section["ready"] and section["gaps"][0]["message"].startswith(expected)
        text = templating.render("sections/evaluate.md.j2", {"setup": MAME_SETUP, "planned": {"evaluate": True, "explain": True},
                                                              "evaluate": section, "not_planned": {}})
        assert "{.placeholder ." in text and expected in text.replace("\\", "")
        assert evaluation_conclusions(section) == []
    moved = copy.deepcopy(deck.entry)
    moved.metrics["run"]["dataset"]["path"] = str(tmp_path / "gone")
    moved.path = tmp_path / "run"
    moved.path.mkdir()
    (moved.path / "metrics.json").write_text(json.dumps(moved.metrics))
    assert "error_gallery" not in run_figures(moved)
    section = evaluate.section([moved], deck_inputs([moved]))
    text = templating.render("sections/evaluate.md.j2", {
        "setup": MAME_SETUP, "planned": {"evaluate": True, "explain": True}, "evaluate": section,
                                                       "not_planned": {}})
    assert "No thumbnails: the test images" in slide(text, "Most confused pairs: misclassified test images")


def test_test_accuracies_reach_the_baseline_and_paper_tables(deck):
    final = deck.context["evaluate"]
    r7 = next(m for m in final["models"] if m["model"] == "scratch/r7-gap")
    from tests.deck.sections.test_training import scratch_entry

    rungs = [scratch_entry("r1-plain", {}, 0.9, 0.4), scratch_entry("r7-gap", {}, 0.5, 0.3)]
    baseline = scratch.section(rungs, deck_inputs([deck.entry, *rungs]))
    assert baseline["best"]["run"] == "scratch/r7-gap" and baseline["tested_by_evaluate"]  # chosen, not the best val
    assert [it["test"] for it in baseline["items"]] == [None, r7["test"]]
    tuned = [FakeEntry(PlannedRun("finetune", b, v, deck.entry.run.notebook, {}), "done", {"headline": None})
             for b, v in (("vgg16", "step2"), ("resnet50", "step1"))]
    from mame.deck.render.context import load_references

    deck_in = deck_inputs([deck.entry, *tuned])
    rows = {r["backbone"]: r for r in paper_section(load_references(), recorded(deck_in))["rows"]}
    tested = {m["model"]: m["test"] for m in final["models"]}
    assert rows["vgg16"]["finetune_fs"] == tested["finetune/vgg16-step2"] == final["models"][0]["test"]
    assert rows["resnet50"]["finetune_fs"] == tested["finetune/resnet50-step1"]
    assert rows["efficientnetb0"]["features_fs"] == tested["classify/efficientnetb0/logistic_regression"]
    assert rows["resnet50"]["features_fs"] is None  # no pipeline chosen for it
    assert all(r[k] is None for r in rows.values() for k in ("features_vs", "finetune_vs", "twin"))  # no shape pair
