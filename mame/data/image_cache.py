"""Decoded-image cache: each image decoded and resized once per (image folder, resolution, crop), kept as
uint8 rows of a memory-mapped file that every backbone at that resolution, every epoch and every stage reads;
variable-shape images (``RaggedImageCache``, per image folder and pixel budget) each at their own size.

Layout: ``<cache>/<key>/`` holds ``pixels.u8`` (rows of ``size x size x 3`` bytes, appended), ``index.json``
(image path below the folder -> row, with the file's size and modification time when it was decoded: a changed file is
decoded again) and ``lock`` (one process fills at a time; the others wait, then find the rows there). The
key hashes the folder, the resolution, the crop and the decoding code, so a change to any of them starts
another cache. ``<cache>`` is ``data/cache/images`` (``MAME_IMAGE_CACHE`` elsewhere; ``off`` switches the
cache off), bounded to ``MAME_IMAGE_CACHE_GB`` (default 16): the caches used least recently are removed to
make room, and a set that cannot fit is decoded as before, without a cache. ``make clean`` removes it.

Pixel-exact: the uncached fixed-shape pipeline rounds its resized pixels to integers too, so a cached image is
the uncached one, bit for bit. Rows are written before the index names them (a killed fill leaves rows no
index points to, decoded again next time) and read through a read-only memory map: no split is ever held in
memory whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from mame import config
from mame.files import atomic_write

CACHE_ENV = "MAME_IMAGE_CACHE"
LIMIT_ENV = "MAME_IMAGE_CACHE_GB"
DEFAULT_LIMIT_GB = 16.0
PIXELS, INDEX, LOCK, USED = "pixels.u8", "index.json", "lock", "used"
FILL_BATCH = 64


def cache_root() -> Path | None:
    """The cache folder, or None when ``MAME_IMAGE_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.strip().lower() in ("off", "0", "no", "false"):
        return None
    return Path(value).expanduser().resolve() if value else config.data_home() / "cache" / "images"


def limit_bytes() -> int:
    try:
        return int(float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT_GB)) * 1e9)
    except ValueError:
        raise ValueError(f"{LIMIT_ENV}={os.environ[LIMIT_ENV]!r}: give a number of gigabytes") from None


def code_stamp(*functions: Callable | ModuleType) -> str:
    """A hash of the decoding code (the cached pixels are its output) and the TensorFlow version."""
    import tensorflow

    digest = hashlib.sha256(tensorflow.__version__.encode())
    for function in functions:
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()[:16]


@dataclass
class Stats:
    decoded: int = 0    # images decoded into the cache by this process
    reused: int = 0     # images found there
    seconds: float = 0.0


STATS = Stats()  # this process's totals (a run's kernel: that run's)


class ImageCache:
    """The cache of one (image folder, size, crop) key; ``rows`` maps image files to rows once filled."""

    def __init__(self, root: Path, image_dir: Path, size: int, crop: int | None, stamp: str):
        self.image_dir, self.size, self.crop = image_dir, size, crop
        side = crop or size
        self.shape = (side, side, 3)
        self.row_bytes = side * side * 3
        key = hashlib.sha256(json.dumps([str(image_dir.resolve()), size, crop, stamp]).encode()).hexdigest()[:20]
        self.root, self.folder = root, root / key

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _index(self) -> dict:
        try:
            return json.loads((self.folder / INDEX).read_text())
        except (OSError, ValueError):
            return {}

    def _write_index(self, index: dict) -> None:
        atomic_write(self.folder / INDEX, json.dumps(index))

    def fill(self, paths: Sequence[str], decode: Callable[[list[str]], object],
             sizes: Sequence[int] | None = None) -> np.ndarray | None:
        """Rows for ``paths`` (decoding those not cached, ``decode(paths)`` yielding uint8 batches in order);
        None when they cannot fit under the bound (the caller decodes without a cache). ``sizes``: each image's
        bytes where they differ (the ragged cache)."""
        start = time.perf_counter()
        with self._locked():
            index = self._index()
            stats = {p: os.stat(p) for p in paths}
            names = {p: Path(os.path.relpath(p, self.image_dir)).as_posix() for p in paths}  # class/img.jpg: unique

            def current(p: str) -> bool:
                entry = index.get(names[p])
                return entry is not None and entry[1:3] == [stats[p].st_size, stats[p].st_mtime_ns]

            missing = list(dict.fromkeys(p for p in paths if not current(p)))
            nbytes = dict(zip(paths, sizes)) if sizes is not None else {}
            needed = sum(nbytes.get(p, self.row_bytes) for p in missing)
            if missing and not self._make_room(needed):
                return None
            if missing:  # what it will take on disk, said before it is taken
                print(f"image cache: decoding {len(missing):,} images at {self.describe()}: {human_bytes(needed)} more "
                      f"on disk in {self.root}", file=sys.stderr, flush=True)
                self._decode_into(missing, decode, index, stats, names)
            (self.folder / USED).touch()
        seconds = time.perf_counter() - start
        STATS.decoded += len(missing)
        STATS.reused += len(paths) - len(missing)
        STATS.seconds += seconds
        if missing:
            print(f"image cache: decoded {len(missing):,} images at {self.describe()} in {seconds:.1f} s "
                  f"({len(paths) - len(missing):,} already there); {describe_use(self.root)}", file=sys.stderr,
                  flush=True)
        else:
            print(f"image cache: all {len(paths):,} images at {self.describe()} already decoded", file=sys.stderr,
                  flush=True)
        return np.array([self._entry(index[names[p]]) for p in paths], dtype=np.int64)

    def describe(self) -> str:
        return f"{self.shape[0]} px"

    def _entry(self, item: list) -> int | list:
        """What ``fill`` returns of an index entry: the row."""
        return item[0]

    def _decode_into(self, missing, decode, index, stats, names) -> None:
        pixels = self.folder / PIXELS
        with open(pixels, "ab") as out:
            row = out.tell() // self.row_bytes
            out.truncate(row * self.row_bytes)  # a partial row a killed fill left at the end
            done, step = 0, max(1, len(missing) // 20)
            for batch in decode(missing):
                batch = np.ascontiguousarray(batch, dtype=np.uint8)
                out.write(batch.tobytes())
                done += len(batch)
                if len(missing) >= 200 and (done // step) != ((done - len(batch)) // step):
                    print(f"image cache: {done:,}/{len(missing):,} decoded", file=sys.stderr, flush=True)
            out.flush()
            os.fsync(out.fileno())
        if done != len(missing):
            raise RuntimeError(f"{self.image_dir}: decoded {done} of {len(missing)} images for the cache")
        for offset, path in enumerate(missing):
            index[names[path]] = [row + offset, stats[path].st_size, stats[path].st_mtime_ns]
        self._write_index(index)

    def _make_room(self, needed: int) -> bool:
        """Remove the caches used least recently until ``needed`` more bytes fit under the bound; False if
        even this one alone would not fit."""
        limit = limit_bytes()
        mine = _size(self.folder)
        if mine + needed > limit:
            print(f"image cache: {human_bytes(needed)} more would pass the {limit / 1e9:g} GB bound "
                  f"({LIMIT_ENV}); decoding without the cache", file=sys.stderr, flush=True)
            return False
        others = sorted((f for f in self.root.iterdir() if f.is_dir() and f != self.folder), key=_last_used)
        total = mine + sum(_size(f) for f in others)
        while others and total + needed > limit:
            oldest = others.pop(0)
            total -= _size(oldest)
            shutil.rmtree(oldest, ignore_errors=True)
        return True

    def reader(self) -> Callable[[np.ndarray], np.ndarray]:
        """A function from row numbers to those images, uint8 ``(n, side, side, 3)``, read through a read-only
        memory map (only the rows asked for are touched). Consecutive rows are one slice (a view: 33 ms a pass of
        384 images at 224 px, against 48-78 ms gathering them row by row)."""
        rows = (self.folder / PIXELS).stat().st_size // self.row_bytes
        pixels = np.asarray(np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r", shape=(rows, *self.shape)))

        def read(wanted: np.ndarray) -> np.ndarray:
            wanted = np.asarray(wanted, dtype=np.int64)
            if wanted.size > 1 and wanted[-1] - wanted[0] == wanted.size - 1 and np.all(np.diff(wanted) == 1):
                return pixels[wanted[0]:wanted[-1] + 1]  # rows in order (no shuffle): a view, copied once into the tensor
            return pixels[wanted]

        return read


class RaggedImageCache(ImageCache):
    """The cache of one (image folder, pixel budget) key for variable-shape images: each image at its own size,
    appended to ``pixels.u8``; the index holds [byte offset, file size, file mtime, height, width]."""

    def __init__(self, root: Path, image_dir: Path, target_pixels: int, stamp: str):
        super().__init__(root, image_dir, 1, None, stamp)
        self.target_pixels, self.row_bytes = target_pixels, 0
        key = hashlib.sha256(json.dumps([str(image_dir.resolve()), "variable", target_pixels, stamp]).encode()).hexdigest()[:20]
        self.folder = root / key

    def describe(self) -> str:
        return f"about {self.target_pixels:,} pixels"

    def _entry(self, item: list) -> list:
        """(byte offset, height, width) of an index entry."""
        return [item[0], item[3], item[4]]

    def _decode_into(self, missing, decode, index, stats, names) -> None:
        pixels, placed = self.folder / PIXELS, []
        with open(pixels, "ab") as out:
            offset = out.tell()
            for batch in decode(missing):
                for image in batch:
                    image = np.ascontiguousarray(image, dtype=np.uint8)
                    out.write(image.tobytes())
                    placed.append([offset, int(image.shape[0]), int(image.shape[1])])
                    offset += image.nbytes
            out.flush()
            os.fsync(out.fileno())
        if len(placed) != len(missing):
            raise RuntimeError(f"{self.image_dir}: decoded {len(placed)} of {len(missing)} images for the cache")
        for (start, height, width), path in zip(placed, missing):
            index[names[path]] = [start, stats[path].st_size, stats[path].st_mtime_ns, height, width]
        self._write_index(index)

    def reader(self) -> Callable[[np.ndarray], list[np.ndarray]]:
        """A function from ``fill``'s entries to those images (uint8 ``(height, width, 3)`` views of a read-only
        memory map)."""
        pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")

        def read(entries: np.ndarray) -> list[np.ndarray]:
            return [np.asarray(pixels[start:start + height * width * 3]).reshape(height, width, 3)
                    for start, height, width in np.asarray(entries, dtype=np.int64)]

        return read


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) if folder.is_dir() else 0


def _last_used(folder: Path) -> float:
    try:
        return (folder / USED).stat().st_mtime
    except OSError:
        return 0.0


def describe_use(root: Path) -> str:
    """``cache holds 14 MB in 3 sets (bound 16 GB) at <root>``."""
    folders = [f for f in root.iterdir() if f.is_dir()] if root.is_dir() else []
    total = sum(_size(f) for f in folders)
    return f"cache holds {human_bytes(total)} in {len(folders)} sets (bound {limit_bytes() / 1e9:g} GB) at {root}"


def human_bytes(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:.0f} B"


def clear(root: Path | None = None) -> None:
    root = root or cache_root()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
