"""The "Baseline" slides from the scratch runs (``mame/stages/scratch.py``): the baseline table (plan
order, the best rung in bold, the test accuracy of the rung the evaluate run scored), what each rung
changes, and the best rung's curves. The paper's reference table sits on these slides too (``paper``).

The best rung is the one the evaluate run chose on validation and recorded (``mame.deck.sections.choices``): the deck
reads it, never chooses again; before any evaluate run the slides say the choice is not made yet.
"""

from __future__ import annotations

from mame.deck.sections import choices as recorded_choices
from mame.deck.sections import ladder, settings
from mame.deck.sections.slide_parts import split_accuracy

BEST_RUNG = "the best scratch rung"


def section(entries: list, deck) -> dict:
    """The baseline table, what each rung changes, the best rung: the one the evaluate run chose (its
    ``chosen`` record), with its test accuracy from that run; None before any evaluation (``best_gap`` says so)."""
    keys = settings.ladder_keys([e.run for e in entries], ())
    items, previous = [], None
    for entry in entries:
        item, previous = ladder.ladder_item(entry, deck.figures, deck.profile, previous, keys)
        item["changes"] = "; ".join(f"{s['label']} {s['was']} → {s['value']}" for s in item["settings"] if s["changed"])
        items.append(item)
    ran = [it for it in items if it["ran"]]
    choices = recorded_choices.recorded(deck)
    record = choices.best_rung()
    chosen = best_rung(entries, deck)
    best = next((it for it, e in zip(items, entries) if it["ran"] and e is chosen), None)
    tested = best is not None and record["model"] in choices.test
    if tested and best.get("test") is None:
        best["test"] = choices.test[record["model"]]
    return {"items": items, "gaps": [it["gap"] for it in items if it["gap"]], "best": best,
            "best_gap": recorded_choices.not_chosen(BEST_RUNG, choices, record) if ran and best is None else None,
            "rule": ladder.overfitting_rule(), "forced": sorted({it["forced"] for it in items if it["forced"]}),
            "has_test": any(it.get("test") is not None for it in ran), "tested_by_evaluate": tested}


def best_rung(entries: list, deck):
    """Of the scratch runs ``entries``, the one the evaluate run chose (its ``chosen`` record), if it is usable;
    None before any evaluation: the deck never chooses a rung itself."""
    record = recorded_choices.recorded(deck).best_rung()
    return next((e for e in entries if e.metrics is not None and e.state in ("done", "stale")
                 and split_accuracy(e.metrics, "val") is not None and recorded_choices.is_run(record, e)), None)


def conclusions(context: dict) -> list[str]:
    best = context["scratch"]["best"]
    if best and best["val"] is not None:
        return [f"Best CNN trained from scratch: {best['variant']}, {best['val']:.1%} validation accuracy."]
    if context["scratch"].get("best_gap"):
        return ["Best CNN trained from scratch: not chosen yet (the evaluate stage chooses the best rung on validation)."]
    return []


run_figures = ladder.run_figures  # the registry's hook: the training curves
