"""A synthetic, MAMe-shaped dataset generated procedurally and deterministically (nothing is downloaded).

It is written in the real MAMe's on-disk format, pitfalls included, so the same loader reads both:
``MAMe_dataset.csv`` (the official header; ``Woven fabric `` with its trailing space; float sizes),
``MAMe_labels.csv`` (``index,name``, no header) and flat images in ``data/<Image file>``, some named
``<digits>.jpg`` and some ``<accession>.jpeg`` with extra dots. Where an object stands on a backdrop
(metals, ceramics, glass, ivory, stone, wood, cloth fragments), its mask is written beside the images as
``masks/<Image file>.png`` (8-bit coverage at the image's size; ``mame.data.masks`` reads it). Each medium has its own image family
(``mame.data.synthetic.families``), and the shape of a real MAMe image of its class
(``mame.data.synthetic.sizes``). ``synth.json`` records the spec, ``GENERATOR_VERSION`` and the counts.

Sizes that suit the profiles (the values themselves live in ``experiments/plan.yaml``):
smoke ``SynthSpec(train_per_class=4, val_per_class=2, test_fraction=0.004, size=48)`` (240 images);
demo ``SynthSpec(train_per_class=40, val_per_class=10, test_fraction=0.02, size=128)`` (1,764 images; about 15 s on one core).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from mame import config
from mame.classes import CLASS_NAMES, SPLITS, TEST_COUNTS
from mame.data.synthetic.families import render_with_mask
from mame.data.synthetic.sizes import image_size

GENERATOR_VERSION = "3"   # bump when images or tables change for the same spec: ensure() then regenerates
MANIFEST = "synth.json"
METADATA_CSV = config.METADATA_CSV
LABELS_CSV = config.LABELS_CSV
IMAGE_DIR = "data"   # the full-resolution folder name of the real dataset
MASK_DIR = config.MASK_DIR
HEADER = ("Image file", "Medium", "Museum", "Museum-based instance ID", "Subset",
          "Width", "Height", "Product size", "Aspect ratio")
CSV_SPELLING = {"Woven fabric": "Woven fabric "}   # the official dataset CSV's trailing space
MUSEUMS = (("Metropolitan Museum of Art", 0.67), ("The Cleveland Museum of Art", 0.19),
           ("Los Angeles County Museum of Art", 0.14))
MIN_SIZE, MAX_SIZE = 16, 1024


class SynthError(ValueError):
    """Bad synthetic-dataset input; the message names the spec or folder and the problem."""


@dataclass(frozen=True)
class SynthSpec:
    """How much synthetic MAMe to make: images per class for train/val, the test share of the official
    per-class test counts (at least 1 each, so the test split keeps the real imbalance), and the pixel
    budget: each image has about ``size``² pixels, at the aspect ratio of a real image of its class
    (``mame.data.synthetic.sizes``)."""

    train_per_class: int
    val_per_class: int
    test_fraction: float
    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_per_class", "val_per_class", "size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SynthError(f"SynthSpec.{name}: expected an integer, got {value!r}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise SynthError(f"SynthSpec: train/val per class must be >= 1, got {self.train_per_class}/"
                             f"{self.val_per_class}")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0 < self.test_fraction <= 1:
            raise SynthError(f"SynthSpec.test_fraction: expected a number in (0, 1], got {self.test_fraction!r}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise SynthError(f"SynthSpec.size: expected {MIN_SIZE}..{MAX_SIZE} pixels, got {self.size}")
        if self.seed < 0:
            raise SynthError(f"SynthSpec.seed: expected a non-negative integer, got {self.seed}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthSpec:
        """Build from a mapping with exactly the field names (``seed`` optional)."""
        names = {f.name for f in fields(cls)}
        unknown, missing = set(d) - names, names - set(d) - {"seed"}
        if unknown or missing:
            raise SynthError(f"SynthSpec: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        d = asdict(self)
        d["test_fraction"] = float(d["test_fraction"])
        return {k: (v if isinstance(v, float) else int(v)) for k, v in d.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class, in ``CLASS_NAMES`` order."""
        test = {c: max(1, round(TEST_COUNTS[c] * self.test_fraction)) for c in CLASS_NAMES}
        return {"train": {c: self.train_per_class for c in CLASS_NAMES},
                "val": {c: self.val_per_class for c in CLASS_NAMES}, "test": test}


class _Namer:
    """Unique, museum-styled file names and instance ids, drawn from one seeded stream."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 0])
        self.used: set[str] = set()

    def __call__(self) -> tuple[str, str, str]:
        """(image file, museum, museum-based instance id)."""
        museum = MUSEUMS[int(self.rng.choice(len(MUSEUMS), p=[p for _, p in MUSEUMS]))][0]
        while True:
            file, instance = self._draw(museum)
            if file not in self.used:
                self.used.add(file)
                return file, museum, instance

    def _draw(self, museum: str) -> tuple[str, str]:
        r = self.rng
        if museum.startswith("The Cleveland"):
            accession = f"{r.integers(1915, 2020)}.{r.integers(1, 2000)}"
            if r.random() < 0.3:
                accession += f".{r.integers(1, 60)}"
            return f"{accession}.jpeg", accession
        if museum.startswith("Los Angeles"):
            stem = f"{r.integers(100000, 300000)}-{r.integers(1000, 300000)}"
            return f"{stem}.jpg", stem
        accession = (f"{r.integers(1870, 2020)}.{r.integers(1, 600)}" if r.random() < 0.5
                     else f"{r.integers(1, 100):02d}.{r.integers(1, 300)}.{r.integers(1, 120)}")
        return f"{r.integers(1000, 900000)}.jpg", accession


def _encode(spec: SynthSpec, class_index: int, split_index: int, item: int) -> tuple[bytes, bytes | None, int, int]:
    """Render one image from its own seeded stream; return JPEG bytes, PNG mask bytes (or None), width, height."""
    rng = np.random.default_rng([spec.seed, 1, class_index, split_index, item])
    width, height = image_size(rng, CLASS_NAMES[class_index], spec.size)
    pixels, mask = render_with_mask(CLASS_NAMES[class_index], rng, width, height)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(85, 96)))
    mask_png = None
    if mask is not None:
        png = io.BytesIO()
        Image.fromarray((np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)).save(png, format="PNG")
        mask_png = png.getvalue()
    return buffer.getvalue(), mask_png, width, height


def _write_images(folder: Path, spec: SynthSpec) -> list[tuple]:
    """Write every image into ``folder/data`` (object masks into ``folder/masks``); return the CSV rows in file order."""
    (folder / IMAGE_DIR).mkdir()
    (folder / MASK_DIR).mkdir()
    namer, rows = _Namer(spec.seed), []
    counts = spec.counts()
    for ci, name in enumerate(CLASS_NAMES):
        for si, split in enumerate(SPLITS):
            for item in range(counts[split][name]):
                file, museum, instance = namer()
                data, mask, width, height = _encode(spec, ci, si, item)
                (folder / IMAGE_DIR / file).write_bytes(data)
                if mask is not None:
                    (folder / MASK_DIR / f"{file}.png").write_bytes(mask)
                rows.append((file, CSV_SPELLING.get(name, name), museum, instance, split, float(width),
                             float(height), float(width * height), round(width / height, 4)))
    return rows


def _write_tables(folder: Path, spec: SynthSpec, rows: list[tuple]) -> None:
    """Write the two CSVs, then the manifest (last, so its presence means the folder is complete)."""
    with open(folder / METADATA_CSV, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    labels = "".join(f"{i},{name}\n" for i, name in enumerate(CLASS_NAMES))
    (folder / LABELS_CSV).write_text(labels, encoding="utf-8")
    counts = spec.counts()
    manifest = {"generator": "mame.synthetic", "generator_version": GENERATOR_VERSION,
                "spec": spec.to_dict(), "counts": counts,
                "totals": {s: sum(counts[s].values()) for s in SPLITS}, "images": len(rows),
                "masks": sum(1 for _ in (folder / MASK_DIR).iterdir())}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_manifest(out_dir: Path) -> dict | None:
    """The ``synth.json`` of a generated folder, or None if absent or unreadable."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _check_target(out_dir: Path) -> None:
    """Refuse to replace a folder that exists, is not empty and was not made by this generator."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and read_manifest(out_dir) is None:
        raise SynthError(f"{out_dir}: not empty and has no {MANIFEST}; refusing to replace it")


def _temp_name(out_dir: Path, kind: str) -> Path:
    """A sibling temp folder name that records the writing process: ``.<name>.<kind>-<pid>-<random>``."""
    return out_dir.with_name(f".{out_dir.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named a temp folder still runs (not this one: its leftovers are stale)."""
    try:
        pid = int(temp.name.rsplit("-", 2)[-2])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clear_leftovers(out_dir: Path) -> None:
    """Remove temp folders left next to ``out_dir`` by generations whose process has died."""
    for kind in ("partial", "old"):
        for leftover in out_dir.parent.glob(f".{out_dir.name}.{kind}-*"):
            if not _writer_alive(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(built: Path, out_dir: Path) -> None:
    """Rename a finished folder onto ``out_dir``, replacing an old generation."""
    old = None
    if out_dir.exists():
        old = _temp_name(out_dir, "old")
        out_dir.rename(old)
    try:
        built.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate(out_dir: Path, spec: SynthSpec) -> Path:
    """Generate the dataset of ``spec`` into ``out_dir`` (replacing an earlier generation) and return it.

    Built in a sibling temp folder and renamed into place: an interrupted run leaves no ``out_dir``
    (or the previous one, untouched). Same spec, same bytes.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(out_dir)
    build = _temp_name(out_dir, "partial")
    build.mkdir()
    try:
        _write_tables(build, spec, _write_images(build, spec))
        _swap_into_place(build, out_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out_dir


def ensure(out_dir: Path, spec: SynthSpec) -> Path:
    """Return ``out_dir`` at once if its manifest matches ``spec`` and ``GENERATOR_VERSION``; else generate. Processes
    asking at once take turns (a lock on the parent folder): one generates, the others find it made instead of
    swapping another copy in under a reader."""
    import fcntl

    out_dir = Path(out_dir).expanduser().absolute()
    if _current(out_dir, spec):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    parent = os.open(out_dir.parent, os.O_RDONLY)
    try:
        fcntl.flock(parent, fcntl.LOCK_EX)
        return out_dir if _current(out_dir, spec) else generate(out_dir, spec)
    finally:
        os.close(parent)  # releases the lock


def _current(out_dir: Path, spec: SynthSpec) -> bool:
    manifest = read_manifest(out_dir)
    return (manifest is not None and manifest.get("generator_version") == GENERATOR_VERSION
            and manifest.get("spec") == spec.to_dict() and (out_dir / METADATA_CSV).is_file())
