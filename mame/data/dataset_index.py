"""A user's dataset, prepared once for the study: every image with its class, split and size, in ``index.csv``,
and what the study needs to know of it in ``dataset.json`` (name, image root, layout, classes, how the splits
were made). The stages read a prepared folder as they read MAMe's (``mame.data.metadata.read_metadata``).

The prepared folder lives under the data home (``<MAME_DATA_HOME>/datasets/<name>-<hash>/``), never in the
user's folder, which is only read. No split in the data: a seeded split, stratified by class (each class's images
shuffled with the seed, then ``val`` and ``test`` fractions cut from it, at least one image each), recorded in
``dataset.json`` and so in every run's provenance. Only a ``train`` (and ``test``) split given: validation is cut
from train the same way. Image sizes come from the files' headers (Pillow, lazily: no pixels decoded), kept
from the last preparation for files whose size and modification time are unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mame.data.image_records import DataError
from mame.data.layouts import SHOW, Entry, Found, read_layout
from mame.data.prepared import ABOUT, FIELDS, INDEX
from mame.files import atomic_write

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = {"val": 0.15, "test": 0.15}


def prepared_folder(home: Path, source: Path, settings: dict) -> Path:
    """Where the dataset at ``source`` with these data settings is prepared (one folder per source and settings)."""
    key = hashlib.sha256(json.dumps([str(source), settings], sort_keys=True, default=str).encode()).hexdigest()[:12]
    return home / "datasets" / f"{dataset_slug(source)}-{key}"


def dataset_slug(source: Path) -> str:
    """A dataset's name fit for a folder name: its folder's name (a CSV file: its stem), other characters as ``-``."""
    source = source.expanduser().resolve()
    name = source.stem if source.is_file() else source.name
    return (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "dataset")[:40]


def prepare(source: str | os.PathLike, dest: Path, *, seed: int, layout: str = "auto", csv_file: str | None = None,
            columns: dict | None = None, images: str | None = None, classes: Sequence[str] | None = None,
            split: dict | None = None, name: str | None = None) -> dict:
    """Read the dataset at ``source``, assign splits, read image sizes; write ``dest/index.csv`` and
    ``dest/dataset.json`` (atomically, only when they change) and return the latter's content."""
    found = read_layout(source, layout=layout, csv_file=csv_file, columns=columns, images=images, classes=classes)
    fractions = {**DEFAULT_FRACTIONS, **(split or {})}
    assigned, how = assign_splits(found, fractions, seed)
    rows = _sized_rows(found.root, assigned, _previous_rows(dest))
    about = {"name": name or Path(source).expanduser().resolve().name, "source": str(Path(source).expanduser().resolve()),
             "root": str(found.root), "layout": found.layout, "classes": list(found.classes), "splits": how,
             "counts": {s: sum(e.split == s for e in assigned) for s in SPLITS},
             "skipped": {"count": len(found.skipped), "first": found.skipped[:SHOW]}}
    _write_if_changed(dest / INDEX, _index_text(rows))
    _write_if_changed(dest / ABOUT, json.dumps(about, indent=1) + "\n")
    return about


def assign_splits(found: Found, fractions: dict, seed: int) -> tuple[list[Entry], dict]:
    """Every entry with its split, and how the splits were made (``{"given": [...], "drawn": {...}}``)."""
    for key, value in fractions.items():
        if key not in ("val", "test") or not isinstance(value, (int, float)) or not 0 < value < 0.5:
            raise DataError(f"{found.root}: split fraction {key}: {value!r} (give val and test, each above 0 and below 0.5)")
    given = sorted({e.split for e in found.entries if e.split}, key=SPLITS.index)
    if given and "train" not in given:
        raise DataError(f"{found.root}: split folders or column give {', '.join(given)} but no train split")
    draw = [s for s in ("val", "test") if s not in given]
    entries = list(found.entries)
    if draw:
        pool = [e for e in entries if e.split in (None, "train")]
        kept = [e for e in entries if e.split not in (None, "train")]
        entries = kept + _stratified(found, pool, {s: fractions[s] for s in draw}, seed)
    _check_train_has_every_class(found, entries)
    order = {e.file: i for i, e in enumerate(found.entries)}
    entries.sort(key=lambda e: order[e.file])
    how = {"given": given, "drawn": {"from": "train" if given else "all images", "seed": seed,
                                     "stratified": True, **{s: fractions[s] for s in draw}} if draw else None}
    return entries, how


def _stratified(found: Found, pool: list[Entry], fractions: dict[str, float], seed: int) -> list[Entry]:
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Entry]] = {c: [] for c in found.classes}
    for e in pool:
        by_class[e.label].append(e)
    out: list[Entry] = []
    need = 1 + len(fractions)
    for label in found.classes:
        group = by_class[label]
        if not group:
            continue
        if len(group) < need:
            raise DataError(f"{found.root}: class {label!r} has {len(group)} image(s) to split: a stratified "
                            f"{' / '.join(['train', *fractions])} split needs at least {need} a class "
                            "(add images, or give the splits)")
        order = rng.permutation(len(group))
        cut = 0
        for split, fraction in fractions.items():
            n = min(max(1, round(fraction * len(group))), len(group) - (need - 1))
            out += [Entry(group[i].file, label, split) for i in order[cut:cut + n]]
            cut += n
        out += [Entry(group[i].file, label, "train") for i in order[cut:]]
    return out


def _check_train_has_every_class(found: Found, entries: list[Entry]) -> None:
    trained = {e.label for e in entries if e.split == "train"}
    absent = [c for c in found.classes if c not in trained]
    if absent:
        raise DataError(f"{found.root}: no training images for class(es) {', '.join(map(repr, absent[:SHOW]))}")


def _previous_rows(dest: Path) -> dict[str, dict]:
    try:
        with (dest / INDEX).open(newline="", encoding="utf-8") as handle:
            return {row["file"]: row for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error):
        return {}


def _sized_rows(root: Path, entries: list[Entry], previous: dict[str, dict]) -> list[dict]:
    from PIL import Image, UnidentifiedImageError

    rows, unreadable = [], []
    for e in entries:
        stat = (root / e.file).stat()
        old = previous.get(e.file)
        if old and old.get("bytes") == str(stat.st_size) and old.get("mtime_ns") == str(stat.st_mtime_ns):
            width, height = int(old["width"]), int(old["height"])
        else:
            try:
                with Image.open(root / e.file) as image:
                    width, height = image.size
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
                unreadable.append(f"{e.file} ({type(error).__name__})")
                continue
        rows.append({"file": e.file, "label": e.label, "split": e.split, "width": width, "height": height,
                     "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if unreadable:
        raise DataError(f"{root}: {len(unreadable):,} unreadable image(s): {', '.join(unreadable[:SHOW])}; "
                        f"python -m mame data check {root} lists them all")
    return rows


def _index_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write(path, text)
