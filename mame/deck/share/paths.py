"""What ``mame share`` packs of a run folder, and how: nothing outside the run folder, no symlink followed, and no
absolute path of this machine in the copies (the run folder's own files are left as they are).

- Every file name read from a metrics.json (an artifact) is resolved inside its run folder (``mame.names.inside``);
  one that leaves it, or that is (or passes through) a symlink, is skipped with a one-line warning.
- The JSON files packed (each ``metrics.json``, and an executed notebook) are rewritten: every absolute path in a
  string (a whole value, or inside a message or a notebook's cell) becomes relative to the project root
  (``runs/scratch/r1``), ``$MAME_DIR/...`` (and ``$MAME_RUNS_DIR/...``, ``$MAME_DATA_HOME/...`` when those are
  set), or ``~/...`` for the home folder; any other absolute path becomes ``<elsewhere>/<its last part>``.
- A member name in the archive is a relative POSIX path with no ``..`` part.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath

from mame import config
from mame.names import UnsafePathError, inside

ELSEWHERE = "<elsewhere>"
ENV_ROOTS = ("MAME_DIR", "MAME_RUNS_DIR", "MAME_DATA_HOME")
# A path that starts with "/" where no word, dot, tilde, "$", ":" or "/" comes before it (so not "a/b", not a URL's
# "//host"), up to a space, a quote or punctuation that ends a path in a message ("/x/y.py:12", "(/x/y)").
_ABSOLUTE = re.compile(r"(?<![\w.~$:/\\-])/[^\s\"'`<>|;,:()\[\]{}=]+")


def _roots() -> list[tuple[str, str]]:
    """(folder, how it is written in a shared copy), the longest folder first: a path takes its closest root."""
    roots = [(str(config.ROOT), "")]
    for name in ENV_ROOTS:
        if os.environ.get(name):
            roots.append((str(Path(os.environ[name]).expanduser().resolve()), f"${name}"))
    home = str(Path.home())
    if home != "/":
        roots.append((home, "~"))
    return sorted(roots, key=lambda r: len(r[0]), reverse=True)


def portable_path(path: str, roots: list[tuple[str, str]] | None = None) -> str:
    """``path`` (absolute) as it is written in a shared copy: relative to the project, ``$MAME_DIR/...``, ``~/...``,
    else ``<elsewhere>/<last part>``."""
    norm = os.path.normpath(path)
    for root, shown in roots if roots is not None else _roots():
        if norm == root or norm.startswith(root.rstrip("/") + "/"):
            rest = norm[len(root):].lstrip("/")
            return (f"{shown}/{rest}" if rest else shown) if shown else (rest or ".")
    return f"{ELSEWHERE}/{PurePosixPath(norm).name}".rstrip("/")


def portable_text(text: str, roots: list[tuple[str, str]] | None = None) -> str:
    """``text`` with every absolute path in it made portable."""
    roots = roots if roots is not None else _roots()
    return _ABSOLUTE.sub(lambda m: portable_path(m.group(0), roots), text)


def portable(value, roots: list[tuple[str, str]] | None = None):
    """A JSON value (dict, list, string, number) with every absolute path in its strings and keys made portable."""
    roots = roots if roots is not None else _roots()
    if isinstance(value, str):
        return portable_text(value, roots)
    if isinstance(value, dict):
        return {portable_text(str(k), roots): portable(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, roots) for v in value]
    return value


def portable_json_file(path: Path) -> str:
    """The JSON file at ``path``, read, its paths made portable, written out again as text."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps(portable(data), indent=1, ensure_ascii=False) + "\n"


def run_file(run_dir: Path, name: object, what: str) -> Path:
    """``run_dir / name`` if it is a regular file inside the run folder reached through no symlink, else an
    ``UnsafePathError`` (a ``ValueError``) saying why."""
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"{what}: {name!r} is not a file name")
    here = Path(run_dir)
    for part in PurePosixPath(name).parts:  # before resolving: a link is refused wherever it points
        here = here / part
        if here.is_symlink():
            raise UnsafePathError(f"{what}: {here} is a symbolic link: not packed (share follows no link)")
    path = inside(run_dir, name, what=what)  # resolved: ".." out of the run folder is refused here
    if not path.is_file():
        raise UnsafePathError(f"{what}: {path} is not a file")
    return path


def member_name(name: str) -> str:
    """``name`` if it is a safe member name of the archive or site (relative, POSIX, no ``..``), else a ValueError."""
    parts = PurePosixPath(name).parts
    if not name or "\\" in name or name.startswith("/") or not parts or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"share: {name!r} is not a safe member name (a relative path with no '..')")
    return name


def run_members(entry, *, artifacts: tuple[str, ...] = (), warn=None) -> tuple[dict[str, Path], dict[str, str]]:
    """What is packed of one run: ``(files copied as they are, texts)``, under ``runs/<stage>/<run>/``.

    The metrics.json and a notebook are texts (their paths made portable); other artifacts (a model) are copied.
    Anything that leaves the run folder or is a symlink is skipped, and ``warn`` (a callable) is told why."""
    warn = warn or (lambda _line: None)
    run_dir, base = Path(entry.path), f"runs/{entry.run.id}"
    files: dict[str, Path] = {}
    texts: dict[str, str] = {}
    if run_dir.is_symlink():
        warn(f"{run_dir} is a symbolic link: its run is not packed (share follows no link)")
        return files, texts
    wanted = [("metrics.json", "metrics.json")]
    wanted += [(a, (entry.metrics.get("artifacts") or {}).get(a)) for a in artifacts]  # as the run recorded them
    for label, name in wanted:
        if name is None:
            continue
        try:
            path = run_file(run_dir, name, what=f"{base}: {label}")
        except ValueError as exc:
            warn(f"skipped: {exc}")
            continue
        member = member_name(f"{base}/{path.relative_to(run_dir.resolve()).as_posix()}")
        if path.suffix in (".json", ".ipynb"):
            texts[member] = portable_json_file(path)
        else:
            files[member] = path
    return files, texts
