"""The plan's JSON Schema and the checks that only the notebooks allow: what a user writes in plan.yaml is
refused with one line naming the file, the line, the key path and the problem, before anything runs."""

import re

import jsonschema
import pytest
import yaml

from mame import cli, config
from mame.engine.plan import reference as plan_keys
from mame.engine.plan import schema_build as plan_schema
from mame.engine.plan.load import PlanError, load_plan
from mame.engine.plan.profiles import RUNNER_PARAMS
from mame.engine.plan.rules import notebook_parameters

SHIPPED = config.EXPERIMENTS_DIR / "plan.yaml"
LINE = re.compile(r"^(?P<file>\S+plan\.yaml):(?P<line>\d+): (?P<where>\S+): (?P<problem>.+)$")


def _errors(tmp_path, text: str) -> list[str]:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    lines = str(caught.value).splitlines()
    assert all(LINE.match(line) for line in lines), lines
    return lines


def _broken(old: str, new: str, count: int = 1) -> str:
    text = SHIPPED.read_text()
    assert old in text, old
    return text.replace(old, new, count)


# (what a user typed into the shipped plan, the key path reported, the problem): the findings and their kin
TYPOS = [
    (("    variants:\n      r1-plain:", "    variants: [a]\n    variantz:\n      r1-plain:"), "stages.scratch.variants",
     "expected a mapping, not ['a']"),
    (("timeouts: {start: 120, execution: 600}", "timeouts: 5"), "profiles.smoke.timeouts", "expected a mapping, not 5"),
    (("    data: {source: mame}\n", "    data: {source: mame}\n    seed: abc\n"), "profiles.full.seed",
     "expected an integer, not 'abc'"),
    (("    params: {batch_size: 16}", "    parms: {batch_size: 16}"), "profiles.smoke.parms",
     "unknown key; did you mean 'params'?"),
    (("    backbones: [vgg16, efficientnetb0, efficientnetlite0]", "    backbone: [vgg16]"), "profiles.smoke.backbone",
     "unknown key; did you mean 'backbones'?"),
    (("params: {image_size: 48, epochs: 3, patience: 3", "params: {image_size: 48, epoch: 3, patience: 3"),
     "profiles.demo.stages.scratch.params.epoch", "not a parameter of 01_scratch.ipynb; did you mean 'epochs'?"),
    (("    force: {image_size: 32, epochs: 1,", "    force: {image_size: 32, epoch: 1,"), "profiles.smoke.force.epoch",
     "not a parameter of any stage's notebook; did you mean 'epochs'?"),
    (("    backbones: [vgg16, efficientnetb0, efficientnetlite0]", "    backbones: [vgg16, resnet5]"),
     "profiles.smoke.backbones[1]", "did you mean 'resnet50'?"),
    (("epochs: 30, precision: mixed_bfloat16}", "epochs: -5, precision: mixed_bfloat16}"), "profiles.full.params.epochs",
     "must be >= 1, not -5"),
    (("        learning_rate: 0.00005\n", "        learning_rate: 0\n"), "stages.finetune.variants.step2.learning_rate",
     "must be > 0, not 0"),
    (("        dropout_rate: 0.5\n        augment: true\n", "        dropout_rate: 1.5\n        augment: true\n"),
     "stages.scratch.variants.r5-augment.dropout_rate", "must be < 1, not 1.5"),
    (("test_fraction: 0.004", "test_fraction: 0"), "profiles.smoke.data.test_fraction", "must be > 0, not 0"),
    (("val_per_class: 2, test_fraction: 0.004, size: 48}", "val_per_class: 2, test_fraction: 0.004, size: 0}"),
     "profiles.smoke.data.size", "must be >= 16, not 0"),
    (("      r1-plain:", "      ../../victim:"), "stages.scratch.variants['../../victim']", "is not a safe name"),
    (("  smoke:\n    # The tests'", "  ../smoke:\n    # The tests'"), "profiles['../smoke']", "is not a safe name"),
    (("      finetune:\n        params: {image_size: 48", "      finetnue:\n        params: {image_size: 48"),
     "profiles.demo.stages.finetnue", "unknown name 'finetnue'; did you mean 'finetune'?"),
    (("    timeouts: {start: 120, execution: 3600}", "    timeouts: {start: 120, execution: 3600, exection: 9}"),
     "profiles.demo.timeouts.exection", "unknown key; did you mean 'execution'?"),
    (("        filters: [32, 64, 128]\n        convs_per_block: 2\n      r3", "        filters: [32, 64, 128]\n"
      "        convs_per_blok: 2\n      r3"), "stages.scratch.variants.r2-deeper.convs_per_blok",
     "not a parameter of 01_scratch.ipynb; did you mean 'convs_per_block'?"),
    (("        about: \"More capacity", "        abuot: \"More capacity"), "stages.scratch.variants.r2-deeper.abuot",
     "not a parameter of 01_scratch.ipynb; did you mean 'about'?"),
    # what the schema allows but the stage's notebook does not declare
    (("      scratch: {params: {image_size: 48,", "      evaluate: {params: {epochs: 2}}\n      scratch: {params: {image_size: 48,"),
     "profiles.demo.stages.evaluate.params.epochs", "not a parameter of 06_evaluate.ipynb"),
    # YAML keeps the last of two equal keys: the first would be lost without a word
    (("      scratch: {params: {image_size: 48,", "      classify: {params: {max_iter: 2}}\n      scratch: {params: {image_size: 48,"),
     "profiles.demo.stages.classify", "appears twice"),
    (("      dense-head:\n", "      dense-head:\n        epochs: 3\n"), "stages.classify.variants.dense-head.epochs",
     "not a parameter of 04_classify.ipynb"),
    (("    needs: [features]\n    backbones: [vgg16, resnet50", "    needs: [finetune]\n    backbones: [vgg16, resnet50"),
     "stages.classify.needs", "'finetune' must be a stage listed before 'classify'"),
]


@pytest.mark.parametrize("edit, where, problem", TYPOS, ids=[t[1] for t in TYPOS])
def test_every_mistake_is_one_line_with_file_line_key_path_and_problem(tmp_path, edit, where, problem):
    text = _broken(*edit)
    lines = _errors(tmp_path, text)
    hits = [LINE.match(line) for line in lines if LINE.match(line)["where"] == where]
    assert hits, lines
    assert problem in hits[0]["problem"], lines
    shown = text.splitlines()[int(hits[0]["line"]) - 1]
    last = re.sub(r"\[\d+\]$", "", where).rsplit(".", 1)[-1].strip("[]'")
    assert last in shown, (shown, where)  # the line number points at the key


def test_the_cli_refuses_a_bad_plan_with_status_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    for name in ("MAME_RUNS_DIR", "MAME_DATA_HOME", "MAME_REPORT_BUILD"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    plan = tmp_path / "plan.yaml"
    plan.write_text(_broken("params: {image_size: 48, epochs: 3,", "params: {image_size: 48, epoch: 3,"))
    commands = [["check"], ["run", "--profile", "smoke"], ["report", "--profile", "smoke", "--no-pdf"],
                ["status", "--profile", "smoke"], ["estimate", "--profile", "smoke"], ["share", "--profile", "smoke"],
                ["report", "--watch", "--profile", "smoke"], ["data", "synth", "--profile", "smoke"]]
    for argv in commands:
        assert cli.main([*argv, "--plan", str(plan)]) == 2, argv
        err = capsys.readouterr().err.splitlines()
        assert err == [f"error: {plan}:{_line_of(plan, 'epoch: 3')}: profiles.demo.stages.scratch.params.epoch: "
                       "not a parameter of 01_scratch.ipynb; did you mean 'epochs'?"], (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]  # no runs, data or report folder made


def _line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_check_validates_every_profile_and_says_what_each_would_run(capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SHIPPED}: valid (7 stages, 4 profiles)")
    assert re.search(r"^  smoke: \d+ runs", out, re.M) and re.search(r"^  full: \d+ runs", out, re.M)
    assert "  auto: sized from the dataset (--data) and the machine when a command starts" in out


def test_the_schema_file_and_key_reference_are_current_and_plan_yaml_points_editors_at_it(tmp_path):
    written = plan_keys.write(tmp_path)
    assert [p.read_text() for p in written] == [plan_schema.SCHEMA_FILE.read_text(), plan_schema.KEYS_DOC.read_text()], \
        "run `make docs`"
    jsonschema.Draft7Validator.check_schema(plan_schema.load_schema())
    first = SHIPPED.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (SHIPPED.parent / first.split("=", 1)[1]).resolve() == plan_schema.SCHEMA_FILE.resolve()
    doc = plan_schema.KEYS_DOC.read_text()
    for key in plan_schema.PARAMETERS:
        assert f"| `{key}` |" in doc
    assert "| `execution` | integer | ≥ 1 | `3600` |" in doc


def test_the_schema_knows_exactly_the_packages_stages_backbones_and_notebook_parameters():
    from mame.data.synthetic.generator import MAX_SIZE, MIN_SIZE
    from mame.deck.sections.registry import STAGES
    from mame.models.backbones import BACKBONES
    from mame.plots.projection import METHODS
    from mame.stages.classify import KNOWN

    assert set(plan_schema.STAGES) == {s.stage for s in STAGES}  # (the deck orders its slides its own way)
    assert set(plan_schema.BACKBONES) == set(BACKBONES)
    assert plan_schema.SYNTH_SIZE == (MIN_SIZE, MAX_SIZE)
    assert set(plan_schema.CLASSIFIERS) == set(KNOWN) and set(plan_schema.PROJECTIONS) == set(METHODS)
    raw = yaml.safe_load(SHIPPED.read_text())
    declared: dict[str, object] = {}
    for spec in raw["stages"].values():
        for key, default in notebook_parameters(config.EXPERIMENTS_DIR / spec["notebook"]).items():
            if key not in RUNNER_PARAMS:
                declared.setdefault(key, default)
                # every notebook's own default is valid under the schema (the schema's ranges admit the defaults)
                jsonschema.validate(default, plan_schema.PARAMETERS[key])
    assert set(declared) == set(plan_schema.PARAMETERS)
