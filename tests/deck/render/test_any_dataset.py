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
from tests.data.datasets import class_tree
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
