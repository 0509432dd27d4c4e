"""Shared fixtures. Everything runs on the real components at smoke scale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MAME = REPO.parent / "shared" / "mame"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def official_csv_dir() -> Path:
    if not (SHARED_MAME / "MAMe_dataset.csv").is_file():
        pytest.skip(f"official MAMe metadata not found at {SHARED_MAME}")
    return SHARED_MAME


# Generated smoke data is shared by every test (it is deterministic), so it is made once.
TEST_DATA_HOME = Path(os.environ.get("MAME_TEST_DATA_HOME", REPO / "data" / "test-cache"))

SMOKE_PROFILE = """
profiles:
  smoke:
    data: {source: synthetic, train_per_class: 4, val_per_class: 2, test_fraction: 0.004, size: 48}
    params: {batch_size: 16}
    force: {image_size: 32, weights: random, max_iter: 100}
    timeouts: {start: 120, execution: 300}
    report: {projections: [pca]}
"""


def write_smoke_plan(path: Path, stages: str) -> Path:
    """A plan file with the given ``stages:`` block and a small smoke profile."""
    path.write_text(stages + SMOKE_PROFILE)
    return path


@pytest.fixture
def isolated_runs(tmp_path, monkeypatch) -> Path:
    """A private runs/ folder (and the shared synthetic-data home)."""
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    return runs_dir
