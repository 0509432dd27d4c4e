"""The "Final result" slides from the evaluate run (``mame/stages/evaluate.py``): the reference model's
(best single model on validation) test report and confusion matrix, the models table (each row labelled
with its approach: scratch, feature extraction, fine-tuning, ensemble) with intervals and McNemar
comparisons, the three approaches side by side on test (fixed shape), fixed against variable shape on test and
what variable shape costs (``mame.deck.sections.shape_slides``), the test-split ledger, per-class findings, the most
confused pairs, the conclusions.

Every statement is computed from the run's metrics.json; a missing or failed run gives placeholders.
"""

from __future__ import annotations

import numpy as np

from mame import plots
from mame.deck.sections import evaluate_figures
from mame.deck.sections import shape_slides as shapes
from mame.deck.sections.slide_parts import MAX_MATRIX_CLASSES, entry_placeholder, matrix_shown, placeholder, report_rows
from mame.metrics import describe_comparison as describe

SIGNIFICANCE = 0.05
N_FINDINGS = 3     # classes named per finding
N_PAIRS = 3        # confused pairs in the gallery
SUMMARY_ROWS = ("accuracy", "macro avg", "weighted avg", "micro avg")
# A row's approach, from its kind (the stage that made the model), for runs written before evaluate recorded it.
APPROACHES = {"scratch": "scratch", "classify": "feature extraction", "finetune": "fine-tuning", "ensemble": "ensemble"}
# Rows of the models table on one slide (the full profile's five backbones: 5 fine-tuned, 5 feature pipelines,
# a rung, the ensemble); more continue on the next slide.
MODELS_PER_SLIDE = 12


def section(entries: list, deck) -> dict:
    """The evaluate run's slides; every planned run (``deck.entries``) tells which other runs read test."""
    figures, all_entries = deck.figures, deck.entries
    gaps = [g for g in (entry_placeholder(e) for e in entries) if g]
    usable = [e for e in entries if entry_placeholder(e) is None]
    empty = {"gaps": gaps, "ready": False, "run": None, "stale": False, "reference": None, "models": [],
             "model_pages": [], "approaches": [], "ensemble": None, "ledger": None, "best_on_test": None,
             "shapes_figure": None}
    if not usable:
        return {**empty, "shapes": shapes.section(None, [], deck)}
    entry = usable[0]
    m = entry.metrics["metrics"]
    if not m.get("models") or not m.get("best_single"):
        gaps.append(placeholder("failed", f"{entry.run.id} has no model table (metrics.models): run it again "
                                          "with the current evaluate stage", f"runs/{entry.run.stage}/{entry.run.name}"))
        return {**empty, "shapes": shapes.section(entry.run.id, [], deck)}
    figs = figures.get(entry.run.id, {})
    models = model_rows(m["models"], m.get("chosen") or [])
    final = {**reference(entry.metrics, figs), "seed": chosen_seed(m["best_single"], deck.grouped)}
    return {**empty, "ready": True, "run": entry.run.id, "stale": entry.state == "stale",
            "reference": final, "models": models, "model_pages": pages(models),
            "approaches": approaches(models), "ensemble": ensemble_summary(m, models),
            "ledger": ledger(entry, all_entries), "best_on_test": max(models, key=lambda r: r["test"]),
            "shapes": shapes.section(entry.run.id, m.get("shapes") or [], deck)}


def chosen_seed(model: str, grouped: dict) -> dict | None:
    """For a model from a run of several seeds (``mame.deck.sections.seed_groups``): its seed, the seeds of its run and the
    run's id without the seed; None for a run of one seed. ``model``: ``stage/run`` or ``stage/run/classifier``."""
    for entry in (e for entries in grouped.values() for e in entries if e.combined is not None):
        for member in entry.combined.members:
            if model == member.run.id or model.startswith(member.run.id + "/"):
                return {"seed": member.run.seed, "run": entry.run.id,
                        "seeds": ", ".join(str(m.run.seed) for m in entry.combined.members)}
    return None


def model_rows(models: list[dict], chosen: list[dict] = ()) -> list[dict]:
    """metrics.models as table rows: approach, val, test (95 % interval), macro F1, the comparison with the
    reference; ``shown``: the model's name on the slide (an ensemble's members are listed under the table);
    ``shape`` and ``twin_of`` from the run's choices (``metrics.chosen``), ``marks``: ``VS`` for a variable-shape
    model, ``FS twin`` for a fixed-shape step scored only as a variable-shape step's like-for-like partner."""
    rows, record = [], {c["model"]: c for c in chosen}
    for row in models:
        vs = row.get("vs_best")
        shown = f"ensemble of {row['model'].count(' + ') + 1} models" if row["kind"] == "ensemble" else row["model"]
        mine = record.get(row["model"], {})
        shape, twin_of = mine.get("shape", "fixed"), mine.get("twin_of")
        rows.append({"model": row["model"], "shown": shown, "kind": row["kind"], "shape": shape, "twin_of": twin_of,
                     "marks": "VS" if shape == "variable" else "FS twin" if twin_of else "",
                     "approach": row.get("approach") or APPROACHES.get(row["kind"], row["kind"]),
                     "val": row["val_accuracy"], "test": row["accuracy"],
                     "ci_low": row["ci_low"], "ci_high": row["ci_high"], "macro_f1": row["macro_f1"],
                     "n_images": row["n_images"], "reference": bool(row.get("reference")),
                     "vs": "reference" if row.get("reference") or not vs else describe(vs),
                     "p_value": vs["p_value"] if vs else None, "delta_pp": vs["delta_pp"] if vs else None,
                     "significant": bool(vs) and vs["p_value"] < SIGNIFICANCE})
    return rows


def pages(models: list[dict], per_slide: int = MODELS_PER_SLIDE) -> list[list[dict]]:
    """The models table's rows, ``per_slide`` to a slide (the last slide holds at least two rows)."""
    cuts = list(range(0, len(models), per_slide))
    if len(cuts) > 1 and len(models) - cuts[-1] < 2:
        cuts[-1] -= 1
    return [models[a:b] for a, b in zip(cuts, cuts[1:] + [len(models)])]


def approaches(models: list[dict]) -> list[dict]:
    """Per approach (not the ensemble), the fixed-shape model of it best on validation with its test accuracy and
    interval, highest test accuracy first: the approaches side by side on test (variable shape has its own slide; a
    twin was not chosen). The evaluate run records each approach's models best on validation first
    (``mame/stages/evaluate.py``): its first row is read, not chosen again."""
    best: dict[str, dict] = {}
    for row in models:
        if row["kind"] != "ensemble" and row["shape"] == "fixed" and not row["twin_of"]:
            best.setdefault(row["approach"], row)
    return sorted(({"approach": a, "model": r["model"], "val": r["val"], "test": r["test"], "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"], "reference": r["reference"]} for a, r in best.items()),
                  key=lambda r: -r["test"])


def ensemble_summary(m: dict, models: list[dict]) -> dict:
    """How the ensemble was chosen, how many were tried, and the one kept (the evaluate run's choice, best on
    validation) with its validation accuracy."""
    tried = m.get("ensembles") or []
    best = next((e for e in tried if e["members"] == m.get("ensemble")), None)
    return {"method": m.get("ensemble_method") or "none", "tried": len(tried),
            "best_val": best["val_accuracy"] if best else None, "best_members": best["members"] if best else [],
            "members": m.get("ensemble") or [], "row": next((r for r in models if r["kind"] == "ensemble"), None)}


def reference(metrics: dict, figs: dict) -> dict:
    """The best single model on validation: its test report, figures, findings and most confused pairs."""
    name = metrics["metrics"]["best_single"]
    cls = metrics["classification"][f"{name}/test"]
    row = next(r for r in metrics["metrics"]["models"] if r["model"] == name)
    block = cls["confusion_matrix"]
    pairs = plots.confused_pairs(block["matrix"], block["labels"], top=N_PAIRS)
    return {"model": name, "accuracy": cls["report"]["accuracy"], "val": row["val_accuracy"],
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "macro_f1": row["macro_f1"],
            "n_images": row["n_images"], "table": report_rows(cls["report"]), "findings": findings(cls),
            "hardest": hardest(cls["report"]), "pairs": pairs, "confusion": figs.get("confusion_test"),
            "per_class": figs.get("per_class_recall"), "gallery": figs.get("error_gallery"),
            "matrix_shown": matrix_shown(block["labels"], "test"),
            "empty_classes": [k for k, v in cls["report"].items() if k not in SUMMARY_ROWS and v["support"] == 0],
            "per_class_shown": plots.per_class_data(cls["report"], keep=evaluate_figures.MAX_RECALL_BARS)["shown"],
            "dataset": metrics["run"]["dataset"].get("path", "")}


def _classes(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in SUMMARY_ROWS}


def _listing(items: list[tuple[str, float]], tied: int = 0) -> str:
    text = ", ".join(f"{name} {value:.2f}" for name, value in items)
    return text + (f" and {tied} more at {items[-1][1]:.2f}" if tied else "")


def _ranked(rows: dict, key: str, n: int, *, lowest: bool = True) -> tuple[list[tuple[str, float]], int]:
    """The ``n`` classes of ``rows`` lowest (or highest) in ``key`` (ties: report order), and how many
    more classes share the last one's value."""
    ranked = sorted(((k, v[key]) for k, v in rows.items()), key=lambda kv: kv[1] if lowest else -kv[1])
    shown = ranked[:n]
    return shown, sum(1 for _, value in ranked[n:] if shown and value == shown[-1][1])


def hardest(report: dict, n: int = N_FINDINGS) -> dict:
    """The ``n`` classes with test images and the lowest F1: ``{"classes": [(name, f1)], "tied": more at the last F1}``."""
    shown, tied = _ranked({k: v for k, v in _classes(report).items() if v["support"] > 0}, "f1-score", n)
    return {"classes": shown, "tied": tied}


def findings(cls: dict, n: int = N_FINDINGS) -> list[str]:
    """Seed-style findings from a classification entry: lowest precision (among classes the model predicts),
    lowest recall (among classes with test images), never-predicted classes, precision far below recall,
    the highest F1 and the most confused pair."""
    report, counts = cls["report"], np.asarray(cls["confusion_matrix"]["matrix"])
    labels = cls["confusion_matrix"]["labels"]
    predicted = dict(zip(labels, counts.sum(axis=0).tolist()))
    classes = _classes(report)
    present = {k: v for k, v in classes.items() if v["support"] > 0}
    chosen = {k: v for k, v in classes.items() if predicted.get(k, 0) > 0}
    out = []
    if chosen:
        out.append(f"Lowest precision (its predictions are often other classes): "
                   f"{_listing(*_ranked(chosen, 'precision', n))}.")
    if present:
        out.append(f"Lowest recall (its images are often missed): {_listing(*_ranked(present, 'recall', n))}.")
    never = [k for k in present if predicted.get(k, 0) == 0]
    if never:
        shown = ", ".join(never[:n]) + (f" and {len(never) - n} more" if len(never) > n else "")
        out.append(f"Never predicted: {len(never)} of {len(present)} classes ({shown}).")
    gaps = [(k, v) for k, v in present.items() if k in chosen and v["recall"] - v["precision"] >= 0.2]
    if gaps:
        k, v = max(gaps, key=lambda kv: kv[1]["recall"] - kv[1]["precision"])
        out.append(f"{k}: precision {v['precision']:.2f} against recall {v['recall']:.2f}: "
                   f"predicted for many images of other classes.")
    scored = {k: v for k, v in present.items() if v["f1-score"] > 0}
    if scored:
        out.append(f"Highest F1: {_listing(*_ranked(scored, 'f1-score', n, lowest=False))}.")
    pairs = plots.confused_pairs(counts, labels, top=1)
    if pairs:
        p = pairs[0]
        out.append(f"Most confused: {p['count']} {p['true_name']} images predicted as {p['pred_name']} "
                   f"({p['share']:.0%} of the class).")
    return out


def ledger(entry, all_entries: list) -> dict:
    """The evaluate run's test-split reads, whether each scored model was read exactly once, and which
    other runs (if any) recorded a read of the test split."""
    reads = entry.metrics["run"]["test_split_reads"]
    singles = [r["model"] for r in entry.metrics["metrics"]["models"] if r["kind"] != "ensemble"]
    per_model = {name: sum(str(r.get("model", "")).startswith(f"{name}/") or r.get("model") == name for r in reads)
                 for name in singles}
    others = [e.run.id for e in all_entries if e.run.id != entry.run.id and e.metrics
              and (e.metrics.get("run") or {}).get("test_split_reads")]
    return {"reads": [{"n": i, "what": r["what"], "n_images": r["n_images"], "model": r.get("model")}
                      for i, r in enumerate(reads, 1)],
            "records": sum(1 for r in reads if not r.get("model")), "models": len(singles),
            "each_once": all(count == 1 for count in per_model.values()),
            "not_once": sorted(name for name, count in per_model.items() if count != 1), "others": others}


def evaluation_conclusions(final: dict, significance: float = SIGNIFICANCE) -> list[str]:
    """The test-split statements: the reference model with its interval, the best on test if another one,
    whether the ensemble is significantly better (McNemar), the hardest classes."""
    ref = final.get("reference")
    if not ref:
        return []
    out = [f"Final model (best single model on validation): {ref['model']}, {ref['accuracy']:.1%} test accuracy "
           f"(95 % CI {ref['ci_low']:.1%}–{ref['ci_high']:.1%}, {ref['n_images']:,} images)."]
    side = final.get("approaches") or []
    if len(side) > 1:
        out.append("The approaches on test, each by its model best on validation: " + "; ".join(
            f"{a['approach']} {a['test']:.1%} ({a['model']})" for a in side) + ".")
    best = final["best_on_test"]
    if best and best["model"] != ref["model"] and best["test"] > ref["accuracy"]:
        out.append(f"Highest test accuracy: {best['model']}, {best['test']:.1%} "
                   f"(95 % CI {best['ci_low']:.1%}–{best['ci_high']:.1%}; {best['vs']} against the final model).")
    row = final["ensemble"]["row"] if final["ensemble"] else None
    if row:
        verdict = ("significantly better than" if row["significant"] and row["delta_pp"] > 0 else
                   "significantly worse than" if row["significant"] else "not significantly different from")
        out.append(f"The ensemble of {len(final['ensemble']['members'])} models is {verdict} the best single model "
                   f"on test ({row['vs']}, McNemar; threshold p < {significance:g}).")
    elif final["ensemble"]:
        out.append(f"No ensemble was scored: {final['ensemble']['method']}.")
    if ref["hardest"]["classes"]:
        out.append(f"Hardest classes on test (lowest F1): {_listing(ref['hardest']['classes'], ref['hardest']['tied'])}.")
    return out


def conclusions(context: dict) -> list[str]:
    """The test-split statements and, on the real MAMe, the distance to the paper's best R65k result (on
    synthetic data no distance is claimed: the setup line says why)."""
    final, real = context["evaluate"], context["setup"]["dataset"].get("source") == "mame"
    if not final.get("reference"):
        return ["No test-split evaluation yet" + (", so no distance to the paper's test accuracies is claimed." if real else ".")]
    out = evaluation_conclusions(final) + shapes.conclusions(final.get("shapes") or {})
    if real:
        best_paper = max((r for r in context["paper"]["rows"] if r["fs"] is not None), key=lambda r: r["fs"])
        out.append(f"Distance to the paper's best R65k result ({best_paper['architecture']}, {best_paper['fs']:.1%}): "
                   f"{100 * (final['reference']['accuracy'] - best_paper['fs']):+.1f} percentage points.")
    return out


def report_figures(section: dict, out_dir) -> dict:
    """The padding per aspect-ratio bucket of the shape slides (``mame.deck.sections.shape_slides``), kept while it shows
    the same data drawn by the same code."""
    return {"shapes_figure": shapes.padding_figure(section["shapes"], out_dir)}


def run_figures(entry, drawer) -> dict:
    """The reference model's test confusion matrix (the whole slide width, no title: the slide has one),
    its per-class recall and the error gallery."""
    key = evaluate_figures.reference_key(entry.metrics)
    found = {}
    if key:
        cls = entry.metrics["classification"][key]
        found["confusion_test"] = drawer.draw("confusion_test", lambda: plots.draw_confusion_matrix(
            plots.most_confused(plots.confusion_matrix_data(cls), MAX_MATRIX_CLASSES), size="matrix",
            font_size=evaluate_figures.MATRIX_FONT))
    return {**found, **evaluate_figures.evaluation_figures(entry, drawer.draw)}
