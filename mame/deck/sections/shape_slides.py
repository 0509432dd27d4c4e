"""Fixed against variable shape, the MAMe paper's R65k-FS vs R65k-VS question, on the evaluation slides: the pairs
the evaluate run compared on test (its ``metrics.shapes``: McNemar's test of the variable-shape model against the
fixed-shape one), and what variable shape costs: the padding of this deck's images at the variable-shape runs'
pixel budget (``mame.data.aspect_buckets.Buckets``) and the features runs' speed in both shapes.

The other sections label a variable-shape run as such (``labelled``) and keep it out of what compares fixed-shape
runs (a fine-tuning ladder, the classifiers' pivot). Every number comes from the runs' metrics.json, the image sizes
from the dataset's image headers (the real MAMe: its official metadata).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from mame import config, plots
from mame.data import aspect_buckets, input_shape, metadata
from mame.deck.sections.slide_parts import placeholder
from mame.results import atomic_write_text

SIGNIFICANCE = 0.05
PAIRS_PER_SLIDE = 4
SHAPE_KEYS = input_shape.SETTINGS  # the settings a variable-shape run differs in from its fixed-shape twin
FIGURE = "shapes_padding.png"          # in the report's figures folder, its key beside it
WORDS = {"fixed": "fixed shape", "variable": "variable shape"}


# --- which runs are of which shape -----------------------------------------------------------------------------

def entry_shape(entry, features: dict | None = None) -> str:
    """``fixed`` or ``variable``: what the run recorded, else what its plan asks; a classify run has the shape of the
    features run it classifies (``features``: features run name -> its entry). Runs from before shapes: fixed."""
    if entry.run.stage == "classify":
        source = (features or {}).get(entry.run.needs.get("features", entry.run.backbone))
        return entry_shape(source) if source is not None else "fixed"
    m = (entry.metrics or {}).get("metrics") or {}
    return str(m.get("shape") or entry.run.params.get("shape") or "fixed")


def labelled(name: str, shape: str | None) -> str:
    """``EfficientNet-Lite0 (variable shape)`` for a variable-shape run, the name alone for a fixed-shape one."""
    return f"{name} (variable shape)" if shape == "variable" else name


def unshaped(planned: dict) -> dict:
    """A run's planned settings without its input shape: equal for a variable-shape step and its fixed-shape twin."""
    return {k: v for k, v in planned.items() if k not in SHAPE_KEYS}


def variable_runs(deck) -> list:
    """The plan's variable-shape runs (any state), plan order."""
    features = {e.run.name: e for e in deck.grouped.get("features", [])}
    return [e for e in deck.entries if e.run.stage in ("features", "classify", "finetune")
            and entry_shape(e, features) == "variable"]


# --- the pairs on test ------------------------------------------------------------------------------------------

def p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def pair_row(pair: dict, names: dict[str, str]) -> dict:
    """One recorded pair (``metrics.shapes[i]``) as a table row with its verdict."""
    test = pair["mcnemar"]
    delta = float(test["delta_pp"])
    winner = None if abs(delta) < 1e-9 else "variable" if delta > 0 else "fixed"
    row = {"approach": pair["approach"], "backbone": pair["backbone"], "name": names.get(pair["backbone"], pair["backbone"]),
           "fixed": pair["fixed"], "variable": pair["variable"], "paired_by": pair.get("paired_by", ""),
           "fixed_val": pair.get("fixed_val_accuracy"), "variable_val": pair.get("variable_val_accuracy"),
           "fixed_accuracy": pair["fixed_accuracy"], "variable_accuracy": pair["variable_accuracy"],
           "delta_pp": delta, "p_value": float(test["p_value"]), "p": p_text(float(test["p_value"])),
           "exact": bool(test.get("exact")), "discordant": test.get("discordant"), "n_images": pair["n_images"],
           "significant": float(test["p_value"]) < SIGNIFICANCE, "winner": winner}
    return {**row, "sentence": verdict(row)}


def verdict(row: dict, significance: float = SIGNIFICANCE) -> str:
    """Which shape won the pair on test, by how many points, and whether McNemar's test calls it significant."""
    what = f"{row['approach'][0].upper()}{row['approach'][1:]}, {row['name']}"
    test = f"McNemar{' exact' if row['exact'] else ''} p={row['p']}"
    if row["winner"] is None:
        return (f"{what}: a tie, {row['fixed_accuracy']:.1%} at both shapes on {row['n_images']:,} test images "
                f"({test}).")
    won, lost = (("variable", "fixed") if row["winner"] == "variable" else ("fixed", "variable"))
    said = "significant" if row["significant"] else "not significant"
    return (f"{what}: {WORDS[won]} won by {abs(row['delta_pp']):.1f} points ({row[f'{won}_accuracy']:.1%} against "
            f"{row[f'{lost}_accuracy']:.1%} on {row['n_images']:,} test images), {said} at {significance:g} ({test}).")


def pages(rows: list, per_slide: int = PAIRS_PER_SLIDE) -> list[list]:
    return [rows[i:i + per_slide] for i in range(0, len(rows), per_slide)]


def pairs_gap(evaluate_run: str | None, runs: list) -> dict:
    """Why the slide has no pair: evaluate has not run, or its record holds none."""
    if evaluate_run is None:
        return placeholder("missing", "Not compared yet: the evaluate stage scores the fixed- and variable-shape models on "
                                      "the test split, and it has not run yet (make run, or make report).")
    usable = [e.run.id for e in runs if e.metrics is not None and e.state in ("done", "stale")]
    why = (f"the variable-shape runs ({', '.join(usable)}) ran after it: run evaluate again" if usable else
           "no variable-shape run finished")
    return placeholder("missing", f"No fixed/variable-shape pair: the evaluate run {evaluate_run} recorded none "
                                  f"(metrics.shapes); {why}.", f"runs/{evaluate_run}")


# --- what variable shape costs ------------------------------------------------------------------------------------

def speed_rows(entries: list, names: dict[str, str]) -> list[dict]:
    """Per variable-shape features run, its images per second and distinct batch shapes beside the fixed-shape
    features run of its backbone (train and validation)."""
    usable = [e for e in entries if e.metrics is not None and e.state in ("done", "stale")]
    rows = []
    for vs in (e for e in usable if entry_shape(e) == "variable"):
        fixed = [e for e in usable if e.run.backbone == vs.run.backbone and entry_shape(e) == "fixed"
                 and e.metrics["metrics"].get("source", "imagenet") != "finetune"]
        fs = next((e for e in fixed if e.run.variant == "default"), fixed[0] if fixed else None)
        rows.append({"backbone": vs.run.backbone, "name": names.get(vs.run.backbone, vs.run.backbone),
                     "variable": _speed(vs), "fixed": _speed(fs) if fs else None})
    return rows


def _speed(entry) -> dict:
    m = entry.metrics["metrics"]
    speed, shapes = m.get("images_per_second") or {}, m.get("batch_shapes") or {}
    return {"run": entry.run.id, "train": speed.get("train"), "val": speed.get("val"),
            "shapes_train": shapes.get("train", 1), "shapes_val": shapes.get("val", 1),
            "image_size": m.get("image_size"), "target_pixels": m.get("target_pixels"), "placement": m.get("placement")}


def budgets(runs: list) -> list[int]:
    """The pixel budgets (``target_pixels``) the usable variable-shape runs recorded, smallest first."""
    found = {(e.metrics or {}).get("metrics", {}).get("target_pixels") for e in runs
             if e.metrics is not None and e.state in ("done", "stale")}
    return sorted(int(p) for p in found if p)


def budget_label(pixels: int) -> str:
    """``1,024 px (32²)``: a budget and, when it is a square's, that square's side."""
    side = math.isqrt(pixels)
    return f"{pixels:,} px" + (f" ({side}²)" if side * side == pixels else "")


def image_sizes(path: str, source: str | None) -> tuple[np.ndarray, str]:
    """(width, height) of the deck's images and what they are: the real MAMe's from its official metadata, any other
    dataset's train and validation images from their headers (no pixels decoded, no test image opened)."""
    if source == "mame":
        from mame.data import official

        sizes = [s for shapes in official.image_shapes().values() for s in shapes]
        return np.array(sizes, dtype=np.float64), "images of the real MAMe (sizes from its official metadata)"
    what = "train and validation images of this deck's data (sizes from their headers)"
    return _header_sizes(str(path), metadata.source_file(path).stat().st_mtime_ns), what


@functools.lru_cache(maxsize=2)
def _header_sizes(path: str, stamp: int) -> np.ndarray:
    """Header sizes of a dataset's train and validation images (``stamp``: its metadata's mtime, so an edited
    dataset is read again)."""
    from mame.data.padded_batches import header_sizes

    meta, image_dir = metadata.read_metadata(path), metadata.find_image_dir(path)
    files = [str(image_dir / r.image_file) for split in ("train", "val") for r in meta.split(split)]
    return header_sizes(files).astype(np.float64)


def padding(sizes: np.ndarray, pixels: list[int]) -> dict:
    """Per image its bucket and, per budget, its padded fraction (``Buckets.padded_fraction``), and the figure's data
    (``mame.plots.padding_data``): share of the images and mean padded fraction per bucket."""
    width, height = sizes[:, 0], sizes[:, 1]
    buckets = {p: aspect_buckets.Buckets(p) for p in pixels}
    first = buckets[pixels[0]]
    bucket = first.bucket(width, height)
    padded = {budget_label(p): b.padded_fraction(width, height) for p, b in buckets.items()}
    data = plots.padding_data(bucket, padded, aspect_buckets.RATIOS)
    used = int((data["counts"] > 0).sum())
    return {"data": data, "n_images": data["n"], "buckets": len(aspect_buckets.RATIOS), "used": used,
            "budgets": [{"label": s["label"], "pixels": p, "mean": s["overall"], "shapes": [list(x) for x in buckets[p].shapes],
                         "cost": 1 / (1 - s["overall"])} for p, s in zip(pixels, data["series"])]}


def padding_section(deck, runs: list) -> dict:
    """The padding of the deck's images at the variable-shape runs' budgets, or ``gap`` saying why there is none."""
    pixels = budgets(runs)
    dataset = next((d for e in [*runs, *deck.entries] if e.metrics
                    and (d := (e.metrics.get("run") or {}).get("dataset") or {}) and d.get("path")), {})
    if not pixels:
        return {"ready": False, "gap": placeholder("missing", "No padding to show: no variable-shape run recorded its "
                                                              "pixel budget (target_pixels) yet.")}
    try:
        sizes, what = image_sizes(dataset.get("path", ""), dataset.get("source"))
    except (metadata.DataError, OSError, ValueError) as error:
        return {"ready": False, "gap": placeholder("missing", f"No padding to show: the dataset's image sizes cannot be "
                                                              f"read ({error})", dataset.get("path", ""))}
    if not len(sizes):
        return {"ready": False, "gap": placeholder("missing", "No padding to show: the dataset has no train or validation "
                                                              "images.", dataset.get("path", ""))}
    return {"ready": True, "gap": None, "what": what, **padding(sizes, pixels)}


def section(evaluate_run: str | None, recorded_pairs: list[dict], deck) -> dict:
    """The shape slides' context: shown when the plan has a variable-shape run or the evaluate run compared a pair."""
    runs = variable_runs(deck)
    rows = [pair_row(p, deck.names) for p in recorded_pairs]
    where = [{"run": e.run.id, "stage": e.run.stage} for e in runs]
    shown = bool(runs or rows)
    paired_by = list({r["approach"]: {"approach": r["approach"], "how": r["paired_by"]}
                      for r in rows if r["paired_by"]}.values())
    return {"shown": shown, "pairs": rows, "pages": pages(rows), "paired_by": paired_by,
            "gap": None if rows else pairs_gap(evaluate_run, runs),
            "runs": where, "ladders": [w["run"] for w in where if w["stage"] == "finetune"],
            "speed": speed_rows(deck.grouped.get("features", []), deck.names) if shown else [],
            "padding": padding_section(deck, runs) if shown else {"ready": False, "gap": None}}


def conclusions(shapes: dict) -> list[str]:
    """One line per pair: which shape won on test, by how many points, with McNemar's p."""
    out = []
    for row in shapes.get("pairs") or []:
        what = f"{row['name']} {row['approach']}"
        if row["winner"] is None:
            out.append(f"Fixed vs variable shape, {what}: a tie on test ({row['fixed_accuracy']:.1%}; McNemar p={row['p']}).")
            continue
        said = "significant" if row["significant"] else "not significant"
        out.append(f"Fixed vs variable shape, {what}: {WORDS[row['winner']]} won by {abs(row['delta_pp']):.1f} points on "
                   f"test (FS {row['fixed_accuracy']:.1%}, VS {row['variable_accuracy']:.1%}; McNemar p={row['p']}, {said}).")
    return out


# --- the padding figure: drawn into the report's figures folder, again only when what it shows changed -------------

@functools.lru_cache(maxsize=1)
def _drawing_code() -> str:
    from mame.engine.run import cache

    return cache.closure_fingerprint({"mame.plots", __name__}, package_dir=config.PACKAGE_DIR)


def figure_key(data: dict) -> str:
    """What the figure shows and the code that draws it, hashed."""
    shown = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items() if k != "series"}
    shown["series"] = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in data["series"]]
    text = json.dumps([shown, _drawing_code()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def padding_figure(shapes: dict, out_dir: Path) -> Path | None:
    """The padding figure of ``shapes["padding"]`` at ``out_dir/FIGURE`` (None without one), kept when its key
    (``FIGURE.key`` beside it) says it shows the same data drawn by the same code."""
    path, stamp = Path(out_dir) / FIGURE, Path(out_dir) / f"{FIGURE}.key"
    if not shapes.get("padding", {}).get("ready"):
        path.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        return None
    key = figure_key(shapes["padding"]["data"])
    if path.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        return path
    stamp.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.save_figure(plots.draw_padding(shapes["padding"]["data"]), path)
    atomic_write_text(stamp, key)
    return path
