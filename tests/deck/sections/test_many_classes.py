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


HUNDREDS = [f"taxon {i:03d}" for i in range(200)]


def test_two_hundred_classes_keep_the_recall_bars_the_nearest_table_and_the_groups_on_one_slide():
    from mame.deck.sections.features import GROUP_NAMES, structure_view

    y, pred = predictions(200)
    report = classification_result(y, pred, class_names=HUNDREDS)["report"]
    bars = plots.per_class_data(report, metric="recall", keep=30)
    recall = sorted((report[n]["recall"] for n in HUNDREDS), reverse=True)
    assert len(bars["labels"]) == 30 and list(bars["values"]) == recall[:15] + recall[-15:]
    assert bars["shown"] == "the 15 best and the 15 worst of 200 classes"
    assert len(plots.draw_per_class_bars(bars).axes[0].get_yticklabels()) == 30
    assert plots.per_class_data(classification_result(*predictions(29), class_names=HUNDREDS[:29])["report"],
                                keep=30)["shown"] is None
    rng = np.random.default_rng(1)
    similarity = {n: float(s) for n, s in zip(HUNDREDS, rng.uniform(0, 1, 200))}
    structure = {"nearest": {n: [{"class": HUNDREDS[(i + 1) % 200], "similarity": similarity[n]}] for i, n in enumerate(HUNDREDS)},
                 "groups": [{"classes": HUNDREDS[:150], "separability": 0.7}, {"classes": HUNDREDS[150:], "separability": 0.9}],
                 "outliers": {n: [] for n in HUNDREDS}}
    view = structure_view("Lite0", structure, None)
    assert [n["class"] for n in view["nearest"]] == sorted(HUNDREDS, key=lambda n: -similarity[n])[:30]
    assert view["nearest_shown"].startswith("30 of 200 classes: those most similar to their nearest class")
    assert view["outliers_shown"] == "32 of the 200 classes, evenly spread over the class order"
    assert [len(g["classes"]) for g in view["groups"]] == [GROUP_NAMES + 1] * 2
    assert view["groups"][0]["classes"][-1] == "and 38 more" and view["groups"][1]["classes"][-1] == "and 138 more"
    text = templating.render("sections/features.md.j2", {"features": {
        "rows": [], "gaps": [], "projections": [], "projections3d": [], "finetuned": [], "max_points_per_class": 100,
        "scripts_3d": [], "structures": [view]}})
    import re

    outliers = templating.render("sections/features.md.j2", {"features": {
        "rows": [], "gaps": [], "projections": [], "projections3d": [], "finetuned": [], "max_points_per_class": 100,
        "scripts_3d": [], "structures": [{**view, "outliers_figure": "outliers.png"}]}})
    assert "centroid. Shown: 32 of the 200 classes, evenly spread over the class order.\n:::" in outliers
    assert "30 of 200 classes: those most similar" in text and len(re.findall(r"^\| taxon \d+ \|", text, re.M)) == 30


def test_two_hundred_classes_in_the_similarity_table_and_the_grad_cam_grids(tmp_path):
    from mame.data import dataset_index
    from mame.deck.sections import explain, similarity
    from mame.stages.explain import MAX_DISPLAY_CLASSES, sample
    from tests.helpers import FakeEntry, minimal_metrics

    per_class = [{"class": n, "labels": [{"label": "coral", "share": 0.5, "p": 0.4}]} for n in HUNDREDS]
    metrics = minimal_metrics()
    metrics["metrics"] = {"similarity": {"per_class": per_class}}
    entry = FakeEntry(None, "done", metrics)
    rows = similarity.class_rows(entry)
    shown = [c["class"] for r in rows for c in (r["left"], r["right"]) if c]
    assert len(shown) == 30 and shown[0] == "taxon 000" and shown[-1] == "taxon 199"
    assert similarity.classes_shown(entry) == "30 of the 200 classes, evenly spread over the class order"

    forty = NAMES
    root = class_tree(tmp_path / "forty", forty, 4)
    dataset_index.prepare(root, tmp_path / "prepared", seed=0)
    picked = sample(tmp_path / "prepared", per_class=1)
    labels = [picked.records[i].label for i in picked.display]
    assert len(labels) == MAX_DISPLAY_CLASSES == 30 and labels[0] == 0 and labels[-1] == 39 and labels == sorted(set(labels))
    run = minimal_metrics(dataset={"source": "folder", "path": "/x", "fingerprint": "f", "classes": forty})
    assert explain.grid_classes(run, [forty[k] for k in labels]) == "30 of the 40 classes, evenly spread over the class order"
    assert explain.grid_classes(run, forty) is None


def test_a_still_3d_view_of_forty_classes_says_how_to_find_a_class_instead_of_a_legend():
    from mame.plots.projection3d import draw_projection_3d_static

    rng = np.random.default_rng(0)
    data = {"coords": rng.normal(size=(120, 3)), "labels": np.repeat(np.arange(40), 3), "method": "pca"}
    figure = draw_projection_3d_static(data, class_names=NAMES)
    assert not figure.legends and any("40 classes" in t.get_text() for t in figure.texts)
    few = draw_projection_3d_static({**data, "labels": np.repeat(np.arange(20), 6)}, class_names=NAMES[:20])
    assert len(few.legends) == 1 and len(few.legends[0].get_texts()) == 20


def test_a_dataset_of_one_image_size_says_so_instead_of_drawing_its_aspect_ratios(tmp_path):
    from mame.data import dataset_index
    from mame.deck.sections.dataset import dataset_figures
    from tests.data.datasets import picture, save

    root = tmp_path / "squares"
    for c in ("a", "b"):
        for i in range(8):
            save(picture(i, size=(32, 32)), root / c / f"{i}.png")
    dataset_index.prepare(root, tmp_path / "prepared", seed=0)
    setup = {**MAME_SETUP, "mame": False, "dataset": {"source": "folder", "path": str(tmp_path / "prepared")},
             "dataset_name": "squares"}
    section = dataset_section(setup)
    assert section["one_size"] == "32 × 32 px"
    figures = dataset_figures(section, tmp_path / "figures")
    assert figures["aspect_figure"] is None and figures["counts_figure"].is_file()
    text = templating.render("sections/dataset.md.j2", {"dataset": {**section, **figures}, "setup": setup})
    assert "Every training image is 32 × 32 px: one aspect ratio" in text and "padding.\n:::" in text
    assert "Image shape per class" not in text
    wide = tmp_path / "wide"
    for c, size in (("a", (32, 32)), ("b", (48, 32))):
        for i in range(8):
            save(picture(i, size=size), wide / c / f"{i}.png")
    dataset_index.prepare(wide, tmp_path / "prepared2", seed=0)
    other = dataset_section({**setup, "dataset": {"source": "folder", "path": str(tmp_path / "prepared2")}})
    assert other["one_size"] is None and dataset_figures(other, tmp_path / "figures2")["aspect_figure"].is_file()


def test_the_best_classifiers_validation_matrix_of_40_classes_keeps_30_and_says_so():
    from mame.deck.sections import classify
    from tests.helpers import FakeEntry, minimal_metrics

    y, pred = predictions(40)
    metrics = minimal_metrics()
    metrics["metrics"] = {"best_classifier": "knn"}
    metrics["classification"] = {"knn/val": classification_result(y, pred, class_names=NAMES)}
    drawn = {}

    class Drawer:
        def draw(self, name, make):
            drawn[name] = make()
            return name

    from mame import config
    from mame.engine.plan.load import PlannedRun

    run = PlannedRun("classify", "vgg16", "default", config.EXPERIMENTS_DIR / "04_classify.ipynb", {})
    assert classify.run_figures(FakeEntry(run, "done", metrics), Drawer()) == {"confusion_knn": "confusion_knn"}
    labels = [t.get_text() for t in drawn["confusion_knn"].axes[0].get_yticklabels()]
    assert len(labels) == 30 and set(labels) < set(NAMES)
    from mame.deck.sections.slide_parts import matrix_shown

    assert matrix_shown(NAMES, "validation") == ("The 30 classes with the most validation errors (as true or as "
                                                 "predicted class) of 40.")
    assert matrix_shown(NAMES[:29], "validation") is None
