"""Shared fixtures. Everything runs on the real components at smoke scale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TEST_DATA_HOME, unpack_official_metadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# one decoded-image cache for the session (the smoke runs of many tests share their images), outside data/
os.environ.setdefault("MAME_IMAGE_CACHE", str(TEST_DATA_HOME / "image-cache"))


@pytest.fixture(scope="session")
def official_csv_dir(tmp_path_factory) -> Path:
    """A folder holding the official MAMe_dataset.csv, MAMe_labels.csv and MAMe_toy_dataset.csv."""
    return unpack_official_metadata(tmp_path_factory.mktemp("official-mame"))


@pytest.fixture
def isolated_runs(tmp_path, monkeypatch) -> Path:
    """A private runs/ folder (and the shared synthetic-data home)."""
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    return runs_dir
