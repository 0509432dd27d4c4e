"""A dataset's records: one ``Record`` an image, and ``Metadata``, the rows of a dataset in file order with the
ledger of the test-split reads made through them. Read from MAMe's CSV (``mame.data.metadata``) or from a prepared
dataset folder (``mame.data.prepared``).

This module must stay light (no TensorFlow): the command line imports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame.classes import CLASS_NAMES, SPLITS
from mame.data import ledger as test_ledger
from mame.data.ledger import Rows

TEST = "test"

class DataError(ValueError):
    """Bad or missing dataset input; the message names the file and the problem in one line."""


@dataclass(frozen=True)
class Record:
    """One row of ``MAMe_dataset.csv``; ``label`` indexes ``mame.classes.CLASS_NAMES``."""

    image_file: str
    medium: str
    label: int
    museum: str
    instance_id: str
    subset: str
    width: float
    height: float
    product_size: float
    aspect_ratio: float


class Metadata:
    """All rows of a metadata CSV, in file order, and the ledger of the test-split reads made through it.

    Every accessor that hands out rows of the test split records the read itself (``mame.data.ledger``): in
    ``ledger`` (the caller's list when ``read_metadata(..., ledger=...)`` was given one), in this process's reads
    and in the ``MAME_TEST_LEDGER`` journal. ``records`` and iteration hand out every row and so record a read
    whenever the file has test rows; ``split("test")`` and ``labels("test")`` refuse (only the evaluate stage
    reads the test split, through ``read_test_split``). ``len`` and ``counts`` give sizes only (the published
    split sizes per class), not rows, and record nothing.
    """

    def __init__(self, path: str | os.PathLike, records: Iterable[Record] = (), ledger: list | None = None, *,
                 classes: tuple[str, ...] = CLASS_NAMES):
        self.path = Path(path)
        self.classes = tuple(classes)  # the class names, in label order
        self.ledger: list = [] if ledger is None else ledger
        self._all: tuple[Record, ...] = tuple(records)
        self._n_test = sum(r.subset == TEST for r in self._all)

    def __repr__(self) -> str:
        return f"Metadata({str(self.path)!r}, {len(self._all):,} rows, {len(self.ledger)} test-split reads)"

    def __len__(self) -> int:
        return len(self._all)

    @property
    def records(self) -> Rows:
        """Every row, in file order (a list carrying this ledger); the test split's rows among them are a read."""
        return self._hand_out(self._all, self._n_test, f"{self.path}: every row (Metadata.records), test split included")

    def __iter__(self) -> Iterator[Record]:
        return iter(self._hand_out(self._all, self._n_test, f"{self.path}: every row (iterating Metadata), test split included"))

    def split(self, name: str) -> Rows:
        """The records of ``train`` or ``val``, in file order. The test split is refused here: only the
        evaluate stage reads it, through ``read_test_split``, which records the read in a ledger."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r} (expected one of: {', '.join(SPLITS)})")
        if name == TEST:
            raise TestSplitError(f"{self.path}: the test split is read only by the evaluate stage, through "
                                 "mame.data.metadata.read_test_split(metadata, ledger=..., what=...)")
        return self._rows(name)

    def _rows(self, name: str, what: str | None = None) -> Rows:
        rows = [r for r in self._all if r.subset == name]
        n_test = len(rows) if name == TEST else 0
        return self._hand_out(rows, n_test, what or f"{self.path}: the test split's rows (Metadata._rows)")

    def _hand_out(self, rows, n_test: int, what: str) -> Rows:
        if n_test:
            test_ledger.record(self.ledger, what, n_test)
        return Rows(rows, self.ledger)

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per split and class: ``counts()[split][class_name]``, every class listed (sizes only: no read)."""
        table = {s: dict.fromkeys(self.classes, 0) for s in SPLITS}
        for r in self._all:
            table[r.subset][r.medium] += 1
        return table

    def labels(self, split: str) -> np.ndarray:
        """Integer labels (int32) of one split, in file order."""
        return np.fromiter((r.label for r in self.split(split)), dtype=np.int32)


class TestSplitError(PermissionError):
    """Something other than the evaluate stage asked for the test split."""

    __test__ = False  # not a pytest test class, despite its name


def read_test_split(meta: Metadata, *, what: str, ledger: list | None = None) -> Rows:
    """The test split's records; the read (``{"what": what, "n_images": n}``) goes to the metadata's ledger (the
    run's ``test_split_reads``, shown in the deck); ``ledger`` binds that list as the metadata's ledger first.
    The evaluate stage is the only caller (a test checks)."""
    if ledger is not None:
        meta.ledger = ledger
    return meta._rows(TEST, what)
