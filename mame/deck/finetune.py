"""The "Fine tuning" slides from the finetune runs (``mame/stages/finetune.py``): one ladder per backbone
(plan order; step numbers are the plan's, ``PlannedRun.step``), each step's settings and curves, the
ladder's story (first, last and best step), and the backbones' best steps compared.
"""

from __future__ import annotations

from pathlib import Path

from mame import plots
from mame.deck import settings
from mame.deck.ladder import ladder_item, run_figures  # noqa: F401  (the registry's hook: the training curves)

# Settings every fine-tuning slide lists, in this order; keys some step sets follow.
FINETUNE_KEYS = ("trainable_from", "dense_units", "learning_rate", "batch_size", "epochs")


def section(entries: list, deck) -> dict:
    """One ladder per backbone (plan order), its summary, and the backbones compared."""
    keys, names, figures = settings.ladder_keys([e.run for e in entries], FINETUNE_KEYS), deck.names, deck.figures
    ladders: dict[str, dict] = {}
    for entry in entries:
        backbone = entry.run.backbone
        ladder = ladders.setdefault(backbone, {"backbone": backbone, "name": names.get(backbone, backbone),
                                               "steps": [], "planned": None})
        item, ladder["planned"] = ladder_item(entry, figures, deck.profile, ladder["planned"], keys)
        item.update(backbone=backbone, backbone_name=ladder["name"])
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
            "comparison": backbone_comparison(out), "ladder_figure": None, "backbones_figure": None}


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
    if section["comparison"]:
        best = max(section["comparison"], key=lambda r: r["val"])
        out.append(f"Best fine-tuned backbone: {best['name']} (step #{best['step']}), {best['val']:.1%} validation accuracy.")
    return out
