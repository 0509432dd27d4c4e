"""Names that become paths, and paths that must stay inside their root.

Everything a user writes (a stage, a variant, a backbone, a profile name in ``plan.yaml``) and every field read
back from a ``metrics.json`` (an artifact's file name) can end up joined onto a folder. Two rules keep such a
join from reaching anything that is not ours:

- a name is one safe path part: ``[A-Za-z0-9][A-Za-z0-9._-]*`` (no ``/``, never ``.`` or ``..``, no leading dot or dash);
- a path built from names or fields is resolved (symlinks followed) and checked to stay inside its root before
  anything reads, writes, packs or removes it.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_NAME = re.compile(NAME_PATTERN)
MAX_NAME_LENGTH = 100


class UnsafePathError(ValueError):
    """A name that is not a safe path part, or a path that leaves its root."""


def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and bool(_NAME.match(name))


def check_name(name: object, what: str) -> str:
    """``name`` if it is one safe path part, else an ``UnsafePathError`` saying ``what`` it is and why."""
    if not is_safe_name(name):
        raise UnsafePathError(f"{what}: {name!r} is not a safe name (letters, digits, '.', '_' and '-', starting "
                              f"with a letter or digit, at most {MAX_NAME_LENGTH} characters)")
    return name


def inside(root: Path, *parts: str | Path, what: str = "path") -> Path:
    """``root / parts``, resolved, if it stays inside ``root`` (resolved too), else an ``UnsafePathError``.

    Symlinks are followed, so a link inside ``root`` that points out of it is refused as well."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        shown = "/".join(str(p) for p in parts)
        raise UnsafePathError(f"{what}: {shown!r} leads outside {root} (to {path})")
    return path


def relative_inside(root: Path, path: Path, what: str = "path") -> Path:
    """``path`` relative to ``root`` after both are resolved, if it lies inside ``root``."""
    return inside(root, path, what=what).relative_to(Path(root).resolve())
