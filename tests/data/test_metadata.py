"""Metadata reading against the official MAMe CSVs and against broken copies of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mame.classes import CLASS_INDEX, CLASS_NAMES, TEST_COUNTS
from mame.data.metadata import (
    DataError,
    Record,
    TestSplitError,
    dataset_fingerprint,
    find_image_dir,
    read_labels,
    read_metadata,
    read_test_split,
)

HEADER = ("Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,"
          "Product size,Aspect ratio")


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def row(name: str = "1.jpg", medium: str = "Bronze", subset: str = "train",
        width: str = "10.0") -> str:
    return f"{name},{medium},Some Museum,\"1.2, b\",{subset},{width},20.0,200.0,0.5"


@pytest.fixture(scope="module")
def official(official_csv_dir):
    return read_metadata(official_csv_dir)


def test_official_split_sizes_and_classes(official):
    counts = official.counts()
    assert len(official) == 37_407
    assert {s: sum(c.values()) for s, c in counts.items()} == {
        "train": 20_300, "val": 1_450, "test": 15_657}
    assert {r.medium for r in official.records} == set(CLASS_NAMES)
    assert set(counts["train"].values()) == {700} and set(counts["val"].values()) == {50}
    assert counts["test"] == TEST_COUNTS
    assert counts["test"]["Silk and metal thread"] == 95


def test_official_values_are_parsed(official):
    first = official.records[0]
    assert first == Record("436018.jpg", "Oil on canvas", CLASS_INDEX["Oil on canvas"],
                           "Metropolitan Museum of Art", "29.100.60", "train",
                           3144.0, 3840.0, 12072960.0, 0.8187)
    woven = [r for r in official.records if r.label == CLASS_INDEX["Woven fabric"]]
    assert len(woven) == 1_450 and {r.medium for r in woven} == {"Woven fabric"}
    dotted = [r.image_file for r in official.records if r.image_file.endswith(".jpeg")]
    assert len(dotted) == 6_965 and "1980.266.jpeg" in dotted
    assert all(isinstance(r.width, float) for r in official.records[:100])
    quoted = [r for r in official.records if r.image_file == "334898.jpg"]
    assert quoted[0].instance_id == "1984.433.193a, b"


def test_official_labels_and_split_helpers(official_csv_dir, official):
    labels = official.labels("val")
    assert labels.dtype == np.int32 and labels.shape == (1_450,)
    assert np.bincount(labels, minlength=29).tolist() == [50] * 29
    with pytest.raises(TestSplitError, match="read only by the evaluate stage"):
        official.split("test")
    with pytest.raises(TestSplitError):
        official.labels("test")
    ledger = []
    test = read_test_split(official, ledger=ledger, what="a test of the ledger")
    assert len(test) == 15_657 and all(r.subset == "test" for r in test)
    assert ledger == [{"what": "a test of the ledger", "n_images": 15_657}]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        official.split("dev")
    assert read_labels(official_csv_dir / "MAMe_labels.csv") == CLASS_NAMES


def test_official_csv_given_as_a_file_path(official_csv_dir):
    # Reading speed is a benchmark (`make bench`), not a timed test.
    meta = read_metadata(official_csv_dir / "MAMe_dataset.csv")
    assert len(meta) == 37_407 and meta.path == official_csv_dir / "MAMe_dataset.csv"


def test_toy_csv_reads(official_csv_dir):
    toy = read_metadata(official_csv_dir / "MAMe_toy_dataset.csv")
    assert len(toy) == 3_480
    assert {s: sum(c.values()) for s, c in toy.counts().items()} == {
        "train": 1_450, "val": 580, "test": 1_450}


def test_missing_column_names_file_and_column(tmp_path):
    header = HEADER.replace("Medium,", "")
    path = write_csv(tmp_path / "MAMe_dataset.csv", ["1.jpg,M,1,train,1,1,1,1"], header=header)
    with pytest.raises(DataError) as error:
        read_metadata(tmp_path)
    message = str(error.value)
    assert message.startswith(f"{path}: missing column 'Medium' (found: Image file, Museum")
    assert "\n" not in message


@pytest.mark.parametrize("bad_row, expected", [
    (row(medium="Papyrus"), "line 3: unknown class 'Papyrus'"),
    (row(subset="training"), "line 3: bad Subset 'training'"),
    (row(width="wide"), "line 3: non-numeric Width 'wide'"),
    (row(name="0.jpg"), "line 3: duplicate image file '0.jpg' (first on line 2)"),
    ("2.jpg,Bronze,M", "line 3: 3 fields, expected 9"),
])
def test_bad_rows_name_the_line(tmp_path, bad_row, expected):
    path = write_csv(tmp_path / "meta.csv", [row(name="0.jpg"), bad_row])
    with pytest.raises(DataError, match="^" + re.escape(f"{path} {expected}")):
        read_metadata(path)


def test_class_names_are_normalised_and_missing_file_reported(tmp_path):
    path = write_csv(tmp_path / "meta.csv", [row(name="a.b.jpeg", medium="Woven fabric ")])
    (record,) = read_metadata(path).records
    assert (record.image_file, record.medium) == ("a.b.jpeg", "Woven fabric")
    assert record.label == CLASS_NAMES.index("Woven fabric")
    with pytest.raises(DataError, match="elsewhere: metadata file not found"):
        read_metadata(tmp_path / "elsewhere")


def test_labels_file_must_match_class_list(tmp_path):
    good = tmp_path / "MAMe_labels.csv"
    good.write_text("".join(f"{i},{n}\n" for i, n in enumerate(CLASS_NAMES)))
    assert read_labels(tmp_path) == CLASS_NAMES
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(f"{i},{n}\n" for i, n in enumerate(CLASS_NAMES[:-1] + ("Papyrus",))))
    with pytest.raises(DataError, match=r"bad.csv: labels differ .*Papyrus"):
        read_labels(bad)


def test_find_image_dir_prefers_data_256(tmp_path):
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path}: no image folder")):
        find_image_dir(tmp_path)
    (tmp_path / "data").mkdir()
    assert find_image_dir(tmp_path) == tmp_path / "data"
    (tmp_path / "data_256").mkdir()
    assert find_image_dir(tmp_path) == tmp_path / "data_256"
    assert find_image_dir(tmp_path, prefer="data") == tmp_path / "data"
    with pytest.raises(DataError, match="full: image folder not found"):
        find_image_dir(tmp_path, prefer="full")


def test_fingerprint_follows_metadata_and_file_sizes(tmp_path):
    write_csv(tmp_path / "MAMe_dataset.csv", [row()])
    no_images = dataset_fingerprint(tmp_path)
    images = tmp_path / "data_256"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"x" * 10)
    first = dataset_fingerprint(tmp_path)
    assert len(first) == 64 and first != no_images
    assert dataset_fingerprint(tmp_path) == first
    (images / "1.jpg").write_bytes(b"y" * 10)  # same size: stat only, so unchanged
    assert dataset_fingerprint(tmp_path) == first
    (images / "1.jpg").write_bytes(b"y" * 11)
    assert dataset_fingerprint(tmp_path) != first
    changed = dataset_fingerprint(tmp_path)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "1.jpg.png").write_bytes(b"m" * 5)  # object masks count too (the explain stage reads them)
    with_mask = dataset_fingerprint(tmp_path)
    assert with_mask != changed
    (tmp_path / "masks" / "1.jpg.png").write_bytes(b"m" * 6)
    assert dataset_fingerprint(tmp_path) not in (with_mask, changed)
    write_csv(tmp_path / "MAMe_dataset.csv", [row(width="11.0")])
    assert dataset_fingerprint(tmp_path) not in (first, no_images)


def test_light_modules_do_not_import_tensorflow():
    code = ("import sys, mame.data.metadata, mame.data.dataset_check, mame.data.download; "
            "sys.exit('tensorflow' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
