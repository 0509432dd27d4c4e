"""The training slides end to end: a plan with the scratch and finetune stages, schema-valid metrics.json
files in the stages' shape (written here, not trained: the ladders' own test trains them), then the real
``mame report`` path: status collection, figures, Jinja, pandoc, reveal.js, decktape and Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from mame.deck.render import build
from mame.deck.render.pdf import pdf_page_count
from mame.engine.plan.load import expand, load_plan
from mame.engine.run import records
from tests.deck.chosen_run import evaluate_entry
from tests.deck.sections.test_training import training_metrics
from tests.helpers import TEST_DATA_HOME, FakeEntry, minimal_metrics, write_smoke_plan

STAGES = """
stages:
  scratch:
    notebook: 01_scratch.ipynb
    variants:
      r1-plain:
        about: "A small plain CNN."
      r2-deeper:
        about: "More capacity | a third block."
        filters: [32, 64, 128]
  finetune:
    notebook: 05_finetune.ipynb
    backbones: [vgg16, resnet50]
    variants:
      step1:
        about: "Rule of thumb."
        epochs: 20
      step2:
        about: "Smaller learning rate."
        backbones: [vgg16]
        learning_rate: 0.00005
        epochs: 50
  evaluate:
    notebook: 06_evaluate.ipynb
    reads: [scratch, finetune]
    variants:
      default: {}
"""
VERSIONS = {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1", "scikit-learn": "1.9.1"}
ACCURACY = {"scratch/r1-plain": (0.97, 0.31), "scratch/r2-deeper": (0.66, 0.45), "finetune/vgg16-step1": (0.8, 0.6),
            "finetune/resnet50-step1": (0.9, 0.7), "finetune/vgg16-step2": (0.85, 0.65)}


class Tables(HTMLParser):
    """Cell texts of the tables inside each ``div`` of a given class."""

    def __init__(self, css_class: str):
        super().__init__()
        self.css_class, self.depth, self.rows, self.cell = css_class, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "div" and (self.depth or self.css_class in (dict(attrs).get("class") or "").split()):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
        elif self.cell is not None and tag in ("td", "th"):
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def table(html: str, css_class: str) -> list[list[str]]:
    parser = Tables(css_class)
    parser.feed(html)
    return parser.rows


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    plan = write_smoke_plan(tmp_path / "plan.yaml", STAGES)
    trained = []
    for i, run in enumerate(expand(load_plan(plan), "smoke")):
        if run.stage == "evaluate":  # the real stage's choice among the runs above, on their validation accuracies
            chosen = evaluate_entry(tmp_path / "evaluating", trained, run_dir=runs_dir / run.stage / run.name).metrics
            metrics = minimal_metrics(stage=run.stage, name=run.name, backbone=None, variant=run.variant,
                                      params=run.params, versions=VERSIONS)
            metrics.update({k: chosen[k] for k in ("metrics", "classification", "history", "headline", "artifacts")})
            records.write_metrics(runs_dir / run.stage / run.name, metrics)
            continue
        train, val = ACCURACY[run.id]
        phases = [{"name": "head", "epochs": 1}, {"name": "finetune", "epochs": 2}] if run.stage == "finetune" else None
        extra = {"trainable": {"finetune": {"trainable_params": 7, "frozen_params": 3}},
                 "trainable_from": "block4_conv1", "image_size": 32, "weights": "random"} if run.backbone else {}
        shaped = training_metrics(train, val, epochs=3, best=2, phases=phases, seed=i, extra=extra)
        metrics = minimal_metrics(stage=run.stage, name=run.name, backbone=run.backbone, variant=run.variant,
                                  params=run.params, versions=VERSIONS)
        metrics.update({k: shaped[k] for k in ("metrics", "classification", "history", "headline")})
        records.write_metrics(runs_dir / run.stage / run.name, metrics)
        trained.append(FakeEntry(run, "done", metrics))
    return {"plan": plan, "runs": runs_dir}


def test_training_slides_show_the_runs_numbers_in_plan_order_and_fit(workspace):
    result = build.build("smoke", run=False, pdf=True, check=True, plan_file=workspace["plan"])
    assert result.check.ok, result.check.summary()
    assert pdf_page_count(result.pdf) == result.check.total_slides
    html, source = result.html.read_text(), result.qmd.read_text()

    rows = table(html, "baseline-table")[1:]
    assert [r[0].removesuffix(" (stale)") for r in rows] == ["r1-plain", "r2-deeper"]
    for row, name in zip(rows, ["r1-plain", "r2-deeper"]):
        metrics = records.read_metrics(workspace["runs"] / "scratch" / name)
        m = metrics["metrics"]
        assert row[1:3] == [f"{metrics['classification'][s]['report']['accuracy']:.2f}" for s in ("train", "val")]
        tested = "0.50" if name == "r2-deeper" else "—"  # the rung the evaluate run chose, scored on test
        assert row[3] == tested and row[5:] == [f"{m['n_params']:,}", f"{m['best_epoch']} of {m['epochs_run']}"]
    assert "Overfitting: High: train − val &gt; 0.20" in " ".join(html.split())

    headings = re.findall(r"^## (.+?)(?: \(stale\))?$", source, re.M)
    steps = [h for h in headings if "fine-tuning #" in h]
    assert steps == ["vgg16 fine-tuning #1: step1", "vgg16 fine-tuning #2: step2", "resnet50 fine-tuning #1: step1"]
    assert headings.index("Baseline learning curves: r2-deeper (best validation accuracy)") < headings.index(steps[0])
    step2 = " ".join(html.split("fine-tuning #2: step2")[1].split("<h2")[0].split())  # as a browser shows it
    changed = re.findall(r"<li><strong>(.+?)</strong> \(was (.+?)\)</li>", step2)
    assert changed == [("learning rate: 5e-05", "0.0001"), ("epochs: 50", "20")]
    assert "image size backbone default → 32, weights imagenet-if-cached → random (smoke profile)" in step2

    compared = table(html, "compare-table")[1:]
    assert [r[0] for r in compared] == ["vgg16", "resnet50"]
    chosen = records.read_metrics(workspace["runs"] / "evaluate" / "default")["metrics"]["chosen"]
    best_vgg = next(c["run"] for c in chosen if c["backbone"] == "vgg16" and c["best_step"])  # the stage's choice, read
    assert best_vgg == max(("vgg16-step1", "vgg16-step2"),
                           key=lambda n: records.read_metrics(workspace["runs"] / "finetune" / n)["metrics"]["val_accuracy"])
    val = records.read_metrics(workspace["runs"] / "finetune" / best_vgg)["metrics"]["val_accuracy"]
    assert compared[0][1] == f"#{best_vgg[-1]}/2" and compared[0][2] == f"{100 * val:.1f}%"
    for name in ("finetune_ladder.png", "finetune_backbones.png"):
        assert (result.qmd.parent / "figures" / name).is_file()
