"""Reading a prepared dataset folder (written by ``mame.data.dataset_index``): ``index.csv``, every image with its
class, split and size, and ``dataset.json``, the dataset's name, image root, layout, classes and how its splits were
made. Light (no TensorFlow, no Pillow): the command line and the deck read it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from mame.data.image_records import DataError, Metadata, Record

INDEX, ABOUT = "index.csv", "dataset.json"
FIELDS = ("file", "label", "split", "width", "height", "bytes", "mtime_ns")


def is_prepared(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ABOUT).is_file()


def read_about(folder: str | os.PathLike) -> dict:
    path = Path(folder) / ABOUT
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable prepared-dataset description ({error})") from None


def read_index(folder: str | os.PathLike, *, ledger: list | None = None) -> Metadata:
    """The prepared dataset at ``folder`` as ``Metadata`` (its classes, in their order)."""
    folder = Path(folder)
    about = read_about(folder)
    classes = tuple(about["classes"])
    at = {c: i for i, c in enumerate(classes)}
    records = []
    with (folder / INDEX).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            width, height = float(row["width"]), float(row["height"])
            records.append(Record(row["file"], row["label"], at[row["label"]], "", "", row["split"], width, height,
                                  width * height, width / height if height else 0.0))
    return Metadata(folder / INDEX, records, ledger, classes=classes)


def fingerprint(folder: str | os.PathLike) -> str:
    """sha256 of what the study sees of a prepared dataset: every image's path, class, split, size in bytes and in
    pixels, and the class order (modification times left out: a copied folder is the same data)."""
    folder = Path(folder)
    digest = hashlib.sha256(json.dumps(read_about(folder)["classes"]).encode())
    with (folder / INDEX).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            digest.update("\0".join(row[f] for f in FIELDS[:-1]).encode() + b"\n")
    return digest.hexdigest()
