"""The dataset check on the official metadata without images, and on a tiny damaged dataset."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from mame.data.dataset_check import check_dataset, format_report, image_problem

HEADER = ("Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,"
          "Product size,Aspect ratio")


def write_tiny(root: Path) -> Path:
    """Six 16x16 images (``.jpg``, dotted ``.jpeg``, ``.png``) over two classes and three splits."""
    images = root / "data_256"
    images.mkdir(parents=True)
    rows = []
    for i in range(6):
        name = ["{}.jpg", "1980.{}.jpeg", "{}.png"][i % 3].format(i)
        pixels = np.full((16, 16, 3), 40 * i, np.uint8)
        Image.fromarray(pixels).save(images / name)
        subset = ("train", "val", "test")[i // 2]
        medium = ("Bronze", "Woven fabric ")[i % 2]
        rows.append(f"{name},{medium},M,{i},{subset},16.0,16.0,256.0,1.0")
    (root / "MAMe_dataset.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return images


def test_official_metadata_without_images(official_csv_dir, tmp_path):
    shutil.copy(official_csv_dir / "MAMe_dataset.csv", tmp_path)
    shutil.copy(official_csv_dir / "MAMe_labels.csv", tmp_path)
    report = check_dataset(tmp_path)
    assert report.split_totals() == {"train": 20_300, "val": 1_450, "test": 15_657}
    assert report.total_rows == 37_407 and len(report.missing) == 37_407
    assert report.image_dir is None and not report.ok and report.problems == []
    text = format_report(report)
    assert "Traceback" not in text
    lines = text.splitlines()
    assert "  train   20,300" in lines and "  total   37,407" in lines
    assert any(line.split()[:4] == ["Silk", "and", "metal", "thread"]
               and line.split()[4:] == ["700", "50", "95", "845"] for line in lines)
    assert sum(1 for line in lines if line.split()[-4:] and line.split()[-3:-2] == ["50"]) == 29
    assert "37,407 of 37,407 images missing (no image folder)" in text
    assert "first: 436018.jpg, 11779.jpg" in text and "hint: " in text
    assert "matches the official MAMe split sizes" in text
    assert lines[-1] == "Result: PROBLEMS FOUND"


def test_complete_tiny_dataset_is_ok(tmp_path):
    write_tiny(tmp_path)
    report = check_dataset(tmp_path)
    assert report.ok and report.missing == [] and report.corrupt == []
    assert report.counts["val"]["Woven fabric"] == 1 and report.counts["train"]["Bronze"] == 1
    text = format_report(report)
    assert "All images present." in text and "No unreadable images." in text
    assert "differs from the official MAMe split sizes" in text
    assert text.splitlines()[-1] == "Result: OK"


def test_missing_and_corrupt_images_are_listed(tmp_path):
    images = write_tiny(tmp_path)
    (images / "2.png").unlink()
    jpeg = images / "1980.1.jpeg"
    jpeg.write_bytes(jpeg.read_bytes()[:150])
    (images / "0.jpg").write_bytes(b"")
    report = check_dataset(tmp_path)
    assert report.missing == ["2.png"]
    assert [Path(p).name for p, _ in report.corrupt] == ["0.jpg", "1980.1.jpeg"]
    text = format_report(report)
    assert "1 of 6 images missing from" in text and "first: 2.png" in text
    assert re.search(rf"^  {re.escape(str(jpeg))}: OSError: .*truncated", text, re.M | re.I)
    assert f"  {images / '0.jpg'}: empty file" in text
    assert not report.ok and text.splitlines()[-1] == "Result: PROBLEMS FOUND"
    skipped = check_dataset(tmp_path, verify_images=False)
    assert skipped.corrupt == [] and skipped.missing == ["2.png"]


def test_labels_file_mismatch_is_a_problem(tmp_path):
    write_tiny(tmp_path)
    (tmp_path / "MAMe_labels.csv").write_text("0,Bronze\n")
    report = check_dataset(tmp_path)
    assert not report.ok and "MAMe_labels.csv" in report.problems[0]
    assert f"problem: {report.problems[0]}" in format_report(report)


def test_image_problem_reads_good_files(tmp_path):
    path = tmp_path / "big.jpeg"
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(path, format="JPEG")
    assert image_problem(path) is None
    assert image_problem(tmp_path / "absent.jpg") == "file not found"
