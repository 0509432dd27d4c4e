"""The "Data" slides: one training image per class, and the images per class in each split (the real
MAMe's test split is imbalanced; the synthetic data keeps the official per-class test shares). Drawn
from the dataset folder the runs recorded, into the report's build folder; images are opened for
display only (train split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mame import plots
from mame.data import metadata
from mame.deck.sections.evaluate_figures import thumbnail
from mame.deck.sections.slide_parts import spread

SAMPLE_SEED = 0
SAMPLE_COLUMNS = 8
MAX_SAMPLE_CLASSES = 32  # classes in the sample grid (four rows); past it, classes spread over the class order
MAX_COUNT_CLASSES = 30   # bars per split in the counts figure; past it, the largest and the smallest classes
FILES = {"samples": "dataset_samples.png", "counts_figure": "dataset_counts.png",
         "aspect_figure": "dataset_aspect_ratios.png"}  # in the report's figures folder


def dataset_section(setup: dict) -> dict:
    """Counts per split and class of the deck's dataset, or ``ready`` False when it cannot be read."""
    path = (setup.get("dataset") or {}).get("path") or ""
    empty = {"ready": False, "path": path, "counts": {}, "totals": {}, "test_ratio": None, "samples": None,
             "samples_shown": None, "counts_shown": None, "aspect_shown": None, "counts_figure": None, "aspect_figure": None,
             "one_size": None,
             "mame": setup.get("mame", True)}
    if not path:
        return empty
    try:
        meta = metadata.read_metadata(path)
    except (metadata.DataError, OSError):
        return empty
    counts = meta.counts()
    test = [n for n in counts.get("test", {}).values() if n > 0]
    n_classes = len(meta.classes)
    shown = (f"{MAX_SAMPLE_CLASSES} of the {n_classes} classes, evenly spread over the class order"
             if n_classes > MAX_SAMPLE_CLASSES else None)
    counted = (f"the {MAX_COUNT_CLASSES // 2} largest and the {MAX_COUNT_CLASSES // 2} smallest of the {n_classes} "
               "classes shown" if n_classes > MAX_COUNT_CLASSES else None)
    narrow = (f"the {MAX_COUNT_CLASSES // 2} narrowest and the {MAX_COUNT_CLASSES // 2} widest of the {n_classes} classes "
              "by median" if n_classes > MAX_COUNT_CLASSES else None)
    sizes = {(r.width, r.height) for r in meta.split("train") if r.width > 0 and r.height > 0}  # the test split unread
    return {**empty, "ready": True, "counts": counts, "totals": {s: sum(v.values()) for s, v in counts.items()},
            "samples_shown": shown, "counts_shown": counted, "aspect_shown": narrow,
            "test_ratio": max(test) / min(test) if test else None,
            "one_size": "{:.0f} × {:.0f} px".format(*sizes.pop()) if len(sizes) == 1 else None}


def sample_records(path: str | Path, *, seed: int = SAMPLE_SEED) -> list:
    """One training record per class (seeded), in class order; at most ``MAX_SAMPLE_CLASSES`` classes, evenly spread
    over the class order."""
    meta = metadata.read_metadata(path)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for record in meta.split("train"):
        by_class.setdefault(record.label, []).append(record)
    picked = [group[int(rng.integers(len(group)))] for _, group in sorted(by_class.items())]
    return spread(picked, MAX_SAMPLE_CLASSES)


def sample_figure(path: str | Path):
    """The grid of one training image per class (None when no image can be opened)."""
    image_dir, classes = metadata.find_image_dir(path), metadata.read_metadata(path).classes
    shown = [(classes[r.label], thumbnail(image_dir / r.image_file)) for r in sample_records(path)]
    shown = [(name, picture) for name, picture in shown if picture is not None]
    if not shown:
        return None
    return plots.draw_image_grid([p for _, p in shown], [n for n, _ in shown], ncols=SAMPLE_COLUMNS)


def aspect_ratios(path: str | Path) -> dict[str, np.ndarray]:
    """The width/height ratio of each training image per class, from the dataset's metadata (its Width and Height
    columns: the files' own sizes for the synthetic data and the full-resolution sizes for MAMe)."""
    by_class: dict[str, list[float]] = {}
    meta = metadata.read_metadata(path)
    for record in meta.split("train"):
        if record.width > 0 and record.height > 0:
            by_class.setdefault(meta.classes[record.label], []).append(record.width / record.height)
    return {name: np.array(values) for name, values in by_class.items()}


def aspect_figure(path: str | Path, *, mame: bool = True):
    """Aspect ratios per class, the dataset's training images beside all 37,407 real MAMe images (the official CSV
    shipped with the package); None when the dataset records no sizes."""
    from mame.data import official

    ours = aspect_ratios(path)
    if not ours:
        return None
    if not mame:
        return plots.draw_aspect_ratios(plots.aspect_ratio_data(ours, labels=("this dataset, train split", ""),
                                                                keep=MAX_COUNT_CLASSES))
    real = {name: np.array([w / h for w, h in shapes]) for name, shapes in official.image_shapes().items()}
    return plots.draw_aspect_ratios(plots.aspect_ratio_data(ours, real, labels=("this dataset, train split", "real MAMe, all splits")))


def dataset_figures(section: dict, out_dir: Path) -> dict[str, Path | None]:
    """The sample grid (``samples``), the class counts (``counts_figure``) and the aspect ratios per class
    (``aspect_figure``) in ``out_dir``, keyed as the section shows them (None where there is nothing to draw)."""
    if not section["ready"]:
        return dict.fromkeys(FILES)
    samples = None
    try:
        fig = sample_figure(section["path"])
    except (metadata.DataError, OSError):
        fig = None
    if fig is not None:
        samples = plots.save_figure(fig, out_dir / FILES["samples"])
    counts = plots.save_figure(plots.draw_class_counts(plots.class_counts_data(section["counts"], keep=MAX_COUNT_CLASSES)),
                               out_dir / FILES["counts_figure"])
    try:  # every image of one size: no spread to draw (the counts slide says so)
        fig = aspect_figure(section["path"], mame=section.get("mame", True)) if not section.get("one_size") else None
    except (metadata.DataError, OSError):
        fig = None
    aspects = plots.save_figure(fig, out_dir / FILES["aspect_figure"]) if fig is not None else None
    return {"samples": samples, "counts_figure": counts, "aspect_figure": aspects}
