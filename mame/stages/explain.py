"""Stage ``explain``: where the models look (Grad-CAM), the scratch baseline beside the fine-tuned models.

Notebook ``07_explain.ipynb`` calls ``chosen_models`` (the models ``evaluate`` chose and recorded in its
run's ``metrics["chosen"]``: the best validation step per fine-tuned backbone and the best scratch rung; its
classifiers on extracted features are skipped; this stage never chooses again) -> ``sample`` -> ``explain``
-> ``compare`` -> ``save``. ``inputs`` holds the identity of the evaluate run it needs (``inputs["evaluate"]``)
and of every scratch and fine-tuning run it reads (``inputs[stage][run name]``): ``{"stage", "backbone",
"variant", "name", "seed", "folder", "step"}``.
Validation images only, ``per_class`` of each class. Each model's Grad-CAM map is taken, for the true class by
default, at a layer whose map is as fine as the finest last-conv map among the models (``grid="common"``: heat
on the object compares models, not map resolutions; ``grid="last"``: the last conv layer the registry names for
its backbone, the scratch CNN's last Conv2D); the reference is explained at its own last layer too. A
variable-shape model is explained on its own padded batches, each map cut to its image (no pad) and squeezed to
the others' square.
Where the dataset knows the object's mask (the synthetic data writes one for objects on a backdrop), the
share of the map's heat inside the mask is measured per image; a uniform map would score the object's
area share ("chance"). The fine-tuned reference (best on validation) and the scratch model are compared on
the same images with the Wilcoxon signed-rank test. Heatmaps are computed here and drawn by the deck.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame import results
from mame.data import masks
from mame.stages.support import common, significance
from mame.stages.support.parameters import IDENTITY, Notebook, StageConfig, param
from mame.stages.support.selection import Candidate, check_identity

MAPS_FILE = "gradcam.npz"
MAX_DISPLAY_CLASSES = 30  # classes in the slides' grids (one image each); past it, spread over the class order
DISPLAY_SIZE = 128   # px: the images and maps kept for the slides (square, as the models see them)
TARGETS = ("true", "predicted")
GRIDS = ("common", "last")
EVALUATE_METRICS = "metrics.json"  # the evaluate run's, holding metrics["chosen"]
EXPLAINED = ("finetune", "scratch")  # the chosen models that are conv nets (evaluate's classify pipelines are not)


@dataclass
class ExplainConfig(StageConfig):
    """The stage parameters of ``07_explain.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    per_class: int = param(8, "validation images per class (the slides show one per class)")
    target: str = param("true", "the class each map explains: true | predicted")
    bootstrap: int = param(1000, "resamples for the 95 % intervals")
    batch_size: int = param(16)
    grid: str = param("common", "common: every model at its deepest layer whose map grid reaches the finest of the models' "
                                "last-conv grids (maps compared like for like) | last: each model's last conv layer")


NOTEBOOK = Notebook("07_explain.ipynb", ExplainConfig,
                    inputs_doc='{"evaluate": identity, "finetune": {run name: identity}, "scratch": {run name: identity}}; '
                               "identity: " + IDENTITY)


@dataclass
class Sample:
    records: list
    image_dir: Path
    data_dir: Path
    display: list[int]          # one index per class (the first sampled image of each; at most 30 classes), for the slides
    known: np.ndarray           # which records have an object mask
    classes: tuple[str, ...] = ()  # the dataset's class names, in label order


@dataclass
class Explained:
    candidate: Candidate
    layer: str
    grid: tuple[int, int]       # the layer's spatial size: the map's real resolution before upsampling
    image_size: int
    maps: np.ndarray            # (n, size, size) in [0, 1]
    probabilities: np.ndarray   # (n, classes)
    class_index: np.ndarray     # the class each map explains
    mass: np.ndarray            # (n,) share of heat inside the object mask, NaN without a mask or without heat
    chance: np.ndarray          # (n,) the mask's area share (a uniform map's score), NaN without a mask
    hot: np.ndarray             # (n,) share of the image at >= half the map's peak (NaN for an all-zero map)
    native: dict | None = None  # the reference explained at its own last conv layer too: layer, grid, mass, hot


def chosen_models(inputs: dict) -> list[Candidate]:
    """The models the evaluate run chose, as its ``metrics.json`` records them (``metrics["chosen"]``), each
    at the folder of the run the plan hands over, with that run's identity (backbone, variant, step). The
    feature-extraction pipelines it chose (``stage: "classify"``: a scikit-learn classifier on a frozen
    backbone's features) are skipped: Grad-CAM needs a trained conv net, and the frozen backbone's maps
    would not depend on the classifier."""
    evaluate_run = (inputs or {}).get("evaluate")
    if not isinstance(evaluate_run, dict):
        raise ValueError("explain takes the models evaluate chose: the plan must give it `needs: [evaluate]` "
                         f"(inputs had: {sorted(inputs or {})})")
    path = Path(evaluate_run["folder"]) / EVALUATE_METRICS
    try:
        record = (json.loads(path.read_text(encoding="utf-8")).get("metrics") or {}).get("chosen")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the evaluate run's metrics: {exc}") from None
    if not record:
        raise ValueError(f"{path}: no metrics.chosen record (the models evaluate chose); rerun evaluate "
                         "with the current code")
    out = []
    for entry in record:
        if entry["stage"] not in EXPLAINED:
            continue  # a classifier on extracted features: no conv net of its own to explain
        if entry.get("twin_of"):
            continue  # a fixed-shape step scored on test only to meet its variable-shape twin
        handed = (inputs.get(entry["stage"]) or {}).get(entry["run"])
        if handed is None:
            raise ValueError(f"{path}: evaluate chose {entry['stage']}/{entry['run']}, which the plan does not hand "
                             f"explain (its reads: {sorted(k for k in inputs if k != 'evaluate')})")
        run = check_identity(entry["stage"], entry["run"], handed)
        out.append(Candidate(run["stage"], run["name"], Path(run["folder"]), float(entry["val_accuracy"]), {},
                             run["backbone"], variant=run["variant"], step=run["step"], why=entry.get("why", ""),
                             shape=entry.get("shape", "fixed")))
    if not out:
        raise ValueError(f"{path}: evaluate chose no conv net to explain (only classifiers on extracted features: "
                         f"{', '.join(e['model'] for e in record)})")
    return out


def sample(data_dir: str | Path, *, per_class: int, seed: int = 0) -> Sample:
    """``per_class`` validation images of each class (seeded); the test split is never read."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    splits = common.load_splits(data_dir, ("val",), max_per_class=per_class, seed=seed, subsampled=("val",))
    records = splits.records["val"]
    first: dict[int, int] = {}
    for i, record in enumerate(records):
        first.setdefault(record.label, i)
    shown = sorted(first)
    if len(shown) > MAX_DISPLAY_CLASSES:  # the slides' grids: classes evenly spread over the class order
        shown = [shown[round(k * (len(shown) - 1) / (MAX_DISPLAY_CLASSES - 1))] for k in range(MAX_DISPLAY_CLASSES)]
    return Sample(records, splits.image_dir, Path(data_dir), [first[k] for k in shown],
                  masks.known_masks(data_dir, records), splits.classes)


def label(candidate: Candidate) -> str:
    """How the slides name a model, from its run's identity: ``VGG16 #3 (fine-tuned)`` (backbone, step),
    ``Scratch r7-gap`` (variant)."""
    if candidate.stage == "scratch":
        return f"Scratch {candidate.variant}"
    name = _spec(candidate).name if _spec(candidate) else candidate.backbone or candidate.stage
    if candidate.shape == "variable":
        return f"{name} {candidate.variant} (fine-tuned, variable shape)"
    return f"{name} #{candidate.step} (fine-tuned)"


def layer_for(model, candidate: Candidate) -> str:
    """The registry's last conv layer for a fine-tuned backbone, the last Conv2D of a scratch CNN."""
    from mame.models import builders

    spec = _spec(candidate)
    if spec is not None and spec.last_conv_layer in {layer.name for layer in model.layers}:
        return spec.last_conv_layer
    return builders.last_conv_layer_name(model)


def grid_of(model, layer: str) -> tuple[int, int]:
    """The spatial size of ``layer``'s output: the map's real resolution before upsampling."""
    return tuple(int(d) for d in model.get_layer(layer).output.shape[1:3])


def layer_at_grid(model, last: str, grid: tuple[int, int]) -> str:
    """The deepest layer up to ``last`` whose output is a map of ``grid`` cells (else the deepest with at least as
    many each way; never a padding layer, whose border is not the image): where Grad-CAM gives a map as fine as
    ``grid``. ``last`` itself when its own grid is ``grid``."""
    import keras

    names = [layer.name for layer in model.layers]
    maps = []
    for layer in reversed(model.layers[:names.index(last) + 1]):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is None or len(shape) != 4 or any(d is None for d in shape[1:3]) or \
                isinstance(layer, keras.layers.ZeroPadding2D):
            continue
        maps.append((layer.name, (int(shape[1]), int(shape[2]))))
    exact = next((name for name, cells in maps if cells == tuple(grid)), None)
    finer = next((name for name, cells in maps if cells[0] >= grid[0] and cells[1] >= grid[1]), None)
    if exact or finer:
        return exact or finer
    raise ValueError(f"{model.name}: no layer before {last!r} has a {grid[0]}x{grid[1]} map")


def common_grid(last_grids: list[tuple[int, int]]) -> tuple[int, int]:
    """The finest of the models' last-conv grids: every model is explained at a map this fine."""
    return max(last_grids, key=lambda g: (g[0] * g[1], g))

def _spec(candidate: Candidate):
    """The registry's entry for the candidate's backbone (None for a scratch CNN or an unknown key)."""
    from mame.models import backbones

    try:
        return backbones.get_backbone(candidate.backbone) if candidate.backbone else None
    except ValueError:
        return None


def explain(chosen: list[Candidate], data: Sample, *, target: str = ExplainConfig.target,
            batch_size: int = ExplainConfig.batch_size, grid: str = ExplainConfig.grid) -> list[Explained]:
    """Each chosen model's Grad-CAM maps of the sample, in batches, with its probabilities and mask measures.
    ``grid="common"``: every model at a layer whose map is at least as fine as the finest last-conv grid among them
    (``layer_at_grid``), so that heat on the object compares models, not map resolutions; the fine-tuned reference
    is explained at its own last conv layer too (``Explained.native``: the grid's effect on one model)."""
    from mame.models import builders

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    models = {c.name: builders.load_model(c.path / common.MODEL_FILE, compile=False) for c in chosen}
    last = {c.name: layer_for(models[c.name], c) for c in chosen}
    fixed = [c for c in chosen if c.shape == "fixed"]
    finest = common_grid([grid_of(models[c.name], last[c.name]) for c in fixed]) if fixed else None
    best = max((c for c in fixed if c.stage == "finetune"), key=lambda c: c.val_accuracy, default=None)
    layers: dict = {}
    for c in fixed:
        layers[c.name] = layer_at_grid(models[c.name], last[c.name], finest) if grid == "common" else last[c.name]
    for c in chosen:  # variable shape: the layer chosen for a fixed-shape model of its backbone (the same stride)
        if c.shape == "variable":
            layers[c.name] = next((layers[f.name] for f in fixed if f.backbone == c.backbone), last[c.name])
    out, masks_at = [], {}
    for c in chosen:
        model = models.pop(c.name)
        layer = layers[c.name]
        if c.shape == "variable":
            out.append(_explain_unpadded(model, c, layer, data, target, masks_at, batch_size))
            del model
            continue
        explained = _explain_at(model, c, layer, data, target, batch_size, masks_at)
        if c is best and layer != last[c.name]:
            native = _explain_at(model, c, last[c.name], data, target, batch_size, masks_at)
            explained.native = {"layer": native.layer, "grid": list(native.grid), "mass_inside": _mean(native.mass),
                                "hot_area": _mean(native.hot), "n_empty": int(np.sum(native.maps.max(axis=(1, 2)) == 0))}
        out.append(explained)
        del model
    return out


def _explain_unpadded(model, c: Candidate, layer: str, data: Sample, target: str, masks_at: dict,
                      batch_size: int = ExplainConfig.batch_size) -> Explained:
    """A variable-shape model: Grad-CAM of its own padded batches (bucket by bucket, as it trains and is tested),
    each map cut to its image (the valid region: no pad) and squeezed to the square the other models' maps and
    the masks have, to be measured the same way."""
    from mame.data import pipeline
    from mame.data.input_shape import from_record
    from mame.models import gradcam
    from mame.stages.support.selection import run_metrics

    shape = from_record(run_metrics(c.path))
    size = shape.image_size
    dataset = pipeline.make_dataset(data.records, data.image_dir, batch_size=batch_size, **shape.dataset_args())
    maps, probabilities, classes, cells = [], [], [], []
    for images, labels in dataset:
        pixels, valid = np.asarray(images["image"]), np.asarray(images["valid_size"])
        batch_maps, index, prob = gradcam.heatmaps_with_probabilities(
            model, pixels, layer_name=layer, class_index=np.asarray(labels) if target == "true" else None,
            valid_size=valid)
        box = np.array(pixels.shape[1:3])
        grid = np.array(_cells(model, layer, tuple(box)))
        for k, (h, w) in enumerate(valid):
            top, left = (box - (h, w)) // 2 if shape.placement == "centre" else (0, 0)
            crop = batch_maps[k:k + 1, top:top + h, left:left + w]  # the image only, scaled to its own peak
            maps.append(_resize(crop / crop.max() if crop.max() > 0 else crop, size)[0])
            cells.append(np.maximum(1, np.rint(grid * (h, w) / box)).astype(int))
        probabilities.append(prob)
        classes.append(index)
    maps = pipeline.in_record_order(dataset, np.stack(maps).astype(np.float32))
    mass, chance = _measure(maps, data, size, masks_at)
    median = tuple(int(round(float(np.median([g[k] for g in cells])))) for k in (0, 1))  # its images' median map
    return Explained(c, layer, median, size, maps, pipeline.in_record_order(dataset, np.concatenate(probabilities)),
                     pipeline.in_record_order(dataset, np.concatenate(classes)), mass, chance, gradcam.hot_area(maps))


def _cells(model, layer: str, size: tuple[int, int]) -> tuple[int, int]:
    """The map size of ``layer`` for one image of ``size`` (height, width)."""
    import keras

    out = keras.Model(model.input, model.get_layer(layer).output).compute_output_spec(
        {"image": keras.KerasTensor((1, *size, 3)), "valid_size": keras.KerasTensor((1, 2), dtype="int32")})
    return int(out.shape[1]), int(out.shape[2])


def _measure(maps: np.ndarray, data: Sample, size: int, masks_at: dict) -> tuple[np.ndarray, np.ndarray]:
    """Heat inside each image's object mask, and the mask's share (a uniform map's score); NaN without a mask."""
    from mame.models import gradcam

    if size not in masks_at:  # read once per input size, not once per model
        masks_at[size] = masks.load_masks(data.data_dir, data.records, image_size=size)
    object_masks, known = masks_at[size]
    mass = np.full(len(maps), np.nan)
    chance = np.full(len(maps), np.nan)
    if known.any():
        mass[known] = gradcam.mass_inside(maps[known], object_masks[known])
        chance[known] = object_masks[known].mean(axis=(1, 2))
    return mass, chance


def _explain_at(model, c: Candidate, layer: str, data: Sample, target: str, batch_size: int, masks_at: dict) -> Explained:
    from mame.data import pipeline
    from mame.models import gradcam

    size = int(model.input_shape[1])
    images, labels = pipeline.load_arrays(data.records, data.image_dir, image_size=size, batch_size=batch_size)
    parts = [gradcam.heatmaps_with_probabilities(model, images[i:i + batch_size], layer_name=layer,
                                                 class_index=labels[i:i + batch_size] if target == "true" else None)
             for i in range(0, len(images), batch_size)]
    maps = np.concatenate([p[0] for p in parts])
    mass, chance = _measure(maps, data, size, masks_at)
    return Explained(c, layer, grid_of(model, layer), size, maps, np.concatenate([p[2] for p in parts]),
                     np.concatenate([p[1] for p in parts]), mass, chance, gradcam.hot_area(maps))


def reference(explained: list[Explained]) -> Explained | None:
    """The fixed-shape fine-tuned model best on validation (None without one): the one set beside the scratch
    model (a variable-shape model's maps are taken on its unpadded images, at other grids)."""
    tuned = [e for e in explained if e.candidate.stage == "finetune" and e.candidate.shape == "fixed"]
    return max(tuned, key=lambda e: e.candidate.val_accuracy) if tuned else None


def compare(explained: list[Explained], data: Sample, *, bootstrap: int = ExplainConfig.bootstrap, seed: int = 0) -> dict:
    """Per model: heat on the object (mean, 95 % interval, per class), chance, hot area, accuracy on the
    sample; and the fine-tuned reference against the scratch model on the same images."""
    labels = np.array([r.label for r in data.records])
    best = reference(explained)
    rows = []
    for e in explained:
        c = e.candidate
        low, high = significance.mean_interval(e.mass, resamples=bootstrap, seed=seed)
        per_class = {data.classes[k]: _mean(e.mass[labels == k]) for k in sorted(set(labels.tolist()))
                     if not np.all(np.isnan(e.mass[labels == k]))}
        rows.append({"model": c.name, "label": label(c), "stage": c.stage, "run": c.run, "backbone": c.backbone,
                     "variant": c.variant, "step": c.step, "shape": c.shape, "layer": e.layer, "grid": list(e.grid),
                     "image_size": e.image_size, "val_accuracy": c.val_accuracy,
                     "sample_accuracy": float((e.probabilities.argmax(axis=1) == labels).mean()),
                     "mass_inside": _mean(e.mass), "mass_ci": [_finite(low), _finite(high)], "chance": _mean(e.chance),
                     "hot_area": _mean(e.hot), "n_measured": int(np.sum(~np.isnan(e.mass))),
                     "n_empty": int(np.sum(e.maps.max(axis=(1, 2)) == 0)),
                     "per_class_mass": per_class, "reference": e is best, **({"native": e.native} if e.native else {})})
    scratch = next((e for e in explained if e.candidate.stage == "scratch"), None)
    comparison = None
    if scratch is not None and best is not None:
        comparison = {"scratch": scratch.candidate.name, "finetuned": best.candidate.name,
                      "scratch_label": label(scratch.candidate), "finetuned_label": label(best.candidate),
                      "grids": {"scratch": list(scratch.grid), "finetuned": list(best.grid)},
                      "same_grid": scratch.grid == best.grid,
                      "mass": _finite_values(significance.paired_test(scratch.mass, best.mass)),
                      "hot_area": _finite_values(significance.paired_test(scratch.hot, best.hot))}
    return {"models": rows, "comparison": comparison}


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=float)
    return None if np.all(np.isnan(values)) else float(np.nanmean(values))


def _finite(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _finite_values(d: dict) -> dict:
    return {k: _finite(v) if isinstance(v, float) else v for k, v in d.items()}


def _resize(maps: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR))
                     for m in maps]).clip(0, 1)


def save(run_dir: str | Path, explained: list[Explained], data: Sample, summary: dict, *, target: str,
         per_class: int, display_size: int = DISPLAY_SIZE) -> Path:
    """``gradcam.npz`` (the slides' images, masks and maps, one image per class) and the run's result."""
    from mame.data import pipeline

    run_dir = Path(run_dir)
    shown = [data.records[i] for i in data.display]
    images, labels = pipeline.load_arrays(shown, data.image_dir, image_size=display_size)
    object_masks, known = masks.load_masks(data.data_dir, shown, image_size=display_size)  # the shown few, at display size
    arrays = {"images": np.clip(np.rint(images), 0, 255).astype(np.uint8), "y_true": labels,
              "files": np.array([r.image_file for r in shown]), "masks": object_masks, "mask_known": known,
              "models": np.array([e.candidate.name for e in explained]),
              "labels": np.array([label(e.candidate) for e in explained]), "class_names": np.array(data.classes)}
    for i, e in enumerate(explained):
        arrays[f"maps_{i}"] = _resize(e.maps[data.display], display_size).astype(np.float16)
        arrays[f"probabilities_{i}"] = e.probabilities[data.display].astype(np.float32)
        arrays[f"class_index_{i}"] = e.class_index[data.display].astype(np.int32)
    np.savez_compressed(run_dir / MAPS_FILE, **arrays)
    best = next((row for row in summary["models"] if row["reference"]), summary["models"][0])
    masked = int(data.known.sum())
    taken = max(np.bincount([r.label for r in data.records]))
    notes = [f"validation images only: {len(data.records)} (up to {taken} per class), {masked} with an object mask",
             f"Grad-CAM of the {'true' if target == 'true' else 'predicted'} class"]
    result = {"headline": ({"name": "heat_on_object", "value": best["mass_inside"], "split": "val"}
                           if best["mass_inside"] is not None else None),
              "metrics": {**common.tensorflow_gpus(), "target": target, "per_class": int(taken),
                          "n_images": len(data.records), "n_masked": masked,
                          "shown": [data.classes[r.label] for r in shown], "models": summary["models"],
                          "comparison": summary["comparison"]},
              "artifacts": {"gradcam": MAPS_FILE}, "notes": notes}
    return results.save_result(run_dir, result)
