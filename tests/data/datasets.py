"""Small image datasets in the layouts users bring (class folders, split folders, a CSV), written by the tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("RGB", "L", "RGBA", "P", "CMYK", "LA")  # colour, grey, alpha, palette, CMYK, grey + alpha


def picture(seed: int, mode: str = "RGB", size: tuple[int, int] = (40, 28)) -> Image.Image:
    """A small non-square image (width, height), flat colour plus noise, in ``mode``."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    return image if mode == "RGB" else image.convert(mode)


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.mode == "CMYK" and path.suffix.lower() not in (".jpg", ".jpeg"):
        path = path.with_suffix(".jpg")
    image.save(path)
    return path


def class_tree(root: Path, classes: list[str], per_class: int, *, split: str | None = None, nested: bool = False,
               modes: tuple[str, ...] = ("RGB",), ext: str = ".png", seed: int = 0) -> Path:
    """``root/[split/]<class>/[sub/]<i><ext>``: ``per_class`` images a class, cycling through ``modes``."""
    base = root / split if split else root
    for c, name in enumerate(classes):
        for i in range(per_class):
            folder = base / name / (f"part{i % 2}" if nested else "")
            mode = modes[(c + i) % len(modes)]
            save(picture(seed + 1000 * c + i, mode, (40 + 3 * i, 28 + c % 5)), folder / f"{i}{ext}")
    return root


def csv_dataset(root: Path, rows: list[tuple[str, str, str | None]], *, columns=("file_name", "label", "split"),
                name: str = "metadata.csv", images: str = "") -> Path:
    """Images for ``rows`` of (file, label, split or None) under ``root/images``, and the CSV naming them."""
    for i, (file, _, _) in enumerate(rows):
        save(picture(i), root / images / file)
    root.mkdir(parents=True, exist_ok=True)
    with (root / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        with_split = rows and rows[0][2] is not None
        writer.writerow(columns if with_split else columns[:2])
        for file, label, split in rows:
            writer.writerow([file, label, split] if with_split else [file, label])
    return root / name
