"""The "Explanations" slides from the explain run (``mame/stages/explain.py``): Grad-CAM grids of the
scratch model beside the fine-tuned reference (one validation image per class, a few classes per slide),
every fine-tuned backbone on the classes with an object mask, and the heat-on-object table with the
paired comparison. Figures are drawn into the run's ``figures/`` folder from the maps file it recorded.

Every statement is computed from the run's metrics.json; a missing or failed run gives placeholders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mame import plots
from mame.deck.sections.slide_parts import entry_placeholder, placeholder
from mame.metrics import describe_comparison as describe

SIGNIFICANCE = 0.05
CLASSES_PER_SLIDE = 10     # columns of a scratch-vs-fine-tuned grid
BACKBONE_COLUMNS = 6       # classes in the every-backbone grid (five model rows: smaller cells, shorter captions)


def section(entries: list, deck) -> dict:
    """The explain run's slides (``ready`` False with ``gaps`` when there is nothing to show)."""
    figures = deck.figures
    gaps = [g for g in (entry_placeholder(e) for e in entries) if g]
    usable = [e for e in entries if entry_placeholder(e) is None]
    empty = {"gaps": gaps, "ready": False, "run": None, "stale": False, "models": [], "comparison": None,
             "grids": [], "backbones": None, "target": None, "n_images": 0, "n_masked": 0, "per_class": 0,
             "grid_classes": None}
    if not usable:
        return empty
    entry = usable[0]
    m = entry.metrics["metrics"]
    if not m.get("models"):
        gaps.append(placeholder("failed", f"{entry.run.id} has no model table (metrics.models): run it again "
                                          "with the current explain stage", f"runs/{entry.run.stage}/{entry.run.name}"))
        return empty
    figs = figures.get(entry.run.id, {})
    rows = [model_row(row) for row in m["models"]]
    grids = [{"figure": figs[key], "classes": classes} for key, classes in grid_keys(figs, m.get("shown") or [])]
    return {"gaps": gaps, "ready": True, "run": entry.run.id, "stale": entry.state == "stale", "models": rows,
            "comparison": comparison(m.get("comparison")), "grids": grids,
            "backbones": figs.get("gradcam_backbones"), "target": m.get("target", "true"),
            "n_images": m.get("n_images", 0), "n_masked": m.get("n_masked", 0), "per_class": m.get("per_class", 0),
            "grid_classes": grid_classes(entry.metrics, m.get("shown") or [])}


def grid_classes(metrics: dict, shown: list[str]) -> str | None:
    """What the grids show of a dataset with more classes than they hold (None: every class)."""
    n = len((metrics.get("run", {}).get("dataset") or {}).get("classes") or ())  # a dataset folder's (MAMe: 29, all shown)
    return f"{len(shown)} of the {n} classes, evenly spread over the class order" if shown and n > len(shown) else None


def model_row(row: dict) -> dict:
    mass, chance = row.get("mass_inside"), row.get("chance")
    low, high = (row.get("mass_ci") or [None, None])[:2]
    return {"model": row["model"], "label": row["label"], "stage": row["stage"], "layer": row["layer"],
            "grid": "×".join(str(d) for d in row.get("grid") or []), "image_size": row["image_size"],
            "val": row["val_accuracy"], "sample_accuracy": row["sample_accuracy"], "mass": mass, "ci_low": low,
            "ci_high": high, "chance": chance, "lift": mass / chance if mass is not None and chance else None,
            "hot_area": row.get("hot_area"), "n_measured": row.get("n_measured", 0), "n_empty": row.get("n_empty", 0),
            "reference": bool(row.get("reference")), "native": native_row(row.get("native"))}


def native_row(native: dict | None) -> dict | None:
    """The reference model at its own last conv layer (explained at a finer common grid for the comparison)."""
    if not native:
        return None
    return {"layer": native["layer"], "grid": "×".join(str(d) for d in native["grid"]),
            "mass": native.get("mass_inside"), "hot_area": native.get("hot_area"), "n_empty": native.get("n_empty", 0)}


def comparison(comp: dict | None) -> dict | None:
    """The fine-tuned reference against the scratch model: heat on the object and hot area, paired."""
    if not comp or comp["mass"].get("n", 0) == 0:
        return None
    mass, hot = comp["mass"], comp["hot_area"]
    grids = {k: "×".join(str(d) for d in v) for k, v in (comp.get("grids") or {}).items()}
    return {"scratch": comp["scratch_label"], "finetuned": comp["finetuned_label"], "grids": grids,
            "same_grid": comp.get("same_grid", not grids or len(set(grids.values())) == 1),
            "n": mass["n"], "delta_pp": mass["delta_pp"], "p_value": mass["p_value"], "text": describe(mass),
            "scratch_mass": mass["mean_a"], "finetuned_mass": mass["mean_b"],
            "significant": mass["p_value"] < SIGNIFICANCE, "hot_delta_pp": hot["delta_pp"], "hot_p": hot["p_value"],
            "scratch_hot": hot["mean_a"], "finetuned_hot": hot["mean_b"], "hot_n": hot["n"],
            "hot_text": describe(hot), "hot_significant": hot["p_value"] < SIGNIFICANCE}


def grid_keys(figs: dict, shown: list[str]) -> list[tuple[str, str]]:
    """The scratch-vs-fine-tuned grid figures in order, each with its class range ("Bronze – Gold")."""
    keys = sorted((k for k in figs if k.startswith("gradcam_") and k[len("gradcam_"):].isdigit()),
                  key=lambda k: int(k[len("gradcam_"):]))
    out = []
    for key in keys:
        start = (int(key[len("gradcam_"):]) - 1) * CLASSES_PER_SLIDE
        chunk = shown[start:start + CLASSES_PER_SLIDE]
        out.append((key, f"{chunk[0]} – {chunk[-1]}" if chunk else ""))
    return out


def conclusions(context: dict) -> list[str]:
    return explain_conclusions(context["explain"])


def explain_conclusions(section: dict) -> list[str]:
    """The seed's Grad-CAM statement, as the numbers say it."""
    comp = section.get("comparison") if section.get("ready") else None
    if not comp:
        return []
    chance = next(r["chance"] for r in section["models"] if r["label"] == comp["finetuned"])
    grids = comp.get("grids") or {}
    at = (f", both at a {grids['finetuned']} map" if comp["same_grid"] and grids.get("finetuned") else
          f", at different map grids ({grids.get('finetuned', '?')} vs {grids.get('scratch', '?')}): not like for like, "
          "the coarser map spreads its heat" if not comp["same_grid"] else "")
    numbers = (f"{comp['finetuned']} puts {comp['finetuned_mass']:.0%} of its Grad-CAM heat on the object, "
               f"{comp['scratch']} {comp['scratch_mass']:.0%} (a uniform map: {chance:.0%}; the same {comp['n']} "
               f"validation images{at}, {comp['text']}, Wilcoxon)")
    said = [f"Grad-CAM: no significant difference in where the models look: {numbers}." if not comp["significant"] else
            "Grad-CAM: the fine-tuned model looks " + ("more on the object than the scratch model" if comp["delta_pp"] > 0
                                                      else "less on the object than the scratch model") + f": {numbers}."]
    native = next((r["native"] for r in section["models"] if r.get("native") and r["label"] == comp["finetuned"]), None)
    mass = next((r.get("mass") for r in section["models"] if r["label"] == comp["finetuned"]), None)
    if native and native["mass"] is not None and mass is not None:
        said.append(f"The map's grid matters: {comp['finetuned']} at its last conv layer ({native['layer']}, a "
                    f"{native['grid']} map) puts {native['mass']:.0%} of its heat on the object, at the common "
                    f"{grids.get('finetuned', '')} map {mass:.0%}.")
    return said


# --- figures (drawn into the run's figures/ folder through mame.deck.render.figures.Drawer) ---

def run_figures(entry, drawer) -> dict[str, Path]:
    """The scratch-vs-fine-tuned grids (``gradcam_1`` ...) and the every-backbone grid (``gradcam_backbones``)."""
    draw = drawer.draw
    name = entry.metrics.get("artifacts", {}).get("gradcam")  # the file the run recorded, not a guess at its name
    path = entry.path / name if name else None
    if path is None or not path.is_file() or not entry.metrics["metrics"].get("models"):
        return {}
    with np.load(path) as arrays:
        data = {k: arrays[k] for k in arrays.files}
    models, labels = [str(m) for m in data["models"]], [str(label) for label in data["labels"]]
    rows = {row["model"]: row for row in entry.metrics["metrics"]["models"]}
    reference = next((i for i, m in enumerate(models) if rows.get(m, {}).get("reference")), None)
    scratch = next((i for i, m in enumerate(models) if m.startswith("scratch/")), None)
    pair = [i for i in (scratch, reference) if i is not None]
    found = {}
    columns = list(range(len(data["images"])))
    for k, start in enumerate(range(0, len(columns), CLASSES_PER_SLIDE), start=1):
        chunk = columns[start:start + CLASSES_PER_SLIDE]
        found[f"gradcam_{k}"] = draw(f"gradcam_{k}", lambda chunk=chunk: grid(data, labels, pair, chunk))
    tuned = [i for i, m in enumerate(models) if m.startswith("finetune/")]
    if len(tuned) >= 2:
        masked = [c for c in columns if data["mask_known"][c]] or columns
        chunk = masked[:BACKBONE_COLUMNS]
        found["gradcam_backbones"] = draw("gradcam_backbones", lambda: grid(data, labels, tuned, chunk, compact=True))
    return found


def grid(data: dict, labels: list[str], which: list[int], columns: list[int], *, compact: bool = False):
    class_names = [str(c) for c in data["class_names"]]
    titles = [class_names[int(data["y_true"][c])] for c in columns]
    masks = [data["masks"][c] if data["mask_known"][c] else None for c in columns]
    rows = []
    for i in which:
        probs = data[f"probabilities_{i}"]
        maps = [data[f"maps_{i}"][c].astype(np.float32) for c in columns]
        captions = [caption(probs[c], int(data["y_true"][c]), class_names, compact=compact)
                    + ("" if heat.max() > 0 else "\nno heat")
                    for c, heat in zip(columns, maps)]
        rows.append({"label": labels[i], "maps": maps, "captions": captions})
    return plots.draw_gradcam_grid([data["images"][c] for c in columns], titles, rows, masks=masks)


def caption(probabilities: np.ndarray, true: int, class_names: list[str], *, compact: bool = False) -> str:
    """``✓ 0.42`` (the true class's probability) when the model predicts the true class, else ``→ Gold 0.31``
    (``compact``: ``→ Gold``, names cut at 10 characters)."""
    predicted = int(np.argmax(probabilities))
    if predicted == true:
        return f"✓ {probabilities[true]:.2f}"
    name, width = class_names[predicted], 10 if compact else 12
    short = name if len(name) <= width else name[:width - 1] + "…"
    return f"→ {short}" if compact else f"→ {short} {probabilities[predicted]:.2f}"
