"""The "Backbones as feature extractors" slides from the features runs (``mame/stages/features.py``): the
features table, 2-D projections (PCA, t-SNE, UMAP, class names at the class medians), interactive 3-D views,
groups of classes, nearest classes and each class's outlier image. Projections and the outlier grid are
drawn into each run's ``figures/`` folder from the feature arrays the run saved.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mame import plots, results
from mame.deck.sections import figures3d
from mame.deck.sections import shape_slides as shapes
from mame.deck.sections.slide_parts import MAX_SLIDE_CLASSES, entry_placeholder, spread

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
MAX_OUTLIER_CLASSES = 32  # the outlier grid's classes (four rows of eight); past it, spread over the class order
GROUP_NAMES = 12          # class names listed for a group of classes; past it, "and N more"
MAX_POINTS_PER_CLASS = 100  # as the seed deck: "approximately 100 points per class"


def section(entries: list, deck) -> dict:
    """The features table, the projections (two panels a slide), the 3-D views, the groups and outliers, and
    each fine-tuned extractor's probe beside its backbone's own."""
    figures = deck.figures
    rows, gaps, projections, projections3d, structures = [], [], [], [], []
    for entry in entries:
        gap = entry_placeholder(entry)
        if gap:
            gaps.append(gap)
            continue
        m = entry.metrics["metrics"]
        shape = shapes.entry_shape(entry)
        label = short = shapes.labelled(m.get("name", entry.run.backbone), shape)
        if m.get("source") == "finetune":
            short = f"{label} fine-tuned"
            label = f"{short} ({(m.get('finetune') or {}).get('run', '')})"
        size = m.get("image_size", m.get("input_size"))
        rows.append({"run": entry.run.id, "backbone": label, "short": short, "key": entry.run.backbone,
                     "source": m.get("source", "imagenet"), "n_params": m.get("n_params"), "shape": shape,
                     "feature_dim": m.get("feature_dim"), "feature_layer": m.get("feature_layer"),
                     "input_size": size, "input": f"≈{size}² px" if shape == "variable" else f"{size} px",
                     "weights": m.get("weights"),
                     "images_per_second": (m.get("images_per_second") or {}).get("train"),
                     "probe": entry.metrics["headline"]["value"] if entry.metrics.get("headline") else None,
                     "stale": entry.state == "stale"})
        figs = figures.get(entry.run.id, {})
        order = {"pca": 0, "tsne": 1, "umap": 2}
        found = sorted((k.split("_", 1)[1] for k in figs if k.startswith("projection_")), key=lambda k: order.get(k, 9))
        panels = [{"method": METHOD_NAMES.get(k, k.upper()), "path": figs[f"projection_{k}"]} for k in found]
        for i in range(0, len(panels), 2):  # two panels a slide, each half the slide wide
            projections.append({"backbone": rows[-1]["backbone"], "run": entry.run.id, "panels": panels[i:i + 2]})
        projections3d += projection_3d_views(rows[-1]["backbone"], entry.run.id, figs)
        if m.get("structure"):
            structures.append(structure_view(rows[-1]["backbone"], m["structure"], figs.get("structure_outliers")))
    own = {r["key"]: r for r in rows if r["source"] != "finetune" and r["run"] == f"features/{r['key']}"}
    tuned = [{"label": r["backbone"], "probe": r["probe"], "own": own[r["key"]]["backbone"], "own_probe": own[r["key"]]["probe"]}
             for r in rows if r["source"] == "finetune" and r["key"] in own and r["probe"] is not None
             and own[r["key"]]["probe"] is not None]
    per_class = deck.options.get("points_per_class", MAX_POINTS_PER_CLASS)
    return {"rows": rows, "gaps": gaps, "projections": projections, "max_points_per_class": per_class,
            "projections3d": projections3d, "scripts_3d": [], "structures": structures, "finetuned": tuned}


def projection_3d_views(backbone: str, run_id: str, figs: dict) -> list[dict]:
    """A run's interactive 3-D figures (``projection3d_<method>`` JSON beside its ``_static`` PNG), PCA first."""
    order = {"pca": 0, "tsne": 1, "umap": 2}
    methods = sorted((k.split("_", 1)[1] for k in figs if k.startswith("projection3d_") and not k.endswith("_static")),
                     key=lambda k: order.get(k, 9))
    return [{"backbone": backbone, "run": run_id, "method": METHOD_NAMES.get(k, k.upper()),
             "id": "fig3d-" + re.sub(r"[^a-z0-9]+", "-", f"{run_id}-{k}".lower()).strip("-"),
             "figure": figs[f"projection3d_{k}"], "static": figs[f"projection3d_{k}_static"]}
            for k in methods if f"projection3d_{k}_static" in figs]


def structure_view(backbone: str, structure: dict, outliers_figure) -> dict:
    """A features run's ``metrics.structure`` as slide rows: the groups (most separable first) and each
    class's nearest classes."""
    groups = sorted(structure.get("groups") or [], key=lambda g: -(g["separability"] if g["separability"] is not None else -1))
    groups = [{**g, "classes": g["classes"][:GROUP_NAMES] + ([f"and {len(g['classes']) - GROUP_NAMES} more"]
                                                             if len(g["classes"]) > GROUP_NAMES else [])} for g in groups]
    nearest = [{"class": name, "near": near} for name, near in (structure.get("nearest") or {}).items()]
    n_classes = len(nearest)
    if n_classes > MAX_SLIDE_CLASSES:  # the classes most like another: where the features are least sure
        nearest = sorted(nearest, key=lambda n: -max((x["similarity"] for x in n["near"]), default=-1))[:MAX_SLIDE_CLASSES]
    outliers = len(structure.get("outliers") or {})
    return {"backbone": backbone, "groups": groups, "nearest": nearest, "outliers_figure": outliers_figure,
            "method": structure.get("method", ""),
            "nearest_shown": (f"{MAX_SLIDE_CLASSES} of {n_classes} classes: those most similar to their nearest class, "
                              "most similar first" if n_classes > MAX_SLIDE_CLASSES else None),
            "outliers_shown": (f"{MAX_OUTLIER_CLASSES} of the {outliers} classes, evenly spread over the class order"
                               if outliers > MAX_OUTLIER_CLASSES else None)}


def conclusions(context: dict) -> list[str]:
    rows = context["features"]["rows"]
    if not rows:
        return []
    probe = max(rows, key=lambda r: r["probe"] or 0)
    return [f"Most separable features (nearest-centroid probe): {probe['backbone']} at {probe['probe']:.1%}."]


# --- figures (drawn into the run's figures/ folder through mame.deck.render.figures.Drawer) ---

def run_figures(entry, drawer) -> dict[str, Path]:
    """2-D projections (``projection_<method>``), 3-D views and the outlier grid of one features run."""
    per_class = drawer.options.get("points_per_class", MAX_POINTS_PER_CLASS)
    found = projection_figures(entry, drawer, drawer.options.get("projections", ("pca",)), per_class)
    found.update(figures3d.projection_3d_figures(entry, drawer.out, drawer.options.get("projections_3d", ()),
                                                 drawer.fresh, load_features, per_class))
    if (entry.metrics["metrics"].get("structure") or {}).get("outliers"):
        outliers = drawer.draw("structure_outliers", lambda: outlier_figure(entry))
        if outliers.is_file():
            found["structure_outliers"] = outliers
    return found


def report_figures(section: dict, out_dir: Path) -> dict:
    """The scripts a deck with 3-D figures embeds once (plotly.js and the loader)."""
    return {"scripts_3d": [figures3d.plotly_js_path(), figures3d.loader_js_path()] if section["projections3d"] else []}


def projection_figures(entry, drawer, methods, per_class: int = MAX_POINTS_PER_CLASS) -> dict[str, Path]:
    arrays = [entry.path / entry.metrics["artifacts"][k] for k in ("features_train", "features_val")
              if k in entry.metrics["artifacts"]]
    if not arrays:
        return {}
    found = {}
    for method in methods:
        path = drawer.out / f"projection_{method}-{per_class}.png"  # another sample size is another figure
        if not drawer.fresh(path):
            x, y, _ = load_features(arrays)
            data = plots.project_features(x, y, method=method, max_per_class=per_class, seed=0)
            names = results.class_names(entry.metrics)
            plots.save_figure(plots.draw_projection(data, class_names=names, legend="centroids", size="half"), path)
        found[f"projection_{method}"] = path
    return found


def outlier_figure(entry):
    """Each class's validation image farthest from its class centroid (``metrics.structure.outliers``),
    opened from the run's dataset for display (None when no image can be opened)."""
    from mame.data import metadata
    from mame.deck.sections.evaluate_figures import thumbnail

    try:
        image_dir = metadata.find_image_dir(entry.metrics["run"]["dataset"].get("path", ""))
    except (metadata.DataError, OSError):
        return None
    shown = []
    for name, items in spread(list(entry.metrics["metrics"]["structure"]["outliers"].items()), MAX_OUTLIER_CLASSES):
        for item in items[:1]:
            picture = thumbnail(image_dir / item["file"])
            if picture is not None:
                shown.append((f"{name}\n(distance {item['distance']:.2f})", picture))
    if not shown:
        return None
    return plots.draw_image_grid([p for _, p in shown], [t for t, _ in shown], ncols=8)


def load_features(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Features, labels and image files (None when an array file holds no ``files``) of the given splits."""
    xs, ys, files = [], [], []
    for path in paths:
        with np.load(path) as arrays:
            xs.append(arrays["features"])
            ys.append(arrays["labels"])
            files.append(arrays["files"] if "files" in arrays.files else None)
    return np.concatenate(xs), np.concatenate(ys), None if any(f is None for f in files) else np.concatenate(files)
