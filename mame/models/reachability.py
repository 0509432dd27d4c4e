"""Whether a weights host answers, asked once per ``PROBE_TTL_S`` and remembered in the Keras cache folder,
so that a whole plan of runs (one process each) probes once: the ``imagenet-if-available`` weights policy."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from mame.files import atomic_write

PROBE_TIMEOUT_S = 3.0
PROBE_TTL_S = 600.0
PROBE_FILE = ".weight-hosts.json"  # in the Keras cache folder: {host:port: {"reachable": bool, "why": str, "time": t}}


def keras_cache_dir() -> Path:
    """Where Keras caches application weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "models"


def read_memo(path: Path) -> dict:
    """A JSON memo in the Keras cache folder; ``{}`` when it is missing, unreadable or not an object."""
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def write_memo(path: Path, memo: dict) -> None:
    """Write a memo atomically; a read-only cache is no error (it only costs the work the memo saves)."""
    try:
        atomic_write(path, json.dumps(memo))
    except OSError:
        pass


def host_reachable(url: str, *, timeout: float = PROBE_TIMEOUT_S, ttl: float = PROBE_TTL_S) -> tuple[bool, str]:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds, and why not. A recent
    answer (younger than ``ttl``) is read from the Keras cache folder instead of probing again."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    memo_path = keras_cache_dir() / PROBE_FILE
    memo = read_memo(memo_path)
    seen = memo.get(where)
    if isinstance(seen, dict) and time.time() - float(seen.get("time", 0)) < ttl:
        return bool(seen.get("reachable")), str(seen.get("why", ""))
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            reachable, why = True, f"{where} answered"
    except socket.gaierror:
        reachable, why = False, f"{parts.hostname} could not be resolved (offline?)"
    except ConnectionRefusedError:
        reachable, why = False, f"{where} refused the connection"
    except OSError as err:
        reachable, why = False, f"{where} did not answer within {timeout:g} s ({err.__class__.__name__})"
    memo[where] = {"reachable": reachable, "why": why, "time": time.time()}
    write_memo(memo_path, memo)
    return reachable, why
