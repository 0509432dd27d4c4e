"""The decoded-image cache: pixel-exact with the uncached pipeline, decoded once per folder/resolution/crop (a
second stage decodes nothing), decoded again when a file changes, a corrupt file named before anything trains,
and bounded on disk. Real TensorFlow on cached_tiny images, and real smoke runs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mame import config
from mame.data import image_cache
from mame.data.metadata import DataError
from mame.data.pipeline import iterate_numpy, make_dataset
from mame.engine.run import records as runs
from mame.engine.run.scheduler import run_plan


def pixels(dataset) -> np.ndarray:
    return np.concatenate([batch[0] for batch in iterate_numpy(dataset)])


@pytest.mark.parametrize("sizes", [{"image_size": 32, "crop_size": 24}, {"image_size": 20}])
def test_cached_images_are_the_uncached_ones_bit_for_bit(cached_tiny, sizes):
    records, images = cached_tiny
    for options in ({"shuffle": True, "augment": True, "seed": 3}, {}):
        uncached = pixels(make_dataset(records, images, batch_size=3, cache=False, **sizes, **options))
        cached = pixels(make_dataset(records, images, batch_size=3, **sizes, **options))
        assert cached.dtype == (np.float32 if options else np.uint8) and np.array_equal(cached, uncached)
    assert np.array_equal(uncached, np.round(uncached))  # unaugmented, both are the resized pixels rounded
    assert (image_cache.STATS.decoded, image_cache.STATS.reused) == (8, 8)


def test_a_second_process_at_the_same_resolution_decodes_nothing_and_a_changed_file_is_decoded_again(cached_tiny):
    records, images = cached_tiny
    # another process (a stage's kernel) fills the cache
    code = ("import sys; from mame.data.metadata import read_metadata; from mame.data.pipeline import make_dataset; "
            f"make_dataset(read_metadata({str(images.parent)!r}).records, {str(images)!r}, image_size=24)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=config.ROOT, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(config.ROOT)))
    make_dataset(records[:5], images, image_size=24)
    assert (image_cache.STATS.decoded, image_cache.STATS.reused) == (0, 5)
    make_dataset(records, images, image_size=32)  # another resolution: another cache
    assert image_cache.STATS.decoded == 8
    changed = images / records[2].image_file
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(changed, format="PNG")
    os.utime(changed, ns=(10**18, 10**18))
    again = pixels(make_dataset(records, images, image_size=24, batch_size=8))
    assert image_cache.STATS.decoded == 9 and again[2].max() == 0  # only the changed file, and its new pixels


def test_a_corrupt_image_is_named_when_the_dataset_is_made_and_nothing_of_it_is_kept(cached_tiny):
    records, images = cached_tiny
    victim = images / records[3].image_file
    good = victim.read_bytes()
    victim.write_bytes(good[:200])
    with pytest.raises(DataError, match=f"^{re.escape(str(victim))}: corrupt image: truncated JPEG"):
        make_dataset(records, images, image_size=16)
    victim.write_bytes(good)
    assert pixels(make_dataset(records, images, image_size=16)).shape == (8, 16, 16, 3)


def test_the_cache_stays_under_its_bound(cached_tiny, monkeypatch, capsys):
    records, images = cached_tiny
    one_set = 8 * 16 * 16 * 3
    monkeypatch.setenv(image_cache.LIMIT_ENV, str(1.5 * one_set / 1e9))  # room for one 16 px set, not two
    make_dataset(records, images, image_size=16)
    make_dataset(records, images, image_size=12)  # the 16 px set, used least recently, makes room
    root = image_cache.cache_root()
    assert len([f for f in root.iterdir() if f.is_dir()]) == 1
    make_dataset(records, images, image_size=40)  # larger than the bound alone: decoded without the cache
    assert "decoding without the cache" in capsys.readouterr().err
    assert pixels(make_dataset(records, images, image_size=40)).shape == (8, 40, 40, 3)
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) <= 1.5 * one_set + 4096


def test_off_switches_the_cache_off(cached_tiny, monkeypatch):
    records, images = cached_tiny
    monkeypatch.setenv(image_cache.CACHE_ENV, "off")
    make_dataset(records, images, image_size=16)
    assert image_cache.STATS.decoded == 0 and image_cache.cache_root() is None


def _cache_lines(run_dir) -> list[str]:
    notebook = json.loads((run_dir / runs.NOTEBOOK_FILE).read_text())
    text = "".join("".join(out.get("text", "")) for cell in notebook["cells"] for out in cell.get("outputs", []))
    return [line for line in text.splitlines() if line.startswith("image cache:")]


def test_a_second_stage_at_the_same_resolution_decodes_nothing(tmp_path, isolated_runs, monkeypatch):
    monkeypatch.setenv(image_cache.CACHE_ENV, str(tmp_path / "cache"))
    outcomes = run_plan("smoke", only="features/vgg16,similarity/vgg16", jobs=1, out=io.StringIO())
    states = {o.run.id: o.state for o in outcomes}
    assert states["features/vgg16"] == states["similarity/vgg16"] == "done", states
    first, second = (_cache_lines(isolated_runs / run) for run in ("features/vgg16", "similarity/vgg16"))
    assert any(line.startswith("image cache: decoded") for line in first), first
    said = [line for line in first if line.startswith(("image cache: decoding", "image cache: decoded"))]
    assert said[0].startswith("image cache: decoding") and " more on disk in " in said[0], first  # its size, first
    assert second and all("already decoded" in line for line in second), second
