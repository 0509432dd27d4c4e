"""Fixtures shared by the data layer's tests."""

from __future__ import annotations

import pytest

from mame.data import image_cache
from mame.data.metadata import read_metadata
from tests.data.test_pipeline import write_dataset


@pytest.fixture()
def cached_tiny(tmp_path, monkeypatch):
    """The small image set of ``test_pipeline`` with a private decoded-image cache and fresh cache counters:
    (records, image folder)."""
    monkeypatch.setenv(image_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(image_cache, "STATS", image_cache.Stats())
    images = write_dataset(tmp_path / "set")
    return read_metadata(tmp_path / "set").records, images
