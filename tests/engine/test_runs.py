import json

import numpy as np
import pytest

from mame import results
from mame.engine import runs
from mame.metrics import classification_result


def minimal_metrics(**run_overrides):
    run = {
        "stage": "features", "name": "vgg16", "backbone": "vgg16", "variant": "default",
        "cache_key": "0123456789abcdef0123", "params": {"batch_size": 16}, "profile": "smoke", "seed": 0,
        "dataset": {"source": "synthetic", "path": "/tmp/x", "fingerprint": "abc"},
        "git": {"commit": None, "dirty": None}, "versions": {"python": "3.11"},
        "device": {"kind": "cpu", "name": "test cpu"}, "started": "2026-01-01T00:00:00+00:00",
        "ended": "2026-01-01T00:00:01+00:00", "duration_s": 1.0, "status": "done", "error": None,
        "depends_on": {}, "test_split_reads": [],
    }
    run.update(run_overrides)
    return {"schema_version": 1, "run": run, "headline": {"name": "acc", "value": 0.5}, "metrics": {},
            "classification": {"val": classification_result([0, 1, 2], [0, 1, 1])}, "history": {"loss": [1.0, 0.5]},
            "artifacts": {}, "notes": []}


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


def test_failed_run_requires_an_error_shape(tmp_path):
    failed = minimal_metrics(status="failed", error={"type": "ValueError", "message": "boom", "cell": 3})
    runs.write_metrics(tmp_path, failed)
    assert runs.read_metrics(tmp_path)["run"]["error"]["message"] == "boom"


def test_what_a_stage_saves_is_what_the_runner_loads(tmp_path):
    with pytest.raises(runs.MetricsError, match="unknown keys"):
        results.save_result(tmp_path, {"headline": None, "acuracy": 1})
    results.save_result(tmp_path, {"headline": {"name": "a", "value": 1.0}, "notes": ["n"]})
    loaded = runs.load_result(tmp_path)
    assert loaded["headline"]["value"] == 1.0 and loaded["notes"] == ["n"] and loaded["history"] == {}


def test_missing_result_explains_what_the_notebook_forgot(tmp_path):
    with pytest.raises(runs.MetricsError, match="without saving its result"):
        runs.load_result(tmp_path)
