"""The one atomic write (``mame.files``): old content or new content whole, never a part, no temp file left."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from mame import config, files


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_the_content_whole(tmp_path):
    target = tmp_path / "sub" / "metrics.json"  # the folder is made
    assert files.atomic_write(target, "x" * 10_000) == target
    files.atomic_write(target, "short é")  # shorter: nothing of the longer old content may remain
    assert target.read_bytes() == "short é".encode()
    files.atomic_write(target, b"\x00\x01bytes")
    assert target.read_bytes() == b"\x00\x01bytes"
    assert listing(target.parent) == ["metrics.json"]


def test_a_write_that_raises_midway_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old, complete")
    with pytest.raises(RuntimeError, match="writer died"):
        with files.atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"new, half of it")
                handle.flush()
                raise RuntimeError("writer died")
    assert target.read_bytes() == b"old, complete"
    assert listing(tmp_path) == ["model.bin"]


def test_a_failing_write_on_a_new_path_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        files.atomic_write(tmp_path / "new.json", 3)  # neither bytes nor str
    assert listing(tmp_path) == []


def test_a_writer_killed_midway_leaves_the_old_file_whole(tmp_path):
    """Killed (SIGKILL, nothing cleans up) after half the new bytes are in the temp file: the target still
    holds the old file, whole. Writing the target directly fails this test."""
    target = tmp_path / "index.json"
    target.write_text('{"complete": true}')
    script = ("import os, signal, sys; sys.path.insert(0, %r)\n"
              "from mame import files\n"
              "with files.atomic_path(%r) as tmp:\n"
              "    with open(tmp, 'w') as handle:\n"
              "        handle.write('{\"complete\": fal'); handle.flush()\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n") % (str(config.ROOT), str(target))
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == '{"complete": true}'
    left = [name for name in listing(tmp_path) if name != "index.json"]
    assert len(left) == 1 and left[0].startswith(".index.json.") and left[0].endswith(".tmp")  # hidden


def test_the_temp_file_is_beside_the_target_hidden_and_ends_with_the_suffix_asked(tmp_path):
    target = tmp_path / "predictions_val.npz"
    with files.atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".predictions_val.npz.") and tmp.name.endswith(".tmp.npz")
        assert tmp.is_file() and not target.exists()
        np.savez(tmp, a=np.arange(3))  # appends .npz to a name without that ending
    with np.load(target) as saved:
        assert saved["a"].tolist() == [0, 1, 2]
    assert listing(tmp_path) == ["predictions_val.npz"]


def test_two_temp_files_for_one_target_never_collide(tmp_path):
    target = tmp_path / "memo.json"
    with files.atomic_path(target) as first, files.atomic_path(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block ends last
    assert listing(tmp_path) == ["memo.json"]


def test_a_new_file_gets_the_mode_open_gives(tmp_path):
    files.atomic_write(tmp_path / "atomic.txt", "a")
    (tmp_path / "plain.txt").write_text("a")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


@pytest.mark.parametrize("fsync, calls", [(True, 1), (False, 0)])
def test_fsync_before_the_rename_only_when_asked(tmp_path, monkeypatch, fsync, calls):
    seen = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (seen.append((tmp_path / "f").exists()), real(fd)))
    files.atomic_write(tmp_path / "f", "data", fsync=fsync)
    assert seen == [False] * calls  # when it runs, the target is not there yet
