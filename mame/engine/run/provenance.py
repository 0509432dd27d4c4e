"""Provenance of a run: git state, library versions, device, timestamps. Never imports TensorFlow."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from mame import __version__, config, machine

VERSIONED = {"tensorflow": "tensorflow", "keras": "keras", "scikit-learn": "scikit-learn",
             "numpy": "numpy", "papermill": "papermill"}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _git(*args: str, cwd: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: Path = config.ROOT) -> dict:
    """Commit hash and whether tracked files differ from it (None when not a git checkout)."""
    commit = _git("rev-parse", "HEAD", cwd=root)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"commit": commit, "dirty": bool(status)}


@lru_cache(maxsize=1)
def versions() -> dict:
    found = {"python": platform.python_version(), "mame": __version__}
    for key, dist in VERSIONED.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    return found


def _cpu_name() -> str:
    return machine.cpu_info().get("model name") or platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """Every GPU nvidia-smi lists, in its order (none without nvidia-smi)."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0:
                return tuple(n.strip() for n in out.stdout.splitlines() if n.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ()


def device_info() -> dict:
    """The GPU(s) this process may use (CUDA_VISIBLE_DEVICES picks among nvidia-smi's), else the CPU model
    (with the cores this process may use)."""
    names = list(gpu_names())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and names:
        picked = [d.strip() for d in visible.split(",") if d.strip()]
        names = [names[int(d)] for d in picked if d.isdigit() and int(d) < len(names)]
    if names:
        return {"kind": "gpu", "name": ", ".join(names)}
    return {"kind": "cpu", "name": f"{_cpu_name()} ({cpu_count()} cores)"}


def cpu_count() -> int:
    """The cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_count() -> int:
    """GPUs nvidia-smi lists (0 without one), honouring a CUDA_VISIBLE_DEVICES already set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(gpu_names())
