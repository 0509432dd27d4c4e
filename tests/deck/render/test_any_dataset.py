"""A dataset that is neither MAMe nor synthetic MAMe, pointed at with ``--data``: its smoke study runs through the
runner and papermill, and the deck speaks of it (its name, classes and counts; no MAMe paper)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mame import cli
from mame.engine.run import records as runs
from tests.data.datasets import class_tree, csv_dataset
from tests.helpers import write_smoke_plan

pytestmark = pytest.mark.slow
CLASSES = ["Ammonite", "Belemnite", "Crinoid stem"]
STAGES = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [efficientnetlite0]
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [efficientnetlite0]
    variants: {default: {classifiers: [logistic_regression, knn]}}
"""


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


@pytest.fixture(scope="module")
def fossils(tmp_path_factory):
    """Split folders (nested images, grey and RGBA among them), a plan with features and classifiers, the report."""
    root = tmp_path_factory.mktemp("any")
    data = root / "fossils"
    class_tree(data, CLASSES, 8, split="train", nested=True, modes=("RGB", "L", "RGBA"))
    class_tree(data, CLASSES, 3, split="validation", seed=500)
    class_tree(data, CLASSES, 3, split="test", seed=900, ext=".jpeg")
    plan = write_smoke_plan(root / "plan.yaml", STAGES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAME_RUNS_DIR", str(root / "runs"))
        mp.setenv("MAME_DATA_HOME", str(root / "home"))
        mp.setenv("MAME_REPORT_BUILD", str(root / "report"))
        mp.setenv("MAME_DATA", "")  # the command sets it for itself and its children; undone here
        code = cli.main(["report", "--profile", "smoke", "--plan", str(plan), "--data", str(data), "--no-pdf"])
    return {"root": root, "data": data, "code": code}


def test_the_study_runs_on_it_and_records_the_dataset(fossils):
    assert fossils["code"] == 0
    metrics = runs.read_metrics(fossils["root"] / "runs" / "classify" / "efficientnetlite0")
    dataset = metrics["run"]["dataset"]
    assert dataset["source"] == "folder" and dataset["read_from"] == str(fossils["data"]) and dataset["name"] == "fossils"
    assert dataset["classes"] == CLASSES and dataset["counts"] == {"train": 24, "val": 9, "test": 9}
    assert dataset["splits"] == {"given": ["train", "val", "test"], "drawn": None}
    assert Path(dataset["path"]).is_relative_to(fossils["root"] / "home" / "datasets")  # prepared there, not in the data
    report = metrics["classification"]["logistic_regression/val"]
    assert report["confusion_matrix"]["labels"] == CLASSES and report["report"]["Crinoid stem"]["support"] == 3


def test_the_deck_names_the_dataset_its_classes_and_counts_and_leaves_mame_out(fossils):
    html = (fossils["root"] / "report" / "_output" / "deck.html").read_text(encoding="utf-8")
    parser = Text()
    parser.feed(html)
    text = re.sub(r"\s+", " ", " ".join(parser.parts))
    assert re.search(r"<title>fossils", html)
    assert "Dataset: fossils: 24 train / 9 val / 9 test images, 3 classes (splits: train, val, test as given)" in text
    for name in CLASSES:
        assert name in text
    assert "MAMe" not in text and "29-way" not in text and "R65k" not in text and "the paper" not in text
    assert "is imbalanced" not in text  # 3 test images a class
    source = (fossils["root"] / "report" / "_generated" / "deck.qmd").read_text(encoding="utf-8")
    assert json.dumps("fossils") in source.splitlines()[1]  # the title line


SPECIES = [f"species {i:02d}" for i in range(40)]
CSV_PROFILE = """
profiles:
  smoke:
    data: {{source: folder, path: {root}, csv: labels.csv, images: img, columns: {{file: path, label: species, split: subset}}}}
    params: {{batch_size: 16}}
    force: {{image_size: 32, weights: random, max_iter: 100}}
    timeouts: {{start: 120, execution: 300}}
    report: {{projections: [pca]}}
"""


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    """Forty classes named in a CSV with its own column names and an image folder, set in the profile's data block."""
    root = tmp_path_factory.mktemp("forty")
    rows = [(f"{c}/{i}.png", name, "train" if i < 4 else "val" if i == 4 else "test")
            for c, name in enumerate(SPECIES) for i in range(6)]
    csv_dataset(root / "museum", rows, columns=("path", "species", "subset"), name="labels.csv", images="img")
    plan = root / "plan.yaml"
    plan.write_text(STAGES + CSV_PROFILE.format(root=root / "museum"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAME_RUNS_DIR", str(root / "runs"))
        mp.setenv("MAME_DATA_HOME", str(root / "home"))
        mp.setenv("MAME_REPORT_BUILD", str(root / "report"))
        mp.setenv("MAME_DATA", "")
        code = cli.main(["report", "--profile", "smoke", "--plan", str(plan), "--no-pdf"])
    return {"root": root, "code": code}


def test_forty_classes_from_a_csv_in_the_profile_run_and_their_deck_shows_thirty_and_says_so(forty):
    assert forty["code"] == 0
    metrics = runs.read_metrics(forty["root"] / "runs" / "classify" / "efficientnetlite0")
    assert metrics["run"]["dataset"]["counts"] == {"train": 160, "val": 40, "test": 40}
    assert metrics["run"]["dataset"]["layout"] == "CSV labels.csv (columns: path = file, species = label, subset = split)"
    assert metrics["classification"]["knn/val"]["confusion_matrix"]["labels"] == SPECIES
    parser = Text()
    parser.feed((forty["root"] / "report" / "_output" / "deck.html").read_text(encoding="utf-8"))
    text = re.sub(r"\s+", " ", " ".join(parser.parts))
    assert "Dataset: museum: 160 train / 40 val / 40 test images, 40 classes (splits: train, val, test as given)" in text
    assert "30 of 40 classes: the 15 with the lowest F1 (left, lowest first) and the 15 with the highest" in text
    assert "32 of the 40 classes, evenly spread over the class order" in text
    assert "MAMe" not in text
