"""The run store: one folder per run holding ``metrics.json``, the executed notebook and artifacts.

``metrics.json`` follows ``mame/engine/schema/metrics.schema.json``; it is validated when written, and always
written atomically (temp file + rename), so a crash never leaves a file that looks complete. Beside it,
``.metrics.json.valid`` holds the sha256 of the bytes that passed validation: a read whose bytes have that
hash skips the schema (the expensive part of a read), any other read (a file edited by hand, or written
before the stamp existed) is validated in full, and stamped when it passes.
A stage's notebook hands its results to the runner through ``result.json`` (``mame.results.save_result``); the
runner adds the provenance block and writes ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from mame import config
from mame.results import RESULT_FILE, MetricsError, atomic_write_json, atomic_write_text, json_default

__all__ = ["METRICS_FILE", "NOTEBOOK_FILE", "SCHEMA_VERSION", "MetricsError", "load_result", "read_metrics",
           "try_read_metrics", "validate_metrics", "write_metrics"]

METRICS_FILE = "metrics.json"
VALID_STAMP = ".metrics.json.valid"
NOTEBOOK_FILE = "notebook.ipynb"
SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads((config.SCHEMA_DIR / "metrics.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time", raises=ValueError)(_is_time)
    return jsonschema.Draft202012Validator(schema, format_checker=formats)


def _is_time(text) -> bool:
    """An ISO 8601 time with its UTC offset (what ``provenance.now_iso`` writes and the status's ages subtract)."""
    return not isinstance(text, str) or datetime.fromisoformat(text).tzinfo is not None


def validate_metrics(metrics: dict, *, source: str | Path = "metrics") -> dict:
    """Raise ``MetricsError`` naming ``source`` and the first schema violation, in one line (a hand-edited file can
    hold anything: the message is cut to a readable length)."""
    errors = sorted(_validator().iter_errors(metrics), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        message = " ".join(first.message.split())
        message = message if len(message) <= 160 else message[:157] + "..."
        raise MetricsError(f"{source}: invalid at {where}: {message}{more}")
    return metrics


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = Path(run_dir) / METRICS_FILE
    # Round-trip through JSON first so numpy values are validated as what will be stored.
    data = json.loads(json.dumps(metrics, default=json_default))
    validate_metrics(data, source=path)
    atomic_write_json(path, data)
    _stamp_valid(path, path.read_bytes())
    return path


def _stamp_valid(path: Path, raw: bytes) -> None:
    """Record that these bytes of ``path`` passed the schema (best effort: a read-only folder just validates)."""
    try:
        atomic_write_text(path.parent / VALID_STAMP, hashlib.sha256(raw).hexdigest() + "\n")
    except OSError:
        pass


def _stamped(path: Path, raw: bytes) -> bool:
    try:
        return (path.parent / VALID_STAMP).read_text(encoding="utf-8").strip() == hashlib.sha256(raw).hexdigest()
    except OSError:
        return False


def _read_bytes(path: Path, missing: str) -> bytes:
    """The bytes of ``path``; ``MetricsError`` naming the file (``missing`` says why it matters)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MetricsError(f"{path}: {missing}") from None
    except OSError as exc:
        raise MetricsError(f"{path}: unreadable: {exc}") from None


def _read_json(path: Path, missing: str) -> dict:
    """The JSON object in ``path``; ``MetricsError`` naming the file (``missing`` says why it matters)."""
    return _parse_json(path, _read_bytes(path, missing))


def _parse_json(path: Path, raw: bytes) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetricsError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise MetricsError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_metrics(run_dir: Path) -> dict:
    """Read and validate ``run_dir/metrics.json`` (the schema only when these bytes were not validated before:
    module docstring); ``MetricsError`` if absent, corrupt or invalid."""
    path = Path(run_dir) / METRICS_FILE
    raw = _read_bytes(path, "no metrics file")
    data = _parse_json(path, raw)
    if not _stamped(path, raw):
        validate_metrics(data, source=path)
        _stamp_valid(path, raw)
    return data


def try_read_metrics(run_dir: Path) -> dict | None:
    """``read_metrics`` that returns None for a missing file (but still raises on a corrupt one)."""
    if not (Path(run_dir) / METRICS_FILE).exists():
        return None
    return read_metrics(run_dir)


def load_result(run_dir: Path) -> dict:
    data = _read_json(Path(run_dir) / RESULT_FILE,
                      "the notebook finished without saving its result (mame.results.save_result)")
    return {
        "headline": data.get("headline"),
        "metrics": data.get("metrics", {}),
        "classification": data.get("classification", {}),
        "history": data.get("history", {}),
        "artifacts": data.get("artifacts", {}),
        "notes": data.get("notes", []),
        "test_split_reads": data.get("test_split_reads", []),
    }
