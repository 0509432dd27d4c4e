"""Runs → one context for the deck: setup, every section, conclusions, appendix, changes.

Every number in the context comes from a run's metrics.json, except the cited references
(``report/references.yaml``). Sections whose runs are missing or failed carry placeholders.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mame import config
from mame.deck.dataset import dataset_section
from mame.deck.evaluation import evaluation_conclusions, final_section
from mame.deck.explanations import explain_conclusions, explain_section
from mame.deck.sections import classify_section, features_section, placeholder
from mame.deck.setup import setup_section
from mame.deck.similarity import similarity_conclusions, similarity_section
from mame.deck.training import finetune_section, scratch_section

# Stages the deck has a section for; a stage absent from the plan gets a "not run yet" placeholder.
DECK_STAGES = ("scratch", "features", "similarity", "classify", "finetune", "evaluate", "explain")
APPENDIX_ROWS_PER_SLIDE = 10


def load_references(path: Path = config.REPORT_DIR / "references.yaml") -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the references file: {exc}") from None


def by_stage(entries: list) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for entry in entries:
        grouped.setdefault(entry.run.stage, []).append(entry)
    return grouped


def not_planned(stage: str, what: str) -> dict:
    return placeholder("not_planned", f"Not run yet: {what} needs a '{stage}' stage, which the plan "
                                      f"(experiments/plan.yaml) does not define yet.")


def paper_section(references: dict, grouped: dict, final: dict | None = None, exclude=()) -> dict:
    """The MAMe paper's fine-tuning baselines beside our own best numbers per backbone (test: the evaluate
    run's fine-tuned model of that backbone); ``exclude``: run ids left out (classifiers on fine-tuned features)."""
    ours = {}
    for stage in ("classify", "finetune"):  # headline: val accuracy
        for entry in grouped.get(stage, []):
            if entry.state in ("done", "stale") and entry.metrics.get("headline") and entry.run.id not in exclude:
                key = (entry.run.backbone, stage)
                ours[key] = max(ours.get(key, 0.0), entry.metrics["headline"]["value"])
    backbone_of = {f"finetune/{e.run.name}": e.run.backbone for e in grouped.get("finetune", [])}
    for row in (final or {}).get("models", []):
        if row["kind"] == "finetune" and row["model"] in backbone_of:
            key = (backbone_of[row["model"]], "evaluate")
            ours[key] = max(ours.get(key, 0.0), row["test"])
    paper = references["mame_paper"]
    rows = [{**row, "classify": ours.get((row["backbone"], "classify")),
             "finetune": ours.get((row["backbone"], "finetune")), "evaluate": ours.get((row["backbone"], "evaluate"))}
            for row in paper["baselines"]]
    return {"citation": paper["citation"], "doi": paper["doi"], "what": paper["what"], "rows": rows,
            "has_ours": bool(ours)}


def display_names(entries: list) -> dict[str, str]:
    """Backbone key -> display name, as the features runs recorded it (no Keras import here)."""
    return {e.run.backbone: e.metrics["metrics"]["name"] for e in entries
            if e.run.stage == "features" and e.metrics and e.metrics["metrics"].get("name")}


def training_conclusions(scratch: dict, finetune: dict) -> list[str]:
    """The baseline's best rung, each fine-tuning ladder's first → last step, the best fine-tuned backbone."""
    out = []
    if scratch["best"] and scratch["best"]["val"] is not None:
        out.append(f"Best CNN trained from scratch: {scratch['best']['variant']}, "
                   f"{scratch['best']['val']:.1%} validation accuracy.")
    for ladder in finetune["multi_step"]:
        story = ladder["story"]
        if story:
            out.append(f"{ladder['name']} fine-tuning ladder: {story['first']['val']:.1%} (#{story['first']['step']}) → "
                       f"{story['last']['val']:.1%} (#{story['last']['step']}) validation accuracy.")
    if finetune["comparison"]:
        best = max(finetune["comparison"], key=lambda r: r["val"])
        out.append(f"Best fine-tuned backbone: {best['name']} (step #{best['step']}), {best['val']:.1%} validation accuracy.")
    return out


def approaches_conclusion(scratch: dict, classify: dict, finetune: dict) -> list[str]:
    """The three approaches by their best validation accuracy (the seed: fine-tuning > features > scratch)."""
    found = []
    if scratch["best"] and scratch["best"]["val"] is not None:
        found.append(("trained from scratch", scratch["best"]["val"], scratch["best"]["variant"]))
    if classify.get("own_rows"):
        best = max(classify["own_rows"], key=lambda r: r["val_accuracy"])
        found.append(("features + classifier", best["val_accuracy"],
                      f"{best['backbone_name']} + {best['classifier'].replace('_', ' ')}"))
    tuned = [s for s in finetune["items"] if s["ran"] and s["val"] is not None]
    if tuned:
        best = max(tuned, key=lambda s: s["val"])
        found.append(("fine-tuning", best["val"], f"{best['backbone_name']} #{best['step']}"))
    if len(found) < 2:
        return []
    ranked = sorted(found, key=lambda f: -f[1])
    return ["Approaches by best validation accuracy: " + " > ".join(f"{what} {acc:.1%} ({how})" for what, acc, how in ranked)
            + "."]


def conclusions(setup: dict, features: dict, classify: dict, paper: dict, final: dict, gaps: int,
                names: dict[str, str], training: list[str] = (), explained: list[str] = ()) -> list[str]:
    """Statements derived from the numbers (never typed in); ``training`` from ``training_conclusions``,
    ``explained`` from ``explain_conclusions``."""
    out = list(training)
    name = lambda key: names.get(key, key)
    own_rows = classify.get("own_rows", classify["rows"])
    if own_rows:
        best = max(own_rows, key=lambda r: r["val_accuracy"])
        out.append(f"Best features + classifier: {best['backbone_name']} + "
                   f"{best['classifier'].replace('_', ' ')}, {best['val_accuracy']:.1%} validation accuracy.")
        per_backbone = {}
        for row in own_rows:
            per_backbone[row["backbone"]] = max(per_backbone.get(row["backbone"], 0), row["val_accuracy"])
        ranking = sorted(per_backbone.items(), key=lambda kv: -kv[1])
        out.append("Backbones by best validation accuracy: " +
                   ", ".join(f"{name(k)} {v:.1%}" for k, v in ranking) + ".")
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
    out += variant_conclusions(classify)
    if features["rows"]:
        probe = max(features["rows"], key=lambda r: r["probe"] or 0)
        out.append(f"Most separable features (nearest-centroid probe): {probe['backbone']} at {probe['probe']:.1%}.")
    if final.get("reference"):
        out += evaluation_conclusions(final)
        best_paper = max(paper["rows"], key=lambda r: r["fs"])
        out.append(f"Distance to the paper's best R65k result ({best_paper['architecture']}, {best_paper['fs']:.1%}): "
                   f"{100 * (final['reference']['accuracy'] - best_paper['fs']):+.1f} percentage points.")
    else:
        out.append("No test-split evaluation yet, so no distance to the paper's test accuracies is claimed.")
    out += list(explained)
    if setup["flags"]:
        out.append("These figures come from " + "; ".join(setup["flags"]) +
                   ": they exercise the pipeline and are not comparable with the paper.")
    if gaps:
        out.append(f"{gaps} planned run(s) are missing or failed; their slides say so.")
    return out


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


def with_test_accuracy(scratch: dict, final: dict) -> dict:
    """The baseline table's Test column: the rungs the evaluate run scored on the test split."""
    tested = {row["model"]: row["test"] for row in final.get("models", []) if row["kind"] == "scratch"}
    for item in scratch["items"]:
        if item["ran"] and item.get("test") is None and item["run"] in tested:
            item["test"] = tested[item["run"]]
    scratch["has_test"] = any(it.get("test") is not None for it in scratch["items"] if it["ran"])
    scratch["tested_by_evaluate"] = bool(tested)
    return scratch


def appendix_section(entries: list) -> list[list[dict]]:
    """One row per planned run (provenance), chunked to fit the slides."""
    rows = []
    for entry in entries:
        info = (entry.metrics or {}).get("run")
        settings = ", ".join(f"{k}={v}" for k, v in sorted(entry.run.overrides.items())) or "defaults"
        rows.append({"run": entry.run.id, "state": entry.state, "settings": settings,
                     "key": info["cache_key"] if info else "—",
                     "commit": ((info["git"]["commit"] or "none")[:8] + ("+" if info["git"]["dirty"] else "")) if info else "—",
                     "duration": info["duration_s"] if info else None,
                     "device": info["device"]["kind"] if info else "—",
                     "versions": f"{info['versions'].get('tensorflow')} / {info['versions'].get('keras')}" if info else "—",
                     "test_reads": len(info["test_split_reads"]) if info else 0})
    return [rows[i:i + APPENDIX_ROWS_PER_SLIDE] for i in range(0, len(rows), APPENDIX_ROWS_PER_SLIDE)]


def stage_parameters(entries: list) -> list[dict]:
    """Per stage, the parameters its runs share (what differs per run is in the appendix rows)."""
    out = []
    for stage, group in by_stage(entries).items():
        params = [e.run.params for e in group]
        common = {k: v for k, v in params[0].items() if all(p.get(k) == v for p in params[1:])}
        out.append({"stage": stage, "runs": len(group),
                    "params": ", ".join(f"{k}={v}" for k, v in sorted(common.items()))})
    return out


def build_context(entries: list, profile, plan_stages: list[str], *, figures: dict, changes: dict,
                  rendered_at: str, references: dict | None = None) -> dict:
    grouped = by_stage(entries)
    references = references or load_references()
    setup = setup_section(entries, profile)
    names = display_names(entries)
    features = features_section(grouped.get("features", []), figures)
    classify = classify_section(grouped.get("classify", []), figures, names,
                                {e.run.name: e.metrics["metrics"] for e in grouped.get("features", []) if e.metrics})
    final = final_section(grouped.get("evaluate", []), figures, entries)
    explain = explain_section(grouped.get("explain", []), figures)
    similarity = similarity_section(grouped.get("similarity", []), figures, grouped.get("scratch", []))
    paper = paper_section(references, grouped, final, {r["run"] for r in classify["rows"] if r["kind"] == "finetuned"})
    gaps = sum(e.state in ("failed", "missing", "unreadable") for e in entries)
    scratch = with_test_accuracy(scratch_section(grouped.get("scratch", []), figures, profile), final)
    finetune = finetune_section(grouped.get("finetune", []), figures, names, profile)
    planned = {stage: stage in plan_stages for stage in DECK_STAGES}
    return {
        "rendered_at": rendered_at, "setup": setup, "dataset": dataset_section(setup), "planned": planned, "paper": paper,
        "not_planned": {
            "scratch": not_planned("scratch", "the baseline trained from scratch"),
            "similarity": not_planned("similarity", "the task-similarity measure (ImageNet predictions on MAMe)"),
            "finetune": not_planned("finetune", "the fine-tuning ladder"),
            "evaluate": not_planned("evaluate", "the test-split evaluation"),
            "explain": not_planned("explain", "Grad-CAM maps"),
        },
        "scratch": scratch, "finetune": finetune,
        "features": features, "similarity": similarity, "classify": classify, "final": final, "explain": explain,
        "conclusions": conclusions(setup, features, classify, paper, final, gaps, names,
                                   training_conclusions(scratch, finetune) + approaches_conclusion(scratch, classify, finetune)
                                   + similarity_conclusions(similarity),
                                   explain_conclusions(explain)),
        "appendix": appendix_section(entries), "stage_parameters": stage_parameters(entries), "changes": changes,
        "references": references["references"],
    }
