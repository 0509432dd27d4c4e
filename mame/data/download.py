"""Download the official MAMe archives (stdlib only): resumable, checksum-checked, then unzipped with a size cap.

The archives unzip in place, as the official scripts do: ``MAMe_metadata.zip`` gives the CSVs,
``MAMe_data_256.zip`` / ``MAMe_data.zip`` give ``data_256/`` / ``data/``. Each archive is checked against its
published md5; none is published for ``MAMe_data_256.zip``, so for it the size the server announces is checked
and its sha256 is recorded in the data's provenance, ``<dest>/.mame-download.json`` (``python -m mame data check``
shows it; a later download that finds the archive again reuses it only if its sha256 is the recorded one).

Unpacking refuses, before writing anything, a member whose name is absolute or holds ``..``, a member that
expands more than ``MAX_RATIO`` times its compressed size, and an archive whose members add up to more than
``MAX_UNPACKED_BYTES`` or than the free space of the destination; each error names the zip and the member.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from mame.files import atomic_write

OFFICIAL_URL = "https://storage.hpai.bsc.es/mame-dataset/"
# part name -> (archive name, md5 or None when unpublished)
ARCHIVES: dict[str, tuple[str, str | None]] = {
    "metadata": ("MAMe_metadata.zip", "0bca980978e3883f753f01ccad955981"),
    "data": ("MAMe_data.zip", "39b11ef14dba807faf284f74ec2576d3"),
    "data_256": ("MAMe_data_256.zip", None),
}
ARCHIVES_MD5 = {name: md5 for name, md5 in ARCHIVES.values() if md5 is not None}
CHUNK = 1 << 20
PROVENANCE = ".mame-download.json"
MAX_UNPACKED_BYTES = 200 * 10**9  # the full-resolution MAMe_data.zip unpacks to tens of GB, never hundreds
MAX_RATIO = 100                   # JPEG/PNG barely compress; a zip bomb expands thousands of times
RATIO_FLOOR = 1 << 20             # members smaller than this unpacked are never a bomb, whatever their ratio
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
    name. Each archive's sha256 (and md5, and whether a published checksum vouched for it) goes into
    ``<dest>/.mame-download.json``. Returns the archive paths, in ``parts`` order.
    """
    parts = list(parts)
    unknown = [p for p in parts if p not in ARCHIVES]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r} (expected one of: {', '.join(ARCHIVES)})")
    dest = Path(dest_dir).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    archives = []
    try:
        known = read_provenance(dest)
    except DownloadError:
        known = {}  # an unreadable record vouches for nothing; rewritten as each archive checks out
    for part in parts:
        name, md5 = ARCHIVES[part]
        if checksums is not None and name in checksums:
            md5 = checksums[name]
        url = base_url.rstrip("/") + "/" + name
        path = fetch(url, dest / name, md5=md5, sha256=known.get(name, {}).get("sha256"), timeout=timeout, progress=progress)
        record_provenance(dest, name, url=url, md5=md5, path=path)
        if extract:
            extract_zip(path, dest)
        archives.append(path)
    return archives


def fetch(url: str, path: Path, *, md5: str | None, sha256: str | None = None, timeout: float = 30,
          progress: Progress | None = None) -> Path:
    """Download ``url`` to ``path`` through ``path.part``, resuming it if present. An archive already at ``path``
    is kept if its md5 is ``md5`` (when given), else if its sha256 is ``sha256`` (when given), else fetched again."""
    if path.is_file() and _still_good(path, md5, sha256):
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


def _still_good(path: Path, md5: str | None, sha256: str | None) -> bool:
    if md5 is not None:
        return file_md5(path) == md5
    return sha256 is None or file_digest(path, "sha256") == sha256


def file_md5(path: Path) -> str:
    """md5 hex digest of a file, read in 1 MiB chunks."""
    return file_digest(path, "md5")


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file (``md5``, ``sha256``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_provenance(dest: str | os.PathLike) -> dict[str, dict]:
    """``{archive name: {"url", "size", "md5", "sha256", "checked", "downloaded"}}`` from
    ``<dest>/.mame-download.json``; empty when there is none. ``DownloadError`` when it is unreadable."""
    path = Path(dest) / PROVENANCE
    if not path.is_file():
        return {}
    try:
        archives = json.loads(path.read_text(encoding="utf-8"))["archives"]
        if not isinstance(archives, dict) or not all(isinstance(v, dict) for v in archives.values()):
            raise TypeError("'archives' is not a table of archives")
        for name, entry in archives.items():
            if not (isinstance(entry.get("sha256"), str) and type(entry.get("size")) is int):
                raise TypeError(f"archive {name!r} lacks a sha256 string or a size in bytes")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DownloadError(f"{path}: unreadable download provenance ({type(error).__name__}: {error})") from None
    return archives


def record_provenance(dest: Path, name: str, *, url: str, md5: str | None, path: Path) -> dict:
    """Write (atomically) what was downloaded into ``<dest>/.mame-download.json``; returns the archive's entry."""
    try:
        archives = read_provenance(dest)
    except DownloadError:
        archives = {}  # rewritten whole below
    sha256, actual_md5 = file_digest(path, "sha256"), file_md5(path)
    checked = ("md5 matches the published checksum" if md5 is not None and md5 == ARCHIVES_MD5.get(name)
               else f"md5 matches the checksum given ({md5})" if md5 is not None
               else "no published checksum: sha256 recorded")
    entry = {"url": url, "size": path.stat().st_size, "md5": actual_md5, "sha256": sha256, "checked": checked,
             "downloaded": archives.get(name, {}).get("downloaded") if archives.get(name, {}).get("sha256") == sha256
             else datetime.now(timezone.utc).isoformat(timespec="seconds")}
    archives[name] = entry
    atomic_write(dest / PROVENANCE, json.dumps({"archives": archives}, indent=2, sort_keys=True) + "\n")
    return entry


def extract_zip(archive: Path, dest: Path, *, max_bytes: int = MAX_UNPACKED_BYTES, max_ratio: float = MAX_RATIO) -> None:
    """Unzip ``archive`` into ``dest`` once every member passes ``check_members`` (nothing is written before)."""
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = check_members(archive, bundle.infolist(), root, max_bytes=max_bytes, max_ratio=max_ratio)
            for member, target in members:
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{archive}: not a valid zip archive ({error})") from None


def check_members(archive: Path, members: list[zipfile.ZipInfo], root: Path, *, max_bytes: int,
                  max_ratio: float) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Each member with its target under ``root``; ``DownloadError`` naming the zip and the member for a name that
    is absolute or holds ``..``, a target outside ``root``, a member over ``max_ratio`` times its compressed size,
    or a member that brings the total over ``max_bytes`` or over the free space at ``root``. (``zipfile`` never
    gives more bytes than a member declares, and checks its CRC.)"""
    checked, total = [], 0
    free = shutil.disk_usage(_existing_parent(root)).free
    for member in members:
        name = member.filename
        if name.startswith(("/", "\\")) or name[1:2] == ":" or ".." in name.replace("\\", "/").split("/"):
            raise DownloadError(f"{archive}: member {name!r} has an absolute name or '..'; refused, nothing unpacked")
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            raise DownloadError(f"{archive}: member {name!r} escapes {root}; refused, nothing unpacked")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR and ratio > max_ratio:
            raise DownloadError(f"{archive}: member {name!r} expands {ratio:,.0f} times ({member.file_size:,} bytes), "
                                f"over the cap of {max_ratio:g} (a zip bomb?); refused, nothing unpacked")
        total += member.file_size
        if total > min(max_bytes, free):
            limit = f"the cap of {max_bytes:,} bytes" if total > max_bytes else f"the {free:,} bytes free at {root}"
            raise DownloadError(f"{archive}: member {name!r} brings the unpacked size to {total:,} bytes, over {limit}; "
                                "refused, nothing unpacked")
        checked.append((member, target))
    return checked


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
