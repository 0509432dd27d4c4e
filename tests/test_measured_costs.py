"""``estimate`` beside its FLOP count: per-image costs the runs in the runs folder measured, on each device kind,
and which runs measured them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mame import config
from mame.engine.run import records
from mame.estimate import format_measured, measured
from mame.measured_costs import MIN_IMAGES, measured_costs
from tests.helpers import minimal_metrics

SHIPPED_PLAN = config.EXPERIMENTS_DIR / "plan.yaml"


def write_features_run(runs_dir, backbone: str, *, size: int, images: int, per_second: float, device: str = "cpu"):
    metrics = minimal_metrics(stage="features", name=backbone, backbone=backbone,
                              device={"kind": device, "name": f"test {device}"})
    metrics["metrics"] = {"key": backbone, "image_size": size, "shape": "fixed",
                          "n_images": {"train": images - images // 5, "val": images // 5},
                          "images_per_second": {"train": per_second, "val": per_second}}
    folder = runs_dir / "features" / (backbone if device == "cpu" else f"{backbone}-{device}")
    folder.mkdir(parents=True)
    records.write_metrics(folder, metrics)


def test_a_features_runs_images_per_second_prices_each_extraction_run_of_its_backbone_by_pixels(tmp_path):
    write_features_run(tmp_path, "efficientnetlite0", size=224, images=2_000, per_second=100.0)  # 10 ms an image
    write_features_run(tmp_path, "efficientnetlite0", size=224, images=2_000, per_second=1_000.0, device="gpu")
    write_features_run(tmp_path, "vgg16", size=224, images=MIN_IMAGES - 1, per_second=1.0)  # mostly start-up: left out
    costs = measured_costs(tmp_path)
    assert sorted((c.backbone, c.device) for c in costs) == [("efficientnetlite0", "cpu"), ("efficientnetlite0", "gpu")]
    cpu = next(c for c in costs if c.device == "cpu")
    assert cpu.seconds_per_image == pytest.approx(0.01) and cpu.at(448) == pytest.approx(0.04)
    found = measured("full", costs, plan_file=SHIPPED_PLAN)
    images = 20_300 + 1_450  # the official train and val splits
    lite0 = [row for row in found["cpu"].items() if row[0] == "features"][0][1]
    assert lite0["measured"] >= 1 and lite0["measured"] < lite0["runs"]  # VGG16's and the others' are not measured
    assert lite0["hours"] >= 0.01 * images / 3600  # at least Lite0's own features run at 224 px
    assert found["gpu"]["features"]["hours"] == pytest.approx(lite0["hours"] / 10)
    assert found["cpu"]["finetune"]["measured"] == 0  # no fine-tuning run measured its training cost


def test_the_command_prints_the_measured_hours_and_names_the_runs_that_measured_them(tmp_path):
    write_features_run(tmp_path / "runs", "efficientnetlite0", size=224, images=2_000, per_second=100.0)
    env = dict(os.environ, MAME_RUNS_DIR=str(tmp_path / "runs"), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "mame", "estimate", "--profile", "demo", "--plan", str(SHIPPED_PLAN)],
                          cwd=config.ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on cpu: features" in proc.stdout and "features/efficientnetlite0 (forward, efficientnetlite0, test cpu): " \
                                                 "10.00 ms an image at 224 px over 2,000 images" in proc.stdout
    none = format_measured({}, [], tmp_path / "empty")
    assert "No per-image costs measured in" in none and "FLOP counts only" in none
