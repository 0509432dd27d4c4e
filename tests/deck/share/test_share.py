"""``python -m mame share``: the archive and the static site open on their own, offline, and hold every run's
valid metrics.json; real runs, real pandoc, decktape and Chromium."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from mame import config
from mame.deck.check.browser import check_deck
from mame.deck.share.bundle import share
from mame.engine.run import records
from mame.engine.run.provenance import git_info
from mame.engine.run.scheduler import run_plan
from tests.helpers import ONE_EPOCH_SCRATCH, smoke_study_env, write_smoke_plan

pytestmark = pytest.mark.slow

STAGES = ONE_EPOCH_SCRATCH + """\
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16]
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Three smoke runs (one with a model.keras) and a private report build folder."""
    root = tmp_path_factory.mktemp("share")
    mp = smoke_study_env(root, MAME_REPORT_BUILD=str(root / "report"))
    plan = write_smoke_plan(root / "plan.yaml", STAGES)
    outcomes = run_plan("smoke", plan_file=plan, jobs=1, out=io.StringIO())
    assert {o.state for o in outcomes} == {"done"}
    yield {"root": root, "plan": plan, "runs": ["scratch/r1-plain", "features/vgg16", "classify/vgg16"]}
    mp.undo()


def opens_offline_with_valid_metrics(folder: Path, deck: str, run_ids: list[str]) -> None:
    check = check_deck(folder / deck)  # every slide, network requests blocked and recorded
    assert check.total_slides > 5 and not check.network_requests and not check.js_errors, check.summary()
    found = sorted(str(p.parent.relative_to(folder / "runs")) for p in folder.glob(f"runs/*/*/{records.METRICS_FILE}"))
    assert found == sorted(run_ids)
    for run_id in run_ids:
        records.validate_metrics(json.loads((folder / "runs" / run_id / records.METRICS_FILE).read_text()), source=run_id)


def test_the_archive_opens_alone_offline_and_says_how_it_was_made(study, tmp_path):
    printed = io.StringIO()
    shared = share("smoke", plan_file=study["plan"], with_notebooks=True, out=printed)
    git = git_info()
    tag = (git["commit"] or "nogit")[:7] + ("-dirty" if git["dirty"] else "")  # (a checkout without git: "nogit")
    assert re.fullmatch(rf"mame-smoke-\d{{8}}-{tag}\.zip", shared.path.name), shared.path.name
    assert shared.path.parent == study["root"] / "report" / "_output" / "share"
    assert f"share: {shared.path} (" in printed.getvalue() and shared.size == shared.path.stat().st_size
    elsewhere = tmp_path / "unpacked"  # no project beside it
    with zipfile.ZipFile(shared.path) as archive:
        archive.extractall(elsewhere)
    assert {"deck.html", "deck.pdf", "plan.yaml", "profile.yaml", "references.yaml", "README.md"} <= {
        p.name for p in elsewhere.iterdir()}
    assert (elsewhere / "deck.pdf").read_bytes().startswith(b"%PDF")
    opens_offline_with_valid_metrics(elsewhere, "deck.html", study["runs"])
    assert all((elsewhere / "runs" / r / "notebook.ipynb").is_file() for r in study["runs"])  # --with-notebooks
    assert not list(elsewhere.rglob("*.keras"))  # no --with-models
    readme = (elsewhere / "README.md").read_text()
    fingerprint = json.loads((elsewhere / "runs/features/vgg16/metrics.json").read_text())["run"]["dataset"]["fingerprint"]
    assert f"Commit `{git['commit'] or 'unknown'}`" in readme and fingerprint[:16] in readme
    assert "| VGG16 | random init | features |" in readme and "| classify/vgg16 | done | best_val_accuracy" in readme
    assert "make report PROFILE=smoke" in readme and "smoke:" in (elsewhere / "profile.yaml").read_text()
    machine = [str(p).encode() for p in (config.ROOT, study["root"], Path.home())]
    leaks = {f.name: m for f in elsewhere.rglob("*") if f.is_file() for m in machine if m in f.read_bytes()}
    assert not leaks, f"absolute paths of this machine in the archive: {leaks}"


def test_the_site_folder_opens_offline_and_indexes_every_run(study, tmp_path):
    shared = share("smoke", plan_file=study["plan"], site=tmp_path / "site", out=io.StringIO())
    site = shared.path
    assert (site / "index.html").is_file() and (site / "deck.pdf").is_file() and not (site / "deck.html").exists()
    opens_offline_with_valid_metrics(site, "index.html", study["runs"])
    index = json.loads((site / "records.json").read_text())
    assert [row["run"] for row in index] == study["runs"]
    page = (site / "records.html").read_text()
    assert all(f'href="runs/{r}/metrics.json"' in page and (site / "runs" / r / "metrics.json").is_file()
               for r in study["runs"])
    assert (site / ".mame-share-site").is_file()  # the marker that lets the next share replace it
    again = share("smoke", plan_file=study["plan"], site=site, out=io.StringIO())  # replaced whole, nothing left over
    assert again.members == shared.members and sorted(p.name for p in site.parent.iterdir()) == ["site"]


def test_with_models_adds_each_runs_model_keras_as_the_run_left_it(study):
    shared = share("smoke", plan_file=study["plan"], with_models=True, out=io.StringIO())
    model = study["root"] / "runs" / "scratch" / "r1-plain" / "model.keras"
    with zipfile.ZipFile(shared.path) as archive:
        models = [name for name in archive.namelist() if name.endswith(".keras")]
        assert models == ["runs/scratch/r1-plain/model.keras"]  # the features and classify runs keep no model
        assert archive.read(models[0]) == model.read_bytes()
