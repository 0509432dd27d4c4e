"""The "Classification" slides from the classify runs (``mame/stages/classify.py``): the classifier x
backbone pivot on the backbones' own features (best per backbone marked) and its spread, the settings and
timings, the best model's report and confusion matrix, and per backbone with a dense head or fine-tuned
features, all its columns side by side.
"""

from __future__ import annotations

from pathlib import Path

from mame import plots
from mame.deck.sections import shape_slides as shapes
from mame.deck.sections.slide_parts import MAX_MATRIX_CLASSES, entry_placeholder, matrix_shown, report_rows

WEIGHTS_WORDS = {"imagenet": "ImageNet", "random": "random-init"}


def feature_source(entry, features: dict[str, dict], names: dict[str, str]) -> dict:
    """What a classify run classified, from the features run it needs (``features``: run name -> its
    ``metrics``): ``kind`` "features" (the backbone's own, ImageNet or random init), "dense_head" (logistic
    regression on raw activations of VGG16's dense layers: a new softmax on the kept layers), "finetuned"
    (the fine-tuned model's features) or "variable" (the backbone's features at variable shape), and the column
    ``label`` the deck shows."""
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
    if fm.get("shape") == "variable":
        label = shapes.labelled(name, "variable")
        return {"kind": "variable", "label": label, "full": f"{full} (variable shape)", "layer": layer}
    own = entry.run.variant == "default" and layer == fm.get("feature_layer", layer)
    return {"kind": "features", "label": name if own else full, "full": full, "layer": layer}


def section(entries: list, deck) -> dict:
    """The classifier comparison: the backbones' own features (``pivot``, the spread: like with like), and for
    a backbone with a dense head or fine-tuned features, all its columns side by side (``variants``)."""
    rows, gaps, best, figures, names = [], [], None, deck.figures, deck.names
    features = {e.run.name: e.metrics["metrics"] for e in deck.grouped.get("features", []) if e.metrics}
    for entry in entries:
        gap = entry_placeholder(entry)
        if gap:
            gaps.append(gap)
            continue
        source = feature_source(entry, features, names)
        for item in entry.metrics["metrics"].get("classifiers", []):
            split = next(k for k in item if k.endswith("_accuracy") and k != "train_accuracy")
            row = {"run": entry.run.id, "backbone": entry.run.backbone, "kind": source["kind"],
                   "backbone_name": names.get(entry.run.backbone, entry.run.backbone), "column": source["label"],
                   "full": source["full"],
                   "classifier": item["classifier"],
                   "train_accuracy": item["train_accuracy"], "val_accuracy": item[split],
                   "converged": item.get("converged", True), "split": split.removesuffix("_accuracy"),
                   "sampled": _sampled(item.get("train_images")),
                   "params": ", ".join(f"{k}={v}" for k, v in (item.get("params") or {}).items()),
                   "n_tried": len(item.get("tried") or []), "fit_seconds": item.get("fit_seconds"),
                   "predict_seconds": item.get("predict_seconds"), "finetune": source.get("finetune")}
            rows.append(row)
            chosen = item["classifier"] == entry.metrics["metrics"].get("best_classifier")  # the run's own choice
            if chosen and (best is None or row["val_accuracy"] > best[0]["val_accuracy"]):
                best = (row, entry)
    own = [r for r in rows if r["kind"] == "features" and r["column"] == r["backbone_name"]]
    section = {"rows": rows, "own_rows": own, "gaps": gaps, "best": None,
               "seeded": any(e.combined is not None for e in entries),
               "bars": None, **classifier_pivot(own),
               "variants": variant_comparisons(rows)}
    if best:
        row, entry = best
        key = f"{row['classifier']}/{row['split']}"
        cls = entry.metrics["classification"][key]
        section["best"] = {**row, "table": report_rows(cls["report"]), "predictions": cls.get("predictions"),
                           "confusion": figures.get(entry.run.id, {}).get(f"confusion_{row['classifier']}"),
                           "matrix_shown": matrix_shown(cls["confusion_matrix"]["labels"], "validation")}
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
        kinds = {r["kind"] for r in mine}
        others = [what for kind, what in (("dense_head", "its dense head"), ("finetuned", "fine-tuned features"),
                                          ("variable", "variable-shape features")) if kind in kinds]
        out.append({"backbone": backbone, "name": mine[0]["backbone_name"], **classifier_pivot(mine, column="full"),
                    "others": others, "changes": changes, "dense_head": head[0] if head else None,
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
    sampled = [r["sampled"] for r in rows if r.get("sampled")]
    return {"backbones": backbones, "pivot": pivot, "spread": spread,
            "unconverged": any(not r["converged"] for r in rows), "sampled": max(sampled, default=None)}


def _sampled(train_images) -> list[int] | None:
    """[used, all] training images of a classifier fitted on a sample of them (``rbf_svc_max_train``), else None."""
    if isinstance(train_images, list) and len(train_images) == 2 and train_images[0] < train_images[1]:
        return train_images
    return None


def _mean_range(rows: list[dict], fixed: str) -> float | None:
    """The mean over the values of ``fixed`` of (best - worst validation accuracy) among the rows sharing it."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r[fixed], []).append(r["val_accuracy"])
    spans = [max(v) - min(v) for v in groups.values() if len(v) >= 2]
    return sum(spans) / len(spans) if spans else None


def run_figures(entry, drawer) -> dict[str, Path]:
    """The confusion matrix of the run's best classifier on validation (``confusion_<classifier>``)."""
    best = entry.metrics["metrics"].get("best_classifier")
    found = {}
    for key, cls in entry.metrics["classification"].items():
        if key.rpartition("/")[0] == best:
            title = f"{entry.run.id}: {key} (row-normalised)"
            found[f"confusion_{best}"] = drawer.draw(f"confusion_{best}", lambda cls=cls, title=title: plots.draw_confusion_matrix(
                plots.most_confused(plots.confusion_matrix_data(cls), MAX_MATRIX_CLASSES), title=title))
    return found


def report_figures(section: dict, out_dir: Path) -> dict[str, Path | None]:
    return {"bars": classify_bars(section["own_rows"], out_dir)}


def classify_bars(rows: list[dict], out_dir: Path) -> Path | None:
    """Validation accuracy of each classifier on each backbone's features."""
    if not rows:
        return None
    table = [{"backbone": r["backbone_name"], "classifier": r["classifier"].replace("_", " "),
              "validation accuracy": r["val_accuracy"]} for r in rows]
    fig = plots.draw_accuracy_bars(table, x="backbone", y="validation accuracy", hue="classifier",
                                   title="Classifiers on extracted features (validation)")
    return plots.save_figure(fig, out_dir / "classify_bars.png")


def conclusions(context: dict) -> list[str]:
    """The best features + classifier, the backbones ranked, the classifier that wins most often, the spread,
    then the dense head and the fine-tuned features against the backbone's own."""
    classify, names = context["classify"], context["names"]
    out, own_rows = [], classify["own_rows"]
    if own_rows:
        best = max(own_rows, key=lambda r: r["val_accuracy"])
        out.append(f"Best features + classifier: {best['backbone_name']} + "
                   f"{best['classifier'].replace('_', ' ')}, {best['val_accuracy']:.1%} validation accuracy.")
        per_backbone = {}
        for row in own_rows:
            per_backbone[row["backbone"]] = max(per_backbone.get(row["backbone"], 0), row["val_accuracy"])
        ranking = sorted(per_backbone.items(), key=lambda kv: -kv[1])
        out.append("Backbones by best validation accuracy: " +
                   ", ".join(f"{names.get(k, k)} {v:.1%}" for k, v in ranking) + ".")
        wins = {}
        for backbone in per_backbone:
            rows = [r for r in own_rows if r["backbone"] == backbone]
            top = max(rows, key=lambda r: r["val_accuracy"])["classifier"]
            wins[top] = wins.get(top, 0) + 1
        top, count = max(wins.items(), key=lambda kv: kv[1])
        out.append(f"{top.replace('_', ' ').capitalize()} is the best classifier for {count} of {len(per_backbone)} backbones.")
        spread = classify.get("spread")
        if spread:
            out.append(f"Validation accuracy spreads {100 * spread['across_classifiers']:.1f} points across classifiers "
                       f"for a fixed backbone and {100 * spread['across_backbones']:.1f} points across backbones for a "
                       "fixed classifier: " + ("it is the features more than the classifier." if spread["features_matter_more"]
                                               else "here the classifier matters more than the features."))
    return out + variant_conclusions(classify)


def variant_conclusions(classify: dict) -> list[str]:
    """The dense head against the backbone's own features, and one classifier before and after fine-tuning
    the features (the linear SVM when it ran: the seed's "LinearSVC from zero to hero")."""
    out = []
    for v in classify.get("variants", []):
        head, own = v["dense_head"], v["own_best"]
        if head and own:
            out.append(f"{head['column']}: {head['val_accuracy']:.1%} validation accuracy, against "
                       f"{own['val_accuracy']:.1%} for the best classifier on its own {own['full'].split(' ', 1)[-1]} "
                       f"features ({own['classifier'].replace('_', ' ')}).")
        change = next((c for c in v["changes"] if c["classifier"] == "linear_svm"), v["changes"][0] if v["changes"] else None)
        if change:
            what = change["classifier"].replace("_", " ").replace("svm", "SVM").replace("svc", "SVC")
            out.append(f"{what[0].upper() + what[1:]} on {v['name']} features: "
                       f"{change['before']:.1%} ({change['own']}) → {change['after']:.1%} ({change['column']}).")
    return out
