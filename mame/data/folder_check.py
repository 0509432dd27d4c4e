"""``python -m mame data check DIR`` for any dataset (class folders, split folders, a CSV: ``mame.data.layouts``):
images per class and split, image sizes and aspect ratios, duplicates (the same bytes under two names), the files
that are not images and the images that cannot be read, and the dataset's fingerprint. Pillow only (no TensorFlow);
only reads the dataset.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mame.data.dataset_check import image_problem
from mame.data.image_records import DataError
from mame.data.layouts import Entry, Found, read_layout

SPLIT_COLUMNS = ("train", "val", "test")
SHOW = 10


@dataclass
class Looked:
    """One image file as the check saw it: its bytes' sha256, its pixel size (None when unreadable), its problem."""

    sha256: str
    size: tuple[int, int] | None
    problem: str | None


@dataclass
class FolderReport:
    found: Found
    looked: dict[str, Looked] = field(default_factory=dict)  # by file (relative path); empty without --images
    problems: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        return [(f, s.problem) for f, s in self.looked.items() if s.problem]

    def duplicates(self) -> list[list[Entry]]:
        """Groups of two or more images with the same bytes, in file order."""
        by_hash: dict[str, list[Entry]] = {}
        for e in self.found.entries:
            if e.file in self.looked:
                by_hash.setdefault(self.looked[e.file].sha256, []).append(e)
        return [group for group in by_hash.values() if len(group) > 1]

    def conflicting(self) -> list[list[Entry]]:
        """Duplicate groups that a study cannot live with: two classes, or two splits (a test image seen in training)."""
        return [g for g in self.duplicates() if len({e.label for e in g}) > 1 or len({e.split for e in g}) > 1]

    @property
    def ok(self) -> bool:
        return not (self.problems or self.unreadable or self.conflicting())

    def fingerprint(self) -> str:
        """sha256 over every image's path, class, given split and (when the images were read) its bytes' hash."""
        digest = hashlib.sha256("\0".join(self.found.classes).encode())
        for e in sorted(self.found.entries, key=lambda e: e.file):
            looked = self.looked.get(e.file)
            digest.update(f"{e.file}\0{e.label}\0{e.split}\0{looked.sha256 if looked else ''}\n".encode())
        return digest.hexdigest()


def look(path: Path) -> Looked:
    """Hash a file's bytes, read its size from its header and check that Pillow decodes it whole: the file is read
    from disk once."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Looked("", None, "file not found")
    problem = image_problem(path, data)
    size = None
    if problem is None:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    return Looked(hashlib.sha256(data).hexdigest(), size, problem)


def check_folder(path: str | os.PathLike, *, verify_images: bool = True, workers: int | None = None,
                 **layout) -> FolderReport:
    """Read the dataset at ``path`` (``layout``: ``mame.data.layouts.read_layout``'s settings) and, with
    ``verify_images``, look at every image. A dataset that cannot be read at all raises ``DataError``."""
    found = read_layout(path, **layout)
    report = FolderReport(found)
    if verify_images:
        workers = workers or min(8, os.cpu_count() or 1)
        files = [e.file for e in found.entries]
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
            warnings.simplefilter("ignore", UserWarning)
            report.looked = dict(zip(files, pool.map(look, [found.root / f for f in files], chunksize=32)))
    return report


def format_folder_report(report: FolderReport) -> str:
    found = report.found
    lines = [f"Dataset check: {found.root}", f"  layout: {found.layout}",
             f"  {len(found.classes)} classes, {len(found.entries):,} images", ""]
    lines += _class_table(found) + [""]
    if found.skipped:
        more = ", ..." if len(found.skipped) > SHOW else ""
        lines += [f"{len(found.skipped):,} files skipped (not .bmp, .gif, .jpeg, .jpg or .png): "
                  f"{', '.join(found.skipped[:SHOW])}{more}", ""]
    if report.looked:
        lines += _sizes(report) + [""] + _duplicates(report) + [""] + _unreadable(report) + [""]
    else:
        lines += ["Images not read (--no-images): no sizes, duplicates or unreadable files.", ""]
    lines += [f"problem: {p}" for p in report.problems]
    lines.append(f"Fingerprint: {report.fingerprint()} (paths, classes, splits{', bytes' if report.looked else ''})")
    verdict = "OK" if report.ok else "PROBLEMS FOUND"
    return "\n".join(lines + [f"Result: {verdict}{'' if report.looked else ' (images not read)'}"])


def _class_table(found: Found) -> list[str]:
    splits = [s for s in SPLIT_COLUMNS if any(e.split == s for e in found.entries)]
    columns = splits or ["images"]
    counts = {c: dict.fromkeys(columns, 0) for c in found.classes}
    for e in found.entries:
        counts[e.label][e.split if splits else "images"] += 1
    width = max(12, *(len(c) for c in found.classes))
    rows = [f"  {'class':<{width}} " + " ".join(f"{c:>7}" for c in columns) + ("   total" if splits else "")]
    for name in found.classes:
        values = [counts[name][c] for c in columns]
        rows.append(f"  {name:<{width}} " + " ".join(f"{v:>7,}" for v in values) + (f" {sum(values):>7,}" if splits else ""))
    totals = [sum(counts[n][c] for n in found.classes) for c in columns]
    rows.append(f"  {'all':<{width}} " + " ".join(f"{v:>7,}" for v in totals) + (f" {sum(totals):>7,}" if splits else ""))
    said = ("splits as given: " + ", ".join(splits) + ("" if len(splits) == 3 else
            "; the study draws the missing ones from train (seeded, stratified by class)")) if splits else \
        "no split given: the study draws val and test from each class (seeded, stratified)"
    smallest = min(sum(counts[n].values()) for n in found.classes)
    small = [f"  smallest class: {smallest} image(s)" + (": too few for a stratified train / val / test split (3 needed)"
                                                         if not splits and smallest < 3 else "")]
    return ["Images per class" + (" and split" if splits else ""), *rows, f"  ({said})", *small]


def _sizes(report: FolderReport) -> list[str]:
    sizes = np.array([s.size for s in report.looked.values() if s.size], dtype=np.float64)
    if not len(sizes):
        return ["Image sizes: no readable image"]
    ratio = sizes[:, 0] / sizes[:, 1]

    def spread(values: np.ndarray, fmt: str) -> str:
        low, mid, high = np.quantile(values, [0.0, 0.5, 1.0])
        return f"min {low:{fmt}} / median {mid:{fmt}} / max {high:{fmt}}"

    return ["Image sizes (pixels)", f"  width  {spread(sizes[:, 0], ',.0f')}", f"  height {spread(sizes[:, 1], ',.0f')}",
            f"  aspect ratio (width / height) {spread(ratio, '.2f')}; "
            f"{np.mean(np.abs(np.log(ratio)) > np.log(1.5)):.0%} of the images beyond 3:2 either way"]


def _duplicates(report: FolderReport) -> list[str]:
    groups, bad = report.duplicates(), report.conflicting()
    if not groups:
        return ["No duplicates (no two files with the same bytes)."]
    lines = [f"{len(groups):,} groups of identical files (the same bytes), {len(bad):,} of them across classes or splits:"]
    for group in (bad + [g for g in groups if g not in bad])[:SHOW]:
        lines.append("  " + " = ".join(f"{e.file} ({e.label}{', ' + e.split if e.split else ''})" for e in group))
    return lines + (["  ..."] if len(groups) > SHOW else [])


def _unreadable(report: FolderReport) -> list[str]:
    bad = report.unreadable
    if not bad:
        return ["No unreadable images."]
    return [f"{len(bad):,} unreadable images:"] + [f"  {report.found.root / f}: {why}" for f, why in bad]


def check_any(path: str | os.PathLike, *, verify_images: bool = True, **layout) -> tuple[str, bool]:
    """The check's text and verdict for the dataset at ``path``: MAMe's own check where ``path`` holds
    ``MAMe_dataset.csv`` (or is it), the any-dataset check otherwise."""
    from mame import config
    from mame.data.dataset_check import check_dataset, format_report

    path = Path(path).expanduser()
    if (path / config.METADATA_CSV).is_file() or path.name == config.METADATA_CSV:
        report = check_dataset(path, verify_images=verify_images)
        return format_report(report), report.ok
    try:
        report = check_folder(path, verify_images=verify_images, **layout)
    except DataError as error:
        return f"Dataset check: {path}\nerror: {error}\nResult: PROBLEMS FOUND", False
    return format_folder_report(report), report.ok
