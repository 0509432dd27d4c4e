"""Runs of one stage/backbone/variant under several seeds (the plan's ``seeds:``) as one deck entry.

The deck's stage modules see one entry per stage/backbone/variant, as without seeds: ``combine`` folds the
seeds' usable entries into one whose metrics hold, wherever the seeds differ in a number, a ``Spread``: a
float equal to the mean that also carries the standard deviation (ddof 1) and the number of seeds. The
templates' number filters (``mame.deck.render.templating``) print it as ``mean ± std (n=N)``; the bar charts draw
its std as an error bar. Numbers equal in every seed (a support, an image count) stay as they are; text,
and lists whose lengths differ (the histories of runs that stopped early at different epochs), are the
first seed's. Per-run figures (learning curves, confusion matrices, projections) are those of the first
seed, which the entry names (``shown``). Entries of runs without several seeds pass through unchanged, so a
plan without ``seeds:`` renders exactly as before.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

USABLE = ("done", "stale")


class Spread(float):
    """The mean of ``values`` (one per seed), with ``std`` (sample standard deviation) and ``n``."""

    values: tuple[float, ...]

    def __new__(cls, values):
        values = tuple(float(v) for v in values)
        self = super().__new__(cls, statistics.fmean(values))
        self.values = values
        return self

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


# What is measured, and so combined over seeds: a run's provenance, artifacts and notes are the first seed's.
MEASURED = ("headline", "metrics", "classification", "history")
# Settings, not measurements: the first seed's, whatever their type.
SETTINGS = ("params", "settings", "grid", "tried")
# Counts: kept as they are where every seed has the same (a float in a classification report).
COUNTS = ("support",)


def combine_metrics(metrics: list[dict]) -> dict:
    """One metrics.json for the seeds' ``metrics`` (each valid): the measured parts combined."""
    first = metrics[0]
    return {k: combine_values([m[k] for m in metrics]) if k in MEASURED else first[k] for k in first}


def combine_values(values: list):
    """One value for the seeds' ``values`` (same place in each seed's metrics), as the module docstring says:
    floats become a ``Spread`` (std 0 where the seeds agree: the deck still says n), integers equal in every
    seed stay."""
    first = values[0]
    if all(isinstance(v, dict) for v in values):
        return {k: first[k] if _first_holds(k, [v.get(k) for v in values]) else combine_values([v[k] for v in values])
                for k in first}
    if all(isinstance(v, list) for v in values):
        if len({len(v) for v in values}) != 1:
            return first
        return [combine_values([v[i] for v in values]) for i in range(len(first))]
    if all(_is_number(v) for v in values):
        exact = all(isinstance(v, int) for v in values) and all(v == first for v in values)
        if exact or any(isinstance(v, float) and math.isnan(v) for v in values):
            return first
        return Spread(values)
    return first


def _first_holds(key: str, values: list) -> bool:
    """Whether the first seed's value stands for all: a setting, a key some seed lacks, or a count they share."""
    return (key in SETTINGS or any(v is None for v in values)
            or (key in COUNTS and all(v == values[0] for v in values)))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Combined:
    """What a seeded group's deck entry adds: its seeds' entries, the seeds combined and the one shown."""
    members: list            # every seed's status entry, plan order
    seeds: list[int]         # the seeds whose runs are usable (combined)
    shown: int               # the seed whose figures the slides show


def combine(entries: list) -> list:
    """``entries`` with each seeded stage/backbone/variant folded into one entry (``run`` without the seed in
    its name, ``combined`` set to a ``Combined``), at the place of its first seed; others as they are."""
    groups: dict[str, list] = {}
    for entry in entries:
        if entry.run.seeded and len(entry.run.seeds) > 1:
            groups.setdefault(entry.run.base_id, []).append(entry)
    out, seen = [], set()
    for entry in entries:
        base = entry.run.base_id
        if base not in groups:
            out.append(entry)
        elif base not in seen:
            seen.add(base)
            out.append(_combined_entry(groups[base]))
    return out


def _combined_entry(members: list):
    usable = [e for e in members if e.metrics is not None and e.state in USABLE]
    first = usable[0] if usable else members[0]
    run = replace(first.run, seeded=False)
    if not usable:
        return replace(first, run=run)
    metrics = combine_metrics([e.metrics for e in usable]) if len(usable) > 1 else first.metrics
    state = "stale" if any(e.state == "stale" for e in usable) else "done"
    return replace(first, run=run, state=state, metrics=metrics,
                   combined=Combined(members=members, seeds=[e.run.seed for e in usable], shown=first.run.seed))


def figures_of(entries: list, figures: dict) -> dict:
    """``figures`` (run id -> its figures) with each combined entry's id given its shown seed's figures."""
    out = dict(figures)
    for entry in entries:
        combined = entry.combined
        if combined is not None:
            shown = next(m for m in combined.members if m.run.seed == combined.shown)
            out[entry.run.id] = figures.get(shown.run.id, {})
    return out


SAID_RUNS = 3  # runs named on the setup slide per set of seeds; more are counted


def seeds_said(entries: list) -> list[dict]:
    """What ran with several seeds, for the setup slide: one row per set of seeds, ``{seeds, runs, shown,
    missing}`` (``runs``: the stage/backbone/variants that ran them, ``shown``: the seed whose figures the
    slides show, ``missing``: seed runs not usable), as text."""
    rows: dict[tuple, dict] = {}
    for entry in entries:
        if entry.combined is not None:
            seeds = tuple(m.run.seed for m in entry.combined.members)
            row = rows.setdefault(seeds, {"seeds": ", ".join(map(str, seeds)), "runs": [], "shown": set(), "missing": []})
            row["runs"].append(entry.run.id)
            row["shown"].add(entry.combined.shown)
            row["missing"] += [m.run.id for m in entry.combined.members if m.run.seed not in entry.combined.seeds]
    return [{**row, "runs": _listed(row["runs"]), "missing": _listed(row["missing"]),
             "shown": ", ".join(map(str, sorted(row["shown"])))} for row in rows.values()]


def _listed(ids: list[str]) -> str:
    if len(ids) <= SAID_RUNS:
        return ", ".join(ids)
    return f"{', '.join(ids[:SAID_RUNS])} and {len(ids) - SAID_RUNS} more"
