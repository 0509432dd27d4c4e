""""What changed since the last deck": the report keeps the headline of every run at each render.

``history.json`` holds the distinct snapshots (newest last). A render compares the current snapshot
with the newest *different* one, so rendering again with no new runs produces the same slide.
"""

from __future__ import annotations

import json
from pathlib import Path

from mame.results import atomic_write_json

KEEP = 20


def snapshot(entries: list) -> dict[str, dict]:
    """run id -> state, headline name and value, cache key (only what a reader would compare)."""
    snap = {}
    for entry in entries:
        metrics = entry.metrics or {}
        head = metrics.get("headline") or {}
        snap[entry.run.id] = {"state": entry.state, "metric": head.get("name"), "value": head.get("value"),
                              "cache_key": (metrics.get("run") or {}).get("cache_key")}
    return snap


def load(path: Path) -> list[dict]:
    try:
        history = json.loads(Path(path).read_text(encoding="utf-8"))
        return history if isinstance(history, list) else []
    except (OSError, json.JSONDecodeError):
        return []


def record(path: Path, current: dict, rendered_at: str) -> dict:
    """Store ``current`` if it differs from the newest snapshot; return the changes against the
    newest snapshot that differs from it."""
    history = load(path)
    if not history or history[-1]["runs"] != current:
        history.append({"rendered_at": rendered_at, "runs": current})
        atomic_write_json(path, history[-KEEP:])
    return compare(history[-2] if len(history) > 1 else None, current)


def compare(previous: dict | None, current: dict) -> dict:
    if previous is None:
        return {"since": None, "rows": [], "first": True}
    before = previous["runs"]
    rows = []
    for run_id in sorted(set(before) | set(current)):
        old, new = before.get(run_id), current.get(run_id)
        if old == new:
            continue
        rows.append({"run": run_id,
                     "before": _describe(old), "after": _describe(new),
                     "delta": (new["value"] - old["value"]) if old and new and old["value"] is not None
                     and new["value"] is not None and old["metric"] == new["metric"] else None,
                     "metric": (new or old)["metric"]})
    return {"since": previous["rendered_at"], "rows": rows, "first": False}


def _describe(item: dict | None) -> str:
    if item is None:
        return "not in plan"
    if item["value"] is None:
        return item["state"]
    return f"{item['state']} {item['value']:.3f}"
