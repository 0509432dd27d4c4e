import json

import numpy as np
import pytest

from mame import results
from mame.engine.run import records as runs
from tests.helpers import minimal_metrics


def test_write_then_read_round_trips(tmp_path):
    metrics = minimal_metrics()
    metrics["metrics"]["throughput"] = np.float32(3.5)  # numpy values are stored as plain JSON
    runs.write_metrics(tmp_path, metrics)
    back = runs.read_metrics(tmp_path)
    assert back["run"]["cache_key"] == "0123456789abcdef0123"
    assert back["metrics"]["throughput"] == 3.5
    assert back["classification"]["val"]["confusion_matrix"]["matrix"][2][1] == 1


def test_invalid_metrics_are_refused_on_write_and_nothing_is_left(tmp_path):
    bad = minimal_metrics(status="finished")
    with pytest.raises(runs.MetricsError, match=r"metrics.json: invalid at run/status"):
        runs.write_metrics(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_read_rejects_corrupt_and_off_schema_files(tmp_path):
    (tmp_path / "metrics.json").write_text('{"schema_version": 1, "run": ')
    with pytest.raises(runs.MetricsError, match="unreadable"):
        runs.read_metrics(tmp_path)
    data = minimal_metrics()
    del data["run"]["cache_key"]
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(runs.MetricsError, match="cache_key"):
        runs.read_metrics(tmp_path)
    assert runs.try_read_metrics(tmp_path / "nowhere") is None


def test_metrics_are_validated_once_and_a_hand_edited_file_again(tmp_path, monkeypatch):
    runs.write_metrics(tmp_path, minimal_metrics())
    calls = []
    real = runs.validate_metrics
    monkeypatch.setattr(runs, "validate_metrics", lambda data, source: calls.append(source) or real(data, source=source))
    assert runs.read_metrics(tmp_path)["run"]["cache_key"] and calls == []  # the bytes written were validated
    edited = minimal_metrics()
    del edited["run"]["cache_key"]
    (tmp_path / "metrics.json").write_text(json.dumps(edited))  # by hand: the stamp no longer fits
    with pytest.raises(runs.MetricsError, match=r"metrics.json: invalid at run: 'cache_key' is a required property"):
        runs.read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(minimal_metrics(), indent=1))  # valid, written by hand
    runs.read_metrics(tmp_path)
    runs.read_metrics(tmp_path)
    assert len(calls) == 2  # the edited file, then the valid one once: a file that passed is stamped


def test_failed_run_requires_an_error_shape(tmp_path):
    failed = minimal_metrics(status="failed", error={"type": "ValueError", "message": "boom", "cell": 3})
    runs.write_metrics(tmp_path, failed)
    assert runs.read_metrics(tmp_path)["run"]["error"]["message"] == "boom"


def test_what_a_stage_saves_is_what_the_runner_loads(tmp_path):
    with pytest.raises(runs.MetricsError, match="unknown keys"):
        results.save_result(tmp_path, {"headline": None, "acuracy": 1})
    saved = {"headline": {"name": "a", "value": 1.0}, "metrics": {"m": 2}, "history": {"loss": [1.0]},
             "classification": {"val": {"report": {}}}, "artifacts": {"x": "x.npz"}, "notes": ["n"],
             "test_split_reads": [{"what": "test"}]}
    assert set(saved) == set(results.RESULT_KEYS)
    results.save_result(tmp_path, saved)
    assert runs.load_result(tmp_path) == saved
    results.save_result(tmp_path, {"headline": None})  # what a stage leaves out comes back empty
    assert runs.load_result(tmp_path) == {"headline": None, "metrics": {}, "classification": {}, "history": {},
                                          "artifacts": {}, "notes": [], "test_split_reads": []}


def test_validation_names_the_file_the_place_and_how_many_problems(tmp_path):
    bad = minimal_metrics(status="finished", seed="zero")
    with pytest.raises(runs.MetricsError) as error:
        runs.validate_metrics(bad, source=tmp_path / "m.json")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'm.json'}: invalid at run/")
    assert message.endswith("(and 1 more)")
    top = minimal_metrics()
    del top["run"]
    with pytest.raises(runs.MetricsError, match=r"invalid at \(top level\): 'run' is a required property$"):
        runs.validate_metrics(top)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(runs.MetricsError, match="expected a JSON object, found list"):
        runs.read_metrics(tmp_path)


def test_missing_result_explains_what_the_notebook_forgot(tmp_path):
    with pytest.raises(runs.MetricsError, match="without saving its result"):
        runs.load_result(tmp_path)
