"""The full-size synthetic MAMe (``data synth --like-mame``), at a few dozen images: the official rows, images at
data_256's size that the real loader and data check read, the same bytes in any subset, and a generation that goes
on after a stop."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from mame import config
from mame.data import official
from mame.data.dataset_check import check_dataset
from mame.data.metadata import read_metadata
from mame.data.synthetic.generator import SynthError
from mame.data.synthetic.like_mame import IMAGE_FOLDER, generate_like_mame, official_rows


def official_table() -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(official.read_bytes(config.METADATA_CSV).decode("utf-8"))))
    return header, rows


def test_the_full_listing_is_the_official_one_and_a_subset_keeps_each_groups_share():
    header, rows = official_table()
    assert official_rows() == (header, rows) and len(rows) == 37_407
    _, subset = official_rows(2_000)
    assert 1_900 <= len(subset) <= 2_100 and all(row in rows for row in subset[:50])
    split = header.index("Subset")
    shares = {s: sum(r[split] == s for r in subset) / len(subset) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(20_300 / 37_407, abs=0.02)
    assert shares["test"] == pytest.approx(15_657 / 37_407, abs=0.02)
    _, smallest = official_rows(10)  # every (split, class) group keeps a row
    assert len(smallest) == 29 * 3


def test_a_subset_is_read_by_the_real_loader_and_data_check_and_its_images_are_the_full_sets(tmp_path):
    said = []
    manifest = generate_like_mame(tmp_path / "small", images=10, jobs=2, say=said.append)
    assert manifest["complete"] and manifest["drawn"] == 87 and manifest["bytes"] > 87 * 2_000
    assert "87 images at 256x256, 0 already there, 87 to draw in 2 processes" in said[0] and said[-1].startswith("done:")
    report = check_dataset(tmp_path / "small")
    assert report.ok and not report.missing and not report.corrupt and report.total_rows == 87
    records = read_metadata(tmp_path / "small" / config.METADATA_CSV).records
    header, rows = official_table()
    assert {r.image_file for r in records} <= {row[0] for row in rows}
    for record in records[:5]:
        with Image.open(tmp_path / "small" / IMAGE_FOLDER / record.image_file) as image:
            assert (image.size, image.format, image.mode) == ((256, 256), "JPEG", "RGB")
    # a larger subset draws the rows the smaller one has with the same bytes (each image's stream is its file name's)
    generate_like_mame(tmp_path / "larger", images=120, jobs=1, say=lambda _: None)
    for record in records:
        assert (tmp_path / "larger" / IMAGE_FOLDER / record.image_file).read_bytes() == \
            (tmp_path / "small" / IMAGE_FOLDER / record.image_file).read_bytes()


def test_a_stopped_generation_goes_on_and_draws_only_what_is_missing(tmp_path):
    folder = tmp_path / "set"
    generate_like_mame(folder, images=10, jobs=1, say=lambda _: None)
    images = sorted((folder / IMAGE_FOLDER).iterdir())
    before = {p.name: p.read_bytes() for p in images}
    for path in images[:7]:
        path.unlink()
    (folder / IMAGE_FOLDER / f".{images[0].name}.123.part").write_bytes(b"half an image")  # a stop mid-write
    manifest = json.loads((folder / "synth.json").read_text())
    (folder / "synth.json").write_text(json.dumps({"spec": manifest["spec"], "complete": False}))
    said = []
    again = generate_like_mame(folder, images=10, jobs=2, say=said.append)
    assert "80 already there, 7 to draw" in said[0] and again["drawn"] == 7
    assert {p.name: p.read_bytes() for p in (folder / IMAGE_FOLDER).iterdir()} == before  # no leftover, same bytes


def test_a_folder_holding_something_else_is_refused_and_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(SynthError, match=r"mine: not empty and has no synth.json"):
        generate_like_mame(tmp_path / "mine", images=10, say=lambda _: None)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me" and len(list((tmp_path / "mine").iterdir())) == 1
    generate_like_mame(tmp_path / "set", images=10, jobs=1, say=lambda _: None)
    with pytest.raises(SynthError, match=r"set: holds another generation"):
        generate_like_mame(tmp_path / "set", images=300, say=lambda _: None)


def test_the_command_generates_it_and_data_check_passes_on_it(tmp_path):
    target = tmp_path / "MAMe"
    proc = subprocess.run([sys.executable, "-m", "mame", "data", "synth", "--like-mame", str(target), "--images", "10"],
                          cwd=config.ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "87 images drawn" in proc.stdout and "MB in" in proc.stdout
    check = subprocess.run([sys.executable, "-m", "mame", "data", "check", str(target)], cwd=config.ROOT,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert f"images:   {target / IMAGE_FOLDER}" in check.stdout
    wrong = subprocess.run([sys.executable, "-m", "mame", "data", "synth", "--images", "10"], cwd=config.ROOT,
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0 and "--images and --jobs go with --like-mame DIR" in wrong.stderr
