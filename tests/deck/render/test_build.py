"""The deck end to end: real runs (smoke), real Jinja, pandoc, reveal.js, decktape and Chromium."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import classification_report

from mame.deck.render import build
from mame.deck.render.html import remote_references
from mame.deck.render.pdf import pdf_page_count
from mame.engine.run import records
from mame.engine.run.scheduler import run_plan
from mame.engine.run.status import collect
from tests.helpers import REPO, TEST_DATA_HOME, smoke_study_env, write_smoke_plan

pytestmark = pytest.mark.slow

STAGES = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [{backbones}]
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [{backbones}]
"""


def write_plan(path: Path, backbones: str = "vgg16, efficientnetb0") -> Path:
    return write_smoke_plan(path, STAGES.format(backbones=backbones))


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> Path:
    """Runs of a two-backbone smoke plan, executed once, with the figures a deck draws into each run folder (drawn
    once here: a copy keeps their times, so a test's build takes them as up to date); tests copy them before
    changing anything."""
    root = tmp_path_factory.mktemp("report-runs")
    mp = smoke_study_env(root, MAME_REPORT_BUILD=str(root / "report"))
    plan = write_plan(root / "plan.yaml")
    outcomes = run_plan("smoke", plan_file=plan, jobs=2)  # as `make report` runs them
    assert {o.state for o in outcomes} == {"done"}
    build.render_source("smoke", plan_file=plan)
    mp.undo()
    assert list((root / "runs").glob("features/*/figures/projection_*.png"))
    return root / "runs"


@pytest.fixture
def workspace(tmp_path, smoke_runs, monkeypatch):
    """A private copy of the runs, a private report build folder, and the plan."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs_dir)
    monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    return {"runs": runs_dir, "plan": write_plan(tmp_path / "plan.yaml"), "build": tmp_path / "report"}


class TableText(HTMLParser):
    """Rows of cell texts of every table inside a ``div.classification-report``."""

    def __init__(self):
        super().__init__()
        self.depth, self.rows, self.cell, self.bold = 0, [], None, 0

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class", "") or ""
        if tag == "div" and ("classification-report" in classes or self.depth):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = ""
        elif tag == "b":
            self.bold += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join(self.cell.split()))  # as a browser shows it
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def report_table(html: str) -> dict[str, list[str]]:
    parser = TableText()
    parser.feed(html)
    found = {}
    for row in parser.rows[1:]:
        for half in (row[:5], row[5:]):
            if half and half[0]:
                found[half[0]] = half[1:]
    return found


def assert_headings_start_blocks(source: str) -> None:
    """A heading glued to the line above is not a heading: its slide would merge into the previous one."""
    lines = source.splitlines()
    glued = [lines[i] for i in range(1, len(lines)) if lines[i].startswith("#") and lines[i - 1].strip()]
    assert not glued, glued


def assert_fences_stand_alone(source: str) -> None:
    """A closing ``:::`` glued to a caption's text is no fence: the div stays open (decktape stopped there)."""
    glued = [line for line in source.splitlines() if line.rstrip().endswith(":::") and not line.lstrip().startswith(":::")]
    assert not glued, glued


def test_deck_renders_offline_with_a_page_per_slide_and_no_browser_errors(workspace, capsys):
    result = build.build("smoke", run=True, pdf=True, check=True, plan_file=workspace["plan"])
    assert {o.state for o in result.outcomes} == {"cached"}
    shown = capsys.readouterr().out  # a line per step of the deck build, with its time
    assert "deck  pandoc (HTML) ..." in shown and "deck  PDF (decktape) ..." in shown
    assert "deck  figures: features/vgg16 (pca) ..." in shown  # one line per feature set: its projections
    html = result.html.read_text()
    source = result.qmd.read_text()
    assert "{{" not in source and "{%" not in source
    assert_headings_start_blocks(source)
    assert_fences_stand_alone(source)
    assert remote_references(html) == []
    assert result.check.ok, result.check.summary()
    assert not result.check.js_errors and not result.check.overflowing and not result.check.network_requests
    assert pdf_page_count(result.pdf) == result.check.total_slides > 15
    assert len(result.check.screenshots) == result.check.total_slides
    for backbone in ("VGG16", "EfficientNetB0"):  # the features runs' structure, rendered and browser-checked above
        assert f"## {backbone} features: groups of classes" in source and f"## {backbone} features: nearest classes" in source
        assert f"## {backbone} features: the outlier of each class" in source
    for section in ("Baseline", "Feature extraction", "Classification", "Fine tuning", "Final result",
                    "Conclusions", "What changed since the last deck", "Parameters shared by each stage",
                    "Reproducibility (1/1)", "References"):
        assert section in source
    assert "synthetic MAMe-shaped data" in source and "randomly initialised VGG16, EfficientNetB0 (no ImageNet weights)" in source
    # typed again with nothing new: nothing rendered or printed, the files untouched
    files = [result.qmd, result.html, result.pdf]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in files]
    again = build.build("smoke", run=False, pdf=True, plan_file=workspace["plan"])
    assert again.unchanged and [(p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before
    assert "unchanged since the render of" in capsys.readouterr().out


def test_classification_report_equals_sklearn_on_the_stored_predictions(workspace):
    result = build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"])
    source = result.qmd.read_text()
    match = re.search(r"^(\S+) features \+ (.+?), val split", source, re.M)
    backbone = {"VGG16": "vgg16", "EfficientNetB0": "efficientnetb0"}[match.group(1)]
    classifier = match.group(2).replace(" ", "_")
    run_dir = workspace["runs"] / "classify" / backbone
    metrics = records.read_metrics(run_dir)
    with np.load(run_dir / metrics["classification"][f"{classifier}/val"]["predictions"]) as arrays:
        y_true, y_pred = arrays["y_true"], arrays["y_pred"]
    names = metrics["classification"][f"{classifier}/val"]["confusion_matrix"]["labels"]
    expected = classification_report(y_true, y_pred, labels=range(len(names)), target_names=names,
                                     output_dict=True, zero_division=0)
    shown = report_table(result.html.read_text())
    assert len([k for k in shown if k not in ("accuracy", "macro avg", "weighted avg")]) == 29
    for name in names + ["macro avg", "weighted avg"]:
        p, r, f, n = shown[name]
        assert (p, r, f) == tuple(f"{expected[name][k]:.2f}" for k in ("precision", "recall", "f1-score")), name
        assert int(n.replace(",", "")) == expected[name]["support"]
    assert shown["accuracy"][2] == f"{expected['accuracy']:.2f}"


def test_missing_stage_and_failed_run_render_as_placeholders(workspace):
    # a run that fails at run time (a feature layer its backbone does not have), and the run that needs it
    plan = write_plan(workspace["plan"])
    plan.write_text(plan.read_text().replace("    needs: [features]\n", "    needs: [features]\n    variants:\n      default: {}\n"
                                             "      on-broken: {backbones: [efficientnetb0], needs: {features: broken}}\n")
                    .replace("  classify:\n", "    variants:\n      default: {}\n"
                             "      broken: {backbones: [efficientnetb0], feature_layer: nosuchlayer}\n  classify:\n"))
    result = build.build("smoke", run=True, pdf=False, check=False, plan_file=plan)
    states = {o.run.id: o.state for o in result.outcomes}
    assert states["features/efficientnetb0-broken"] == "failed" and states["classify/efficientnetb0-on-broken"] == "skipped"
    assert states["classify/vgg16"] == "cached"  # a failing neighbour leaves the done runs alone
    assert not result.ok and result.html.is_file()  # failures make the command fail, the deck still renders
    shutil.rmtree(workspace["runs"] / "classify")
    result = build.build("smoke", run=False, pdf=False, check=True, plan_file=plan)
    source = result.qmd.read_text()
    assert "features/efficientnetb0-broken failed: ValueError" in source
    assert "runs/features/efficientnetb0-broken/notebook.ipynb" in source
    assert "classify/vgg16 has not run yet" in source
    assert source.count("{.placeholder") >= 4
    assert result.check.ok, result.check.summary()


def test_text_from_data_shows_literally_in_html_and_pdf(workspace):
    odd = "Wood | <b>bold</b> *x* _y_ #1"
    for run_dir in (workspace["runs"] / "classify").iterdir():
        metrics = records.read_metrics(run_dir)
        for entry in metrics["classification"].values():
            entry["report"] = {(odd if k == "Wood" else k): v for k, v in entry["report"].items()}
            entry["confusion_matrix"]["labels"] = [odd if n == "Wood" else n for n in entry["confusion_matrix"]["labels"]]
        records.write_metrics(run_dir, metrics)
    result = build.build("smoke", run=False, pdf=True, plan_file=workspace["plan"])
    html = result.html.read_text()
    assert odd in report_table(html)
    assert "<b>bold</b>" not in html.split("<body", 1)[1]
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(result.pdf).pages)
    assert "Wood | <b>bold</b> *x* _y_ #1" in text


def test_what_changed_lists_metric_deltas_and_rerenders_identically(workspace):
    first = build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).qmd.read_text()
    assert "This is the first rendered deck" in first
    run_dir = workspace["runs"] / "classify" / "vgg16"
    metrics = records.read_metrics(run_dir)
    before = metrics["headline"]["value"]
    metrics["headline"]["value"] = before + 0.125
    records.write_metrics(run_dir, metrics)
    second = build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).qmd.read_text()
    row = next(line for line in second.splitlines() if line.startswith("| classify/vgg16 |"))
    assert f"done {before:.3f}" in row and f"done {before + 0.125:.3f}" in row and "+0.125" in row
    third = build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).qmd.read_text()
    strip = lambda text: re.sub(r"rendered \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", text)
    assert strip(third) == strip(second)
    history = json.loads((workspace["build"] / "_state" / "history.json").read_text())
    assert len(history) == 2


def test_projection_sample_size_and_3d_methods_are_profile_parameters(workspace):
    for figures in workspace["runs"].glob("*/*/figures"):
        shutil.rmtree(figures)  # only what this plan's settings draw
    plan = workspace["plan"]
    plan.write_text(plan.read_text().replace("report: {projections: [pca]}",
                                             "report: {projections: [pca], projections_3d: [pca], points_per_class: 3}"))
    qmd, entries = build.render_source("smoke", plan_file=plan)
    source = qmd.read_text()
    assert "up to 3 images per class" in source
    drawn = sorted(p.name for p in workspace["runs"].glob("features/*/figures/projection_*.png"))
    assert drawn and all(name == "projection_pca-3.png" for name in drawn)
    # one interactive 3-D figure per features run, with its static view; plotly.js and the loader once per deck
    features = [e for e in entries if e.run.stage == "features" and e.state == "done"]
    assert features and source.count('<div class="figure-3d"') == len(features)
    assert source.count("features: PCA in three dimensions") == len(features)  # one slide each
    assert source.count("plotly.min.js") == 1 and source.count("figures3d.js") == 1
    for entry in features:
        assert {p.name for p in (entry.path / "figures").glob("projection3d_*")} == {"projection3d_pca-3.json",
                                                                                     "projection3d_pca-3.png"}
    plan.write_text(plan.read_text().replace("points_per_class: 3", "points_per_class: 0"))
    with pytest.raises(ValueError, match=r"plan.yaml:\d+: profiles.smoke.report.points_per_class: must be >= 1, not 0"):
        build.render_source("smoke", plan_file=plan)



def test_seeds_on_one_variant_make_a_run_per_seed_and_the_deck_shows_mean_and_std(workspace):
    plan = workspace["plan"]  # VGG16's classify, with two seeds
    plan.write_text(plan.read_text().replace(
        "    needs: [features]\n", "    needs: [features]\n    variants:\n      default: {seeds: [0, 1], backbones: [vgg16]}\n", 1))
    outcomes = run_plan("smoke", plan_file=plan, only="=classify/vgg16-s0,=classify/vgg16-s1", jobs=2)
    assert {o.run.id: o.state for o in outcomes} == {"classify/vgg16-s0": "done", "classify/vgg16-s1": "done"}
    assert len({o.cache_key for o in outcomes}) == 2
    seeded = {s: records.read_metrics(workspace["runs"] / "classify" / f"vgg16-s{s}") for s in (0, 1)}
    assert [seeded[s]["run"]["seed"] for s in (0, 1)] == [0, 1]
    result = build.build("smoke", run=False, pdf=False, plan_file=plan)
    source, html = result.qmd.read_text(), result.html.read_text()
    assert "**Seeds 0, 1:** classify/vgg16: tables give mean ± std (n=seeds)" in source
    rows = [{c["classifier"]: c["val_accuracy"] for c in seeded[s]["metrics"]["classifiers"]} for s in (0, 1)]
    assert any(rows[0][c] != rows[1][c] for c in rows[0])  # the seed reaches the classifiers
    for name, first in rows[0].items():  # every cell of the pivot: the two seeds' mean ± std
        mean, std = (first + rows[1][name]) / 2, abs(first - rows[1][name]) / 2 ** 0.5
        line = next(li for li in source.splitlines() if li.startswith(f"| {name.replace('_', ' ')} ") and "fit" not in li)
        assert f"{mean:.2f} ± {std:.2f} (n=2)" in line.split("|")[2], line
    assert "± " in html and "(n=2)" in html
    assert "(with several seeds: the first seed's setting, the mean time)" in source
    assert "classify/vgg16-s0" in source and "classify/vgg16-s1" in source  # the appendix lists each seed's run


def test_a_report_with_nothing_new_renders_nothing_and_any_change_renders_again(workspace):
    first = build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"])
    assert not first.unchanged and build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).unchanged
    probe = ("import sys; from mame import cli; code = cli.main(['report', '--profile', 'smoke', '--no-run', '--no-pdf', "
             "'--plan', sys.argv[1]]); print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'tensorflow', 'keras'}))")
    shown = subprocess.run([sys.executable, "-c", probe, str(workspace["plan"])], capture_output=True, text=True, check=True,
                           env=os.environ).stdout
    assert "unchanged since the render of" in shown and shown.splitlines()[-1] == "[]"  # nothing heavy imported
    # a new result, an edited plan, a deleted output: rendered again
    run_dir = workspace["runs"] / "classify" / "vgg16"
    metrics = records.read_metrics(run_dir)
    metrics["headline"]["value"] += 0.125
    records.write_metrics(run_dir, metrics)
    assert not build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).unchanged
    assert build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).unchanged
    workspace["plan"].write_text(workspace["plan"].read_text() + "# a variant's words could have changed\n")
    assert not build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).unchanged
    first.html.unlink()
    assert not build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"]).unchanged and first.html.is_file()
    assert build.build("smoke", run=False, pdf=False, plan_file=workspace["plan"], rerender=True).unchanged is False


def test_feature_figures_drawn_side_by_side_are_the_ones_drawn_here_byte_for_byte(workspace):
    from mame.deck.render.figures import side_by_side_figures
    from mame.deck.render.freshness import Steps

    entries = [e for e in collect("smoke", workspace["plan"]) if e.run.stage == "features"]
    ghost = dataclasses.replace(entries[0], run=dataclasses.replace(entries[0].run, variant="ghost"), state="missing",
                                metrics=None)  # a run not there yet: no figures, and no line saying it drew some
    options = {"projections": ["pca", "tsne"], "projections_3d": ["pca"], "points_per_class": 3}
    drawn = {}
    for workers in (2, 1):
        for png in workspace["runs"].glob("features/*/figures/*"):
            png.unlink()
        lines = io.StringIO()
        found = side_by_side_figures([*entries, ghost], options, Steps(lines), workers=workers)
        assert list(found) == [e.run.id for e in [*entries, ghost]] and len(entries) == 2  # in the order given
        assert found[ghost.run.id] == {} and ghost.run.id not in lines.getvalue() and ghost.run.id != entries[0].run.id
        assert all(f"figures: {e.run.id} (pca, tsne)" in lines.getvalue() for e in entries)
        drawn[workers] = {f"{run}/{kind}": Path(path).read_bytes() for run, figs in found.items() for kind, path in figs.items()}
    assert len(drawn[1]) >= 8 and drawn[2] == drawn[1]


def test_figures_drawn_on_one_thread_limit_the_thread_pools_scikit_learn_loads_on_first_import():
    # A fresh interpreter: scikit-learn's OpenMP and SciPy's OpenBLAS are not loaded yet when the limit is entered
    # (threadpoolctl limits only what is loaded then), as in a deck build's forked figure process.
    code = ("from mame.deck.render.figures import one_thread\n"
            "from threadpoolctl import threadpool_info\n"
            "with one_thread():\n"
            "    from sklearn.manifold import TSNE\n"
            "    import json; print(json.dumps([(i['internal_api'], i['num_threads']) for i in threadpool_info()]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    pools = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"openmp", "openblas"} <= {api for api, _ in pools}, pools
    assert all(threads == 1 for _, threads in pools), pools
