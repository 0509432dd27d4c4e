"""The "Fine tuning" slides from the finetune runs (``mame/stages/finetune.py``): one ladder per backbone
(plan order; a step's number: its place among the backbone's fixed-shape steps, as in the plan, ``PlannedRun.step``
while no variable-shape step comes before it), each step's settings and curves, the
ladder's story (first, last and best step), and the backbones' best steps compared.

A ladder holds the backbone's fixed-shape steps, numbered in plan order. A variable-shape step (the MAMe paper's
R65k-VS) is no step of it: it gets its own slide after the ladder, its settings set against its fixed-shape twin
(the step of the same planned settings), and is compared with that twin on test on the shape slides
(``mame.deck.sections.shape_slides``).

The best step of a backbone is the one the evaluate run chose on validation and recorded
(``mame.deck.sections.choices``): the deck reads it, never chooses again; before any evaluate run the slides say the
choice is not made yet.
"""

from __future__ import annotations

from pathlib import Path

from mame import plots
from mame.deck.sections import choices as recorded_choices
from mame.deck.sections import settings
from mame.deck.sections import shape_slides as shapes
from mame.deck.sections.ladder import ladder_item, run_figures  # noqa: F401  (the registry's hook: the training curves)

# Settings every fine-tuning slide lists, in this order; keys some step sets follow.
FINETUNE_KEYS = ("trainable_from", "dense_units", "learning_rate", "batch_size", "epochs")
BEST_STEP = "each fine-tuned backbone's best step"


def section(entries: list, deck) -> dict:
    """One ladder per backbone (plan order) of its fixed-shape steps, its variable-shape steps beside it, its summary,
    and the backbones compared on the steps the evaluate run chose."""
    fixed = [e for e in entries if shapes.entry_shape(e) == "fixed"]
    keys, names, figures = settings.ladder_keys([e.run for e in fixed], FINETUNE_KEYS), deck.names, deck.figures
    choices = recorded_choices.recorded(deck)
    ladders: dict[str, dict] = {}
    for entry in fixed:
        backbone = entry.run.backbone
        ladder = ladders.setdefault(backbone, _ladder(backbone, names))
        item, ladder["planned"] = ladder_item(entry, figures, deck.profile, ladder["planned"], keys)
        item.update(backbone=backbone, backbone_name=ladder["name"], step=len(ladder["steps"]) + 1)
        if item["ran"]:
            item.update(_trainable(entry.metrics["metrics"]))
            if recorded_choices.is_run(choices.best_step(backbone), entry):
                ladder["best"] = item
        ladder["steps"].append(item)
    for entry in (e for e in entries if all(e is not f for f in fixed)):
        ladder = ladders.setdefault(entry.run.backbone, _ladder(entry.run.backbone, names))
        ladder["variable"].append(variable_item(entry, ladder, fixed, deck, keys))
    out = []
    for ladder in ladders.values():
        del ladder["planned"]
        out.append({**ladder, "story": ladder_story(ladder["steps"], ladder["best"])})
    ran = [ladder for ladder in out if any(s["ran"] for s in ladder["steps"])]
    rows = {ladder["backbone"]: best_row(ladder) for ladder in ran if ladder["best"]}
    order = [c["backbone"] for c in choices.best_steps() if c["backbone"] in rows]  # best on validation first
    several = len(ran) > 1
    return {"ladders": out, "items": [s for ladder in out for s in ladder["steps"]],
            "variable": [v for ladder in out for v in ladder["variable"]],
            "gaps": [s["gap"] for ladder in out for s in ladder["steps"] + ladder["variable"] if s["gap"]],
            "multi_step": [ladder for ladder in out if len(ladder["steps"]) > 1],
            "comparison": [rows[ladder["backbone"]] for ladder in ran if ladder["backbone"] in rows] if several else [],
            "unchosen": [ladder["name"] for ladder in ran if ladder["backbone"] not in rows] if several else [],
            "best": rows[order[0]] if order else None,
            "best_gap": recorded_choices.not_chosen(BEST_STEP, choices, next(iter(choices.best_steps()), None))
            if ran and not order else None,
            "ladder_figure": None, "backbones_figure": None}


def _ladder(backbone: str, names: dict) -> dict:
    return {"backbone": backbone, "name": names.get(backbone, backbone), "steps": [], "variable": [], "planned": None,
            "best": None}


def variable_item(entry, ladder: dict, fixed: list, deck, keys) -> dict:
    """A variable-shape step: its settings against its fixed-shape twin's (the ladder step of the same planned
    settings but the shape; ``twin`` None when no step has them), its numbers, out of the ladder."""
    mine = shapes.unshaped(entry.run.planned)
    twin = next((e for e in fixed if e.run.backbone == entry.run.backbone and shapes.unshaped(e.run.planned) == mine), None)
    twin_item = next((s for s in ladder["steps"] if twin is not None and s["run"] == twin.run.id), None)
    shown = list(keys) + [k for k in shapes.SHAPE_KEYS if k in entry.run.overrides and k not in keys]
    item, _ = ladder_item(entry, deck.figures, deck.profile, twin.run.planned if twin else None, shown)
    item.update(backbone=entry.run.backbone, backbone_name=ladder["name"], shape="variable",
                twin={"step": twin_item["step"], "variant": twin_item["variant"], "run": twin_item["run"]} if twin_item else None)
    if item["ran"]:
        item.update(_trainable(entry.metrics["metrics"]))
    return item


def _trainable(m: dict) -> dict:
    phase = (m.get("trainable") or {}).get("finetune") or (m.get("trainable") or {}).get("head") or {}
    trainable, frozen = phase.get("trainable_params"), phase.get("frozen_params")
    total = trainable + frozen if trainable is not None and frozen is not None else None
    return {"trainable_params": trainable, "total_params": total, "image_size": m.get("image_size"),
            "weights": m.get("weights")}


def ladder_story(steps: list[dict], best: dict | None) -> dict | None:
    """First and last step that ran, the best one (``best``: the step the evaluate run chose; None before it
    chose), and the change: the seed's "74 → 78 %" line."""
    ran = [s for s in steps if s["ran"] and s["val"] is not None]
    if len(ran) < 2:
        return None
    first, last = ran[0], ran[-1]
    return {"first": _point(first), "last": _point(last), "best": _point(best) if best else None,
            "delta": last["val"] - first["val"], "best_is_last": best is not None and last["val"] >= best["val"]}


def _point(step: dict) -> dict:
    return {"step": step["step"], "variant": step["variant"], "val": step["val"]}


def best_row(ladder: dict) -> dict:
    """The comparison row of a ladder's best step (``ladder["best"]``, the evaluate run's choice)."""
    best = ladder["best"]
    return {"backbone": ladder["backbone"], "name": ladder["name"], "step": best["step"], "variant": best["variant"],
            "steps": len(ladder["steps"]), "val": best["val"], "train": best["train"], "n_params": best["n_params"],
            "trainable_params": best["trainable_params"], "seconds_per_epoch": best["seconds_per_epoch"],
            "image_size": best["image_size"], "weights": best["weights"]}


def report_figures(section: dict, out_dir: Path) -> dict[str, Path | None]:
    """The ladders' validation accuracy per step, and the backbones' best steps (train and validation)."""
    return {"ladder_figure": ladder_figure(section["multi_step"], out_dir),
            "backbones_figure": backbone_bars(section["comparison"], out_dir)}


def ladder_figure(ladders: list[dict], out_dir: Path) -> Path | None:
    """Validation accuracy per fine-tuning step, one line per backbone of several steps."""
    steps = [{"backbone": ladder["name"], "step": s["step"], "value": s.get("val")}
             for ladder in ladders if len(ladder["steps"]) > 1 for s in ladder["steps"]]
    if not any(s["value"] is not None for s in steps):
        return None
    fig = plots.draw_ladder(plots.ladder_data(steps))
    return plots.save_figure(fig, out_dir / "finetune_ladder.png")


def backbone_bars(rows: list[dict], out_dir: Path) -> Path | None:
    """Train and validation accuracy of each backbone's best fine-tuning step."""
    if not rows:
        return None
    table = [{"backbone": f"{r['name']}\n#{r['step']}", "train": r["train"], "validation": r["val"]} for r in rows]
    fig, axes = plots.new_figure("column")
    plots.draw_accuracy_bars(table, x="backbone", y=["train", "validation"], ax=axes[0, 0])
    return plots.save_figure(fig, out_dir / "finetune_backbones.png")


def conclusions(context: dict) -> list[str]:
    """Each fine-tuning ladder's first → last step, and the best fine-tuned backbone."""
    out, section = [], context["finetune"]
    for ladder in section["multi_step"]:
        story = ladder["story"]
        if story:
            out.append(f"{ladder['name']} fine-tuning ladder: {story['first']['val']:.1%} (#{story['first']['step']}) → "
                       f"{story['last']['val']:.1%} (#{story['last']['step']}) validation accuracy.")
    best, several = section["best"], section["comparison"] or section["unchosen"]
    if several and best:
        out.append(f"Best fine-tuned backbone: {best['name']} (step #{best['step']}), {best['val']:.1%} validation accuracy.")
    elif several and section["best_gap"]:
        out.append("Best fine-tuned backbone: not chosen yet (the evaluate stage chooses each backbone's best step on "
                   "validation).")
    return out
