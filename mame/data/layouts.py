"""Any image-classification dataset on disk, read in the layouts users already know (no format of our own):

- **class folders** (Keras ``image_dataset_from_directory``, torchvision ``ImageFolder``): ``root/<class>/...``,
  images at any depth below their class folder; or one folder per split first, ``root/<split>/<class>/...``,
  the split folders named as Hugging Face ``imagefolder`` names them (``train``/``training``;
  ``validation``/``valid``/``val``/``dev``; ``test``/``testing``/``eval``/``evaluation``; any case);
- **a CSV** naming each image's file (relative to the CSV's folder, or to ``images``), its label and optionally
  its split (Hugging Face's ``metadata.csv`` with ``file_name``; column names configurable). MAMe's own CSV is
  this layout with its columns (``Image file``, ``Medium``, ``Subset``); its dedicated reader
  (``mame.data.metadata``) keeps MAMe's stricter checks.

Image files: ``.bmp .gif .jpeg .jpg .png`` (Keras's list) in any case; other files are skipped and counted,
hidden files (``.DS_Store``) ignored. Class names: whitespace collapsed (MAMe's ``"Woven fabric "``); order
sorted as Python sorts strings (Keras, torchvision), or the order ``classes`` gives. Everything wrong is a
``DataError`` naming the file (or folder) and the problem in one line. Pillow and TensorFlow are not imported.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mame.data.image_records import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train",
    "validation": "val", "valid": "val", "val": "val", "dev": "val",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
MAX_CLASSES = 1000
DEFAULT_COLUMNS = {"file": "file_name", "label": "label", "split": "split"}  # Hugging Face's metadata.csv
SHOW = 5


@dataclass(frozen=True)
class Entry:
    """One image: its path relative to the image root (``/``-separated), its class name, its split or None."""

    file: str
    label: str
    split: str | None


@dataclass
class Found:
    """A dataset as read from disk: where the images are, every image with its class, the classes in order,
    how it was laid out, and the files that were skipped (not images)."""

    root: Path
    entries: list[Entry]
    classes: tuple[str, ...]
    layout: str
    skipped: list[str] = field(default_factory=list)

    @property
    def has_splits(self) -> bool:
        return any(e.split is not None for e in self.entries)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def clean_label(text: str) -> str:
    """A class name as shown and compared: inner whitespace collapsed, ends stripped."""
    return " ".join(str(text).split())


def split_name(text: str) -> str | None:
    """The split an alias names (``"Validation"`` -> ``"val"``), or None."""
    return SPLIT_ALIASES.get(str(text).strip().lower())


def read_layout(path: str | os.PathLike, *, layout: str = "auto", csv_file: str | None = None,
                columns: dict | None = None, images: str | None = None, classes: Sequence[str] | None = None) -> Found:
    """Read the dataset at ``path`` (a folder, or a CSV file). ``layout``: ``auto`` (a CSV when ``csv_file`` is
    given, ``path`` is a CSV file, or the folder holds ``metadata.csv``; class folders otherwise), ``folders`` or
    ``csv``. ``classes``: the class order to use (every class of the data must be in it, and every class in it
    must have images)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if layout not in ("auto", "folders", "csv"):
        raise DataError(f"{path}: layout must be 'auto', 'folders' or 'csv', not {layout!r}")
    table = _csv_path(path, csv_file) if layout != "folders" else None
    if layout == "csv" and table is None:
        raise DataError(f"{path}: layout 'csv' but no CSV named (give csv: <file>, or a metadata.csv here)")
    if table is not None:
        found = read_csv(table, columns=columns, images=images)
    elif path.is_dir():
        found = read_folders(path)
    else:
        raise DataError(f"{path}: a dataset is a folder of class folders, or a CSV naming images and labels")
    found.classes = order_classes(found, classes)
    return found


def _csv_path(path: Path, csv_file: str | None) -> Path | None:
    if path.is_file():
        return path
    if csv_file:
        table = path / csv_file
        if not table.is_file():
            raise DataError(f"{table}: CSV file not found")
        return table
    default = path / "metadata.csv"
    return default if default.is_file() else None


def read_folders(root: Path) -> Found:
    """Class folders, with or without split folders above them."""
    top = _subfolders(root)
    if not top:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>, or "
                        f"{root}/<split>/<class>/<image> with split folders train, validation, test)")
    splits = {name: split_name(name) for name in top}
    named = [n for n in top if splits[n]]
    if named and len(named) < len(top):
        other = ", ".join(sorted(set(top) - set(named))[:SHOW])
        raise DataError(f"{root}: split folders ({', '.join(sorted(named))}) beside other folders ({other}): either "
                        "every top-level folder is a split (train, validation, test) or none is")
    entries: list[Entry] = []
    skipped: list[str] = []
    if named:
        seen: dict[str, str] = {}
        for name in sorted(named):
            split = splits[name]
            if split in seen:
                raise DataError(f"{root}: folders {seen[split]!r} and {name!r} both name the {split} split")
            seen[split] = name
            entries += _class_folders(root / name, root, split, skipped)
        layout = "class folders in split folders (" + ", ".join(sorted(named)) + ")"
    else:
        entries = _class_folders(root, root, None, skipped)
        layout = "class folders"
    return Found(root, entries, (), layout, skipped)


def _subfolders(folder: Path) -> list[str]:
    with os.scandir(folder) as items:
        return sorted(e.name for e in items if e.is_dir() and not e.name.startswith("."))


def _class_folders(folder: Path, root: Path, split: str | None, skipped: list[str]) -> list[Entry]:
    names = _subfolders(folder)
    if not names:
        raise DataError(f"{folder}: no class folders in it")
    entries: list[Entry] = []
    for name in names:
        label = clean_label(name)
        files = _images_below(folder / name, root, skipped)
        if not files:
            raise DataError(f"{folder / name}: empty class folder (no .bmp, .gif, .jpeg, .jpg or .png image in it "
                            "or below it); remove it or add its images")
        entries += [Entry(f, label, split) for f in files]
    labels = Counter(clean_label(n) for n in names)
    twice = [n for n, k in labels.items() if k > 1]
    if twice:
        raise DataError(f"{folder}: folders whose names differ only in spaces name one class twice ({twice[0]!r})")
    return entries


def _images_below(folder: Path, root: Path, skipped: list[str]) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(here).relative_to(root).as_posix()
        for name in sorted(files):
            if name.startswith("."):
                continue
            (found if is_image(name) else skipped).append(f"{base}/{name}")
    return found


def read_csv(table: Path, *, columns: dict | None = None, images: str | None = None) -> Found:
    """A CSV naming each image (relative to the CSV's folder, or to ``images`` below it), its label and
    optionally its split."""
    names = {**DEFAULT_COLUMNS, **(columns or {})}
    unknown = set(names) - set(DEFAULT_COLUMNS)
    if unknown:
        raise DataError(f"{table}: unknown column role(s) {sorted(unknown)} (roles: file, label, split)")
    root = (table.parent / images).resolve() if images else table.parent
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (images: {images!r} in the data settings)")
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise DataError(f"{table}: not UTF-8 text") from None
    except csv.Error as error:
        raise DataError(f"{table}: not a readable CSV ({error})") from None
    if not rows:
        raise DataError(f"{table}: empty file (expected a header row)")
    header = [h.strip() for h in rows[0]]
    at = {}
    for role in ("file", "label", "split"):
        if names[role] in header:
            at[role] = header.index(names[role])
        elif role != "split":
            raise DataError(f"{table}: no column {names[role]!r} for the image {role}s (found: {', '.join(header)}); "
                            f"name it with data.columns.{role}")
    entries, seen = [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        entry = _csv_entry(table, line, row, at)
        if entry.file in seen:
            raise DataError(f"{table} line {line}: {entry.file!r} is listed twice (first on line {seen[entry.file]})")
        seen[entry.file] = line
        entries.append(entry)
    if not entries:
        raise DataError(f"{table}: no rows under the header")
    missing = [e.file for e in entries if not (root / e.file).is_file()]
    if missing:
        raise DataError(f"{table}: {len(missing):,} of {len(entries):,} files it names are not in {root} "
                        f"(first: {', '.join(missing[:SHOW])})")
    layout = f"CSV {table.name} (columns: " + ", ".join(f"{names[r]} = {r}" for r in at) + ")"
    return Found(root, entries, (), layout)


def _csv_entry(table: Path, line: int, row: list[str], at: dict[str, int]) -> Entry:
    if len(row) <= max(at.values()):
        raise DataError(f"{table} line {line}: {len(row)} fields, the header has more")
    file = row[at["file"]].strip().replace("\\", "/")
    if not file:
        raise DataError(f"{table} line {line}: empty file name")
    if file.startswith("/") or ".." in file.split("/") or not file.isprintable():
        raise DataError(f"{table} line {line}: {file!r} is not a path inside the dataset folder")
    if not is_image(file):
        raise DataError(f"{table} line {line}: {file!r} is not a .bmp, .gif, .jpeg, .jpg or .png file")
    label = clean_label(row[at["label"]])
    if not label:
        raise DataError(f"{table} line {line}: empty label for {file!r}")
    split = None
    if "split" in at:
        split = split_name(row[at["split"]])
        if split is None:
            raise DataError(f"{table} line {line}: split {row[at['split']].strip()!r} is not one of "
                            f"{', '.join(SPLIT_ALIASES)}")
    return Entry(file, label, split)


def order_classes(found: Found, given: Sequence[str] | None) -> tuple[str, ...]:
    """The class order: ``given`` (checked against the data) or sorted; 2 to ``MAX_CLASSES`` classes."""
    present = {e.label for e in found.entries}
    where = found.root
    if given is not None:
        order = tuple(clean_label(c) for c in given)
        if len(set(order)) < len(order):
            raise DataError(f"{where}: the class list names a class twice")
        extra = sorted(present - set(order))
        if extra:
            raise DataError(f"{where}: images of classes the class list does not name: {', '.join(extra[:SHOW])}")
        empty = [c for c in order if c not in present]
        if empty:
            raise DataError(f"{where}: the class list names classes without images: {', '.join(empty[:SHOW])}")
    else:
        order = tuple(sorted(present))
    if len(order) < 2:
        raise DataError(f"{where}: one class ({order[0] if order else 'none'}): a classification study needs at "
                        "least two")
    if len(order) > MAX_CLASSES:
        raise DataError(f"{where}: {len(order):,} classes, more than the {MAX_CLASSES:,} this study handles")
    return order
