"""Generated malformed plans and hand-edited metrics.json files (hypothesis): each ends in clear lines naming the
file and the problem, never a traceback, and nothing is written outside the run folder."""

import json
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mame import config
from mame.engine.plan.load import PlanError, expand, load_plan
from mame.engine.run import records
from mame.engine.run.status import collect, format_status
from tests.helpers import minimal_metrics

SHIPPED = yaml.safe_load((config.EXPERIMENTS_DIR / "plan.yaml").read_text())
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["../x", "/etc", "default", "vgg16", "epochs", "", "1e-3"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(node, prefix=()):
    """Every key path of a parsed YAML/JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _mutated(tree, path, value, add_key: str | None):
    tree = json.loads(json.dumps(tree))
    node = tree
    for key in path[:-1]:
        node = node[key]
    if not path:
        return value
    if add_key is not None and isinstance(node[path[-1]], dict):
        node[path[-1]][add_key] = value
    else:
        node[path[-1]] = value
    return tree


PLAN_PATHS = list(_paths(SHIPPED))


@FUZZ
@given(path=st.sampled_from(PLAN_PATHS), value=values, add_key=st.one_of(st.none(), st.text(min_size=1, max_size=8)))
def test_a_plan_with_any_one_node_replaced_loads_or_says_what_is_wrong_in_one_line_each(tmp_path_factory, path, value, add_key):
    folder = tmp_path_factory.mktemp("plan")
    plan_file = folder / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(_mutated(SHIPPED, path, value, add_key), sort_keys=False))
    try:
        plan = load_plan(plan_file)
        for profile in plan.profiles:
            expand(plan, profile)
    except PlanError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith(str(plan_file)) and re.match(r"^\S+(:\d+)?: ", line) for line in lines), lines
        assert all(len(line) < 600 for line in lines), lines
    assert [p.name for p in folder.iterdir()] == ["plan.yaml"]


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_text_as_a_plan_file_loads_or_is_refused_in_lines_naming_the_file(tmp_path_factory, text):
    plan_file = tmp_path_factory.mktemp("plan") / "plan.yaml"
    plan_file.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_plan(plan_file)
    except PlanError as exc:
        assert all(line.startswith(str(plan_file)) for line in str(exc).splitlines()), str(exc)


METRICS_PATHS = list(_paths(minimal_metrics()))


@FUZZ
@given(path=st.sampled_from(METRICS_PATHS), value=values, add_key=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
       raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_a_hand_edited_metrics_json_is_read_or_refused_in_one_line_naming_it(tmp_path_factory, path, value, add_key, raw):
    run_dir = tmp_path_factory.mktemp("run")
    edited = _mutated(minimal_metrics(), path, value, add_key)
    (run_dir / records.METRICS_FILE).write_bytes(raw if raw is not None else json.dumps(edited).encode())
    try:
        records.read_metrics(run_dir)
    except records.MetricsError as exc:
        message = str(exc)
        assert message.startswith(str(run_dir / records.METRICS_FILE)) and "\n" not in message and len(message) < 400, message


def test_status_shows_a_hand_edited_run_as_unreadable_naming_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "scratch" / "r1-plain"
    run_dir.mkdir(parents=True)
    for edit in ({"ended": "yesterday"}, {"ended": "2026-01-01T00:00:00"}, {"status": "finished"}, {"cache_key": 7}):
        metrics = minimal_metrics(stage="scratch", name="r1-plain", backbone=None, variant="r1-plain", **edit)
        (run_dir / records.METRICS_FILE).write_text(json.dumps(metrics))
        entry = next(e for e in collect("smoke") if e.run.id == "scratch/r1-plain")
        assert entry.state == "unreadable" and str(run_dir / records.METRICS_FILE) in entry.detail, (edit, entry)
        assert "unreadable" in format_status([entry], "smoke", [])
