"""Download the official MAMe archives (stdlib only): resumable, md5-checked, then unzipped.

The archives unzip in place, as the official scripts do: ``MAMe_metadata.zip`` gives the CSVs,
``MAMe_data_256.zip`` / ``MAMe_data.zip`` give ``data_256/`` / ``data/``. No md5 is published for
``MAMe_data_256.zip``: for it only the size the server announces is checked.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

OFFICIAL_URL = "https://storage.hpai.bsc.es/mame-dataset/"
# part name -> (archive name, md5 or None when unpublished)
ARCHIVES: dict[str, tuple[str, str | None]] = {
    "metadata": ("MAMe_metadata.zip", "0bca980978e3883f753f01ccad955981"),
    "data": ("MAMe_data.zip", "39b11ef14dba807faf284f74ec2576d3"),
    "data_256": ("MAMe_data_256.zip", None),
}
CHUNK = 1 << 20
Progress = Callable[[str, int, int | None], None]  # (archive name, bytes so far, total or None)


class DownloadError(RuntimeError):
    """A download that could not complete; the message says why and what to do, in one line."""


def download(dest_dir: str | os.PathLike, parts: Iterable[str] = ("metadata", "data_256"), *,
             base_url: str = OFFICIAL_URL, timeout: float = 30, extract: bool = True,
             checksums: Mapping[str, str | None] | None = None,
             progress: Progress | None = None) -> list[Path]:
    """Fetch the archives of ``parts`` (``metadata``, ``data``, ``data_256``) into ``dest_dir``.

    An interrupted download resumes from ``<archive>.part`` (HTTP Range); the archive gets its
    final name only once its size and md5 check out. ``checksums`` overrides the md5 per archive
    name. Returns the archive paths, in ``parts`` order.
    """
    parts = list(parts)
    unknown = [p for p in parts if p not in ARCHIVES]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r} (expected one of: {', '.join(ARCHIVES)})")
    dest = Path(dest_dir).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    archives = []
    for part in parts:
        name, md5 = ARCHIVES[part]
        if checksums is not None and name in checksums:
            md5 = checksums[name]
        path = fetch(base_url.rstrip("/") + "/" + name, dest / name, md5=md5,
                     timeout=timeout, progress=progress)
        if extract:
            extract_zip(path, dest)
        archives.append(path)
    return archives


def fetch(url: str, path: Path, *, md5: str | None, timeout: float = 30,
          progress: Progress | None = None) -> Path:
    """Download ``url`` to ``path`` through ``path.part``, resuming it if present."""
    if path.is_file() and (md5 is None or file_md5(path) == md5):
        return path
    part = path.with_name(path.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    total = _transfer(url, part, offset, timeout, progress)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: got {size:,} of {total:,} bytes; run again to resume")
    if md5 is not None:
        digest = file_md5(part)
        if digest != md5:
            part.unlink()
            raise DownloadError(f"{url}: md5 {digest} does not match the published {md5}; "
                                "the partial file was removed, run again to start over")
    part.replace(path)
    return path


def _transfer(url: str, part: Path, offset: int, timeout: float,
              progress: Progress | None) -> int | None:
    """Append the missing bytes to ``part``; returns the full size announced, if any."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing left to fetch: the .part is whole
            return None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(_unreachable(url, part, error, timeout)) from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        try:
            with part.open("ab" if offset else "wb") as out:
                _copy(response, out, part.name[:-5], offset, total, progress)
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(f"{url}: transfer interrupted ({_reason(error)}); "
                                "run again to resume") from None
    return total


def _copy(response, out, name: str, done: int, total: int | None,
          progress: Progress | None) -> None:
    while chunk := response.read(CHUNK):
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(name, done, total)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


def _unreachable(url: str, part: Path, error: BaseException, timeout: float) -> str:
    host = urlsplit(url).netloc
    reason = _reason(error)
    if reason == "timed out":
        reason = f"timed out after {timeout:g} s"
    return (f"cannot reach {host} ({reason}): download {url} by hand, unzip it into "
            f"{part.parent} and set MAME_DIR={part.parent}")


def file_md5(path: Path) -> str:
    """md5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract_zip(archive: Path, dest: Path) -> None:
    """Unzip ``archive`` into ``dest``, refusing members that would land outside it."""
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                target = (root / member.filename).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(f"{archive}: member {member.filename!r} escapes {root}")
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{archive}: not a valid zip archive ({error})") from None
