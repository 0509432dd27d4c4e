"""The "Baseline" slides from the scratch runs (``mame/stages/scratch.py``): the baseline table (plan
order, the best rung in bold, the test accuracy of the rung the evaluate run scored), what each rung
changes, and the best rung's curves. The paper's reference table sits on these slides too (``paper``).
"""

from __future__ import annotations

from mame.deck import ladder, settings
from mame.deck.common import split_accuracy


def section(entries: list, deck) -> dict:
    """The baseline table, what each rung changes, the best rung: the one the evaluate run chose (its
    ``chosen`` record), or, before any evaluation, the best on validation by the same rule."""
    keys = settings.ladder_keys([e.run for e in entries], ())
    items, previous = [], None
    for entry in entries:
        item, previous = ladder.ladder_item(entry, deck.figures, deck.profile, previous, keys)
        item["changes"] = "; ".join(f"{s['label']} {s['was']} → {s['value']}" for s in item["settings"] if s["changed"])
        items.append(item)
    ran = [it for it in items if it["ran"]]
    tested = evaluated(deck)
    for item in ran:
        if item.get("test") is None and item["run"] in tested["test"]:
            item["test"] = tested["test"][item["run"]]
    chosen = best_rung(entries, deck)
    best = next((it for it in ran if chosen is not None and it["run"] == chosen.run.id), None)
    return {"items": items, "gaps": [it["gap"] for it in items if it["gap"]], "best": best,
            "rule": ladder.overfitting_rule(), "forced": sorted({it["forced"] for it in items if it["forced"]}),
            "has_test": any(it.get("test") is not None for it in ran), "tested_by_evaluate": bool(tested["test"])}


def best_rung(entries: list, deck):
    """Of the scratch runs ``entries``, the one the deck calls best: the one the evaluate run chose (its
    ``chosen`` record), or, before any evaluation, the usable rung with the best validation accuracy (ties:
    the earlier rung, as evaluate)."""
    usable = [e for e in entries if e.metrics is not None and e.state in ("done", "stale")
              and split_accuracy(e.metrics, "val") is not None]
    chosen = evaluated(deck)["chosen"]
    picked = [e for e in usable if e.run.id in chosen]
    if picked or not usable:
        return picked[0] if picked else None
    return max(usable, key=lambda e: split_accuracy(e.metrics, "val"))


def evaluated(deck) -> dict:
    """From the evaluate run's record: the scratch rungs it scored on test (run id -> accuracy) and the one
    it chose (a set of run ids: empty before any evaluation)."""
    test, chosen = {}, set()
    for entry in deck.usable("evaluate")[:1]:
        m = entry.metrics["metrics"]
        test = {row["model"]: row["accuracy"] for row in m.get("models") or [] if row["kind"] == "scratch"}
        chosen = {f"{c['stage']}/{c['run']}" for c in m.get("chosen") or [] if c["stage"] == "scratch"}
    return {"test": test, "chosen": chosen}


def conclusions(context: dict) -> list[str]:
    best = context["scratch"]["best"]
    if best and best["val"] is not None:
        return [f"Best CNN trained from scratch: {best['variant']}, {best['val']:.1%} validation accuracy."]
    return []


run_figures = ladder.run_figures  # the registry's hook: the training curves
