"""Deck sections built from runs: each returns plain dicts for the templates, or a placeholder.

Contract with the stages: a training stage (``scratch``, ``finetune``) stores one ``classification`` entry
per split it scored, keyed ``train`` / ``val`` / ``test`` (or ``<model>/<split>``), and its per-epoch
``history``; ``features`` and ``classify`` are described in their modules, ``evaluate`` (the final
result) in ``mame/deck/evaluation.py``.
"""

from __future__ import annotations

import re

# (limit on train − val accuracy, label), first match wins; the baseline slide's caption is derived from it.
OVERFITTING = ((0.20, "High"), (0.08, "Medium"), (float("-inf"), "Low"))


def placeholder(kind: str, message: str, path: str = "") -> dict:
    """A clearly-marked gap: ``not_planned``, ``missing`` or ``failed``."""
    return {"kind": kind, "message": message, "path": path}


def entry_placeholder(entry) -> dict | None:
    """None for a usable run, else the placeholder that says why it is not shown."""
    rel = f"{entry.run.stage}/{entry.run.name}"
    if entry.state == "failed":
        return placeholder("failed", f"{entry.run.id} failed: {entry.detail}", f"runs/{rel}/notebook.ipynb")
    if entry.state in ("missing", "unreadable"):
        return placeholder("missing", f"{entry.run.id} has not run yet ({entry.detail or 'no metrics.json'})",
                           f"runs/{rel}")
    return None


def split_accuracy(metrics: dict, split: str) -> float | None:
    """Accuracy on ``split``: the entry keyed ``split`` or, failing that, the best ``<model>/split``."""
    found = metrics["classification"]
    if split in found:
        return found[split]["report"]["accuracy"]
    values = [e["report"]["accuracy"] for k, e in found.items() if k.endswith(f"/{split}")]
    return max(values) if values else None


def overfitting(train: float | None, val: float | None) -> str:
    if train is None or val is None:
        return "—"
    return next(label for limit, label in OVERFITTING if train - val > limit)


def report_rows(report: dict) -> dict:
    """A classification report as two columns of per-class rows plus the summary rows (seed layout)."""
    names = [k for k in report if k not in ("accuracy", "macro avg", "weighted avg")]
    half = (len(names) + 1) // 2
    row = lambda name: {"name": name, **{k: report[name][k] for k in ("precision", "recall", "f1-score", "support")}}
    left, right = [row(n) for n in names[:half]], [row(n) for n in names[half:]]
    total = report["macro avg"]["support"]
    summary = [{"name": "accuracy", "precision": None, "recall": None, "f1-score": report["accuracy"], "support": total},
               row("macro avg"), row("weighted avg")]
    right = right + summary
    rows = [{"left": left[i] if i < len(left) else None, "right": right[i] if i < len(right) else None}
            for i in range(max(len(left), len(right)))]
    return {"rows": rows, "n_classes": len(names)}


METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
MAX_POINTS_PER_CLASS = 100  # as the seed deck: "approximately 100 points per class"


def features_section(entries: list, figures: dict) -> dict:
    rows, gaps, projections, projections3d, structures = [], [], [], [], []
    for entry in entries:
        gap = entry_placeholder(entry)
        if gap:
            gaps.append(gap)
            continue
        m = entry.metrics["metrics"]
        label = short = m.get("name", entry.run.backbone)
        if m.get("source") == "finetune":
            short = f"{label} fine-tuned"
            label = f"{short} ({(m.get('finetune') or {}).get('run', '')})"
        rows.append({"run": entry.run.id, "backbone": label, "short": short, "key": entry.run.backbone,
                     "source": m.get("source", "imagenet"), "n_params": m.get("n_params"),
                     "feature_dim": m.get("feature_dim"), "feature_layer": m.get("feature_layer"),
                     "input_size": m.get("image_size", m.get("input_size")), "weights": m.get("weights"),
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
    return {"rows": rows, "gaps": gaps, "projections": projections, "max_points_per_class": MAX_POINTS_PER_CLASS,
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
    nearest = [{"class": name, "near": near} for name, near in (structure.get("nearest") or {}).items()]
    return {"backbone": backbone, "groups": groups, "nearest": nearest, "outliers_figure": outliers_figure,
            "method": structure.get("method", "")}


WEIGHTS_WORDS = {"imagenet": "ImageNet", "random": "random-init"}


def feature_source(entry, features: dict[str, dict], names: dict[str, str]) -> dict:
    """What a classify run classified, from the features run it needs (``features``: run name -> its
    ``metrics``): ``kind`` "features" (the backbone's own, ImageNet or random init), "dense_head" (logistic
    regression on raw activations of VGG16's dense layers: a new softmax on the kept layers) or "finetuned"
    (the fine-tuned model's features), and the column ``label`` the deck shows."""
    m = entry.metrics["metrics"]
    backbone = entry.run.backbone
    name = names.get(backbone, backbone)
    fm = features.get(entry.run.needs.get("features", backbone)) or {}
    layer = m.get("feature_layer") or fm.get("feature_layer")
    weights = WEIGHTS_WORDS.get(fm.get("weights"), fm.get("weights") or "")
    if fm.get("source") == "finetune":
        run = (fm.get("finetune") or {}).get("run", "")
        label = f"{name} fine-tuned features ({run})"
        return {"kind": "finetuned", "label": label, "full": label, "layer": layer, "finetune": fm.get("finetune")}
    kept = ((fm.get("extra_layers") or {}).get(layer) or {}).get("kept")
    linear_only = [c["classifier"] for c in m.get("classifiers", [])] == ["logistic_regression"]
    if kept and m.get("standardize") is False and linear_only:
        label = f"{name} dense head ({weights} {'+'.join(kept)} kept, new softmax)"
        return {"kind": "dense_head", "label": label, "full": label, "layer": layer}
    full = " ".join(w for w in (name, weights, layer) if w)
    own = entry.run.variant == "default" and layer == fm.get("feature_layer", layer)
    return {"kind": "features", "label": name if own else full, "full": full, "layer": layer}


def classify_section(entries: list, figures: dict, names: dict[str, str], features: dict[str, dict] | None = None) -> dict:
    """The classifier comparison: the backbones' own features (``pivot``, the spread: like with like), and for
    a backbone with a dense head or fine-tuned features, all its columns side by side (``variants``)."""
    rows, gaps, best = [], [], None
    for entry in entries:
        gap = entry_placeholder(entry)
        if gap:
            gaps.append(gap)
            continue
        source = feature_source(entry, features or {}, names)
        for item in entry.metrics["metrics"].get("classifiers", []):
            split = next(k for k in item if k.endswith("_accuracy") and k != "train_accuracy")
            row = {"run": entry.run.id, "backbone": entry.run.backbone, "kind": source["kind"],
                   "backbone_name": names.get(entry.run.backbone, entry.run.backbone), "column": source["label"],
                   "full": source["full"],
                   "classifier": item["classifier"],
                   "train_accuracy": item["train_accuracy"], "val_accuracy": item[split],
                   "converged": item.get("converged", True), "split": split.removesuffix("_accuracy"),
                   "params": ", ".join(f"{k}={v}" for k, v in (item.get("params") or {}).items()),
                   "n_tried": len(item.get("tried") or []), "fit_seconds": item.get("fit_seconds"),
                   "predict_seconds": item.get("predict_seconds"), "finetune": source.get("finetune")}
            rows.append(row)
            if best is None or row["val_accuracy"] > best[0]["val_accuracy"]:
                best = (row, entry)
    own = [r for r in rows if r["kind"] == "features" and r["column"] == r["backbone_name"]]
    section = {"rows": rows, "own_rows": own, "gaps": gaps, "best": None,
               "bars": figures.get("_report", {}).get("classify_bars"), **classifier_pivot(own),
               "variants": variant_comparisons(rows)}
    if best:
        row, entry = best
        key = f"{row['classifier']}/{row['split']}"
        cls = entry.metrics["classification"][key]
        section["best"] = {**row, "table": report_rows(cls["report"]), "predictions": cls.get("predictions"),
                           "confusion": figures.get(entry.run.id, {}).get(f"confusion_{row['classifier']}")}
    return section


def variant_comparisons(rows: list[dict]) -> list[dict]:
    """Per backbone with more than its own features (a dense head, fine-tuned features): a pivot of its
    columns (its own features first) and what fine-tuning did to each classifier (the seed's "LinearSVC
    from zero to hero", as the numbers say it)."""
    out = []
    for backbone in dict.fromkeys(r["backbone"] for r in rows if r["column"] != r["backbone_name"]):
        mine = sorted((r for r in rows if r["backbone"] == backbone), key=lambda r: r["column"] != r["backbone_name"])
        own = {r["classifier"]: r for r in mine if r["column"] == r["backbone_name"]}
        tuned = {r["classifier"]: r for r in mine if r["kind"] == "finetuned"}
        changes = [{"classifier": c, "before": own[c]["val_accuracy"], "after": tuned[c]["val_accuracy"],
                    "column": tuned[c]["full"], "own": own[c]["full"], "finetune": tuned[c]["finetune"]} for c in tuned if c in own]
        head = [r for r in mine if r["kind"] == "dense_head"]
        out.append({"backbone": backbone, "name": mine[0]["backbone_name"], **classifier_pivot(mine, column="full"),
                    "changes": changes, "dense_head": head[0] if head else None,
                    "own_best": max(own.values(), key=lambda r: r["val_accuracy"]) if own else None})
    return out


def classifier_pivot(rows: list[dict], column: str = "backbone_name") -> dict:
    """Classifiers x backbones: the validation accuracy of each pair (the best per backbone marked), and the
    spread across classifiers for a fixed backbone against the spread across backbones for a fixed
    classifier (the seed's "it's not about the classifier but the features", as the numbers say it).
    ``column``: the row key naming the columns (a backbone, or one set of features)."""
    backbones = list(dict.fromkeys(r[column] for r in rows))
    classifiers = list(dict.fromkeys(r["classifier"] for r in rows))
    cell = {(r["classifier"], r[column]): r for r in rows}
    best = {b: max((r["val_accuracy"] for r in rows if r[column] == b), default=None) for b in backbones}
    pivot = [{"classifier": c, "cells": [{**cell[(c, b)], "best": cell[(c, b)]["val_accuracy"] == best[b]}
                                         if (c, b) in cell else None for b in backbones]} for c in classifiers]
    spread = None
    across_classifiers, across_backbones = _mean_range(rows, column), _mean_range(rows, "classifier")
    if len(backbones) >= 2 and len(classifiers) >= 2 and across_classifiers is not None and across_backbones is not None:
        spread = {"across_classifiers": across_classifiers, "across_backbones": across_backbones,
                  "features_matter_more": across_backbones > across_classifiers}
    return {"backbones": backbones, "pivot": pivot, "spread": spread,
            "unconverged": any(not r["converged"] for r in rows)}


def _mean_range(rows: list[dict], fixed: str) -> float | None:
    """The mean over the values of ``fixed`` of (best - worst validation accuracy) among the rows sharing it."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r[fixed], []).append(r["val_accuracy"])
    spans = [max(v) - min(v) for v in groups.values() if len(v) >= 2]
    return sum(spans) / len(spans) if spans else None
