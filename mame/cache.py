"""Cache keys: what decides whether a run is stale.

key = sha256(stage, run name, resolved params, profile, dataset fingerprint, fingerprint of the code
that runs (the notebook and the ``mame`` package, minus the modules that only present results), and
the keys of the runs it reads). Same key and ``done`` means skip.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from . import config

# Modules that never run inside a stage notebook: changing them must not invalidate results.
PRESENTATION_MODULES = frozenset({"__main__.py", "cli.py", "status.py", "runner.py", "execute.py",
                                  "report.py", "render.py", "render_pdf.py", "deckcheck.py"})
KEY_LENGTH = 20


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def package_files(package_dir: Path = config.PACKAGE_DIR) -> list[Path]:
    files = [p for p in package_dir.rglob("*") if p.is_file() and p.suffix in {".py", ".json", ".yaml"}
             and "__pycache__" not in p.parts]
    return [p for p in files if not (p.parent == package_dir and p.name in PRESENTATION_MODULES)]


@lru_cache(maxsize=4)
def package_fingerprint(package_dir: Path = config.PACKAGE_DIR) -> str:
    return _hash_files(package_files(package_dir), package_dir)


def notebook_fingerprint(notebook: Path) -> str:
    """Hash of the notebook's cell sources only, so re-saving it or stray outputs change nothing."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    sources = [(c.get("cell_type"), "".join(c.get("source", []))) for c in cells]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def cache_key(*, stage: str, name: str, params: dict, profile: str, dataset_fingerprint: str,
              notebook: Path, dependency_keys: dict[str, str]) -> str:
    payload = {
        "stage": stage,
        "name": name,
        "params": params,
        "profile": profile,
        "dataset": dataset_fingerprint,
        "code": {"package": package_fingerprint(), "notebook": notebook_fingerprint(notebook)},
        "depends_on": dict(sorted(dependency_keys.items())),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
