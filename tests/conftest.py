"""Shared fixtures. Everything runs on the real components at smoke scale."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def isolated_runs(tmp_path, monkeypatch) -> Path:
    """A private runs/ folder (and a shared synthetic-data home so smoke data is generated once)."""
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAME_DATA_HOME", str(_data_home()))
    return runs_dir


def _data_home() -> Path:
    home = Path(os.environ.get("MAME_TEST_DATA_HOME", REPO / "data" / "test-cache"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def write_plan(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
