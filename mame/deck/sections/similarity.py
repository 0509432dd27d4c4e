"""The "Task similarity" slides from the similarity runs (``mame/stages/similarity.py``): what each
backbone's ImageNet head calls MAMe images ("true class → ImageNet label (p)", one panel per backbone,
and the best scratch rung's own predictions on the same images), the similarity measure per backbone
with its definition, and the ImageNet labels each MAMe class gets.

Every number comes from the runs' metrics.json; random weights show "not meaningful" instead of a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mame import plots, results
from mame.deck.sections import scratch
from mame.deck.sections.slide_parts import MAX_SLIDE_CLASSES, entry_placeholder, split_accuracy, spread

PANEL_COLUMNS = 3
DEFINITION = ("Map accuracy: every train image gets the backbone's top-1 ImageNet label; each label is mapped to "
              "the class most of its train images belong to; the score is the validation accuracy of that "
              "map (1 = each class has ImageNet labels of its own; chance = always the most frequent class). "
              "NMI: normalised mutual information of top-1 labels and classes on validation (1 = one-to-one); "
              "AMI: the same, corrected for chance (0 = unrelated).")


def section(entries: list, deck) -> dict:
    """Rows of the measure table, example panels (scratch first) and the class table of the best
    meaningful backbone; ``ready`` False with ``gaps`` when no run can be shown."""
    figures = deck.figures
    gaps = [g for g in (entry_placeholder(e) for e in entries) if g]
    usable = [e for e in entries if entry_placeholder(e) is None and e.metrics["metrics"].get("similarity")]
    rows = [measure_row(e) for e in usable]
    panels = [{"title": f"Predictions from {r['backbone']}", "figure": figures.get(e.run.id, {}).get("similarity_examples"),
               "meaningful": r["meaningful"]} for e, r in zip(usable, rows)]
    panels = [p for p in panels if p["figure"]]
    meaningful = [r for r in rows if r["meaningful"]]
    best = max(meaningful, key=lambda r: r["map_accuracy"]) if meaningful else None
    return {"ready": bool(rows), "gaps": gaps, "rows": rows, "panels": panels, "best": best,
            "stale": any(e.state == "stale" for e in usable), "definition": DEFINITION,
            "class_rows": class_rows(next(e for e, r in zip(usable, rows) if r is best)) if best else [],
            "classes_shown": classes_shown(next(e for e, r in zip(usable, rows) if r is best)) if best else None,
            "scratch": scratch_examples(usable[0], scratch.best_rung(deck.grouped.get("scratch", []), deck)) if usable else None,
            "scratch_figure": None}  # drawn with the report's figures (``scratch_figure``)


def measure_row(entry) -> dict:
    m = entry.metrics["metrics"]
    s = m["similarity"]
    meaningful = bool(m.get("meaningful"))
    return {"run": entry.run.id, "backbone": m.get("name") or entry.run.backbone, "meaningful": meaningful,
            "weights": "ImageNet" if m.get("weights") == "imagenet" else m.get("weights", "?"),
            "image_size": m.get("image_size"), "top_k": m.get("top_k"), "stale": entry.state == "stale",
            "map_accuracy": s["map_accuracy"], "chance": s["chance"], "nmi": s["nmi"], "ami": s["ami"],
            "lift": s["map_accuracy"] / s["chance"] if s["chance"] else None,
            "distinct_labels": s["distinct_labels"], "n_train": s["n_train"], "n_val": s["n_val"]}


def class_rows(entry) -> list[dict]:
    """Two columns of "class → its most frequent ImageNet labels" (share of the class's images, mean p)."""
    per_class = spread(entry.metrics["metrics"]["similarity"]["per_class"], MAX_SLIDE_CLASSES)
    half = (len(per_class) + 1) // 2
    left, right = per_class[:half], per_class[half:]
    return [{"left": left[i], "right": right[i] if i < len(right) else None} for i in range(half)]


def classes_shown(entry) -> str | None:
    """What the class table shows of a dataset with more classes than fit (None: every class)."""
    n = len(entry.metrics["metrics"]["similarity"]["per_class"])
    return f"{MAX_SLIDE_CLASSES} of the {n} classes, evenly spread over the class order" if n > MAX_SLIDE_CLASSES else None


def scratch_examples(entry, best) -> dict | None:
    """The best scratch rung (``mame.deck.sections.scratch.best_rung``: the one the evaluate run chose) and its own
    prediction on each example image, from its saved validation predictions (None where that run did not
    predict the image)."""
    name = (best.metrics["artifacts"].get("predictions_val") if best is not None else None)
    if not name or not (best.path / name).is_file():
        return None
    names = results.class_names(best.metrics)
    with np.load(best.path / name) as arrays:
        files, probabilities = arrays["files"], arrays["probabilities"]
    where = {str(f): i for i, f in enumerate(files)}
    shown = []
    for example in entry.metrics["metrics"]["examples"]:
        i = where.get(example["file"])
        shown.append({**example, "top": None if i is None else
                      [{"label": names[int(probabilities[i].argmax())], "p": float(probabilities[i].max())}]})
    return {"run": best.run.id, "val": split_accuracy(best.metrics, "val"), "examples": shown,
            "dataset": entry.metrics["run"]["dataset"].get("path", "")}


def example_title(example: dict) -> str:
    top = example["top"]
    if not top:
        return f"{example['class']}\n(not in this run's sample)"
    p = top[0]["p"]
    guess = f"→ {top[0]['label']} ({p:.2f})" if p >= 0.01 else f"→ {top[0]['label']} ({p:.1e})"
    return f"{example['class']}\n{guess}"


def examples_figure(examples: list[dict], dataset_path: str):
    """The example images titled "true class / → label (p)" (None when no image can be opened)."""
    from mame.data import metadata
    from mame.deck.sections.evaluate_figures import thumbnail

    try:
        image_dir = metadata.find_image_dir(dataset_path)
    except (metadata.DataError, OSError):
        return None
    shown = [(example_title(e), thumbnail(image_dir / e["file"])) for e in examples]
    shown = [(t, p) for t, p in shown if p is not None]
    if not shown:
        return None
    rows = -(-len(shown) // PANEL_COLUMNS)
    fig, axes = plots.new_figure("half", nrows=rows, ncols=PANEL_COLUMNS)  # one of two panels on a slide
    axes = list(axes.ravel())
    for spare in axes[len(shown):]:
        spare.set_axis_off()
    return plots.draw_image_grid([p for _, p in shown], [t for t, _ in shown], ax=axes[:len(shown)])


def run_figures(entry, drawer) -> dict[str, Path]:
    """A similarity run's panel of example images with the ImageNet labels it gave them."""
    m = entry.metrics["metrics"]
    if not m.get("examples"):
        return {}
    panel = drawer.draw("similarity_examples", lambda: examples_figure(m["examples"], entry.metrics["run"]["dataset"].get("path", "")))
    return {"similarity_examples": panel} if panel.is_file() else {}


def report_figures(section: dict, out_dir: Path) -> dict[str, Path | None]:
    """The scratch model's panel on the same images (it compares two runs: drawn into the report's folder)."""
    found = section.get("scratch")
    fig = examples_figure(found["examples"], found["dataset"]) if found else None
    return {"scratch_figure": plots.save_figure(fig, out_dir / "similarity_scratch.png") if fig is not None else None}


def conclusions(context: dict) -> list[str]:
    return similarity_conclusions(context["similarity"])


def similarity_conclusions(section: dict) -> list[str]:
    """One line for the conclusions: the best overlap measured, or why none was."""
    if not section.get("ready"):
        return []
    best = section["best"]
    if best is None:
        return ["Task similarity is not measured here: every backbone's ImageNet head had random weights."]
    return [f"Task similarity: {best['backbone']}'s ImageNet labels alone give {best['map_accuracy']:.0%} of the "
            f"validation images their class ({best['lift']:.1f}× chance, NMI {best['nmi']:.2f})."]
