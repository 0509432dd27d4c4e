"""What the two ladders' slides share (``mame.deck.sections.scratch``, ``mame.deck.sections.finetune``): one item per rung or
step with its plan settings, what changed from the one before, what the profile forced, and its numbers.

Every planned run keeps its place (plan order): a missing or failed one shows its placeholder where its
numbers would be. Accuracies come from the runs' ``classification`` entries (``train``/``val``/``test``),
the rest from their ``metrics`` block (see ``mame/stages/scratch.py`` and ``finetune.py``).
"""

from __future__ import annotations

from mame import plots
from mame.deck.sections import settings, slide_parts
from mame.deck.sections.slide_parts import entry_placeholder, overfitting, split_accuracy


def overfitting_rule() -> str:
    """The thresholds of ``slide_parts.OVERFITTING`` as one caption line: ``High: train − val > 0.20 · ...``."""
    parts, previous = [], None
    for limit, name in slide_parts.OVERFITTING:
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


def ladder_item(entry, figures: dict, profile, previous_planned: dict | None, keys) -> tuple[dict, dict]:
    """One rung or step: plan settings, what changed, what was forced, and the numbers if it ran."""
    planned = entry.run.planned
    changed = settings.changes(previous_planned, planned, keys)
    gap = entry_placeholder(entry)
    resolved = {} if gap else {"trainable_from": entry.metrics["metrics"].get("trainable_from")}
    item = {"run": entry.run.id, "variant": entry.run.variant, "step": entry.run.step, "about": entry.run.about,
            "settings": settings.rows(planned, keys, changed, resolved), "changed": list(changed),
            "forced": settings.forced_text(settings.forced_values(planned, entry.run.params), profile.name),
            "gap": gap, "ran": gap is None, "stale": entry.state == "stale"}
    if gap is None:
        item.update(run_numbers(entry, figures))
    return item, planned


def run_figures(entry, drawer) -> dict:
    """A training run's curves (``training_curves``)."""
    if not entry.metrics["history"]:
        return {}
    return {"training_curves": drawer.draw("training_curves", lambda: training_curves(entry.metrics))}


def training_curves(metrics: dict):
    """Loss (log scale) and accuracy, train and validation, stacked for a slide column, with the best epoch
    and the boundary between training phases (head, then fine-tuning) marked."""
    m = metrics["metrics"]
    return plots.draw_learning_curves(metrics["history"], log_loss=True, stacked=True,
                                      best_epoch=m.get("best_epoch") or None, phases=m.get("phases") or None)
