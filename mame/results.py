"""What a stage hands to the runner, and the text and JSON forms of the atomic write (``mame.files``).

A stage notebook ends with ``save_result(run_dir, {...})``, which writes ``result.json`` in the run's
working folder; the runner (``mame.engine``) reads it back, adds provenance and writes
``metrics.json``. Every file is written atomically (``mame.files.atomic_write``: temp file in the same
folder + rename), so a crash never leaves a file that looks complete. Stages import this module, never the engine.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mame.files import atomic_write

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.jsonl"
RESULT_KEYS = ("headline", "metrics", "classification", "history", "artifacts", "notes", "test_split_reads")


class MetricsError(ValueError):
    """A metrics or result file that is missing, unreadable or does not match the schema."""


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (``mame.files.atomic_write``: temp file beside it, fsync, rename)."""
    return atomic_write(path, text)


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(value: Any) -> Any:
    """Make numpy scalars and arrays JSON-serialisable without importing numpy here."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def save_result(run_dir: Path, result: dict) -> Path:
    """Called at the end of a stage notebook: hand the stage's results to the runner."""
    unknown = set(result) - set(RESULT_KEYS)
    if unknown:
        raise MetricsError(f"{run_dir}/{RESULT_FILE}: unknown keys {sorted(unknown)}; allowed: {list(RESULT_KEYS)}")
    return atomic_write_json(Path(run_dir) / RESULT_FILE, result)


def report_progress(run_dir: Path, **fields: Any) -> None:
    """Append one JSON line to the run's ``progress.jsonl`` (the runner prints it as it appears).

    One ``write`` of a whole line in append mode, so a reader never sees half a line; ``time`` is added.
    """
    line = json.dumps({"time": round(time.time(), 3), **fields}, default=json_default) + "\n"
    fd = os.open(Path(run_dir) / PROGRESS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def class_names(metrics: dict) -> tuple[str, ...]:
    """The class names a run classified, in label order: the labels of its first confusion matrix (every run that
    classifies records one, all classes listed); empty when it records none."""
    for entry in (metrics.get("classification") or {}).values():
        labels = (entry.get("confusion_matrix") or {}).get("labels")
        if labels:
            return tuple(labels)
    return ()
