"""Cache keys: what decides whether a run is stale.

key = sha256(stage, run name, resolved params, seed, profile, dataset fingerprint, the code that runs,
and the keys of the runs it reads). "The code that runs" is the notebook's code cells plus every module
of the ``mame`` package the notebook imports, followed through the package's own imports (read
statically, lazy imports inside functions and the ``__init__`` of every enclosing package included).
So editing ``mame/stages/classify.py`` re-runs the classify runs but not the feature extraction,
while editing ``mame/data/metadata.py`` re-runs both.

Code counts by what it does, not how it is written: a module contributes its path in the package and
its syntax tree without docstrings (module, class and function) and without comments, line numbers or
formatting (``ast.dump(..., include_attributes=False)``); a notebook contributes the same tree of each
code cell, in order, and whether the cell is tagged ``parameters``. So a comment, a docstring, a blank
line or a re-wrapped call keeps every key, while a changed constant, default or call changes it, and
so does moving code from one module to another. Markdown cells and outputs do not count. Code that
does not parse raises ``CodeError`` naming the file. ``closure_fingerprint`` hashes the import closure
of any set of modules the same way (the deck stamps its figures with it).

Files are re-read on every call (only their parsed form is memoised, by content), so an edit made
within one process is seen at once. Same key and ``done`` means skip.
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
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


class CodeError(ValueError):
    """A module or notebook cell that does not parse, so no cache key can be computed for it."""


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
    return _imports_in(ast.parse(source), package)


def _imports_in(tree: ast.AST, package: str) -> set[str]:
    found = set()
    for node in ast.walk(tree):
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


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring of the module and of every class and function removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                node.body = node.body[1:]
    return tree


@lru_cache(maxsize=1024)
def _parsed(source: str) -> tuple[ast.Module, str]:
    """The tree of ``source`` without docstrings and the sha256 of its dump without positions, memoised
    by the source text itself (never by path or time). The tree is shared: read it, never change it."""
    tree = _without_docstrings(ast.parse(source))
    return tree, hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def _parse(source: str, where: str) -> tuple[ast.Module, str]:
    try:
        return _parsed(source)
    except SyntaxError as err:
        raise CodeError(f"{where} does not parse (line {err.lineno}: {err.msg}), so no cache key "
                        "can be computed for it") from None


@lru_cache(maxsize=1024)
def _imports_of(source: str, package: str) -> frozenset[str]:
    """``imported_modules`` memoised by the source text itself (never by path or time)."""
    return frozenset(_imports_in(_parsed(source)[0], package))


def _with_parents(names) -> set[str]:
    """Each dotted name and its enclosing packages (importing ``mame.a.b`` runs ``mame/a/__init__.py``)."""
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _closure_sources(roots: set[str], package_dir: Path) -> dict[Path, str]:
    """Source text of ``roots`` and of every package module they import, transitively, each read once."""
    seen: dict[str, Path] = {}
    sources: dict[Path, str] = {}
    todo = sorted(_with_parents(set(roots) | {PACKAGE}))
    while todo:
        name = todo.pop()
        path = _module_file(name, package_dir)
        if path is None or name in seen:
            continue
        seen[name] = path
        if path not in sources:
            sources[path] = path.read_text(encoding="utf-8")
        _parse(sources[path], str(path))  # a clear error, naming the file, before the memo below parses it
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_with_parents(_imports_of(sources[path], package)))
    return dict(sorted(sources.items()))


def module_closure(roots: set[str], package_dir: Path = config.PACKAGE_DIR) -> list[Path]:
    """Files of ``roots`` and of every package module they import, transitively."""
    return list(_closure_sources(roots, Path(package_dir)))


def _closure_digest(roots: set[str], package_dir: Path) -> tuple[str, tuple[str, ...]]:
    digest = hashlib.sha256()
    files = []
    for path, source in _closure_sources(roots, package_dir).items():
        relative = path.relative_to(package_dir).as_posix()
        digest.update(f"{relative}\0{_parse(source, str(path))[1]}\0".encode())
        files.append(relative)
    return digest.hexdigest(), tuple(files)


def closure_fingerprint(modules: set[str], *, package_dir: Path = config.PACKAGE_DIR) -> str:
    """Hash of the package modules ``modules`` (dotted names, e.g. ``{"mame.deck.render.figures"}``) import,
    transitively, as runs count their code: each module's path and syntax tree without docstrings and
    comments. Read from disk on every call; names outside the package are ignored."""
    return _closure_digest(set(modules), Path(package_dir))[0]


def module_fingerprint(path: Path) -> str:
    """Hash of one module's code as keys count it (syntax tree without docstrings or comments), its imports
    not followed."""
    return hashlib.sha256(_parse(Path(path).read_text(encoding="utf-8"), str(path))[1].encode()).hexdigest()


def _code_cells(notebook: Path) -> list[tuple[str, bool, str]]:
    """(source, tagged ``parameters``, where) of each code cell of the notebook, in order."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return [("".join(cell.get("source", [])), "parameters" in cell.get("metadata", {}).get("tags", []),
             f"{notebook}, cell {index}")
            for index, cell in enumerate(cells, start=1) if cell.get("cell_type") == "code"]


def notebook_fingerprint(notebook: Path) -> str:
    """Hash of the notebook's code cells as code (syntax trees, the ``parameters`` tag), so re-saving it,
    outputs, comments, blank lines and markdown cells change nothing; a cell with nothing to run is skipped."""
    digests = []
    for source, is_parameters, where in _code_cells(notebook):
        tree, digest = _parse(source, where)
        if tree.body or is_parameters:
            digests.append([digest, is_parameters])
    return hashlib.sha256(json.dumps(digests).encode()).hexdigest()


def _code_fingerprint(notebook: Path, package_dir: Path) -> tuple[str, tuple[str, ...]]:
    roots: set[str] = set()
    for source, _, where in _code_cells(notebook):
        _parse(source, where)  # a clear error, naming the cell, before the memo below parses it
        roots |= _imports_of(source, PACKAGE)
    closure, files = _closure_digest(roots, package_dir)
    return hashlib.sha256(f"{notebook_fingerprint(notebook)}\0{closure}".encode()).hexdigest(), files


def code_fingerprint(notebook: Path, *, package_dir: Path = config.PACKAGE_DIR) -> str:
    """Hash of the notebook's code cells and of the package modules it runs (read from disk every call)."""
    return _code_fingerprint(Path(notebook), Path(package_dir))[0]


def code_files(notebook: Path, *, package_dir: Path = config.PACKAGE_DIR) -> tuple[str, ...]:
    """The package modules counted in a notebook's code fingerprint, relative to the package folder."""
    return _code_fingerprint(Path(notebook), Path(package_dir))[1]


def cache_key(*, stage: str, name: str, params: dict, seed: int, profile: str, dataset_fingerprint: str,
              notebook: Path, dependency_keys: dict[str, str]) -> str:
    payload = {
        "stage": stage,
        "name": name,
        "params": params,
        "seed": seed,
        "profile": profile,
        "dataset": dataset_fingerprint,
        "code": code_fingerprint(notebook),
        "depends_on": dict(sorted(dependency_keys.items())),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
