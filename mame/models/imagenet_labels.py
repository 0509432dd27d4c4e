"""The 1,000 ImageNet-1k class names, offline, in the order of the Keras applications' output layer.

Read from ``mame/models/imagenet/classes.tsv`` (source and licence in the README beside it); Keras' own
``decode_predictions`` would download its index file on first use. No TensorFlow import here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

N_CLASSES = 1000


@dataclass(frozen=True)
class ImagenetClass:
    index: int
    synset: str     # WordNet id, e.g. "n03792782"
    lemmas: str     # every WordNet lemma, e.g. "mountain bike, all-terrain bike, off-roader"

    @property
    def name(self) -> str:
        """The first lemma ("mountain bike"), what the slides show."""
        return self.lemmas.split(",")[0].strip()


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImagenetClass, ...]:
    """Every class, index 0-999; a damaged file is an error naming it and the line."""
    source = resources.files("mame.models").joinpath("imagenet", "classes.tsv")
    rows = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) != len(rows):
            raise ValueError(f"{source}: line {number}: expected '<index {len(rows)}>\\t<synset>\\t<lemmas>', "
                             f"got {line[:80]!r}")
        rows.append(ImagenetClass(int(parts[0]), parts[1], parts[2]))
    if len(rows) != N_CLASSES:
        raise ValueError(f"{source}: {len(rows)} classes, expected {N_CLASSES}")
    return tuple(rows)


def class_names() -> list[str]:
    """The display name of every class, by index."""
    return [c.name for c in imagenet_classes()]
