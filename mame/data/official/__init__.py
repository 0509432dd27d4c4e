"""The official MAMe metadata (``MAMe_dataset.csv``, ``MAMe_labels.csv``, ``MAMe_toy_dataset.csv``), shipped with
the package, gzipped where large (README.md here: source and checksums).

Read for what the real dataset looks like without its images: each class's image shapes (the synthetic
generator draws its sizes from them), and the tests' real metadata. Light: no numpy, no TensorFlow.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
FILES = ("MAMe_dataset.csv", "MAMe_labels.csv", "MAMe_toy_dataset.csv")


def read_bytes(name: str) -> bytes:
    """The file ``name`` (one of ``FILES``) as MAMe ships it; FileNotFoundError naming the file if it is gone."""
    if name not in FILES:
        raise ValueError(f"{name!r}: not an official MAMe metadata file ({', '.join(FILES)})")
    plain, packed = FOLDER / name, FOLDER / f"{name}.gz"
    if plain.is_file():
        return plain.read_bytes()
    if packed.is_file():
        return gzip.decompress(packed.read_bytes())
    raise FileNotFoundError(f"{packed}: the official MAMe metadata is missing from the package (see {FOLDER}/README.md)")


@functools.lru_cache(maxsize=1)
def image_shapes() -> dict[str, list[tuple[float, float]]]:
    """Every image's (width, height) in pixels per class of ``MAMe_dataset.csv`` (names stripped, as the loader
    reads them), in file order: 37,407 images."""
    shapes: dict[str, list[tuple[float, float]]] = {}
    for row in csv.DictReader(io.StringIO(read_bytes("MAMe_dataset.csv").decode("utf-8"))):
        shapes.setdefault(row["Medium"].strip(), []).append((float(row["Width"]), float(row["Height"])))
    return shapes
