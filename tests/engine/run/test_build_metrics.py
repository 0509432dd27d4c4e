"""The runner's metrics record of a finished run (``execute.build_metrics``), without a kernel: the test-split
ledger a stage hands over in result.json reaches metrics.json unchanged."""

from __future__ import annotations

from pathlib import Path

from mame import results
from mame.engine.plan.load import PlannedRun
from mame.engine.run import execute
from mame.engine.run import records as runs
from tests.helpers import PROFILE

LEDGER = [{"what": "evaluate: the test split's records", "n_images": 58},
          {"what": "evaluate: test predictions of finetune/vgg16-step2", "n_images": 58,
           "model": "finetune/vgg16-step2/model.keras"}]


def evaluate_run() -> tuple[PlannedRun, execute.RunContext]:
    run = PlannedRun("evaluate", None, "default", Path("06_evaluate.ipynb"), {"bootstrap": 50})
    ctx = execute.RunContext(profile=PROFILE, dataset={"source": "synthetic", "path": "/tmp/data", "fingerprint": "abc"},
                             cache_key="0123456789abcdef0123", inputs={})
    return run, ctx


def test_the_test_split_reads_a_stage_hands_over_reach_the_metrics_unchanged(tmp_path):
    run, ctx = evaluate_run()
    results.save_result(tmp_path, {"headline": {"name": "test_accuracy", "value": 0.5, "split": "test"},
                                   "test_split_reads": LEDGER})
    metrics = execute.build_metrics(run, ctx, runs.load_result(tmp_path), None, "2026-01-01T00:00:00+00:00", 1.0)
    assert metrics["run"]["test_split_reads"] == LEDGER
    assert metrics["run"]["status"] == "done"
    runs.write_metrics(tmp_path, metrics)  # on the schema, and read back as written
    assert runs.read_metrics(tmp_path)["run"]["test_split_reads"] == LEDGER


def test_a_run_without_test_split_reads_records_none():
    run, ctx = evaluate_run()
    assert execute.build_metrics(run, ctx, {"headline": None}, None, "now", 0.5)["run"]["test_split_reads"] == []
    failed = execute.build_metrics(run, ctx, None, {"type": "ValueError", "message": "x", "cell": 3}, "now", 0.5)
    assert failed["run"]["test_split_reads"] == [] and failed["run"]["status"] == "failed"
