"""Runs → one context for the deck: setup, data, one section per stage of ``mame.deck.sections.registry`` (under its
stage name), the paper's table, conclusions, appendix, changes.

Every number in the context comes from a run's metrics.json, except the cited references
(``report/references.yaml``). Sections whose runs are missing or failed carry placeholders.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mame import config
from mame.deck.sections import registry
from mame.deck.sections import seed_groups as seeds
from mame.deck.sections.choices import Choices, recorded
from mame.deck.sections.dataset import dataset_section
from mame.deck.sections.registry import DeckInputs
from mame.deck.sections.setup import setup_section
from mame.deck.sections.slide_parts import placeholder

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


def paper_section(references: dict, choices: Choices, setup: dict | None = None, names: dict | None = None) -> dict:
    """The MAMe paper's fine-tuning baselines (the real MAMe at R65k, fixed and variable shape, test accuracy) beside
    this deck's test accuracies per backbone, of the models the evaluate run chose on validation
    (``mame.deck.sections.choices``): feature extraction and fine-tuning, each at fixed and variable shape. Where the
    evaluate run compared the shapes (``metrics.shapes``) both come from that pair, so the fine-tuned FS number is
    then the variable-shape step's same-settings twin (``twin``), which may not be the best step; else FS is the chosen
    model and VS "—". Our backbones the paper did not run get rows of their own. Before any evaluate run: no numbers."""
    paper, names = references["mame_paper"], names or {}
    rows = [{**row, **ours(choices, row["backbone"])} for row in paper["baselines"]]
    cited = {row["backbone"] for row in paper["baselines"] if row["backbone"]}
    own = dict.fromkeys(c["backbone"] for c in [*choices.chosen, *choices.shapes] if c.get("backbone") not in cited | {None})
    rows += [{"architecture": names.get(b, b), "backbone": b, "fs": None, "vs": None, **ours(choices, b)} for b in own]
    keys = ("features_fs", "features_vs", "finetune_fs", "finetune_vs")
    return {"citation": paper["citation"], "doi": paper["doi"], "what": paper["what"], "rows": rows,
            "has_ours": any(r[k] is not None for r in rows for k in keys), "chosen": choices.made,
            "twins": [r for r in rows if r["twin"]], "ours": ours_label(setup or {})}


def ours(choices: Choices, backbone: str | None) -> dict:
    """Test accuracies of one backbone's chosen models: ``features_fs``/``_vs`` and ``finetune_fs``/``_vs`` (None: not
    run or not chosen), and ``twin``: the fine-tuned FS model when it is a variable-shape step's twin, not the best step
    (with ``best``, the best step and its test accuracy)."""
    none = {"features_fs": None, "features_vs": None, "finetune_fs": None, "finetune_vs": None, "twin": None, "best": None}
    if not backbone:
        return none
    pipeline, step = choices.pipeline(backbone), choices.best_step(backbone)
    features, tuned = choices.shape_pair("feature extraction", backbone), choices.shape_pair("fine-tuning", backbone)
    out = {**none, "features_fs": choices.test.get(pipeline["model"]) if pipeline else None,
           "finetune_fs": choices.test.get(step["model"]) if step else None}
    if features:
        out.update(features_fs=features["fixed_accuracy"], features_vs=features["variable_accuracy"])
    if tuned:
        out.update(finetune_fs=tuned["fixed_accuracy"], finetune_vs=tuned["variable_accuracy"])
        if step is None or tuned["fixed"] != step["model"]:
            out.update(twin=tuned["fixed"], best={"model": step["model"], "test": choices.test.get(step["model"])} if step else None)
    return out


def ours_label(setup: dict) -> str:
    """What this deck ran, in a few words: ``synthetic data, random init, CPU`` (as the setup slide says it)."""
    source = (setup.get("dataset") or {}).get("source")
    words = ["synthetic data" if source == "synthetic" else "the real MAMe" if source == "mame" else "its own data"]
    used = {w["used_key"] for w in setup.get("weights") or []}
    if "random" in used:
        words.append("partly random init" if "imagenet" in used else "random init")
    elif "imagenet" in used:
        words.append("ImageNet weights")
    devices = setup.get("devices") or []
    if devices:
        words.append("CPU" if all(d.startswith("CPU") for d in devices) else "GPU")
    return ", ".join(words)


def display_names(entries: list) -> dict[str, str]:
    """Backbone key -> display name, as the features runs recorded it (no Keras import here)."""
    return {e.run.backbone: e.metrics["metrics"]["name"] for e in entries
            if e.run.stage == "features" and e.metrics and e.metrics["metrics"].get("name")}


def subtitle(names: dict[str, str]) -> str:
    """``Transfer learning with VGG16, ResNet50 and EfficientNet-Lite0``: the backbones the runs used."""
    shown = list(dict.fromkeys(names.values()))
    if not shown:
        return "Transfer learning with ImageNet backbones"
    return "Transfer learning with " + (shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1])


def approaches_conclusion(scratch: dict, classify: dict, finetune: dict) -> list[str]:
    """The three approaches by their best validation accuracy (the seed: fine-tuning > features > scratch)."""
    found = []
    if scratch["best"] and scratch["best"]["val"] is not None:
        found.append(("trained from scratch", scratch["best"]["val"], scratch["best"]["variant"]))
    if classify.get("own_rows"):
        best = max(classify["own_rows"], key=lambda r: r["val_accuracy"])
        found.append(("features + classifier", best["val_accuracy"],
                      f"{best['backbone_name']} + {best['classifier'].replace('_', ' ')}"))
    if finetune.get("best") and finetune["best"]["val"] is not None:  # the step the evaluate run chose
        best = finetune["best"]
        found.append(("fine-tuning", best["val"], f"{best['name']} #{best['step']}"))
    if len(found) < 2:
        return []
    ranked = sorted(found, key=lambda f: -f[1])
    return ["Approaches by best validation accuracy: " + " > ".join(f"{what} {acc:.1%} ({how})" for what, acc, how in ranked)
            + "."]


def conclusions(context: dict, gaps: int) -> list[str]:
    """Statements derived from the numbers (never typed in): each stage's lines in slide order, the three
    approaches compared, what the data and weights were, and how many planned runs are missing."""
    out = [line for stage in registry.STAGES if (hook := stage.hook("conclusions")) for line in hook(context)]
    out += approaches_conclusion(context["scratch"], context["classify"], context["finetune"])
    if context["setup"]["flags"]:
        out.append("These figures used " + "; ".join(context["setup"]["flags"]) +
                   (": they exercise the pipeline and are not comparable with the paper." if context["setup"]["mame"] else
                    ": the backbones without ImageNet weights are baselines, not what pretraining gives."
                    if any("randomly initialised" in f for f in context["setup"]["flags"]) else "."))
    if gaps:
        out.append(f"{gaps} planned run(s) are missing or failed; their slides say so.")
    return out


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
                  rendered_at: str, references: dict | None = None, left_out: list | None = None) -> dict:
    """``left_out``: the runs the profile leaves out (``engine.plan.LeftOut``), said on the setup slide."""
    shown = seeds.combine(entries)  # one entry per stage/backbone/variant, its seeds folded (mean ± std)
    grouped = by_stage(shown)
    references = references or load_references()
    setup = setup_section(entries, profile, left_out or [])
    deck = DeckInputs(grouped=grouped, figures=seeds.figures_of(shown, figures), profile=profile,
                      names=display_names(entries), entries=entries, options=dict(profile.report or {}))
    context = {"rendered_at": rendered_at, "setup": setup, "dataset": dataset_section(setup), "names": deck.names,
               "subtitle": subtitle(deck.names),
               "stages": [{"stage": s.stage, "chapter": s.chapter, "template": s.template} for s in registry.STAGES],
               "planned": {s.stage: s.stage in plan_stages for s in registry.STAGES},
               "not_planned": {s.stage: not_planned(s.stage, s.not_planned) for s in registry.STAGES}}
    for stage in registry.STAGES:
        context[stage.stage] = stage.section(grouped.get(stage.stage, []), deck)
    context["paper"] = paper_section(references, recorded(deck), setup, deck.names)
    context["conclusions"] = conclusions(context, sum(e.state in ("failed", "missing", "unreadable") for e in entries))
    context.update(appendix=appendix_section(entries), stage_parameters=stage_parameters(entries), changes=changes,
                   references=references["references"])
    return context
