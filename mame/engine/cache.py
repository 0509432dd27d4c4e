"""Cache keys: what decides whether a run is stale.

key = sha256(stage, run name, resolved params, profile, dataset fingerprint, the code that runs, and
the keys of the runs it reads). "The code that runs" is the notebook's cell sources plus every module
of the ``mame`` package the notebook imports, followed through the package's own imports (read
statically, lazy imports inside functions and the ``__init__`` of every enclosing package included).
So editing ``mame/stages/classify.py`` re-runs the classify runs but not the feature extraction,
while editing ``mame/data/metadata.py`` re-runs both. Files are re-read on every call (only their
parsed imports are memoised, by content), so an edit made within one process is seen at once.
Same key and ``done`` means skip.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from mame import config

PACKAGE = "mame"
KEY_LENGTH = 20


def _module_file(name: str, package_dir: Path) -> Path | None:
    """``mame.x`` -> mame/x.py (or mame/x/__init__.py); None for anything outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str, *, package: str = PACKAGE) -> set[str]:
    """Dotted names of the ``mame`` modules a piece of source imports; ``package`` anchors relative imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


@lru_cache(maxsize=1024)
def _imports_of(source: str, package: str) -> frozenset[str]:
    """``imported_modules`` memoised by the source text itself (never by path or time)."""
    return frozenset(imported_modules(source, package=package))


def _with_parents(names) -> set[str]:
    """Each dotted name and its enclosing packages (importing ``mame.a.b`` runs ``mame/a/__init__.py``)."""
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def module_closure(roots: set[str], package_dir: Path = config.PACKAGE_DIR) -> list[Path]:
    """Files of ``roots`` and of every package module they import, transitively."""
    seen: dict[str, Path] = {}
    todo = sorted(_with_parents(roots | {PACKAGE}))
    while todo:
        name = todo.pop()
        path = _module_file(name, package_dir)
        if path is None or name in seen:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_with_parents(_imports_of(path.read_text(encoding="utf-8"), package)))
    return sorted(set(seen.values()))


def _notebook_sources(notebook: Path) -> list[tuple[str, str]]:
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return [(c.get("cell_type"), "".join(c.get("source", []))) for c in cells]


def notebook_fingerprint(notebook: Path) -> str:
    """Hash of the notebook's cell sources only, so re-saving it or stray outputs change nothing."""
    return hashlib.sha256(json.dumps(_notebook_sources(notebook)).encode()).hexdigest()


def _code_fingerprint(notebook: Path, package_dir: Path) -> tuple[str, tuple[str, ...]]:
    code = "\n".join(src for kind, src in _notebook_sources(notebook) if kind == "code")
    files = module_closure(set(imported_modules(code)), package_dir)
    digest = hashlib.sha256(notebook_fingerprint(notebook).encode())
    for path in files:
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest(), tuple(path.relative_to(package_dir).as_posix() for path in files)


def code_fingerprint(notebook: Path, *, package_dir: Path = config.PACKAGE_DIR) -> str:
    """Hash of the notebook's cells and of the package modules it runs (read from disk every call)."""
    return _code_fingerprint(Path(notebook), Path(package_dir))[0]


def code_files(notebook: Path, *, package_dir: Path = config.PACKAGE_DIR) -> tuple[str, ...]:
    """The package modules counted in a notebook's code fingerprint, relative to the package folder."""
    return _code_fingerprint(Path(notebook), Path(package_dir))[1]


def cache_key(*, stage: str, name: str, params: dict, profile: str, dataset_fingerprint: str,
              notebook: Path, dependency_keys: dict[str, str]) -> str:
    payload = {
        "stage": stage,
        "name": name,
        "params": params,
        "profile": profile,
        "dataset": dataset_fingerprint,
        "code": code_fingerprint(notebook),
        "depends_on": dict(sorted(dependency_keys.items())),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
