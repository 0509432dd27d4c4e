"""A dataset's metadata, image folder and fingerprint: MAMe's ``MAMe_dataset.csv`` and ``MAMe_labels.csv`` (the real
MAMe and the synthetic one), or a prepared dataset folder (any dataset: ``mame.data.prepared``), whichever the folder
holds. The records themselves are ``mame.data.image_records``'s (re-exported here).

This module must stay light (no TensorFlow): the command line imports it.
"""

from __future__ import annotations

import csv
import hashlib
import math
import operator
import os
from pathlib import Path
from typing import NoReturn

from mame import config
from mame.classes import CLASS_INDEX, CLASS_NAMES, SPLITS, normalise_class_name
from mame.data import prepared
from mame.data.image_records import TEST, DataError, Metadata, Record, TestSplitError, read_test_split

__all__ = ["TEST", "DataError", "Metadata", "Record", "TestSplitError", "read_test_split", "read_metadata", "metadata_path",
           "read_labels", "find_image_dir", "dataset_fingerprint"]

COLUMNS: tuple[str, ...] = (
    "Image file", "Medium", "Museum", "Museum-based instance ID", "Subset",
    "Width", "Height", "Product size", "Aspect ratio",
)
NUMERIC_COLUMNS: tuple[str, ...] = ("Width", "Height", "Product size", "Aspect ratio")


def metadata_path(path_or_dir: str | os.PathLike) -> Path:
    """``path_or_dir`` itself if it is a file, else ``<dir>/MAMe_dataset.csv``."""
    path = Path(path_or_dir).expanduser()
    if path.is_dir():
        path = path / config.METADATA_CSV
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    return path


def source_file(path_or_dir: str | os.PathLike) -> Path:
    """The file a dataset's records are read from: a prepared folder's index, else MAMe's CSV (``metadata_path``)."""
    if prepared.is_prepared(path_or_dir):
        return Path(path_or_dir) / prepared.INDEX
    return metadata_path(path_or_dir)


def read_metadata(path_or_dir: str | os.PathLike, *, ledger: list | None = None) -> Metadata:
    """Read ``MAMe_dataset.csv`` (or the toy CSV); a folder means ``<folder>/MAMe_dataset.csv``, or the folder's
    prepared index when it is a prepared dataset (``mame.data.dataset_index``). ``ledger``: the list the
    test-split reads through the result go to (default: a list of its own, ``Metadata.ledger``)."""
    if prepared.is_prepared(path_or_dir):
        return prepared.read_index(path_or_dir, ledger=ledger)
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
    if prepared.is_prepared(data_dir):
        return Path(prepared.read_about(data_dir)["root"])
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
    if prepared.is_prepared(data_dir):
        return prepared.fingerprint(data_dir)
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
