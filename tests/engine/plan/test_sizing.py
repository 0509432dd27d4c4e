"""The auto profile: a study sized from the dataset and the machine (``mame.engine.plan.sizing``), through the plan's
own ``auto`` profile, the run expansion and the command line."""

import os
import subprocess
import sys

import pytest

from mame import config
from mame.engine.plan.load import expand, load_plan
from mame.engine.plan.profiles import parse_profile
from mame.engine.plan.sizing import Data, Machine, size_profile
from mame.engine.run.study import Study, StudyError
from tests.data.datasets import class_tree

CPU = Machine(gpus=0, cores=2, name="this machine's CPU: test (2 cores)")
GPU = Machine(gpus=1, cores=16, name="this machine's GPU: test")
AUTO = parse_profile("auto", {"size_from_data": True, "data": {"source": "folder"}})


def stage(profile, name, kind="params"):
    return (profile.stages.get(name) or {}).get(kind) or {}


def test_a_thousand_images_on_a_cpu_train_on_every_image_with_the_offline_backbone():
    sized = size_profile(AUTO, Data("shells", 700, 10), CPU, offline=())
    assert sized.backbones == ("efficientnetlite0",)
    assert sized.params == {"weights": "imagenet-if-cached", "batch_size": 32}
    assert stage(sized, "scratch") == {"image_size": 64, "epochs": 5, "patience": 3, "max_per_class": None}
    assert stage(sized, "finetune")["max_per_class"] is None and stage(sized, "finetune", "force")["epochs"] == 2
    assert stage(sized, "classify") == {}  # the notebook's full grids
    assert sized.sized_for == "700 training images, 10 classes, CPU, 2 cores"
    said = "\n".join(sized.sizing)
    assert "sized for shells (700 training images, 10 classes)" in said and "every training image" in said
    assert "VGG16, ResNet50, EfficientNetB0, EfficientNetB3: not in the Keras cache" in said


def test_a_large_dataset_on_a_cpu_caps_the_trained_runs_and_keeps_every_image_for_features():
    sized = size_profile(AUTO, Data("big", 20300, 29), CPU, offline=())
    assert stage(sized, "scratch")["max_per_class"] == 69 and stage(sized, "scratch")["epochs"] == 3
    assert stage(sized, "finetune")["max_per_class"] == 52 and stage(sized, "finetune", "force")["epochs"] == 1
    assert "max_per_class" not in stage(sized, "features")
    assert set(stage(sized, "classify")["grids"]) == {"logistic_regression", "linear_svm", "random_forest", "rbf_svc", "mlp"}
    assert "at most 52 training images a class" in "\n".join(sized.sizing)


def test_epochs_grow_as_the_images_shrink_within_their_bounds():
    epochs = [stage(size_profile(AUTO, Data("d", n, 5), CPU, offline=()), "scratch")["epochs"] for n in (100, 300, 700, 1500)]
    assert epochs == [20, 12, 5, 3]


def test_seed_backbones_with_cached_weights_join_on_a_cpu():
    sized = size_profile(AUTO, Data("d", 700, 10), CPU, offline=("vgg16",))
    assert sized.backbones == ("vgg16", "efficientnetlite0")
    assert "ResNet50, EfficientNetB0, EfficientNetB3: not in the Keras cache" in "\n".join(sized.sizing)


def test_a_gpu_runs_the_seed_backbones_at_their_resolution_on_every_image():
    sized = size_profile(AUTO, Data("d", 20300, 29), GPU, offline=())
    assert sized.backbones == ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0")
    assert sized.params["weights"] == "imagenet-if-available"
    assert "image_size" not in stage(sized, "finetune") and "image_size" not in stage(sized, "features")
    assert not any("max_per_class" in stage(sized, s) for s in ("scratch", "finetune", "features"))
    assert sized.sized_for.endswith("1 GPU")


def test_what_the_profile_sets_itself_wins_over_the_sizing():
    mine = parse_profile("auto", {"size_from_data": True, "data": {"source": "folder"},
                                  "backbones": ["vgg16", "efficientnetlite0"], "params": {"batch_size": 8},
                                  "stages": {"finetune": {"force": {"epochs": 7}, "random_weights": "skip"}}})
    sized = size_profile(mine, Data("d", 700, 10), CPU, offline=())
    assert sized.backbones == ("vgg16", "efficientnetlite0") and sized.params["batch_size"] == 8
    assert stage(sized, "finetune", "force") == {"epochs": 7, "batch_size": 32}
    assert sized.stages["finetune"]["random_weights"] == "skip" and stage(sized, "finetune")["image_size"] == 128
    assert "sets backbones, params.batch_size, stages.finetune.force.epochs itself" in "\n".join(sized.sizing)


@pytest.fixture
def shells(tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_DATA_HOME", str(tmp_path / "home"))
    return class_tree(tmp_path / "shells", ["cone", "cowrie", "murex"], 6)


def test_the_plans_auto_profile_expands_to_sized_runs(shells):
    study = Study.load("auto", data=shells)
    assert study.profile.sizing and study.plan.profile("auto") is study.profile
    assert {r.backbone for r in study.runs} <= {None, "efficientnetlite0"}
    runs = {r.id: r for r in study.runs}
    train = study.dataset["counts"]["train"]
    assert runs["scratch/r1-plain"].params["image_size"] == 64 and runs["scratch/r1-plain"].params["epochs"] == 20
    assert runs["finetune/efficientnetlite0-step4"].params["epochs"] == 6  # the sizing's force beats the variant's 30
    assert runs["features/efficientnetlite0"].params["image_size"] == 128
    assert f"{train} training images, 3 classes" in study.profile.sized_for
    # the same plan without sizing runs every backbone: the sizing, not the plan, chose one
    assert {r.backbone for r in expand(load_plan(), "auto")} > {"efficientnetlite0", "vgg16"}


def test_the_auto_profile_without_a_dataset_folder_says_what_to_give(tmp_path, monkeypatch):
    monkeypatch.delenv("MAME_DATA", raising=False)
    with pytest.raises(StudyError, match="studies a dataset folder and names none: give --data DIR"):
        Study.load("auto")


def test_data_without_a_profile_prints_the_sizing_before_anything_runs(shells, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MAME_DATA", "MAME_PROFILE")}
    env["MAME_RUNS_DIR"] = str(tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-m", "mame", "status", "--data", str(shells)], cwd=config.ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Profile auto, sized for shells" in proc.stderr and "another scale: PROFILE=demo" in proc.stderr
    assert "profile auto:" in proc.stdout and "finetune/efficientnetlite0-step1" in proc.stdout
    assert "vgg16" not in proc.stdout
    plain = subprocess.run([sys.executable, "-m", "mame", "status"], cwd=config.ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert "profile demo:" in plain.stdout and "sized" not in plain.stderr
