"""A run's git provenance on a real repository: the commit, and whether tracked files differ from it."""

from __future__ import annotations

import subprocess

from mame.engine.run import provenance


def git(folder, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=folder,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_dirty_says_whether_tracked_files_differ_from_the_commit(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "study.py").write_text("A = 1\n")
    git(tmp_path, "add", "study.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert provenance.git_info(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert provenance.git_info(tmp_path) == {"commit": head, "dirty": False}  # untracked files do not count
    (tmp_path / "study.py").write_text("A = 2\n")
    assert provenance.git_info(tmp_path) == {"commit": head, "dirty": True}
    git(tmp_path, "commit", "-q", "-am", "second")
    assert provenance.git_info(tmp_path) == {"commit": git(tmp_path, "rev-parse", "HEAD"), "dirty": False}


def test_a_folder_outside_git_has_no_commit(tmp_path):
    assert provenance.git_info(tmp_path) == {"commit": None, "dirty": None}
