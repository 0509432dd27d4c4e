"""Stage parameters are declared once, in the stage's ``*Config`` dataclass: the notebook's ``parameters``
cell repeats exactly those defaults, the notebook builds its config from its namespace, and
``python -m mame estimate`` builds its models from the same config."""

from __future__ import annotations

import ast
from dataclasses import fields

import papermill
import pytest

from mame import config, estimate
from mame.engine.plan import RUNNER_PARAMS, PlannedRun
from mame.stages import finetune, scratch, trainer

STAGES = [("01_scratch.ipynb", scratch.ScratchConfig), ("05_finetune.ipynb", finetune.FinetuneConfig)]


def notebook_defaults(name: str) -> dict:
    found = papermill.inspect_notebook(str(config.EXPERIMENTS_DIR / name))
    return {key: ast.literal_eval(info["default"]) for key, info in found.items()}


@pytest.mark.parametrize("notebook, config_class", STAGES)
def test_every_config_field_is_a_notebook_parameter_with_the_same_default(notebook, config_class):
    declared = notebook_defaults(notebook)
    defaults = config_class.defaults()
    missing = [name for name in defaults if name not in declared]
    assert not missing, f"{notebook} lacks the {config_class.__name__} fields {missing} in its parameters cell"
    differ = {name: {"notebook": declared[name], "dataclass": value} for name, value in defaults.items()
              if declared[name] != value or type(declared[name]) is not type(value)}
    assert not differ, f"{notebook} and {config_class.__name__} disagree on defaults: {differ}"


@pytest.mark.parametrize("notebook, config_class", STAGES)
def test_every_stage_parameter_of_the_notebook_is_a_config_field_or_a_runner_or_data_parameter(notebook, config_class):
    names = {f.name for f in fields(config_class)}
    stray = [name for name in notebook_defaults(notebook)
             if name not in names and name not in RUNNER_PARAMS and name not in trainer.DATA_PARAMETERS]
    assert not stray, f"{notebook} declares {stray}, neither fields of {config_class.__name__} nor runner/data parameters"


@pytest.mark.parametrize("notebook, config_class", STAGES)
def test_the_notebook_builds_its_config_from_its_namespace(notebook, config_class):
    source = (config.EXPERIMENTS_DIR / notebook).read_text(encoding="utf-8")
    assert f"{config_class.__name__}.from_parameters(globals())" in source


def test_from_parameters_takes_the_fields_and_refuses_a_missing_one():
    namespace = {**scratch.ScratchConfig.defaults(), "epochs": 3, "filters": [8], "run_dir": "x", "max_per_class": 2}
    built = scratch.ScratchConfig.from_parameters(namespace)
    assert (built.epochs, built.filters, built.image_size) == (3, [8], 64)
    del namespace["pooling"]
    with pytest.raises(ValueError, match="no value for pooling"):
        scratch.ScratchConfig.from_parameters(namespace)
    assert scratch.ScratchConfig.from_parameters(namespace, strict=False).pooling == "flatten"


@pytest.mark.parametrize("stage, notebook, config_class, backbone", [
    ("scratch", "01_scratch.ipynb", scratch.ScratchConfig, None),
    ("finetune", "05_finetune.ipynb", finetune.FinetuneConfig, "vgg16")])
def test_estimate_builds_the_stage_model_from_the_runs_params(monkeypatch, stage, notebook, config_class, backbone):
    import keras

    params = {k: v for k, v in notebook_defaults(notebook).items() if k not in RUNNER_PARAMS}
    params.update(epochs=3, dense_units=[64, 32])
    seen = []

    def build_model(*args, **kwargs):
        seen.append(args)
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    module = scratch if stage == "scratch" else finetune
    monkeypatch.setattr(module, "build_model", build_model)
    run = PlannedRun(stage, backbone, "v", config.EXPERIMENTS_DIR / notebook, params)
    assert estimate.run_flops(run, {"train": 10, "val": 5}) > 0
    expected = config_class.from_parameters(params)
    assert seen == [(expected,) if stage == "scratch" else (backbone, expected)]
    assert expected.dense_units == [64, 32]
