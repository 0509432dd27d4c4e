"""A run's folder and the folders beside it: where a run executes (``.<name>.partial-<pid>``), where the run it
replaces waits while it is swapped in (``.<name>.trash-<pid>``), where training checkpoints survive a kill
(``.<name>.resume-<cache key>``), and the swap itself, whose every point a kill may interrupt without losing the
old run or the new one (``recover`` puts back whichever a kill left out of place)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from mame.engine.run import records
from mame.names import check_name, inside

PARTIAL_MARK = ".partial-"
RESUME_MARK = ".resume-"  # runs/<stage>/.<name>.resume-<cache key>: training checkpoints kept across a kill
TRASH_MARK = ".trash-"


def run_folder(runs_dir: Path, stage: str, name: str) -> Path:
    """``runs_dir/stage/name``, refused (``UnsafePathError``) before anything reads, writes or removes it where a
    stage or run name is not a safe name or the folder would lie outside the runs folder."""
    return inside(runs_dir, check_name(stage, "stage"), check_name(name, f"run name of {stage}"),
                  what=f"run folder of {stage}/{name}")


def swap_into_place(work: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` with ``work`` using renames only: the old run is renamed to ``.<name>.trash-<pid>``,
    ``work`` to ``final_dir``, then the old run is removed. A kill at any point leaves a complete run: the old one
    in ``final_dir`` (before the first rename), the new one there (after the second), or, between the two, the
    new one in ``work`` and the old one in the trash, which :func:`recover` puts back (the runner does at its
    start, an executor when it finds the process running a run lost)."""
    if final_dir.exists():
        trash = private_dir(final_dir, TRASH_MARK)
        shutil.rmtree(trash, ignore_errors=True)
        final_dir.rename(trash)
        work.rename(final_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        work.rename(final_dir)


def private_dir(final_dir: Path, mark: str = PARTIAL_MARK, pid: int | None = None) -> Path:
    """``.<name><mark><pid>`` beside the run folder ``final_dir`` (this process's by default): where a run executes
    (``PARTIAL_MARK``) or where the run it replaces goes while it is swapped in (``TRASH_MARK``); refused
    (``UnsafePathError``) unless the run's name is a safe name and the folder stays in the stage's folder."""
    name = check_name(final_dir.name, f"run folder {final_dir}")
    return inside(final_dir.parent, f".{name}{mark}{os.getpid() if pid is None else pid}", what=f"run {name}")


def clean_leftovers(stage_dir: Path) -> None:
    """Put back the runs a kill left out of place (:func:`recover`), then remove the folders of runs that were
    killed midway (call with the runner lock held)."""
    if stage_dir.is_dir():
        for name in sorted({leftover_of(path.name) for path in stage_dir.iterdir()} - {None}):
            recover(stage_dir / name)
        for path in stage_dir.iterdir():
            if path.is_dir() and (PARTIAL_MARK in path.name or TRASH_MARK in path.name):
                shutil.rmtree(path, ignore_errors=True)


def leftover_of(folder: str) -> str | None:
    """The run whose private (``.<name>.partial-<pid>``) or swapped-out (``.<name>.trash-<pid>``) folder this is."""
    for mark in (PARTIAL_MARK, TRASH_MARK):
        if folder.startswith(".") and mark in folder:
            return folder[1:folder.rindex(mark)] or None
    return None


def recover(final_dir: Path) -> Path | None:
    """Where a kill during :func:`swap_into_place` left ``final_dir`` missing, put back the run it left complete
    (a valid metrics.json): the new one (its private folder) rather than the old (swapped out to the trash name),
    the newest of several. Returns the folder put back (None: nothing missing, or nothing complete)."""
    if final_dir.exists() or not final_dir.parent.is_dir():
        return None
    for mark in (PARTIAL_MARK, TRASH_MARK):
        found = sorted(_complete(final_dir.parent.glob(f".{glob.escape(final_dir.name)}{mark}*")), reverse=True)
        if found:
            found[0][1].rename(final_dir)
            return final_dir
    return None


def _complete(folders) -> list[tuple[int, Path]]:
    """The folders holding a valid metrics.json, each with that file's modification time."""
    found = []
    for path in folders:
        try:
            if records.try_read_metrics(path) is not None:
                found.append(((path / records.METRICS_FILE).stat().st_mtime_ns, path))
        except (records.MetricsError, OSError):
            continue
    return found


def resume_dir(final_dir: Path, cache_key: str) -> Path:
    """Where a training notebook keeps its per-epoch checkpoints for this cache key."""
    return final_dir.parent / f".{final_dir.name}{RESUME_MARK}{cache_key}"


def drop_other_resume_dirs(final_dir: Path, keep: Path) -> None:
    """Checkpoints of this run under another cache key can never be resumed: remove them."""
    if final_dir.parent.is_dir():
        for path in final_dir.parent.glob(f".{final_dir.name}{RESUME_MARK}*"):
            if path != keep:
                shutil.rmtree(path, ignore_errors=True)


def metrics_stamp(final_dir: Path) -> tuple | None:
    """Which metrics.json the run folder holds now (device, inode, modification time; None: none)."""
    try:
        stat = (final_dir / records.METRICS_FILE).stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def remove_partials(final_dir: Path, pid: int | None = None) -> None:
    """The private folder(s) a lost run left: ``.<name>.partial-<pid>`` of that worker, or every one of the run;
    a run a kill left out of place (between the two renames of its swap) is put back first."""
    recover(final_dir)
    pattern = f".{final_dir.name}{PARTIAL_MARK}{pid if pid is not None else '*'}"
    for path in final_dir.parent.glob(pattern) if final_dir.parent.is_dir() else []:
        shutil.rmtree(path, ignore_errors=True)
