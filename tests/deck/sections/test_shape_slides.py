"""Fixed against variable shape on the slides: the pairs the evaluate run compared on test (its real stage code, on
made-up predictions), the padding of the deck's images at the variable-shape runs' budget, the paper's table beside
ours, the ladder without its variable-shape step, the labels of the other sections."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mame.classes import CLASS_NAMES
from mame.data.aspect_buckets import RATIOS, Buckets
from mame.deck.render import templating
from mame.deck.render.context import load_references, paper_section
from mame.deck.sections import classify, evaluate, features, finetune
from mame.deck.sections import shape_slides as shapes
from mame.deck.sections.choices import recorded
from mame.engine.plan.load import PlannedRun, notebook_parameters, resolve_params
from tests.deck.chosen_run import evaluate_entry
from tests.deck.sections.test_training import FINETUNE_NB, RUN_BLOCK, SMOKE, ladder_entries, training_metrics
from tests.helpers import MAME_SETUP, FakeEntry, deck_inputs, render_deck, slide

NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50", "efficientnetlite0": "EfficientNet-Lite0"}
HEADER = ["Image file", "Medium", "Museum", "Museum-based instance ID", "Subset", "Width", "Height", "Product size",
          "Aspect ratio"]
# (width, height) of the dataset's images: every bucket from 1:3.2 to 3.2:1, some beyond the outer ones, some twice
SIZES = [(30, 100), (40, 100), (50, 100), (63, 100), (79, 100), (100, 100), (126, 100), (159, 100), (200, 100),
         (252, 100), (317, 100), (20, 100), (500, 100), (64, 48), (48, 64), (90, 60), (60, 90), (33, 32)]


def vs_step(backbone: str, train: float, val: float, *, tmp_path=None, target_pixels: int = 1024) -> FakeEntry:
    """A finished variable-shape fine-tuning step (``step1-vs``: step 1's settings at variable shape), its metrics
    as the stage records them (``shape``, ``target_pixels``, ``placement``)."""
    overrides = {"shape": "variable"}
    declared = notebook_parameters(FINETUNE_NB)
    run = PlannedRun("finetune", backbone, "step1-vs", FINETUNE_NB, resolve_params(declared, SMOKE, "finetune", overrides),
                     about="Step 1 at variable shape.", overrides=overrides,
                     planned=resolve_params(declared, SMOKE, "finetune", overrides, forced=False), step=5)
    extra = {"backbone": backbone, "trainable_from": "block4_conv1", "image_size": 32, "weights": "random",
             "shape": "variable", "target_pixels": target_pixels, "placement": "corner",
             "trainable": {"finetune": {"trainable_params": 60, "frozen_params": 40}}}
    metrics = training_metrics(train, val, epochs=4, best=2, seed=7, extra=extra)
    path = Path("/nowhere")
    if tmp_path is not None:
        path = tmp_path / "finetune" / run.name
        path.mkdir(parents=True)
        (path / "metrics.json").write_text("{}")
    return FakeEntry(run, "done", metrics, path=path)


def shape_entries(tmp_path, *, fixed: float, variable: float, backbones=("vgg16",), folders: bool = False,
                  vs_val: float = 0.6):
    """Each backbone's ladder steps 1-4 and its step1-vs, and the evaluate run that chose among them: the best fixed
    step, the variable-shape step (``vs_val`` validation accuracy) and its twin (step 1) on test, step 1 at ``fixed``
    and step1-vs at ``variable`` test accuracy (the first rows right: every image one gets right the other does too, or
    the other way round)."""
    runs = tmp_path / "runs" if folders else None  # folders: the run folders its figures are drawn into
    entries = [e for e in ladder_entries(tmp_path=runs) if e.run.backbone in backbones]
    entries += [vs_step(b, 0.7, vs_val, tmp_path=runs) for b in backbones]
    test = {f"finetune/{b}-step1": fixed for b in backbones} | {f"finetune/{b}-step1-vs": variable for b in backbones}
    run = evaluate_entry(tmp_path, entries, test=test)
    return entries, run


@pytest.fixture(params=[("variable wins", 0.4, 0.6), ("fixed wins", 0.5, 0.48)], ids=lambda p: p[0])
def compared(request, tmp_path):
    _, fixed, variable = request.param
    entries, run = shape_entries(tmp_path, fixed=fixed, variable=variable, folders=True)
    return entries, run, fixed, variable


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


# --- the pairs on test ---------------------------------------------------------------------------------------------

def test_the_shape_slide_shows_the_evaluate_runs_pairs_and_says_which_shape_won(compared, tmp_path):
    entries, run, fixed, variable = compared
    pairs = run.metrics["metrics"]["shapes"]
    assert [(p["fixed"], p["variable"]) for p in pairs] == [("finetune/vgg16-step1", "finetune/vgg16-step1-vs")]
    deck = render_deck([*entries, run], tmp_path / "report")
    text = slide(deck.source, "Fixed vs variable shape (test)")
    rows = table_rows(text)
    assert len(rows) == len(pairs)
    for row, pair in zip(rows, pairs):
        test = pair["mcnemar"]
        bold = "**" if test["p_value"] < 0.05 else ""
        assert row == ["fine-tuning", "vgg16", "finetune/vgg16-step1", "finetune/vgg16-step1-vs",
                       templating.pct(pair["fixed_accuracy"]), templating.pct(pair["variable_accuracy"]),
                       f"{bold}{test['delta_pp']:+.1f}{bold}",
                       f"{bold}{templating.md(shapes.p_text(test['p_value']))}{bold}{' exact' if test['exact'] else ''}",
                       str(pair["n_images"])]
        assert (pair["fixed_accuracy"], pair["variable_accuracy"]) == (fixed, variable)  # as the fixture made them
    pair = pairs[0]
    won, lost = ("variable", "fixed") if pair["variable_accuracy"] > pair["fixed_accuracy"] else ("fixed", "variable")
    points = abs(pair["variable_accuracy"] - pair["fixed_accuracy"]) * 100
    significant = pair["mcnemar"]["p_value"] < 0.05
    assert significant == (won == "variable")  # 40 discordant images against 4
    sentence = (f"Fine-tuning, vgg16: {won} shape won by {points:.1f} points ({pair[f'{won}_accuracy']:.1%} against "
                f"{pair[f'{lost}_accuracy']:.1%} on {pair['n_images']} test images), "
                f"{'significant' if significant else 'not significant'} at 0.05 (McNemar"
                f"{' exact' if pair['mcnemar']['exact'] else ''} p={shapes.p_text(pair['mcnemar']['p_value'])}).")
    assert templating.md(sentence) in text
    said = [line for line in deck.context["conclusions"] if line.startswith("Fixed vs variable shape")]
    assert said == [f"Fixed vs variable shape, vgg16 fine-tuning: {won} shape won by {points:.1f} points on test "
                    f"(FS {fixed:.1%}, VS {variable:.1%}; McNemar p={shapes.p_text(pair['mcnemar']['p_value'])}, "
                    f"{'significant' if significant else 'not significant'})."]


def test_no_pair_gives_a_placeholder_and_no_conclusion(tmp_path):
    entries = [*ladder_entries(), vs_step("vgg16", 0.7, 0.6)]
    before = evaluate.section([], deck_inputs(entries, names=NAMES, profile=SMOKE))  # evaluate has not run
    assert before["shapes"]["shown"] and before["shapes"]["pairs"] == []
    assert before["shapes"]["gap"]["message"].startswith("Not compared yet: the evaluate stage scores")
    run = evaluate_entry(tmp_path, ladder_entries())  # an evaluate run from before the variable-shape step ran
    after = evaluate.section([run], deck_inputs([*entries, run], names=NAMES, profile=SMOKE))
    assert after["shapes"]["gap"]["message"].startswith("No fixed/variable-shape pair: the evaluate run evaluate/default "
                                                        "recorded none (metrics.shapes); the variable-shape runs "
                                                        "(finetune/vgg16-step1-vs) ran after it")
    text = templating.render("sections/evaluate.md.j2", {"setup": MAME_SETUP, "planned": {"evaluate": True}, "evaluate": after,
                                                       "not_planned": {}})
    assert "{.placeholder .missing}" in slide(text, "Fixed vs variable shape (test)")
    assert shapes.conclusions(after["shapes"]) == []
    plain = evaluate.section([run], deck_inputs([*ladder_entries(), run], names=NAMES, profile=SMOKE))
    assert not plain["shapes"]["shown"]  # a plan without variable shape: no shape slides
    assert "Fixed vs variable shape" not in templating.render(
        "sections/evaluate.md.j2", {"setup": MAME_SETUP, "planned": {"evaluate": True}, "evaluate": plain, "not_planned": {}})


def test_the_models_table_marks_the_variable_shape_step_and_its_twin_and_the_approaches_leave_them_out(tmp_path):
    entries, run = shape_entries(tmp_path, fixed=0.4, variable=0.9, vs_val=0.95)  # VS best on validation of all steps
    assert run.metrics["metrics"]["chosen"][0]["model"] == "finetune/vgg16-step1-vs"
    section = evaluate.section([run], deck_inputs([*entries, run], names=NAMES, profile=SMOKE))
    marks = {r["model"]: r["marks"] for r in section["models"]}
    assert marks["finetune/vgg16-step1-vs"] == "VS" and marks["finetune/vgg16-step1"] == "FS twin"
    best = next(c for c in run.metrics["metrics"]["chosen"] if c["shape"] == "fixed" and c.get("best_step"))
    assert [a["model"] for a in section["approaches"] if a["approach"] == "fine-tuning"] == [best["model"]]


# --- the paper's table beside ours ---------------------------------------------------------------------------------

def test_the_paper_table_takes_both_shapes_from_the_pair_and_says_when_fs_is_the_twin(tmp_path):
    entries, run = shape_entries(tmp_path, fixed=0.4, variable=0.6)
    choices = recorded(deck_inputs([*entries, run]))
    pair = run.metrics["metrics"]["shapes"][0]
    setup = {"dataset": {"source": "synthetic"}, "weights": [{"used_key": "random"}], "devices": ["CPU: test"]}
    paper = paper_section(load_references(), choices, setup, NAMES)
    vgg = next(r for r in paper["rows"] if r["backbone"] == "vgg16")
    assert (vgg["finetune_fs"], vgg["finetune_vs"]) == (pair["fixed_accuracy"], pair["variable_accuracy"])
    best = choices.best_step("vgg16")
    assert best["model"] != pair["fixed"]  # step 1 is the twin, not the best step
    assert vgg["twin"] == pair["fixed"] and vgg["best"] == {"model": best["model"], "test": choices.test[best["model"]]}
    assert paper["ours"] == "synthetic data, random init, CPU"
    text = templating.render("sections/scratch.md.j2", {
        "setup": MAME_SETUP, "planned": {"scratch": False}, "scratch": {}, "not_planned": {
        "scratch": {"kind": "not_planned", "message": "no", "path": ""}}, "paper": paper})
    table = slide(text, "Fine-tuning baselines (MAMe paper, R65k)")
    assert f"| VGG16 | 81.20% | 81.21% | — | — | {templating.pct(pair['fixed_accuracy'])}† | " \
           f"{templating.pct(pair['variable_accuracy'])} |" in table
    assert "† VGG16: the VS step's same-settings twin (finetune/vgg16-step1), not the best step" in table
    assert "**Ours:** this deck's runs (synthetic data, random init, CPU)" in table


# --- the ladder ----------------------------------------------------------------------------------------------------

def test_a_ladder_does_not_count_its_variable_shape_step(tmp_path):
    entries, run = shape_entries(tmp_path, fixed=0.4, variable=0.6)
    record = {c["model"]: c for c in run.metrics["metrics"]["chosen"]}
    assert record["finetune/vgg16-step1-vs"]["best_step"]  # the best of its own shape: still no step of the ladder
    tuned = finetune.section(entries, deck_inputs([*entries, run], names=NAMES, profile=SMOKE))
    (vgg,) = tuned["ladders"]
    assert [s["variant"] for s in vgg["steps"]] == ["step1", "step2", "step3", "step4"]
    assert [s["step"] for s in vgg["steps"]] == [1, 2, 3, 4]
    assert vgg["story"]["last"]["step"] == 4 and vgg["best"]["variant"] != "step1-vs"
    (vs,) = vgg["variable"]
    assert vs["twin"]["variant"] == "step1" and vs["changed"] == ["shape"]
    assert [i["variant"] for i in tuned["items"]] == ["step1", "step2", "step3", "step4"]
    figure = finetune.ladder_figure(tuned["multi_step"], tmp_path / "figures")
    assert figure is not None
    text = templating.render("sections/finetune.md.j2", {"planned": {"finetune": True}, "finetune": tuned,
                                                          "not_planned": {}})
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert "VGG16 fine-tuning at variable shape: step1-vs" in headings
    assert not [h for h in headings if re.match(r"VGG16 fine-tuning #\d+: step1-vs", h)]
    summary = slide(text, "Fine-tuning ladder: validation accuracy per step")
    assert "from #1 to #4" in summary and "| #5" not in summary and "Not steps of the ladder: step1-vs" in summary
    own = slide(text, "VGG16 fine-tuning at variable shape: step1-vs")
    assert "Settings: those of #1 step1 (its fixed-shape twin), except" in own
    assert re.findall(r"^- \*\*(.+?)\*\*", own, re.M) == ["shape: variable"]
    said = finetune.conclusions({"finetune": tuned})
    assert said[0].endswith("(#4) validation accuracy.")


# --- what variable shape costs -------------------------------------------------------------------------------------

def write_dataset(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """MAMe_dataset.csv and data/ PNGs of the given sizes: train and validation images, and a test one (which the
    padding must not count). The CSV's Width and Height are other sizes (the real MAMe's are full resolution): the
    padding takes the files' own, from their headers."""
    (folder / "data").mkdir(parents=True)
    with (folder / "MAMe_dataset.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, (w, h) in enumerate(sizes + [(10, 300)]):
            subset = "test" if i == len(sizes) else ("train", "val")[i % 2]
            name = f"i{i:03d}.png"
            writer.writerow([name, CLASS_NAMES[i % len(CLASS_NAMES)], "Met", str(i), subset, str(3 * w), str(2 * h),
                             str(6 * w * h), f"{1.5 * w / h:.2f}"])
            Image.new("RGB", (w, h), (i, 100, 200)).save(folder / "data" / name)
    return folder


def features_entry(variant: str, shape: str, dataset: Path, *, speed=(100.0, 400.0), shapes_seen=(1, 1),
                   target_pixels=None) -> FakeEntry:
    m = {"name": "EfficientNet-Lite0", "shape": shape, "image_size": 32, "target_pixels": target_pixels,
         "placement": "corner" if shape == "variable" else None, "n_params": 10, "feature_dim": 8,
         "feature_layer": "valid_pool" if shape == "variable" else "avg_pool", "weights": "random",
         "images_per_second": {"train": speed[0], "val": speed[1]},
         "batch_shapes": {"train": shapes_seen[0], "val": shapes_seen[1]}}
    metrics = {"metrics": m, "headline": {"name": "probe", "value": 0.2}, "classification": {}, "history": {},
               "notes": [], "artifacts": {}, "run": {**RUN_BLOCK, "dataset": {"source": "synthetic", "path": str(dataset)}}}
    run = PlannedRun("features", "efficientnetlite0", variant, Path("nb"), {"shape": shape})
    return FakeEntry(run, "done", metrics)


def test_the_padding_figure_shows_buckets_padded_fraction_of_the_images(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", SIZES)
    fs = features_entry("default", "fixed", dataset)
    vs = features_entry("vs", "variable", dataset, speed=(60.0, 300.0), shapes_seen=(9, 7), target_pixels=4096)
    deck = deck_inputs([fs, vs], names=NAMES)
    section = shapes.section(None, [], deck)
    padding = section["padding"]
    assert padding["ready"] and padding["n_images"] == len(SIZES)  # the test image is not counted
    width, height = np.array(SIZES, dtype=float).T
    buckets = Buckets(4096)
    expected = buckets.padded_fraction(width, height)  # the images' own sizes, as their headers give them
    index = buckets.bucket(width, height)
    data = padding["data"]
    assert data["counts"].tolist() == np.bincount(index, minlength=len(RATIOS)).tolist()
    for b in range(len(RATIOS)):
        if data["counts"][b]:
            assert data["series"][0]["mean"][b] == pytest.approx(expected[index == b].mean())
    assert padding["budgets"][0]["mean"] == pytest.approx(expected.mean())
    assert padding["used"] == len(set(index.tolist())) and padding["buckets"] == len(RATIOS)
    path = shapes.padding_figure(section, tmp_path / "figures")
    assert path.is_file()
    fig = shapes.plots.draw_padding(data)
    bars_ax = fig.axes[0]
    line = next(line for ax in fig.axes for line in ax.get_lines() if str(line.get_gid()).startswith("padded:"))
    shown = line.get_ydata()
    used = data["counts"] > 0
    assert np.allclose(np.asarray(shown)[used], [expected[index == b].mean() for b in np.flatnonzero(used)])
    assert [p.get_height() for p in bars_ax.patches] == pytest.approx((data["counts"] / len(SIZES)).tolist())
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == [shapes.plots.ratio_label(r) for r in RATIOS]
    assert section["speed"] == [{"backbone": "efficientnetlite0", "name": "EfficientNet-Lite0",
                                 "variable": {"run": "features/efficientnetlite0-vs", "train": 60.0, "val": 300.0,
                                              "shapes_train": 9, "shapes_val": 7, "image_size": 32,
                                              "target_pixels": 4096, "placement": "corner"},
                                 "fixed": {"run": "features/efficientnetlite0", "train": 100.0, "val": 400.0,
                                           "shapes_train": 1, "shapes_val": 1, "image_size": 32, "target_pixels": None,
                                           "placement": None}}]


def test_the_padding_figure_is_drawn_again_only_when_what_it_shows_changes(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", SIZES)
    vs = features_entry("vs", "variable", dataset, target_pixels=4096)
    section = shapes.section(None, [], deck_inputs([vs], names=NAMES))
    out = tmp_path / "figures"
    drawn = shapes.padding_figure(section, out).stat().st_ino
    assert shapes.padding_figure(section, out).stat().st_ino == drawn  # the same data: kept
    other = shapes.section(None, [], deck_inputs([features_entry("vs", "variable", dataset, target_pixels=1024)],
                                                 names=NAMES))
    assert shapes.padding_figure(other, out).stat().st_ino != drawn  # another budget: drawn again
    assert json.loads(json.dumps(other["padding"]["budgets"][0]["label"])) == "1,024 px (32²)"


# --- the other sections label a variable-shape run -------------------------------------------------------------------

def test_features_and_classify_label_a_variable_shape_run(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", SIZES)
    fs, vs = features_entry("default", "fixed", dataset), features_entry("vs", "variable", dataset, target_pixels=1024)
    section = features.section([fs, vs], deck_inputs([fs, vs], names=NAMES))
    assert [(r["short"], r["input"]) for r in section["rows"]] == [("EfficientNet-Lite0", "32 px"),
                                                                   ("EfficientNet-Lite0 (variable shape)", "≈32² px")]
    from tests.deck.sections.test_sections import classify_entry

    own, shaped = classify_entry("efficientnetlite0", {"knn": 0.5, "mlp": 0.4}), classify_entry("efficientnetlite0", {"knn": 0.3})
    shaped.run = PlannedRun("classify", "efficientnetlite0", "vs", Path("nb"), {}, needs={"features": "efficientnetlite0-vs"})
    deck = deck_inputs([fs, vs, own, shaped], names=NAMES)
    shown = classify.section([own, shaped], deck)
    assert {r["column"] for r in shown["own_rows"]} == {"EfficientNet-Lite0"}  # the pivot keeps fixed shape
    assert [r["column"] for r in shown["rows"] if r["run"] == "classify/efficientnetlite0-vs"] == [
        "EfficientNet-Lite0 (variable shape)"]
    (variant,) = shown["variants"]
    assert variant["others"] == ["variable-shape features"]
    text = templating.render("sections/classify.md.j2", {"setup": MAME_SETUP, "classify": shown})
    assert "## EfficientNet-Lite0: its own features, variable-shape features" in text
    assert "EfficientNet-Lite0 random-init valid\\_pool (variable shape)" in text


def test_the_shape_slides_render_and_fit(tmp_path):
    """The deck of two backbones' ladders, their variable-shape steps and the evaluate run, with the padding of a
    dataset's images, through the real templates, pandoc and Chromium: every slide fits."""
    from mame.deck.check.browser import check_deck
    from mame.deck.render.html import render_html

    entries, run = shape_entries(tmp_path, fixed=0.5, variable=0.48, backbones=("vgg16", "resnet50"), folders=True)
    dataset = write_dataset(tmp_path / "dataset", SIZES)
    vs = features_entry("vs", "variable", dataset, target_pixels=1024)
    vs.path = tmp_path / "runs" / "features" / "efficientnetlite0-vs"
    vs.path.mkdir(parents=True)
    (vs.path / "metrics.json").write_text("{}")
    deck = render_deck([*entries, vs, run], tmp_path / "report", plan=("features", "finetune", "evaluate"))
    out = tmp_path / "report" / "_generated"
    drawn = evaluate.report_figures(deck.context["evaluate"], out / "figures")
    assert drawn["shapes_figure"].is_file()
    deck.context["evaluate"]["shapes_figure"] = "figures/" + drawn["shapes_figure"].name
    source = templating.render("deck.qmd.j2", deck.context)
    assert len(table_rows(slide(source, "Fixed vs variable shape (test)"))) == 2
    assert "](<figures/shapes_padding.png>)" in slide(source, "What variable shape costs: padding and speed")
    deck.qmd.write_text(source)
    check = check_deck(render_html(deck.qmd, tmp_path / "deck.html"))
    assert check.ok, check.summary()
