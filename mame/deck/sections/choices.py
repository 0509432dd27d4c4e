"""The choices made on validation, as the evaluate run records them: the deck reads them and never chooses again.

The evaluate stage (``mame/stages/evaluate.py``, ``mame.stages.support.selection``) chooses each fine-tuned backbone's
best step, the best scratch rung and the best feature pipeline of each backbone, and records them in its
``metrics["chosen"]``: one entry per model, with ``stage``, ``backbone``, ``variant``, ``seed``,
``val_accuracy``, ``why``, and ``best_step`` on the fine-tuned ones (the backbone's step best on validation,
which is marked under ``select="all"`` too); the fine-tuned ones come best first, then the pipelines, then the
rung. ``metrics["models"]`` holds their test accuracies, ``metrics["shapes"]`` the fixed- against variable-shape pairs
it compared on test. Before any evaluate run nothing is chosen: the slides say so (``not_chosen``) instead of
choosing themselves.

A ladder step with several seeds is one deck entry (``mame.deck.sections.seed_groups``); the record names the seed run
chosen, so a run is matched by stage, backbone and variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mame.deck.sections.slide_parts import placeholder


@dataclass
class Choices:
    run: str | None = None                             # the evaluate run's id; None: no usable evaluate run
    chosen: list[dict] = field(default_factory=list)   # its metrics["chosen"]
    test: dict[str, float] = field(default_factory=dict)  # model -> test accuracy (its metrics["models"])
    shapes: list[dict] = field(default_factory=list)   # its metrics["shapes"]: fixed vs variable shape on test

    @property
    def made(self) -> bool:
        return self.run is not None

    def best_steps(self) -> list[dict]:
        """Each fine-tuned backbone's best fixed-shape step, as recorded (best on validation first); the variable-shape
        runs are compared with their fixed-shape partners on the shape slides (``shape_pair``)."""
        return [c for c in self.chosen if c["stage"] == "finetune" and c.get("best_step") and _fixed(c)]

    def best_step(self, backbone: str) -> dict | None:
        return next((c for c in self.best_steps() if c["backbone"] == backbone), None)

    def best_rung(self) -> dict | None:
        return next((c for c in self.chosen if c["stage"] == "scratch"), None)

    def pipeline(self, backbone: str) -> dict | None:
        """The feature pipeline (classifier on frozen features) chosen for ``backbone``."""
        return next((c for c in self.chosen if c["stage"] == "classify" and c["backbone"] == backbone and _fixed(c)), None)

    def shape_pair(self, approach: str, backbone: str) -> dict | None:
        """The fixed- against variable-shape pair the evaluate run compared for ``approach`` ("feature extraction",
        "fine-tuning") and ``backbone``, or None."""
        return next((p for p in self.shapes if (p["approach"], p["backbone"]) == (approach, backbone)), None)


def recorded(deck) -> Choices:
    """The choices of the plan's evaluate run (``deck``: ``mame.deck.sections.registry.DeckInputs``); empty before one ran."""
    for entry in deck.usable("evaluate")[:1]:
        m = entry.metrics["metrics"]
        return Choices(entry.run.id, list(m.get("chosen") or []),
                       {row["model"]: row["accuracy"] for row in m.get("models") or []}, list(m.get("shapes") or []))
    return Choices()


def is_run(record: dict | None, entry) -> bool:
    """Whether ``entry`` (a deck entry, its seeds folded) is the run ``record`` names."""
    return record is not None and (record["stage"], record["backbone"], record["variant"]) == (
        entry.run.stage, entry.run.backbone, entry.run.variant)


def not_chosen(what: str, choices: Choices, record: dict | None = None) -> dict:
    """The placeholder for a choice the deck cannot show: ``what`` is chosen by the evaluate stage, not here.
    ``record``: the choice the evaluate run did record, when it names no usable run of the plan."""
    if not choices.made:
        return placeholder("missing", f"Not chosen yet: the evaluate stage chooses {what} on validation, and it has not "
                                      "run yet (make run, or make report).")
    if record is not None:
        return placeholder("missing", f"Not shown: the evaluate run {choices.run} chose {record['model']} as {what}, "
                                      "which is not a usable run of this plan (run evaluate again).", f"runs/{choices.run}")
    return placeholder("missing", f"Not chosen: the evaluate run {choices.run} records no choice of {what} (an older "
                                  "evaluate stage, or its parameters leave it out).", f"runs/{choices.run}")


def _fixed(entry: dict) -> bool:
    """A chosen model of fixed shape (records from before shapes existed were fixed)."""
    return entry.get("shape", "fixed") == "fixed"
