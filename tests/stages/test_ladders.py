"""The scratch ladder and the fine-tuning ladder through the runner and papermill, on smoke data;
a fine-tuning run killed after its first epoch resumes at epoch 2 with the epoch-1 history kept."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mame import config, results
from mame.classes import CLASS_NAMES
from mame.engine.plan.load import expand, load_plan
from mame.engine.run import folders
from mame.engine.run import records as runs
from mame.engine.run.scheduler import run_plan
from mame.models import imagenet_labels
from tests.helpers import TEST_DATA_HOME

pytestmark = pytest.mark.slow
PLAN = config.EXPERIMENTS_DIR / "plan.yaml"


# Three runners side by side (one run at a time each), each on its own runs folder (one runner per folder), so that kernel
# start-ups and graph tracing (single-threaded) overlap training on two cores (measured: 231 s with three
# runners, 276 s with two, 379 s with one).
# The runs that read the ladders' results go with them: VGG16's fine-tuned features read its steps. Every
# backbone's features and classifiers run too: evaluate takes the best classifier on each one's features (and,
# run alone, needs every run it reads done). The groups are balanced by their runs' times measured alone
# (scratch 207 s + similarity 25 s; VGG16's steps and fine-tuned features 211 s; the rest 235 s; before: the
# VGG16 group with its own features and classifiers, 262 s, set the pace). One runner with ``--jobs 3`` over the
# same runs was slower, measured back to back on a 2-core Xeon: 154.1 s and 157.7 s against 141.2 s and 132.0 s
# for these three runners (it ran two similarity runs more, ~11 s of wall; the executor itself is tested in
# tests/engine/run/test_executors.py).
VGG16_VARIANTS = ("features/vgg16", "classify/vgg16-dense-head", "features/vgg16-finetuned", "classify/vgg16-finetuned")
SMOKE_BACKBONES = ("vgg16", "efficientnetb0", "efficientnetlite0")  # the smoke profile's
GROUPS = ("scratch,similarity/efficientnetb0",
          "finetune/vgg16,features/vgg16-finetuned,classify/vgg16-finetuned",
          "=features/vgg16,=classify/vgg16,classify/vgg16-dense-head,finetune/efficientnetb0,features/efficientnetb0,"
          "classify/efficientnetb0,features/efficientnetlite0,classify/efficientnetlite0")
TUNED = ("vgg16", "efficientnetb0")  # the smoke profile fine-tunes these


def ladder_runs() -> list:
    """Every scratch and fine-tuning run of the smoke plan."""
    return [r for r in expand(load_plan(PLAN), "smoke") if r.stage in ("scratch", "finetune")]


@pytest.fixture(scope="module")
def ladders(tmp_path_factory):
    """Every scratch rung and every fine-tuning step of the shipped plan, run once on the smoke profile."""
    root = tmp_path_factory.mktemp("ladders")
    procs = []
    for i, only in enumerate(GROUPS):
        env = dict(os.environ, MAME_RUNS_DIR=str(root / f"runs{i}"), MAME_DATA_HOME=str(TEST_DATA_HOME))
        procs.append(subprocess.Popen([sys.executable, "-m", "mame", "run", "--profile", "smoke", "--plan", str(PLAN),
                                       "--only", only, "--jobs", "1"], cwd=config.ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    printed = "".join(proc.communicate(timeout=1200)[0] for proc in procs)
    assert [proc.returncode for proc in procs] == [0] * len(GROUPS), printed
    for i in range(len(GROUPS)):  # one runs folder, as a single runner would have left it
        for stage_dir in (root / f"runs{i}").iterdir():
            if stage_dir.is_dir():
                for run_dir in stage_dir.iterdir():
                    (root / "runs" / stage_dir.name).mkdir(parents=True, exist_ok=True)
                    run_dir.rename(root / "runs" / stage_dir.name / run_dir.name)
    yield root / "runs", printed


def test_every_rung_and_step_runs_and_records_what_the_deck_needs(ladders):
    runs_dir, printed = ladders
    planned = ladder_runs()
    summary = {line.split()[0]: line.split()[1] for line in printed.splitlines() if line.startswith(("scratch/", "finetune/"))}
    assert summary == {r.id: "done" for r in planned}, printed
    assert len([r for r in planned if r.stage == "scratch"]) >= 6
    assert [r.name for r in planned if r.stage == "finetune" and r.backbone == "vgg16"] == [
        f"vgg16-step{i}" for i in range(1, 7)] + ["vgg16-step1-vs"]  # step 1 at variable shape too
    shaped = runs.read_metrics(runs_dir / "finetune" / "vgg16-step1-vs")["metrics"]
    assert (shaped["shape"], shaped["target_pixels"], shaped["config"]["dense_units"]) == (
        "variable", 32 * 32, runs.read_metrics(runs_dir / "finetune" / "vgg16-step1")["metrics"]["config"]["dense_units"])
    for run in planned:
        metrics = runs.read_metrics(runs_dir / run.stage / run.name)
        m, history = metrics["metrics"], metrics["history"]
        epochs = 2 if run.stage == "finetune" else 1  # smoke: head 1 + finetune 1; scratch 1
        assert len(history["loss"]) == len(history["val_accuracy"]) == m["epochs_run"] == epochs
        assert set(metrics["classification"]) == {"train", "val"}  # never the test split
        assert m["val_accuracy"] == metrics["classification"]["val"]["report"]["accuracy"]
        assert (runs_dir / run.stage / run.name / "model.keras").is_file()
        with np.load(runs_dir / run.stage / run.name / "predictions_val.npz") as pred:
            assert pred["probabilities"].shape == (len(pred["y_true"]), 29)
            np.testing.assert_allclose(pred["probabilities"].sum(axis=1), 1.0, rtol=1e-3)
        assert metrics["run"]["test_split_reads"] == []
    assert not list(runs_dir.glob(f"*/.*{folders.RESUME_MARK}*"))  # checkpoints removed once done
    lines = [line for line in printed.splitlines() if "epoch" in line]
    assert any(line.split()[0] == "finetune/vgg16-step3" and "epoch 2/2" in line and "finetune" in line
               and "val_acc" in line for line in lines), printed


def test_each_rung_builds_what_its_plan_entry_says(ladders):
    runs_dir, _ = ladders
    params = {name: runs.read_metrics(runs_dir / "scratch" / name)["metrics"]["n_params"]
              for name in ("r6-l2", "r7-gap", "r8-wider")}
    assert params["r7-gap"] < params["r6-l2"]  # global average pooling instead of flatten
    assert params["r8-wider"] > params["r7-gap"]  # a fourth block and a wider head
    step3 = runs.read_metrics(runs_dir / "finetune" / "vgg16-step3")
    assert step3["metrics"]["config"]["l2"] == 0.1 and step3["metrics"]["config"]["dropout_rate"] == 0.5
    assert step3["metrics"]["trainable_from"] == "block4_conv1"
    frozen = step3["metrics"]["trainable"]["finetune"]["frozen_params"]
    assert frozen == 1_735_488  # VGG16 blocks 1-3, frozen in the fine-tuning phase
    assert step3["metrics"]["phases"] == [{"name": "head", "epochs": 1}, {"name": "finetune", "epochs": 1}]


def run_stage_on_ladders(runs_dir, stage: str) -> dict:
    """Run ``stage`` (one run, reading every ladder run) through the runner; its metrics.json."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
        monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
        out = io.StringIO()
        outcomes = run_plan("smoke", plan_file=PLAN, only=stage, out=out)
    assert [(o.run.id, o.state) for o in outcomes] == [(f"{stage}/default", "done")], out.getvalue()
    return runs.read_metrics(runs_dir / stage / "default")


@pytest.fixture(scope="module")
def evaluated(ladders) -> dict:
    """The evaluate stage run once on the ladders (every test that needs it asks for it, never for another
    test's side effects): its metrics.json."""
    return run_stage_on_ladders(ladders[0], "evaluate")


@pytest.fixture(scope="module")
def explained(ladders, evaluated) -> dict:
    """The explain stage run once on the ladders and their evaluate run: its metrics.json."""
    return run_stage_on_ladders(ladders[0], "explain")


def test_evaluate_reads_the_test_split_once_per_model_and_no_other_stage_reads_it(ladders, evaluated):
    runs_dir, _ = ladders
    metrics = evaluated
    models = metrics["metrics"]["models"]
    singles = [m for m in models if m["kind"] != "ensemble"]
    chosen = metrics["metrics"]["chosen"]  # what it chose and why, for the deck and for explain
    assert [c["model"] for c in chosen] == [m["model"] for m in singles]
    tuned = {c["backbone"]: c for c in chosen if c["stage"] == "finetune" and c["shape"] == "fixed" and c["best_step"]}
    assert set(tuned) == set(TUNED)  # the best step of each backbone
    steps = {i: runs.read_metrics(runs_dir / "finetune" / f"vgg16-step{i}")["metrics"]["val_accuracy"] for i in range(1, 7)}
    assert tuned["vgg16"]["step"] == min(i for i, acc in steps.items() if acc == max(steps.values()))
    assert tuned["vgg16"]["run"] == f"vgg16-step{tuned['vgg16']['step']}" == f"vgg16-{tuned['vgg16']['variant']}"
    assert tuned["vgg16"]["why"] == "best of 6 VGG16 fine-tuning steps on validation"
    assert all(c["best_step"] for c in tuned.values())  # the record the deck's ladders read
    assert tuned["efficientnetb0"]["why"] == "the only EfficientNetB0 fine-tuning step" and tuned["efficientnetb0"]["step"] == 1
    rung = [c for c in chosen if c["stage"] == "scratch"]
    assert len(rung) == 1 and rung[0]["why"] == "best of 8 scratch rungs on validation" and 1 <= rung[0]["step"] <= 8
    pipelines = {c["backbone"]: c for c in chosen if c["stage"] == "classify" and c["shape"] == "fixed"}
    assert set(pipelines) == set(SMOKE_BACKBONES)  # feature extraction, one per backbone (and Lite0's at variable shape)
    # fixed vs variable shape: VGG16's step 1 against its variable-shape twin, Lite0's classifiers on each shape's
    # features, on the same test images
    pairs = {p["approach"]: p for p in metrics["metrics"]["shapes"]}
    assert (pairs["fine-tuning"]["fixed"], pairs["fine-tuning"]["variable"]) == ("finetune/vgg16-step1",
                                                                                  "finetune/vgg16-step1-vs")
    assert pairs["feature extraction"]["variable"].startswith("classify/efficientnetlite0-vs/")
    accuracy = {m["model"]: m["accuracy"] for m in singles}
    for pair in pairs.values():
        assert (pair["fixed_accuracy"], pair["variable_accuracy"]) == (accuracy[pair["fixed"]], accuracy[pair["variable"]])
        assert pair["mcnemar"]["delta_pp"] == pytest.approx(100 * (pair["variable_accuracy"] - pair["fixed_accuracy"]))
    assert pipelines["vgg16"]["why"] == "best of 7 classifiers on VGG16 features (fc1, fc2) on validation"  # + dense head
    assert pipelines["vgg16"]["run"] in ("vgg16", "vgg16-dense-head")  # never the classifiers on fine-tuned features
    for c in pipelines.values():
        run = runs.read_metrics(runs_dir / "classify" / c["run"])["metrics"]["classifiers"]
        assert c["val_accuracy"] == next(r["val_accuracy"] for r in run if r["classifier"] == c["classifier"])
        assert c["approach"] == "feature extraction" and c["extractor_check"]["relative_difference"] <= 1e-4
    assert [c["model"] for c in chosen if c["reference"]] == [metrics["metrics"]["best_single"]]
    reads = metrics["run"]["test_split_reads"]
    assert len(reads) == 1 + len(singles)  # the records once, then one prediction pass per model
    assert sorted(r["model"] for r in reads[1:]) == sorted(
        m["model"] if m["kind"] == "classify" else f"{m['model']}/model.keras" for m in singles)
    assert len({r["n_images"] for r in reads}) == 1
    for m in models:
        assert m["ci_low"] <= m["accuracy"] <= m["ci_high"]
    assert metrics["headline"]["value"] == next(m["accuracy"] for m in models if m["reference"])
    for run_dir in runs_dir.glob("*/*"):
        if run_dir.parent.name != "evaluate":
            assert runs.read_metrics(run_dir)["run"]["test_split_reads"] == [], run_dir


def test_the_decks_best_steps_and_rung_are_the_ones_the_evaluate_run_recorded(ladders, evaluated):
    """The deck reads the choice from the real evaluate run and never chooses again: its best step per backbone, the
    comparison's order, its best rung and that rung's test accuracy are those of the record."""
    from mame.deck.sections import finetune, scratch
    from mame.engine.plan.load import PlannedRun
    from tests.helpers import FakeEntry, deck_inputs

    runs_dir, _ = ladders
    entries = [FakeEntry(run, "done", runs.read_metrics(runs_dir / run.stage / run.name), path=runs_dir / run.stage / run.name)
               for run in ladder_runs()]
    evaluate = FakeEntry(PlannedRun("evaluate", None, "default", PLAN.parent / "06_evaluate.ipynb", {}), "done", evaluated)
    deck = deck_inputs([*entries, evaluate], profile=load_plan(PLAN).profile("smoke"))
    chosen = evaluated["metrics"]["chosen"]
    steps = [(c["backbone"], c["step"]) for c in chosen if c["stage"] == "finetune" and c["best_step"]
             and c["shape"] == "fixed"]  # the ladders' (a variable-shape step is compared on the shapes slide)
    tuned = finetune.section([e for e in entries if e.run.stage == "finetune"], deck)
    assert sorted((r["backbone"], r["step"]) for r in tuned["comparison"]) == sorted(steps)
    assert (tuned["best"]["backbone"], tuned["best"]["step"]) == steps[0]  # best on validation first, as recorded
    assert (tuned["ladders"][0]["story"]["best"]["step"]) == dict(steps)["vgg16"]
    (rung,) = [c for c in chosen if c["stage"] == "scratch"]
    baseline = scratch.section([e for e in entries if e.run.stage == "scratch"], deck)
    assert baseline["best"]["variant"] == rung["variant"]
    assert baseline["best"]["test"] == next(m["accuracy"] for m in evaluated["metrics"]["models"] if m["model"] == rung["model"])


def test_a_killed_fine_tuning_run_resumes_at_epoch_2_with_epoch_1_kept(tmp_path, isolated_runs):
    plan = tmp_path / "plan.yaml"
    text = PLAN.read_text().replace("force: {batch_size: 32, head_epochs: 1}", "force: {batch_size: 32, head_epochs: 2}")
    plan.write_text(text)  # head 2 + finetune 1: three epochs, killed after the first
    cmd = [sys.executable, "-m", "mame", "run", "--profile", "smoke", "--plan", str(plan), "--only",
           "finetune/vgg16-step1"]
    proc = subprocess.Popen(cmd, cwd=config.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    stage_dir = isolated_runs / "finetune"
    deadline, state = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(stage_dir.glob(f".vgg16-step1{folders.RESUME_MARK}*/state.json")) if stage_dir.exists() else []
        if found:
            state = json.loads(found[0].read_text())
            if state["epoch"] >= 1:
                break
        time.sleep(0.05)
    assert proc.poll() is None and state is not None, "the run ended before its first epoch could be seen"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert state["epoch"] == 1
    assert runs.try_read_metrics(stage_dir / "vgg16-step1") is None  # nothing looks finished
    first = json.loads(next(stage_dir.glob(f".vgg16-step1{folders.RESUME_MARK}*/state.json")).read_text())
    out = io.StringIO()
    again = run_plan("smoke", plan_file=plan, only="finetune/vgg16-step1", out=out)
    assert [o.state for o in again] == ["done"], out.getvalue()
    metrics = runs.read_metrics(stage_dir / "vgg16-step1")
    assert metrics["metrics"]["resumed_from_epoch"] == first["epoch"] == 1
    assert len(metrics["history"]["loss"]) == 3
    assert metrics["history"]["loss"][0] == pytest.approx(first["history"]["loss"][0])  # epoch 1 kept
    printed_epochs = [line.split("epoch ")[1].split("/")[0] for line in out.getvalue().splitlines() if " epoch " in line]
    assert printed_epochs == ["2", "3"], out.getvalue()  # the rerun trained epochs 2 and 3 only
    assert any("resumed after epoch 1" in note for note in metrics["notes"])
    assert not list(stage_dir.glob(f".*{folders.RESUME_MARK}*"))
    progress = (stage_dir / "vgg16-step1" / results.PROGRESS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in progress] == [2, 3]


def test_explain_maps_the_models_evaluate_takes_on_validation_images_only(ladders, explained):
    from mame.data import masks, metadata

    runs_dir, _ = ladders
    metrics = explained
    run_dir = runs_dir / "explain" / "default"
    assert metrics["run"]["test_split_reads"] == []
    assert metrics["run"]["depends_on"]["evaluate"]["name"] == "default"
    m = metrics["metrics"]
    rows = {row["model"]: row for row in m["models"]}
    chosen = [c for c in runs.read_metrics(runs_dir / "evaluate" / "default")["metrics"]["chosen"]
              if c["stage"] != "classify" and not c.get("twin_of")]  # no conv net; a twin is for the shapes only
    assert list(rows) == [c["model"] for c in chosen]  # exactly the models evaluate chose, in its order
    assert [(r["backbone"], r["step"]) for r in rows.values()] == [(c["backbone"], c["step"]) for c in chosen]
    tuned = {row["backbone"]: row for row in rows.values() if row["stage"] == "finetune" and row["shape"] == "fixed"}
    assert set(tuned) == set(TUNED)  # the best step of each backbone
    assert tuned["vgg16"]["label"] == f"VGG16 #{tuned['vgg16']['step']} (fine-tuned)"
    (rung,) = [row for row in rows.values() if row["stage"] == "scratch"]
    # like for like: every model's map at the scratch CNN's (finer) grid, the reference's own last layer beside it
    assert all(row["grid"] == rung["grid"] for row in tuned.values()) and m["comparison"]["same_grid"]
    reference = [row for row in rows.values() if row["reference"]]
    assert len(reference) == 1 and reference[0]["val_accuracy"] == max(r["val_accuracy"] for r in tuned.values())
    last = {"vgg16": "block5_conv3", "efficientnetb0": "top_activation"}[reference[0]["backbone"]]
    assert reference[0]["native"]["layer"] == last and reference[0]["layer"] != last
    shaped = rows["finetune/vgg16-step1-vs"]  # on its unpadded images, at the layer of VGG16's fixed-shape map
    assert shaped["label"] == "VGG16 step1-vs (fine-tuned, variable shape)" and shaped["layer"] == tuned["vgg16"]["layer"]
    data_dir = metrics["run"]["dataset"]["path"]
    val = metadata.read_metadata(data_dir).split("val")
    known = masks.load_masks(data_dir, val, image_size=8)[1]
    assert m["n_images"] == len(val) and m["n_masked"] == known.sum() > 0  # smoke: 2 val images per class
    for row in rows.values():
        assert 0 < row["chance"] < 1 and 0 < row["hot_area"] <= 1  # masks neither empty nor full; maps not empty
        assert row["mass_ci"][0] <= row["mass_inside"] <= row["mass_ci"][1]
        assert row["n_measured"] + row["n_empty"] >= m["n_masked"] >= row["n_measured"] > 0  # all-zero maps have no heat
        assert set(row["per_class_mass"]) <= {CLASS_NAMES[r.label] for r, k in zip(val, known) if k}
    assert 0 < m["comparison"]["mass"]["n"] <= m["n_masked"]
    with np.load(run_dir / "gradcam.npz") as arrays:
        assert arrays["images"].shape == (29, 128, 128, 3) and arrays["images"].dtype == np.uint8
        maps = [arrays[f"maps_{i}"].astype(np.float32) for i in range(len(rows))]
        assert list(arrays["models"]) == list(rows)
    for heat in maps:
        assert heat.shape == (29, 128, 128) and np.isfinite(heat).all()
        peaks = heat.max(axis=(1, 2))  # each map scaled to its own peak, then upscaled bilinearly 4x (>= 0.875²)
        assert np.all((peaks == 0) | ((peaks >= 0.75) & (peaks <= 1.001))) and peaks.max() > 0
    assert not np.allclose(maps[0], maps[-1])  # a fine-tuned model and the scratch model look differently


def test_explain_slides_render_from_the_run_and_fit_in_the_browser(ladders, explained, tmp_path):
    from mame.deck.check.browser import check_deck
    from mame.deck.render.html import render_html
    from mame.deck.render.templating import md
    from tests.helpers import FakeEntry, render_deck, slide

    runs_dir, _ = ladders
    run_dir = runs_dir / "explain" / "default"
    metrics = explained
    planned = next(r for r in expand(load_plan(PLAN), "smoke") if r.stage == "explain")
    built = render_deck([FakeEntry(planned, "done", metrics, path=run_dir)], tmp_path, plan=("explain",))
    figures = built.figures["explain/default"]
    assert sorted(figures) == ["gradcam_1", "gradcam_2", "gradcam_3", "gradcam_backbones"]  # 29 classes, 10 a slide
    assert all(path.is_file() for path in figures.values())
    for k in (1, 2, 3):
        assert f"\n## Grad-CAM: scratch vs fine-tuned ({k}/3)\n" in built.source
    table = slide(built.source, "Heat on the object")
    for row in metrics["metrics"]["models"]:
        assert md(row["label"]) in table and f"{100 * row['mass_inside']:.1f}%" in table
    assert "Wilcoxon signed-rank" in table
    assert any(c.startswith("Grad-CAM: ") for c in built.context["conclusions"])
    html = render_html(built.qmd, tmp_path / "deck.html")
    check = check_deck(html)
    assert check.ok, check.summary()


def test_fine_tuned_features_and_the_dense_head_run_on_the_ladders(ladders):
    """The plan's VGG16 variants beside the ImageNet features: fc2 saved by the default run and classified
    by a softmax (the dense head), and the best fine-tuning step's features with the same classifiers."""
    runs_dir, printed = ladders
    wanted = list(VGG16_VARIANTS)
    summary = {line.split()[0]: line.split()[1] for line in printed.splitlines() if line.split()[:1] in [[w] for w in wanted]}
    assert summary == {w: "done" for w in wanted}, printed
    tuned = runs.read_metrics(runs_dir / "features" / "vgg16-finetuned")
    m = tuned["metrics"]
    steps = {f"finetune/vgg16-step{i}": runs.read_metrics(runs_dir / "finetune" / f"vgg16-step{i}")["metrics"]["val_accuracy"]
             for i in range(1, 7)}
    best = max(steps.values())
    assert m["finetune"]["run"] == next(run for run, acc in steps.items() if acc == best)  # first of the best on val
    assert m["finetune"]["candidates"] == pytest.approx(steps) and m["weights"] == f"fine-tuned ({m['finetune']['run']})"
    units = 512 if m["finetune"]["run"].endswith("step1") else 256  # step1: a 512-512 head; step2 on: 512-256
    assert (m["feature_layer"], m["feature_dim"]) == ("head_dense_2", units)
    assert set(tuned["run"]["depends_on"]) == {f"finetune/vgg16-step{i}" for i in range(1, 7)} | {"finetune/vgg16-step1-vs"}
    assert m["structure"]["groups"] and (runs_dir / "features" / "vgg16-finetuned" / "features_val.npz").is_file()
    head = runs.read_metrics(runs_dir / "classify" / "vgg16-dense-head")["metrics"]
    assert (head["feature_layer"], head["standardize"]) == ("fc2", False)
    assert [c["classifier"] for c in head["classifiers"]] == ["logistic_regression"]
    on_tuned = runs.read_metrics(runs_dir / "classify" / "vgg16-finetuned")
    assert len(on_tuned["metrics"]["classifiers"]) == 6 and on_tuned["run"]["depends_on"]["features"]["name"] == "vgg16-finetuned"
    for run_id in wanted:
        assert runs.read_metrics(runs_dir / run_id)["run"]["test_split_reads"] == []


def test_similarity_runs_through_the_runner_and_says_random_weights_are_not_meaningful(ladders):
    runs_dir, printed = ladders
    assert "similarity/efficientnetb0" in {line.split()[0] for line in printed.splitlines()
                                           if line.split()[1:2] == ["done"]}, printed
    run_dir = runs_dir / "similarity" / "efficientnetb0"
    metrics = runs.read_metrics(run_dir)
    m = metrics["metrics"]
    assert metrics["headline"] is None and m["meaningful"] is False and m["weights"] == "random"
    assert any("not meaningful" in note for note in metrics["notes"])
    assert len(m["similarity"]["per_class"]) == 29 and m["similarity"]["n_val"] == 58
    shown = m["examples"]
    assert len({e["class"] for e in shown}) == len(shown) == 6 and all(len(e["top"]) == 5 for e in shown)
    names = set(imagenet_labels.class_names())
    assert all(t["label"] in names for e in shown for t in e["top"])
    with np.load(run_dir / "imagenet_predictions_val.npz") as arrays:
        assert arrays["top_indices"].shape == (58, 5)
        files = set(arrays["files"].tolist())
    assert {e["file"] for e in shown} <= files and {e["class"] for e in shown} <= set(CLASS_NAMES)
    assert metrics["run"]["test_split_reads"] == []
