"""The test-split ledger is the data layer's: every path to the test split's rows or images records the read where
it happens (or is refused), whoever asks: a stage, a notebook cell, a private accessor."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mame.classes import SPLITS
from mame.data import ledger as test_ledger
from mame.data.metadata import Metadata, Record, TestSplitError, read_metadata, read_test_split

HEADER = "Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,Product size,Aspect ratio"
SUBSETS = ("train", "train", "val", "test", "test", "test")


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    """Six 8x8 PNGs over the three splits (three test images) and their CSV."""
    images = tmp_path / "data_256"
    images.mkdir()
    rows = []
    for i, subset in enumerate(SUBSETS):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(images / f"{i}.png")
        rows.append(f"{i}.png,Bronze,M,{i},{subset},8.0,8.0,64.0,1.0")
    (tmp_path / "MAMe_dataset.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return tmp_path


def new_reads(before: int) -> list[dict]:
    return test_ledger.process_reads()[before:]


def test_the_known_bypasses_are_each_recorded_in_the_metadata_ledger_and_the_process(data_dir):
    bypasses = [
        ("Metadata._rows", lambda meta: meta._rows("test")),
        ("Metadata.records", lambda meta: meta.records),
        ("Metadata.records", lambda meta: [r for r in meta.records if r.subset == "test"]),
        ("iterating Metadata", lambda meta: list(meta)),
        ("iterating Metadata", lambda meta: [r for r in meta if r.subset == "test"]),  # a for loop, as a cell writes it
    ]
    for words, read in bypasses:
        meta = read_metadata(data_dir)
        before = len(test_ledger.process_reads())
        assert meta.ledger == []
        rows = read(meta)
        assert sum(r.subset == "test" for r in rows) == 3
        assert len(meta.ledger) == 1, words
        assert meta.ledger[0]["n_images"] == 3 and words in meta.ledger[0]["what"]
        assert str(meta.path) in meta.ledger[0]["what"]
        assert new_reads(before) == meta.ledger, words


def test_every_public_accessor_either_hands_out_no_test_row_records_the_read_or_refuses(data_dir):
    """A new accessor added to Metadata is covered too: each public member is called with every split."""
    meta = read_metadata(data_dir)
    names = [n for n, _ in inspect.getmembers(Metadata) if not n.startswith("_")] + ["__iter__"]
    assert {"records", "split", "labels", "counts", "__iter__"} <= set(names)
    for name in names:
        for args in [(), *[(s,) for s in SPLITS]]:
            reads = len(meta.ledger)
            try:
                value = getattr(meta, name)
                value = value(*args) if callable(value) else value
                if name == "__iter__":
                    value = list(value)
            except TestSplitError:
                assert args == ("test",), (name, args)
                continue
            except TypeError:
                continue  # does not take these arguments
            if any(isinstance(r, Record) and r.subset == "test" for r in _flatten(value)):
                assert len(meta.ledger) == reads + 1, f"Metadata.{name}{args} handed out test rows unrecorded"
            else:
                assert len(meta.ledger) == reads, f"Metadata.{name}{args} recorded a read it did not make"


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    return [value]


def test_split_and_labels_still_refuse_the_test_split(data_dir):
    meta = read_metadata(data_dir)
    with pytest.raises(TestSplitError, match="read only by the evaluate stage"):
        meta.split("test")
    with pytest.raises(TestSplitError):
        meta.labels("test")
    assert meta.counts()["test"]["Bronze"] == 3 and len(meta) == 6  # sizes, not rows: no read
    assert meta.ledger == []


def test_read_test_split_records_in_the_ledger_read_metadata_was_given(data_dir):
    ledger: list = [{"what": "an earlier read", "n_images": 1}]
    meta = read_metadata(data_dir, ledger=ledger)
    test = read_test_split(meta, what="evaluate: the test split's records")
    assert [r.image_file for r in test] == ["3.png", "4.png", "5.png"]
    assert ledger[1:] == [{"what": "evaluate: the test split's records", "n_images": 3}]
    assert test.ledger is ledger and test[1:].ledger is ledger  # the rows carry it on, slices too
    old: list = []
    read_test_split(read_metadata(data_dir), ledger=old, what="the old spelling")
    assert old == [{"what": "the old spelling", "n_images": 3}]


def test_test_images_are_recorded_where_they_are_loaded_whatever_list_holds_them(data_dir):
    from mame.data.pipeline import make_dataset

    ledger: list = []
    meta = read_metadata(data_dir, ledger=ledger)
    test = read_test_split(meta, what="records")
    make_dataset(test, data_dir / "data_256", image_size=4, allow_test=True, cache=False)
    assert ledger[1] == {"what": f"{data_dir / 'data_256'}: 3 test-split images loaded (make_dataset)", "n_images": 3}
    before = len(test_ledger.process_reads())
    plain = [dataclasses.replace(r, museum="copied") for r in test]  # a list of its own: no ledger to carry
    make_dataset(plain + meta.split("train"), data_dir / "data_256", image_size=4, allow_test=True, cache=False)
    assert [r["n_images"] for r in new_reads(before)] == [3] and len(ledger) == 2  # the process still holds it
    elsewhere: list = []
    with test_ledger.reading(elsewhere, what="evaluate: test predictions of m", model="m/model.keras"):
        make_dataset(test, data_dir / "data_256", image_size=4, allow_test=True, cache=False)
    assert elsewhere == [{"what": "evaluate: test predictions of m", "n_images": 3, "model": "m/model.keras"}]
    assert len(ledger) == 2
    with pytest.raises(TestSplitError, match="3 test-split images asked for outside the evaluate stage"):
        make_dataset(test, data_dir / "data_256", image_size=4)
    assert len(ledger) == 2


def test_a_notebook_cell_reading_the_test_split_is_journaled_by_its_kernel(data_dir, tmp_path):
    """A cell is code in the run's kernel: the read lands in the journal file the kernel was given, as it happens."""
    journal = tmp_path / "reads.jsonl"
    cell = (f"from mame.data.metadata import read_metadata; meta = read_metadata({str(data_dir)!r}); "
            "rows = [r for r in meta._rows('test')]; everything = meta.records")
    env = {"PATH": "/usr/bin:/bin", test_ledger.JOURNAL_ENV: str(journal)}
    subprocess.run([sys.executable, "-c", cell], env=env, check=True, cwd=Path(__file__).parents[2], timeout=120)
    reads = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["n_images"] for r in reads] == [3, 3]
    assert "Metadata._rows" in reads[0]["what"] and "Metadata.records" in reads[1]["what"]


def test_the_data_check_records_its_read_of_the_test_images(data_dir):
    from mame.data.dataset_check import check_dataset

    before = len(test_ledger.process_reads())
    assert check_dataset(data_dir).ok
    (read,) = new_reads(before)
    assert read["n_images"] == 3 and "data check" in read["what"]
