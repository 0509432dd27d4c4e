"""The 29 MAMe classes, as the official ``MAMe_labels.csv`` orders them (alphabetically).

These are facts about the published dataset, kept here so that the synthetic data, the loaders and
the report agree on one list without needing the official files at hand.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "Albumen photograph", "Bronze", "Ceramic", "Clay", "Engraving", "Etching", "Faience", "Glass",
    "Gold", "Graphite", "Hand-colored engraving", "Hand-colored etching", "Iron", "Ivory",
    "Limestone", "Lithograph", "Marble", "Oil on canvas", "Pen and brown ink", "Polychromed wood",
    "Porcelain", "Silk and metal thread", "Silver", "Steel", "Wood", "Wood engraving", "Woodblock",
    "Woodcut", "Woven fabric",
)

CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# Images per class in the official splits (train and val are balanced; test is not).
TRAIN_PER_CLASS = 700
VAL_PER_CLASS = 50
TEST_COUNTS: dict[str, int] = {
    "Albumen photograph": 700, "Bronze": 700, "Ceramic": 700, "Clay": 313, "Engraving": 700,
    "Etching": 700, "Faience": 700, "Glass": 700, "Gold": 700, "Graphite": 188,
    "Hand-colored engraving": 328, "Hand-colored etching": 584, "Iron": 265, "Ivory": 572,
    "Limestone": 700, "Lithograph": 700, "Marble": 257, "Oil on canvas": 700,
    "Pen and brown ink": 286, "Polychromed wood": 375, "Porcelain": 700,
    "Silk and metal thread": 95, "Silver": 700, "Steel": 133, "Wood": 700, "Wood engraving": 361,
    "Woodblock": 700, "Woodcut": 700, "Woven fabric": 700,
}

SPLITS: tuple[str, ...] = ("train", "val", "test")


def normalise_class_name(name: str) -> str:
    """Return the canonical spelling of a class name (the dataset CSV has ``'Woven fabric '``)."""
    return " ".join(name.split())
