"""Stage parameters are declared once, in the stage's ``*Config`` dataclass (``mame.stages.support.parameters``): each
notebook's ``parameters`` cell is generated from it (``python -m mame.stages.support.notebook_cells``, ``make docs``),
the committed notebooks are what the generator writes, the notebook builds its config from its namespace,
and ``python -m mame estimate`` builds its models from the same config."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import fields

import papermill
import pytest

from mame import config, estimate
from mame.engine.plan.load import RUNNER_PARAMS, PlannedRun, notebook_parameters
from mame.stages import finetune, scratch
from mame.stages.support import notebook_cells, trainer
from mame.stages.support.parameters import StageConfig

DECLARED = notebook_cells.declared()


def notebook_defaults(name: str, folder=config.EXPERIMENTS_DIR) -> dict:
    """What papermill reads from the notebook's parameters cell (the runner's view)."""
    found = papermill.inspect_notebook(str(folder / name))
    return {key: ast.literal_eval(info["default"]) for key, info in found.items()}


def cells(path) -> list[tuple[str, str, list, str]]:
    """(id, type, tags, source) of every cell of a notebook file."""
    nb = json.loads(path.read_text())
    return [(c["id"], c["cell_type"], c["metadata"].get("tags", []), "".join(c["source"])) for c in nb["cells"]]


def test_the_committed_notebooks_are_what_the_generator_writes():
    assert notebook_cells.stale() == [], "a parameters cell differs from its dataclass: run `make docs` " \
                                         "(python -m mame.stages.support.notebook_cells), never edit the cell by hand"


def test_every_stage_notebook_has_one_declaration_in_its_stage_module():
    assert sorted(n.name for n in DECLARED) == sorted(p.name for p in config.EXPERIMENTS_DIR.glob("*.ipynb"))
    for notebook in DECLARED:
        stage = notebook.name.split("_", 1)[1].removesuffix(".ipynb")
        assert notebook.config.__module__ == f"mame.stages.{stage}", notebook.name
        assert issubclass(notebook.config, StageConfig)


@pytest.mark.parametrize("notebook", DECLARED, ids=lambda n: n.name)
def test_every_config_field_is_a_notebook_parameter_with_the_same_default(notebook):
    declared = notebook_defaults(notebook.name)
    defaults = {**notebook.config.defaults(), **(notebook.outside.defaults() if notebook.outside else {})}
    assert {k: v for k, v in declared.items() if k not in RUNNER_PARAMS} == defaults
    assert all(type(declared[k]) is type(v) for k, v in defaults.items())
    assert notebook_parameters(config.EXPERIMENTS_DIR / notebook.name) == declared  # what the plan checks read
    runner = [k for k in declared if k in RUNNER_PARAMS]
    assert runner == list(declared)[:len(runner)]  # the runner's first, as the cell's header says
    assert set(runner) == set(RUNNER_PARAMS) - ({"checkpoint_dir"} if not notebook.checkpoints else set())


@pytest.mark.parametrize("notebook", DECLARED, ids=lambda n: n.name)
def test_the_cell_keeps_its_id_and_tag_and_the_other_cells_stay(notebook):
    before = cells(config.EXPERIMENTS_DIR / notebook.name)
    [tagged] = [c for c in before if "parameters" in c[2]]
    assert tagged[0] == "cell-01" and tagged[1] == "code" and tagged[3] == notebook_cells.cell_source(notebook)
    assert all("=" not in line or line.startswith("#") or line.split(" = ")[0].isidentifier()
               for line in tagged[3].splitlines())


def test_editing_a_notebook_cell_alone_is_caught_and_the_generator_puts_it_back(tmp_path):
    folder = tmp_path / "experiments"
    shutil.copytree(config.EXPERIMENTS_DIR, folder)
    path = folder / "05_finetune.ipynb"
    original = path.read_text()
    path.write_text(original.replace('"epochs = 20  #', '"epochs = 25  #'))
    assert notebook_cells.stale(folder) == [path]
    assert notebook_cells.main(["--check", "--folder", str(folder)]) == 1
    assert notebook_cells.write(folder) == [path]
    assert path.read_text() == original and notebook_cells.stale(folder) == []


def test_editing_a_dataclass_default_alone_is_caught_and_the_generator_writes_it_into_the_cell(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    shutil.copytree(config.EXPERIMENTS_DIR, folder)
    epochs = next(f for f in fields(finetune.FinetuneConfig) if f.name == "epochs")
    monkeypatch.setattr(epochs, "default", 21)
    path = folder / "05_finetune.ipynb"
    before = cells(path)
    assert notebook_cells.stale(folder) == [path]
    assert notebook_cells.write(folder) == [path]
    assert notebook_defaults(path.name, folder)["epochs"] == 21
    after = cells(path)
    assert [c[:3] for c in after] == [c[:3] for c in before]  # ids, types and tags kept
    assert [c for c in after if "parameters" not in c[2]] == [c for c in before if "parameters" not in c[2]]
    changed = [line for line in after[1][3].splitlines() if line not in before[1][3].splitlines()]
    assert changed == ["epochs = 21  # phase 2: the backbone from trainable_from on, unfrozen"]


def test_a_default_that_is_not_a_literal_is_refused():
    assert notebook_cells.literal({"a": [1, "b", None, 1e-05]}) == '{"a": [1, "b", None, 1e-05]}'
    with pytest.raises(ValueError, match="defaults to a literal"):
        notebook_cells.literal((1, 2))


def test_every_stage_parameter_of_the_notebook_is_a_config_field_or_a_runner_or_data_parameter():
    for notebook in DECLARED:
        names = {f.name for f in fields(notebook.config)}
        stray = [name for name in notebook_defaults(notebook.name)
                 if name not in names and name not in RUNNER_PARAMS and name not in trainer.DATA_PARAMETERS]
        assert not stray, f"{notebook.name} declares {stray}, neither fields of {notebook.config.__name__} nor runner/data"


@pytest.mark.parametrize("notebook, config_class", [("01_scratch.ipynb", scratch.ScratchConfig),
                                                    ("05_finetune.ipynb", finetune.FinetuneConfig)])
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
    a, b = scratch.ScratchConfig(), scratch.ScratchConfig()
    a.filters.append(128)
    assert b.filters == [32, 64]  # a list default is each instance's own


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
    estimate._facts.cache_clear()  # the stand-in model must neither come from nor stay in the per-process counts
    try:
        assert estimate.run_flops(run, {"train": 10, "val": 5, "classes": 29}) > 0
    finally:
        estimate._facts.cache_clear()
    expected = config_class.from_parameters(params)
    (args,) = seen  # one build, of the run's architecture (the fields that shape its layers), for MAMe's 29 classes
    built = args[0] if stage == "scratch" else args[1]
    names = estimate.SCRATCH_ARCHITECTURE if stage == "scratch" else estimate.FINETUNE_ARCHITECTURE
    assert {n: getattr(built, n) for n in names} == {n: getattr(expected, n) for n in names}
    assert args[-1] == 29 and (stage == "scratch" or args[0] == backbone)
    assert built.dense_units == expected.dense_units == [64, 32]


@pytest.mark.parametrize("notebook", DECLARED, ids=lambda n: n.name)
def test_every_parameter_the_notebook_declares_reaches_its_code(notebook):
    """A declared parameter that no later cell reads would be set by the plan and silently ignored (a variant's
    ``shape: variable`` once ran at fixed shape this way): each is read by name, or the notebook builds its config
    from its namespace (``from_parameters(globals())``)."""
    later = [source for _, kind, tags, source in cells(config.EXPERIMENTS_DIR / notebook.name)
             if kind == "code" and "parameters" not in tags]
    read = {node.id for source in later for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    if any("from_parameters(globals())" in source for source in later):
        read |= {f.name for f in fields(notebook.config)}
    unread = [name for name in notebook_defaults(notebook.name) if name not in read and name not in RUNNER_PARAMS]
    assert not unread, f"{notebook.name}: parameters no cell reads: {unread}"
