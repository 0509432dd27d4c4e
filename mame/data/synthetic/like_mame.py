"""A full-size synthetic MAMe: the official ``MAMe_dataset.csv``'s 37,407 rows (file names, classes, splits and the
real images' widths and heights), each with a generated image at MAMe's ``data_256`` size (256 x 256, as the
official ``MAMe_data_256.zip`` resizes every picture), so that the real loader, ``data check`` and ``MAME_DIR``
read it as they read MAMe. For rehearsing the real dataset's size on a machine without it (``make bench SCALE=1``).

Each image is drawn by its class's family (``mame.data.synthetic.families``) at its real aspect ratio and about
256² pixels, then resized to 256 x 256 as MAMe's own were; its random stream comes from its file name, so a subset
(``images=``) holds the same bytes as the full set. Generation runs in ``jobs`` processes and can stop and go on:
each image is written whole (a temporary name, then a rename) and one already there is kept. ``synth.json`` says
what is there: the spec, and once every image is written, the time it took and the bytes on disk.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mame import config
from mame.data import official
from mame.data.synthetic.generator import MANIFEST, SynthError, read_manifest

LIKE_MAME_VERSION = "1"  # bump when an image's bytes change for the same row
IMAGE_FOLDER = "data_256"
SIDE = 256
CHUNK = 64  # images per task handed to a process


def official_rows(images: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The official CSV's header and rows, as strings (``Woven fabric `` and float sizes kept); with ``images``, a
    subset of about that many that keeps each (split, class) group's share of the whole, at least one row each,
    in the CSV's order."""
    header, *rows = list(csv.reader(io.StringIO(official.read_bytes(config.METADATA_CSV).decode("utf-8"))))
    if images is None or images >= len(rows):
        return header, rows
    if images < 1:
        raise SynthError(f"--images: expected 1 or more, not {images}")
    split, medium = header.index("Subset"), header.index("Medium")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row[split], row[medium]), []).append(i)
    keep = sorted(i for members in groups.values()
                  for i in members[:max(1, round(images * len(members) / len(rows)))])
    return header, [rows[i] for i in keep]


def render(file_name: str, medium: str, width: float, height: float) -> bytes:
    """The JPEG bytes of one image: its class's family at the real aspect ratio (clipped to 1:4) and about 256²
    pixels, resized to 256 x 256; the same bytes for the same row on every machine."""
    from PIL import Image

    from mame.data.synthetic.families import render_with_mask

    rng = np.random.default_rng([int(LIKE_MAME_VERSION), zlib.crc32(file_name.encode("utf-8"))])
    ratio = float(np.clip(width / max(height, 1.0), 0.25, 4.0))
    w, h = max(8, round(SIDE * ratio ** 0.5)), max(8, round(SIDE / ratio ** 0.5))
    pixels, _ = render_with_mask(medium.strip(), rng, w, h)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((SIDE, SIDE), Image.BILINEAR).save(buffer, format="JPEG",
                                                                      quality=int(rng.integers(85, 96)))
    return buffer.getvalue()


def _write_chunk(folder: str, rows: list[tuple[str, str, float, float]]) -> int:
    """Write each image of ``rows`` into ``folder`` (whole: a temporary name, then a rename); the bytes written."""
    written = 0
    for name, medium, width, height in rows:
        target = os.path.join(folder, name)
        data = render(name, medium, width, height)
        temp = os.path.join(folder, f".{name}.{os.getpid()}.part")
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, target)
        written += len(data)
    return written


def _start(out_dir: Path, spec: dict) -> None:
    """Refuse a folder holding something else; record the spec (an unfinished generation of the same spec goes on)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir}: exists and is not a folder")
    manifest = read_manifest(out_dir)
    if manifest is None and out_dir.is_dir() and any(out_dir.iterdir()):
        raise SynthError(f"{out_dir}: not empty and has no {MANIFEST}; refusing to write a synthetic MAMe into it")
    if manifest is not None and manifest.get("spec") != spec:
        raise SynthError(f"{out_dir}: holds another generation ({manifest.get('spec')}); remove it or choose another "
                         f"folder for {spec}")
    (out_dir / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    for leftover in (out_dir / IMAGE_FOLDER).glob(".*.part"):
        leftover.unlink()  # a generation stopped mid-write; its image is drawn again
    if manifest is None:
        (out_dir / MANIFEST).write_text(json.dumps({"spec": spec, "complete": False}, indent=2) + "\n")


def folder_bytes(folder: Path) -> int:
    """The bytes of the files directly in ``folder``."""
    with os.scandir(folder) as entries:
        return sum(e.stat().st_size for e in entries if e.is_file())


def generate_like_mame(out_dir: str | os.PathLike, *, images: int | None = None, jobs: int | None = None,
                       say: Callable[[str], None] | None = None) -> dict:
    """Generate (or finish) the full-size synthetic MAMe in ``out_dir``, or a subset of about ``images`` images;
    ``say`` hears its progress (images, time, disk, time left). Returns what ``synth.json`` records."""
    say = say or (lambda line: print(line, flush=True))
    out_dir = Path(out_dir).expanduser().absolute()
    header, rows = official_rows(images)
    spec = {"generator": "mame.synthetic.like_mame", "version": LIKE_MAME_VERSION, "images": len(rows), "side": SIDE}
    _start(out_dir, spec)
    folder = out_dir / IMAGE_FOLDER
    cols = [header.index(c) for c in ("Image file", "Medium", "Width", "Height")]
    todo = [(r[cols[0]], r[cols[1]], float(r[cols[2]]), float(r[cols[3]])) for r in rows]
    present = {e.name for e in os.scandir(folder)}
    missing = [row for row in todo if row[0] not in present]
    jobs = max(1, jobs or os.cpu_count() or 1)
    say(f"synthetic MAMe in {out_dir}: {len(rows):,} images at {SIDE}x{SIDE}, {len(rows) - len(missing):,} already "
        f"there, {len(missing):,} to draw in {jobs} processes")
    start, done, written = time.perf_counter(), 0, 0
    chunks = [missing[i:i + CHUNK] for i in range(0, len(missing), CHUNK)]
    every = max(1, len(chunks) // 20)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for i, nbytes in enumerate(pool.map(_write_chunk, [str(folder)] * len(chunks), chunks)):
            done, written = done + len(chunks[i]), written + nbytes
            if (i + 1) % every == 0 and done < len(missing):
                seconds = time.perf_counter() - start
                say(f"  {done:,}/{len(missing):,} images, {seconds:.0f} s, {written / done / 1024:.0f} KB each: about "
                    f"{seconds / done * (len(missing) - done) / 60:.1f} min and "
                    f"{written / done * (len(missing) - done) / 1e6:,.0f} MB more")
    seconds = time.perf_counter() - start
    write_tables(out_dir, header, rows)
    manifest = {"spec": spec, "complete": True, "seconds": round(seconds, 1), "drawn": len(missing), "jobs": jobs,
                "bytes": folder_bytes(folder), "per_image_s": round(seconds * jobs / len(missing), 4) if missing else None}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"done: {len(missing):,} images drawn in {seconds:.0f} s ({jobs} processes); {manifest['bytes'] / 1e6:,.0f} MB "
        f"in {folder}")
    return manifest


def write_tables(out_dir: Path, header: list[str], rows: list[list[str]]) -> None:
    """MAMe_dataset.csv (the official rows kept) and MAMe_labels.csv, each written whole."""
    from mame.files import atomic_write

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    atomic_write(out_dir / config.METADATA_CSV, text.getvalue())
    atomic_write(out_dir / config.LABELS_CSV, official.read_bytes(config.LABELS_CSV).decode("utf-8"))
