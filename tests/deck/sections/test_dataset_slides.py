"""The data slides: one training image per class and the per-split class counts, from a generated dataset
through the real drawing code and Jinja."""

from __future__ import annotations

import numpy as np
import pytest

from mame.data import metadata
from mame.data.synthetic.generator import SynthSpec, ensure
from mame.deck.render import templating
from mame.deck.sections.dataset import dataset_figures, dataset_section, sample_records
from mame.plots import class_counts_data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return ensure(tmp_path_factory.mktemp("data") / "synthetic", SynthSpec(3, 1, 0.01, 32))


def test_samples_are_one_training_image_per_class_and_seeded(data_dir):
    records = sample_records(data_dir)
    assert [r.label for r in records] == list(range(29)) and {r.subset for r in records} == {"train"}
    assert [r.image_file for r in sample_records(data_dir)] == [r.image_file for r in records]
    assert [r.image_file for r in sample_records(data_dir, seed=1)] != [r.image_file for r in records]


def test_counts_follow_the_metadata_and_the_test_imbalance(data_dir):
    section = dataset_section({"dataset": {"path": str(data_dir)}})
    meta = metadata.read_metadata(data_dir)
    assert section["ready"] and section["counts"] == meta.counts()
    assert section["totals"] == {"train": 87, "val": 29, "test": sum(meta.counts()["test"].values())}
    test = meta.counts()["test"]
    assert section["test_ratio"] == max(test.values()) / min(test.values()) > 1
    data = class_counts_data(section["counts"])
    assert test[data["classes"][0]] == max(test.values())  # sorted by test count, largest first
    assert np.all(np.diff(data["values"]["test"]) <= 0)
    assert not dataset_section({"dataset": {"path": str(data_dir / "nowhere")}})["ready"]


def test_figures_are_drawn_and_the_slides_name_the_split_sizes(data_dir, tmp_path):
    section = dataset_section({"dataset": {"path": str(data_dir), "source": "synthetic"}})
    drawn = dataset_figures(section, tmp_path)
    assert drawn["samples"].is_file() and drawn["counts_figure"].is_file() and drawn["aspect_figure"].is_file()
    section.update(samples="figures/dataset_samples.png", counts_figure="figures/dataset_counts.png",
                   aspect_figure="figures/dataset_aspect_ratios.png")
    text = templating.render("sections/dataset.md.j2", {"dataset": section, "setup": {"dataset": {"source": "synthetic"}}})
    assert "## The data: one training image per class" in text and "## Images per class and split" in text
    assert "87 train / 29 val /" in text and "The test split is imbalanced" in text
    assert "## Image shape per class" in text and "fixed shape squeezes it away" in text
    assert text.rstrip().splitlines()[-1] == ":::"  # the caption's fence closes on its own line


def test_the_shape_slide_sets_the_datasets_aspect_ratios_beside_the_real_mames(data_dir):
    from mame.data import official
    from mame.deck.sections.dataset import aspect_ratios
    from mame.plots import aspect_ratio_data, draw_aspect_ratios

    ours = aspect_ratios(data_dir)
    train = metadata.read_metadata(data_dir).split("train")
    assert sorted(ours) == sorted({r.medium.strip() for r in train}) and sum(map(len, ours.values())) == len(train) == 87
    real = {name: np.array([w / h for w, h in shapes]) for name, shapes in official.image_shapes().items()}
    data = aspect_ratio_data(ours, real)
    reference = next(s for s in data["series"] if s["kind"] == "reference")
    assert sum(reference["n"]) == 37_407
    assert np.all(np.diff(reference["quantiles"][:, 2]) >= 0)  # classes ordered by the real median ratio
    fig = draw_aspect_ratios(data)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == data["classes"]  # upright at the top, wide at the bottom
    assert ax.get_xscale() == "log" and len(ax.get_legend().get_texts()) == 2


def test_the_build_draws_the_data_figures_again_only_when_what_they_show_changes(data_dir, tmp_path):
    from PIL import Image

    from mame.deck.render import figures

    section = dataset_section({"dataset": {"path": str(data_dir)}})
    drawn = figures.dataset_figures(section, tmp_path)
    stamps = lambda: {name: path.stat().st_mtime_ns for name, path in drawn.items()}
    first = stamps()
    assert figures.dataset_figures(section, tmp_path) == drawn and stamps() == first  # nothing changed: kept
    shown = sample_records(data_dir)[3]
    picture = metadata.find_image_dir(data_dir) / shown.image_file
    Image.open(picture).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(picture)  # a sample image edited
    figures.dataset_figures(section, tmp_path)
    second = stamps()
    assert all(second[name] > first[name] for name in first)
    other = dict(section, counts={**section["counts"], "val": {**section["counts"]["val"], "Wood": 7}})
    figures.dataset_figures(other, tmp_path)  # other counts
    assert stamps()["counts_figure"] > second["counts_figure"]
    (tmp_path / "dataset_counts.png").unlink()  # a figure gone
    assert figures.dataset_figures(other, tmp_path)["counts_figure"].is_file()
