"""Dataset check: rows per split and class, missing and corrupt images (Pillow, no TensorFlow)."""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mame import config
from mame.classes import CLASS_NAMES, SPLITS, TEST_COUNTS, TRAIN_PER_CLASS, VAL_PER_CLASS
from mame.data import ledger as test_ledger
from mame.data.download import PROVENANCE, DownloadError, read_provenance
from mame.data.metadata import DataError, dataset_fingerprint, find_image_dir, metadata_path, read_labels, read_metadata

OFFICIAL_SPLIT_SIZES = {
    "train": TRAIN_PER_CLASS * len(CLASS_NAMES),
    "val": VAL_PER_CLASS * len(CLASS_NAMES),
    "test": sum(TEST_COUNTS.values()),
}
SHOW_FIRST = 10
PIPELINE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"})  # what TensorFlow decodes (MPO: a JPEG)
MAX_IMAGE_PIXELS = 400_000_000  # the largest full-resolution MAMe image has 372,978,396 pixels
_EXPECTED_DIRS = " or ".join(f"{name}/" for name in config.IMAGE_DIR_CANDIDATES)
_NO_IMAGE_DIR = f"none found (expected {_EXPECTED_DIRS})"


@dataclass
class CheckReport:
    """What ``check_dataset`` found; ``corrupt`` holds ``(path, reason)`` pairs."""

    data_dir: Path
    metadata_path: Path
    image_dir: Path | None
    counts: dict[str, dict[str, int]]
    total_rows: int
    missing: list[str] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    images_verified: bool = False
    downloads: dict[str, dict] = field(default_factory=dict)  # the archives' provenance (``.mame-download.json``)
    fingerprint: str = ""  # ``metadata.dataset_fingerprint``: what a run's cache key and provenance record

    @property
    def ok(self) -> bool:
        """True when there are rows, no missing or corrupt images and no other problems."""
        return self.total_rows > 0 and not (self.missing or self.corrupt or self.problems)

    def split_totals(self) -> dict[str, int]:
        """Rows per split."""
        return {split: sum(self.counts[split].values()) for split in SPLITS}


def image_problem(path: str | os.PathLike, data: bytes | None = None) -> str | None:
    """Why Pillow cannot read an image file (``verify`` then a full ``load``), or None if it can.

    JPEGs are decoded at reduced scale (``draft``), which still reads every byte, so truncation is
    caught quickly. Pillow's pixel limit is replaced by ``MAX_IMAGE_PIXELS`` (full-resolution MAMe images
    reach 373 Mpx), checked on the header before anything is decoded. ``data``: the file's bytes, already read
    (the file is then not opened again).
    """
    Image.MAX_IMAGE_PIXELS = None
    source = (lambda: io.BytesIO(data)) if data is not None else (lambda: path)
    try:
        if (len(data) if data is not None else os.stat(path).st_size) == 0:
            return "empty file"
        with Image.open(source()) as image:
            if image.format not in PIPELINE_FORMATS:
                return f"a {image.format} image: the pipeline decodes only JPEG, PNG, GIF, BMP and WebP"
            if image.width * image.height > MAX_IMAGE_PIXELS:
                return too_many_pixels(image.width, image.height)
            image.verify()
        with Image.open(source()) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not a recognised image format"
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, Image.DecompressionBombError) as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return " ".join(reason.split())  # one line
    return None


def too_many_pixels(width: int, height: int) -> str:
    return (f"{width:,} x {height:,} pixels, over the cap of {MAX_IMAGE_PIXELS:,} "
            "(a decompression bomb? MAMe's largest image has 373 Mpx)")


def check_dataset(data_dir: str | os.PathLike, *, verify_images: bool = True,
                  workers: int | None = None) -> CheckReport:
    """Read the metadata, look for every image, and (``verify_images``) decode each one present."""
    csv_path = metadata_path(data_dir)
    root = csv_path.parent
    metadata = read_metadata(csv_path)
    report = CheckReport(data_dir=root, metadata_path=csv_path, image_dir=None,
                         counts=metadata.counts(), total_rows=len(metadata), fingerprint=_fingerprint(root))
    try:
        report.downloads = read_provenance(root)
    except DownloadError as error:
        report.problems.append(str(error))
    if (root / config.LABELS_CSV).is_file():
        try:
            read_labels(root / config.LABELS_CSV)
        except DataError as error:
            report.problems.append(str(error))
    with test_ledger.reading(what=f"{csv_path}: data check, every image file looked for and decoded (test split included)"):
        names = [r.image_file for r in metadata.records]
    try:
        report.image_dir = find_image_dir(root)
    except DataError:
        report.missing = names
        return report
    present = {e.name for e in os.scandir(report.image_dir) if e.is_file()}
    report.missing = [n for n in names if n not in present]
    if verify_images:
        found = [report.image_dir / n for n in names if n in present]
        report.corrupt = find_corrupt(found, workers=workers)
        report.images_verified = True
    return report


def _fingerprint(root: Path) -> str:
    try:
        return dataset_fingerprint(root)
    except (DataError, OSError) as error:
        return f"none ({error})"


def find_corrupt(paths: list[Path], *, workers: int | None = None) -> list[tuple[str, str]]:
    """``(path, reason)`` for every file Pillow cannot read, in the order given (threads)."""
    workers = workers or min(8, os.cpu_count() or 1)
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data" etc.: the problem is reported
        problems = list(pool.map(image_problem, paths, chunksize=64))
    return [(str(p), why) for p, why in zip(paths, problems) if why is not None]


def format_report(report: CheckReport) -> str:
    """A plain-text view of a ``CheckReport``: split and class tables, missing, corrupt, verdict."""
    lines = [f"MAMe dataset check: {report.data_dir}",
             f"  metadata: {report.metadata_path} ({report.total_rows:,} rows)",
             f"  images:   {report.image_dir or _NO_IMAGE_DIR}", ""]
    lines += _split_table(report) + [""] + _class_table(report) + [""]
    lines += _missing_section(report) + _corrupt_section(report) + _downloads_section(report)
    lines += [f"problem: {p}" for p in report.problems]
    lines.append(f"Fingerprint: {report.fingerprint} (the metadata file, image names and sizes)")
    verdict = "OK" if report.ok else "PROBLEMS FOUND"
    if report.ok and not report.images_verified:
        verdict += " (images not decoded)"
    return "\n".join(lines + [f"Result: {verdict}"])


def _split_table(report: CheckReport) -> list[str]:
    totals = report.split_totals()
    rows = [f"  {'split':<6} {'rows':>7}"]
    rows += [f"  {s:<6} {totals[s]:>7,}" for s in SPLITS]
    rows.append(f"  {'total':<6} {report.total_rows:>7,}")
    official = totals == OFFICIAL_SPLIT_SIZES
    note = "matches" if official else "differs from"
    sizes = " / ".join(f"{n:,}" for n in OFFICIAL_SPLIT_SIZES.values())
    return ["Rows per split"] + rows + [f"  ({note} the official MAMe split sizes {sizes})"]


def _class_table(report: CheckReport) -> list[str]:
    width = max(len(c) for c in CLASS_NAMES)
    header = f"  {'class':<{width}} " + " ".join(f"{s:>6}" for s in (*SPLITS, "total"))
    rows = ["Rows per class and split", header]
    for name in CLASS_NAMES:
        values = [report.counts[s][name] for s in SPLITS]
        rows.append(f"  {name:<{width}} " + " ".join(f"{v:>6,}" for v in (*values, sum(values))))
    return rows


def _missing_section(report: CheckReport) -> list[str]:
    if not report.missing:
        return ["All images present."] if report.total_rows else []
    first = ", ".join(report.missing[:SHOW_FIRST])
    more = ", ..." if len(report.missing) > SHOW_FIRST else ""
    where = f"from {report.image_dir}" if report.image_dir else "(no image folder)"
    return [f"{len(report.missing):,} of {report.total_rows:,} images missing {where}",
            f"  first: {first}{more}",
            "  hint: download MAMe_data_256.zip (python -m mame data download) and unzip it so "
            f"that the images sit in {report.data_dir}/data_256/, or point MAME_DIR at a "
            "complete copy", ""]


def _corrupt_section(report: CheckReport) -> list[str]:
    if not report.corrupt:
        return ["No unreadable images."] if report.images_verified else []
    lines = [f"{len(report.corrupt):,} unreadable images:"]
    return lines + [f"  {path}: {reason}" for path, reason in report.corrupt] + [""]


def _downloads_section(report: CheckReport) -> list[str]:
    """Each downloaded archive's checksums and how it was checked (from ``.mame-download.json``)."""
    if not report.downloads:
        return []
    lines = [f"Downloaded archives ({report.data_dir / PROVENANCE})"]
    for name, entry in sorted(report.downloads.items()):
        lines.append(f"  {name}: sha256 {entry.get('sha256')}, md5 {entry.get('md5')}, {entry.get('size', 0):,} bytes; "
                     f"{entry.get('checked')} ({entry.get('downloaded')})")
    return lines + [""]
