"""MAMe metadata: reading ``MAMe_dataset.csv`` and ``MAMe_labels.csv``, image folder, fingerprint.

This module must stay light (no TensorFlow): the command line imports it.
"""

from __future__ import annotations

import csv
import hashlib
import math
import operator
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from mame import config
from mame.classes import CLASS_INDEX, CLASS_NAMES, SPLITS, normalise_class_name
from mame.data import ledger as test_ledger
from mame.data.ledger import Rows

TEST = "test"

COLUMNS: tuple[str, ...] = (
    "Image file", "Medium", "Museum", "Museum-based instance ID", "Subset",
    "Width", "Height", "Product size", "Aspect ratio",
)
NUMERIC_COLUMNS: tuple[str, ...] = ("Width", "Height", "Product size", "Aspect ratio")


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

    def __init__(self, path: str | os.PathLike, records: Iterable[Record] = (), ledger: list | None = None):
        self.path = Path(path)
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
        table = {s: dict.fromkeys(CLASS_NAMES, 0) for s in SPLITS}
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


def metadata_path(path_or_dir: str | os.PathLike) -> Path:
    """``path_or_dir`` itself if it is a file, else ``<dir>/MAMe_dataset.csv``."""
    path = Path(path_or_dir).expanduser()
    if path.is_dir():
        path = path / config.METADATA_CSV
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    return path


def read_metadata(path_or_dir: str | os.PathLike, *, ledger: list | None = None) -> Metadata:
    """Read ``MAMe_dataset.csv`` (or the toy CSV); a folder means ``<folder>/MAMe_dataset.csv``. ``ledger``: the
    list the test-split reads through the result go to (default: a list of its own, ``Metadata.ledger``)."""
    path = metadata_path(path_or_dir)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            records = _read_rows(path, reader)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text (byte {error.object[error.start:error.start + 1]!r} "
                            f"at offset {error.start} of a chunk, near line {reader.line_num + 1})") from None
        except csv.Error as error:
            raise DataError(f"{path} line {reader.line_num}: not a readable CSV row ({error})") from None
    return Metadata(path, records, ledger)


def _read_rows(path: Path, reader) -> list[Record]:
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file (expected a header row)")
    pick = operator.itemgetter(*_column_index(path, header))
    records: list[Record] = []
    seen: dict[str, int] = {}
    for row in reader:
        if not row:
            continue
        record = _parse_row(path, reader.line_num, row, pick)
        if record.image_file in seen:
            raise DataError(f"{path} line {reader.line_num}: duplicate image file "
                            f"{record.image_file!r} (first on line {seen[record.image_file]})")
        seen[record.image_file] = reader.line_num
        records.append(record)
    return records


def _column_index(path: Path, header: list[str]) -> list[int]:
    names = [h.strip() for h in header]
    for column in COLUMNS:
        if column not in names:
            shown = ", ".join(n if n.isprintable() else repr(n) for n in names)
            raise DataError(f"{path}: missing column {column!r} (found: {shown})")
    return [names.index(column) for column in COLUMNS]


def _parse_row(path: Path, line: int, row: list[str], pick: operator.itemgetter) -> Record:
    try:
        file_, medium_, museum, instance, subset_, *numeric = pick(row)
    except IndexError:
        raise DataError(f"{path} line {line}: {len(row)} fields, expected {len(COLUMNS)}") from None
    image_file = file_.strip()
    if not image_file:
        raise DataError(f"{path} line {line}: empty 'Image file'")
    if image_file in (".", "..") or any(c in "/\\" or not c.isprintable() for c in image_file):
        raise DataError(f"{path} line {line}: 'Image file' {image_file!r} is not a plain file name "
                        "(no folder, no '/' or '\\', no control character)")
    medium = medium_ if medium_ in CLASS_INDEX else normalise_class_name(medium_)
    if medium not in CLASS_INDEX:
        raise DataError(f"{path} line {line}: unknown class {medium!r}")
    subset = subset_.strip()
    if subset not in SPLITS:
        raise DataError(f"{path} line {line}: bad Subset {subset!r} "
                        f"(expected one of: {', '.join(SPLITS)})")
    try:
        width, height, size, ratio = map(float, numeric)
    except ValueError:
        _raise_non_numeric(path, line, numeric)
    for column, value, text in zip(NUMERIC_COLUMNS, (width, height, size, ratio), numeric):
        if not math.isfinite(value):
            raise DataError(f"{path} line {line}: {column} {text!r} is not a finite number")
    return Record(image_file, medium, CLASS_INDEX[medium], museum, instance, subset,
                  width, height, size, ratio)


def _raise_non_numeric(path: Path, line: int, values: list[str]) -> NoReturn:
    for column, text in zip(NUMERIC_COLUMNS, values):
        try:
            float(text)
        except ValueError:
            break
    raise DataError(f"{path} line {line}: non-numeric {column} {text!r}")


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Read ``MAMe_labels.csv`` (``index,name``, no header) and check it equals ``CLASS_NAMES``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / config.LABELS_CSV
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable labels CSV ({type(error).__name__}: {error})") from None
    names: list[str] = []
    for line, row in enumerate(rows, start=1):
        if len(row) != 2 or row[0].strip() != str(line - 1):
            raise DataError(f"{path} line {line}: expected '{line - 1},<class name>', got {row!r}")
        names.append(normalise_class_name(row[1]))
    if tuple(names) != CLASS_NAMES:
        diff = sorted(set(names) ^ set(CLASS_NAMES)) or ["order differs"]
        raise DataError(f"{path}: labels differ from the 29 MAMe classes ({', '.join(diff)})")
    return tuple(names)


def find_image_dir(data_dir: str | os.PathLike, prefer: str | None = None) -> Path:
    """The image folder of a dataset: ``data_256/`` if present, else ``data/``.

    With ``prefer`` (a folder name such as ``"data"``), that folder is required.
    """
    data_dir = Path(data_dir).expanduser()
    if prefer is not None:
        folder = data_dir / prefer
        if not folder.is_dir():
            raise DataError(f"{folder}: image folder not found")
        return folder
    for name in config.IMAGE_DIR_CANDIDATES:
        if (data_dir / name).is_dir():
            return data_dir / name
    wanted = " or ".join(f"{n}/" for n in config.IMAGE_DIR_CANDIDATES)
    raise DataError(f"{data_dir}: no image folder (expected {wanted})")


def dataset_fingerprint(data_dir: str | os.PathLike) -> str:
    """sha256 hex of the metadata CSV bytes plus the sorted (file name, size) of the image folder and, where
    the dataset has one, of its object-mask folder (``masks/``).

    Only ``stat`` is used for images (their bytes are never read), so this stays fast for 37k files;
    a dataset without an image folder hashes an empty listing.
    """
    data_dir = Path(data_dir).expanduser()
    digest = hashlib.sha256(metadata_path(data_dir).read_bytes())
    try:
        image_dir = find_image_dir(data_dir)
    except DataError:
        digest.update(b"\0no-image-dir\0")
        return digest.hexdigest()
    for folder in (image_dir, data_dir / config.MASK_DIR):
        if not folder.is_dir():
            continue
        digest.update(f"\0{folder.name}\0".encode())
        with os.scandir(folder) as entries:
            listing = sorted((e.name, e.stat().st_size) for e in entries if e.is_file())
        for name, size in listing:
            digest.update(f"{name}\0{size}\n".encode())
    return digest.hexdigest()
