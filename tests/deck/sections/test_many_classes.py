"""A dataset with many classes (here 40) keeps its slides readable: tables and figures past 30 classes show a chosen
30 and say which; MAMe's 29 classes are shown whole."""

from __future__ import annotations

import numpy as np

from mame import plots
from mame.deck.render import templating
from mame.deck.sections.dataset import MAX_SAMPLE_CLASSES, dataset_section, sample_records
from mame.deck.sections.slide_parts import report_rows
from mame.metrics import classification_result
from mame.plots.projection import MAX_CENTROID_NAMES
from tests.data.datasets import class_tree
from tests.helpers import MAME_SETUP

NAMES = [f"species {i:02d}" for i in range(40)]


def predictions(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ten images a class; class k is right on ``10 - k % 10`` of them (F1 falls with k % 10)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), 10)
    wrong = np.concatenate([rng.permutation(10) < (k % 10) for k in range(n_classes)])
    return y, np.where(wrong, (y + 1) % n_classes, y)


def test_a_40_class_report_shows_the_15_lowest_and_15_highest_f1_and_says_so():
    y, pred = predictions(40)
    report = classification_result(y, pred, class_names=NAMES)["report"]
    table = report_rows(report)
    shown = [cell["name"] for row in table["rows"] for cell in (row["left"], row["right"]) if cell]
    classes = [n for n in shown if n in NAMES]
    f1 = {n: report[n]["f1-score"] for n in NAMES}
    assert len(classes) == 30 and table["n_classes"] == 40
    assert set(classes) == set(sorted(NAMES, key=lambda n: (f1[n], NAMES.index(n)))[:15] +
                               sorted(NAMES, key=lambda n: (f1[n], NAMES.index(n)))[-15:])
    assert shown[-3:] == ["accuracy", "macro avg", "weighted avg"]
    assert table["shown"].startswith("30 of 40 classes: the 15 with the lowest F1")
    macro = templating.environment().from_string('{% import "partials/macros.md.j2" as m %}{{ m.classification_report(t) }}')
    assert "30 of 40 classes: the 15 with the lowest F1 (left, lowest first)" in macro.render(t=table)
    mame = report_rows(classification_result(*predictions(29), class_names=[f"c{i}" for i in range(29)])["report"])
    assert mame["shown"] is None and sum(bool(r["left"]) for r in mame["rows"]) == 15  # 29 classes: all shown


def test_the_confusion_matrix_keeps_the_30_classes_with_the_most_errors():
    y, pred = predictions(40)
    data = plots.confusion_matrix_data(classification_result(y, pred, class_names=NAMES))
    kept = plots.most_confused(data, 30)
    errors = {n: int(((y == i) != (pred == i)).sum() + 0) for i, n in enumerate(NAMES)}
    assert kept["shown"] == {"kept": 30, "of": 40} and kept["matrix"].shape == (30, 30)
    assert kept["labels"] == [n for n in NAMES if n in kept["labels"]]  # class order kept
    least = min(errors[n] for n in kept["labels"])
    assert all(errors[n] <= least for n in NAMES if n not in kept["labels"])
    assert plots.most_confused(plots.confusion_matrix_data(classification_result(*predictions(29), class_names=NAMES[:29])),
                               30)["shown"] is None
    figure = plots.draw_confusion_matrix(kept, size="matrix")
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == kept["labels"]


def test_counts_aspect_ratios_and_projection_names_stop_at_thirty():
    counts = {"train": {n: 50 + i for i, n in enumerate(NAMES)}, "test": {n: 5 + i for i, n in enumerate(NAMES)}}
    data = plots.class_counts_data(counts, keep=30)
    assert len(data["classes"]) == 30 and data["totals"]["train"] == sum(counts["train"].values())
    assert data["classes"][:2] == ["species 39", "species 38"] and data["classes"][-1] == "species 00"
    ratios = {n: np.full(4, 0.5 + i / 20) for i, n in enumerate(NAMES)}
    aspect = plots.aspect_ratio_data(ratios, keep=30)
    assert aspect["classes"][0] == "species 00" and aspect["classes"][-1] == "species 39" and len(aspect["classes"]) == 30
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 5)
    projected = {"coords": rng.normal(size=(200, 2)), "labels": labels, "method": "pca"}
    figure = plots.draw_projection(projected, class_names=NAMES, legend="centroids", size="half")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sum(t in NAMES for t in texts) == MAX_CENTROID_NAMES and "names: 30 of 40 classes" in texts


def test_the_data_slides_of_40_classes_say_what_they_show(tmp_path):
    from mame.data import dataset_index

    root = class_tree(tmp_path / "forty", NAMES, 4)
    dataset_index.prepare(root, tmp_path / "prepared", seed=0)
    setup = {**MAME_SETUP, "mame": False, "dataset": {"source": "folder", "path": str(tmp_path / "prepared")},
             "dataset_name": "forty"}
    section = dataset_section(setup)
    assert len(sample_records(tmp_path / "prepared")) == MAX_SAMPLE_CLASSES
    text = templating.render("sections/dataset.md.j2", {"dataset": section, "setup": setup})
    assert "32 of the 40 classes, evenly spread over the class order" in text
    assert "the 15 largest and the 15 smallest of the 40 classes shown" in text
