"""Object masks: where in an image the object is, for datasets that know it.

The synthetic generator writes ``masks/<Image file>.png`` beside the images for every object placed on a
backdrop (8-bit coverage, the image's size); the real MAMe has no masks. The explain stage uses them to
measure how much of a Grad-CAM map's heat falls on the object.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mame import config
from mame.data.metadata import DataError, Record

THRESHOLD = 0.5  # coverage at or above which a pixel counts as the object
ASPECT_TOLERANCE = 0.05  # a mask may be smaller than its image (a downscaled copy), not another shape


def mask_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir).expanduser() / config.MASK_DIR


def mask_path(data_dir: str | os.PathLike, image_file: str) -> Path:
    return mask_dir(data_dir) / f"{image_file}.png"


def known_masks(data_dir: str | os.PathLike, records: Sequence[Record]) -> np.ndarray:
    """Which records have a mask file (one folder listing, no file read)."""
    folder = mask_dir(data_dir)
    if not folder.is_dir():
        return np.zeros(len(records), dtype=bool)
    present = {entry.name for entry in os.scandir(folder)}
    return np.array([f"{r.image_file}.png" in present for r in records], dtype=bool)


def load_masks(data_dir: str | os.PathLike, records: Sequence[Record], *, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(masks, known)``: boolean masks ``(n, image_size, image_size)`` resized the way the data pipeline
    resizes images (square, bilinear), and which records have a mask (the others are all False).

    A mask file that exists but cannot be read, or whose shape differs from its image's, is a ``DataError``
    naming the file."""
    masks = np.zeros((len(records), image_size, image_size), dtype=bool)
    known = known_masks(data_dir, records)
    for i in np.flatnonzero(known):
        masks[i] = _read(mask_path(data_dir, records[i].image_file), records[i], image_size) >= THRESHOLD
    return masks, known


def _read(path: Path, record: Record, image_size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode != "L":
                raise DataError(f"{path}: expected an 8-bit grey mask, got mode {image.mode}")
            if record.width and record.height and abs(np.log(image.size[0] / image.size[1] * record.height
                                                              / record.width)) > ASPECT_TOLERANCE:
                raise DataError(f"{path}: mask is {image.size[0]}x{image.size[1]}, not the shape of its image "
                                f"({int(record.width)}x{int(record.height)})")
            resized = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable mask ({error})") from error
    return np.asarray(resized, dtype=np.float32) / 255.0
