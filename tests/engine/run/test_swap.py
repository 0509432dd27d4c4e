"""A finished run's swap into place (``mame.engine.run.folders.swap_into_place``) killed at every point: the run folder
afterwards holds the old run or the new one, never neither, once the runner starts again (``clean_leftovers``) or
an executor finds the process running the run lost (``remove_partials``).

Each kill is real: the swap runs in a process of its own that SIGKILLs itself at the chosen point (just before or
after a rename, or after the first file of the swapped-out run is removed), on real folders.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mame import config
from mame.engine.run import folders as run_folders
from mame.engine.run import records
from mame.engine.run.folders import remove_partials

# the swap in a process that kills itself at POINT: before or after rename 1 or 2 (after 1 and before 2: between
# the two), or while the swapped-out run is being removed (after its first file is gone)
SWAP = """import os, signal, sys
from pathlib import Path
from mame.engine.run import folders as run_folders

work, final_dir, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
renamed = 0
rename, unlink = os.rename, os.unlink


def die(at):
    if point == at:
        os.kill(os.getpid(), signal.SIGKILL)


def renaming(*args, **kwargs):
    global renamed
    die(f"before-{renamed + 1}")
    rename(*args, **kwargs)
    renamed += 1
    die(f"after-{renamed}")


def unlinking(*args, **kwargs):
    unlink(*args, **kwargs)
    if renamed == 2:
        die("cleanup")


os.rename, os.unlink = renaming, unlinking
run_folders.swap_into_place(work, final_dir)
print("swapped")
"""
# where each kill leaves the run folder, once put back: the old run or the new one
POINTS = {"before-1": "old", "after-1": "new", "before-2": "new", "after-2": "new", "cleanup": "new"}


def key_of(label: str) -> str:
    """The cache key of the run labelled ``label`` (``old``, ``new``...)."""
    return hashlib.sha256(label.encode()).hexdigest()[:16]


def metrics(key: str) -> dict:
    """A valid metrics.json of a finished run whose cache key is ``key``."""
    text = json.dumps({
        "schema_version": records.SCHEMA_VERSION,
        "run": {"stage": "tiny", "name": "run", "backbone": None, "variant": "run", "cache_key": key, "params": {},
                "profile": "smoke", "seed": 0, "dataset": {"source": "synthetic", "path": "/x", "fingerprint": "f"},
                "git": {"commit": None, "dirty": None}, "versions": {}, "device": {"kind": "cpu", "name": "cpu"},
                "started": "2024-01-01T00:00:00+00:00", "ended": "2024-01-01T00:00:01+00:00", "duration_s": 1.0,
                "status": "done", "error": None, "depends_on": {}, "test_split_reads": []},
        "headline": None, "metrics": {}, "classification": {}, "history": {}, "artifacts": {}, "notes": []})
    return json.loads(text)


def finished_run(folder: Path, label: str, files: int = 5) -> Path:
    folder.mkdir(parents=True)
    for i in range(files):  # artifacts, so that removing the swapped-out run takes more than one unlink
        (folder / f"artifact{i}.txt").write_text(label)
    records.write_metrics(folder, metrics(key_of(label)))
    return folder


def killed_swap(tmp_path: Path, point: str, old: bool = True) -> tuple[Path, subprocess.CompletedProcess]:
    """A finished run (key ``new``) swapped over the run before it (key ``old``) by a process killed at ``point``."""
    final_dir = tmp_path / "runs" / "tiny" / "run"
    if old:
        finished_run(final_dir, "old")
    work = finished_run(run_folders.private_dir(final_dir, pid=12345), "new")
    ended = subprocess.run([sys.executable, "-c", SWAP, str(work), str(final_dir), point], cwd=config.ROOT,
                           capture_output=True, text=True, timeout=60)
    return final_dir, ended


def key_in(final_dir: Path) -> str:
    """The label of the run in ``final_dir``, read as any reader reads it (its metrics.json, validated)."""
    key = records.read_metrics(final_dir)["run"]["cache_key"]
    return next(label for label in ("old", "new", "older-new", "broken") if key_of(label) == key)


@pytest.mark.parametrize("point", POINTS)
def test_a_swap_killed_at_any_point_leaves_the_old_or_the_new_run_at_the_next_runner_start(tmp_path, point):
    final_dir, ended = killed_swap(tmp_path, point)
    assert ended.returncode == -signal.SIGKILL and "swapped" not in ended.stdout, ended.stderr[-2000:]
    assert final_dir.exists() == (point in ("before-1", "after-2", "cleanup"))  # between the renames: neither
    if point == "cleanup":  # killed while removing the old run: part of it is gone
        (trash,) = final_dir.parent.glob(f".run{run_folders.TRASH_MARK}*")
        assert 0 < len(list(trash.iterdir())) < 7
    run_folders.clean_leftovers(final_dir.parent)  # what the runner does at its start, under its lock
    assert key_in(final_dir) == POINTS[point]
    assert (final_dir / "artifact4.txt").read_text() == POINTS[point]  # the whole run, not only its metrics
    assert [p.name for p in final_dir.parent.iterdir()] == ["run"]  # nothing else left behind


@pytest.mark.parametrize("point", ["after-1", "before-2"])
def test_a_worker_killed_between_the_renames_leaves_the_new_run_once_its_executor_clears_up(tmp_path, point):
    """The local executor removes a lost worker's private folder: the new run it holds is put back first."""
    final_dir, ended = killed_swap(tmp_path, point)
    assert ended.returncode == -signal.SIGKILL
    assert not final_dir.exists()  # the state the kill left: neither in place
    remove_partials(final_dir, 12345)
    assert key_in(final_dir) == "new"


def test_a_first_run_killed_before_its_swap_is_put_in_place(tmp_path):
    final_dir, ended = killed_swap(tmp_path, "before-1", old=False)
    assert ended.returncode == -signal.SIGKILL and not final_dir.exists()
    run_folders.clean_leftovers(final_dir.parent)
    assert key_in(final_dir) == "new"


def test_the_newest_complete_run_is_put_back_and_an_incomplete_one_never(tmp_path):
    final_dir = tmp_path / "runs" / "tiny" / "run"
    finished_run(run_folders.private_dir(final_dir, run_folders.TRASH_MARK, pid=1), "old")
    finished_run(run_folders.private_dir(final_dir, pid=2), "older-new")
    newest = finished_run(run_folders.private_dir(final_dir, pid=3), "new")
    (newest.parent / f".run{run_folders.PARTIAL_MARK}4").mkdir()  # killed while its notebook ran: no metrics.json
    broken = finished_run(run_folders.private_dir(final_dir, pid=5), "broken")
    (broken / records.METRICS_FILE).write_text('{"run": ')  # cut short: not a complete run
    run_folders.clean_leftovers(final_dir.parent)
    assert key_in(final_dir) == "new"
    assert [p.name for p in final_dir.parent.iterdir()] == ["run"]


def test_a_swap_that_completes_leaves_only_the_new_run(tmp_path):
    final_dir, ended = killed_swap(tmp_path, "never")
    assert ended.returncode == 0 and "swapped" in ended.stdout, ended.stderr[-2000:]
    assert key_in(final_dir) == "new" and [p.name for p in final_dir.parent.iterdir()] == ["run"]
