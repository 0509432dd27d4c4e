"""Atomic file writes, the one implementation every layer uses: a reader (or a crash) sees the old file or the
new one whole, never a part.

The bytes go to a temp file in the target's own folder (same file system, so the rename is atomic), which is
renamed over the target only once it is complete; when the writing raises, the temp file is removed and the
target is left as it was. Temp names start with a dot (watchers of a folder pass hidden files over) and end
with ``.tmp`` unless the caller asks for another ending.

- ``atomic_write(path, data)``: ``bytes`` or ``str`` (UTF-8).
- ``with atomic_path(path) as tmp: writer(tmp)``: for writers that want a path of their own (``model.save``,
  ``np.savez``, ``zipfile.ZipFile``, ``fig.savefig``). Writers that check or append an ending get it through
  ``suffix`` (Keras: ``suffix=".tmp.keras"``; ``np.savez`` appends ``.npz`` to any other name).

``fsync`` (default on) puts the bytes on disk before the rename, so that a power loss cannot leave a renamed
but empty file either; callers writing large files often (model checkpoints, figures) turn it off.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` through a temp file beside it and an atomic rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = TEMP_SUFFIX, fsync: bool = True) -> Iterator[Path]:
    """A fresh temp path beside ``path`` (its folder made if missing), ending with ``suffix``: write it inside
    the block; when the block ends it is renamed over ``path``, when the block raises it is removed.

    The temp file exists (empty, with the permissions a new file gets here) when the block starts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path, suffix)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temp(path: Path, suffix: str) -> Path:
    """Create an empty, unused ``.<name>.<random><suffix>`` beside ``path`` (mode 0o666 less the umask, as
    ``open`` gives: ``tempfile.mkstemp`` would leave the target readable by its owner alone)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free temp name for {path.name}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
