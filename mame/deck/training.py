"""Deck sections of the training stages: the scratch baseline ladder and the fine-tuning ladder.

Every planned run keeps its place (plan order): a missing or failed one shows its placeholder where its
numbers would be. Accuracies come from the runs' ``classification`` entries (``train``/``val``/``test``),
the rest from their ``metrics`` block (see ``mame/stages/scratch.py`` and ``finetune.py``).
"""

from __future__ import annotations

from mame.deck import sections, settings
from mame.deck.sections import entry_placeholder, overfitting, split_accuracy

# Settings every fine-tuning slide lists, in this order; keys some step sets follow.
FINETUNE_KEYS = ("trainable_from", "dense_units", "learning_rate", "batch_size", "epochs")


def overfitting_rule() -> str:
    """The thresholds of ``sections.OVERFITTING`` as one caption line: ``High: train − val > 0.20 · ...``."""
    parts, previous = [], None
    for limit, name in sections.OVERFITTING:
        if limit == float("-inf"):
            parts.append(f"{name}: {'any gap' if previous is None else f'≤ {previous:.2f}'}")
        else:
            parts.append(f"{name}: train − val > {limit:.2f}")
        previous = limit
    return " · ".join(parts)


def run_numbers(entry, figures: dict) -> dict:
    """The numbers a training run's slide or row shows (entry must be usable)."""
    m = entry.metrics["metrics"]
    train, val, test = (split_accuracy(entry.metrics, s) for s in ("train", "val", "test"))
    phases = m.get("phases") or []
    return {"train": train, "val": val, "test": test, "overfitting": overfitting(train, val),
            "n_params": m.get("n_params"), "epochs_run": m.get("epochs_run"), "best_epoch": m.get("best_epoch"),
            "seconds_per_epoch": m.get("seconds_per_epoch"), "stopped_early": bool(m.get("stopped_early")),
            "phases": [p for p in phases if p.get("epochs")], "notes": entry.metrics["notes"],
            "curves": figures.get(entry.run.id, {}).get("training_curves")}


def _item(entry, figures: dict, profile, previous_planned: dict | None, keys) -> tuple[dict, dict]:
    """One rung or step: plan settings, what changed, what was forced, and the numbers if it ran."""
    planned = entry.run.planned
    changed = settings.changes(previous_planned, planned, keys)
    gap = entry_placeholder(entry)
    resolved = {} if gap else {"trainable_from": entry.metrics["metrics"].get("trainable_from")}
    item = {"run": entry.run.id, "variant": entry.run.variant, "about": entry.run.about,
            "settings": settings.rows(planned, keys, changed, resolved), "changed": list(changed),
            "forced": settings.forced_text(settings.forced_values(planned, entry.run.params), profile.name),
            "gap": gap, "ran": gap is None, "stale": entry.state == "stale"}
    if gap is None:
        item.update(run_numbers(entry, figures))
    return item, planned


def scratch_section(entries: list, figures: dict, profile) -> dict:
    """The baseline table (plan order), what each rung changes, and the best rung's curves."""
    keys = settings.ladder_keys([e.run for e in entries], ())
    items, previous = [], None
    for entry in entries:
        item, previous = _item(entry, figures, profile, previous, keys)
        item["changes"] = "; ".join(f"{s['label']} {s['was']} → {s['value']}" for s in item["settings"] if s["changed"])
        items.append(item)
    ran = [it for it in items if it["ran"]]
    best = max(ran, key=lambda it: it["val"] if it["val"] is not None else -1.0) if ran else None
    return {"items": items, "gaps": [it["gap"] for it in items if it["gap"]], "best": best,
            "rule": overfitting_rule(), "forced": sorted({it["forced"] for it in items if it["forced"]}),
            "has_test": any(it.get("test") is not None for it in ran)}


def finetune_section(entries: list, figures: dict, names: dict[str, str], profile) -> dict:
    """One ladder per backbone (plan order), its summary, and the backbones compared."""
    keys = settings.ladder_keys([e.run for e in entries], FINETUNE_KEYS)
    ladders: dict[str, dict] = {}
    for entry in entries:
        backbone = entry.run.backbone
        ladder = ladders.setdefault(backbone, {"backbone": backbone, "name": names.get(backbone, backbone),
                                               "steps": [], "planned": None})
        item, ladder["planned"] = _item(entry, figures, profile, ladder["planned"], keys)
        item.update(step=len(ladder["steps"]) + 1, backbone=backbone, backbone_name=ladder["name"])
        if item["ran"]:
            item.update(_trainable(entry.metrics["metrics"]))
        ladder["steps"].append(item)
    out = []
    for ladder in ladders.values():
        del ladder["planned"]
        out.append({**ladder, "story": ladder_story(ladder["steps"])})
    return {"ladders": out, "items": [s for ladder in out for s in ladder["steps"]],
            "gaps": [s["gap"] for ladder in out for s in ladder["steps"] if s["gap"]],
            "multi_step": [ladder for ladder in out if len(ladder["steps"]) > 1],
            "comparison": backbone_comparison(out),
            "ladder_figure": figures.get("_report", {}).get("finetune_ladder"),
            "backbones_figure": figures.get("_report", {}).get("finetune_backbones")}


def _trainable(m: dict) -> dict:
    phase = (m.get("trainable") or {}).get("finetune") or (m.get("trainable") or {}).get("head") or {}
    trainable, frozen = phase.get("trainable_params"), phase.get("frozen_params")
    total = trainable + frozen if trainable is not None and frozen is not None else None
    return {"trainable_params": trainable, "total_params": total, "image_size": m.get("image_size"),
            "weights": m.get("weights")}


def ladder_story(steps: list[dict]) -> dict | None:
    """First and last step that ran, the best one, and the change: the seed's "74 → 78 %" line."""
    ran = [s for s in steps if s["ran"] and s["val"] is not None]
    if len(ran) < 2:
        return None
    first, last = ran[0], ran[-1]
    best = max(ran, key=lambda s: s["val"])
    return {"first": _point(first), "last": _point(last), "best": _point(best),
            "delta": last["val"] - first["val"], "best_is_last": last["val"] >= best["val"]}


def _point(step: dict) -> dict:
    return {"step": step["step"], "variant": step["variant"], "val": step["val"]}


def backbone_comparison(ladders: list[dict]) -> list[dict]:
    """The best step of each backbone (by validation accuracy); empty unless two or more backbones ran."""
    rows = []
    for ladder in ladders:
        ran = [s for s in ladder["steps"] if s["ran"] and s["val"] is not None]
        if ran:
            best = max(ran, key=lambda s: s["val"])
            rows.append({"backbone": ladder["backbone"], "name": ladder["name"], "step": best["step"],
                         "variant": best["variant"], "steps": len(ladder["steps"]), "val": best["val"],
                         "train": best["train"], "n_params": best["n_params"],
                         "trainable_params": best["trainable_params"], "seconds_per_epoch": best["seconds_per_epoch"],
                         "image_size": best["image_size"], "weights": best["weights"]})
    return rows if len(rows) > 1 else []
