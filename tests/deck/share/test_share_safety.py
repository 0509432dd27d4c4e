"""``mame share`` deletes nothing of the user's and leaks nothing of the machine: real folders, real zips, real
run folders under tmp_path (no deck is built: the refusals come before the build, the packing is tested on its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mame import config
from mame.deck.share.bundle import SITE_MARKER, _write_site, _write_zip, check_site, share
from mame.deck.share.paths import ELSEWHERE, member_name, portable, run_members
from mame.engine.plan.load import PlannedRun
from tests.helpers import REPO, FakeEntry, minimal_metrics


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (or link target) and mtime: "left untouched byte for byte"."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        body = os.readlink(path) if path.is_symlink() else (path.read_bytes() if path.is_file() else None)
        seen[str(path.relative_to(folder))] = (body, stat.st_mtime_ns, stat.st_mode)
    return seen


@pytest.fixture
def docs(tmp_path) -> Path:
    """A user's folder with files of their own (and a hidden ``.docs.old`` beside it, a name the old swap used)."""
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "index.md").write_text("my own notes\n")
    (folder / "sub" / "figure.png").write_bytes(b"\x89PNG not really")
    (tmp_path / ".docs.old").mkdir()
    (tmp_path / ".docs.old" / "keep.txt").write_text("mine too\n")
    return folder


# --- --site DIR: refused unless new, empty or made by an earlier share ---

def test_a_non_empty_folder_share_did_not_make_is_refused_before_anything_is_built(docs, tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as refused:
        share("smoke", site=docs)  # would build the deck first if the check came later: no runs, no report folder
    message = str(refused.value)
    assert "\n" not in message and str(docs) in message and SITE_MARKER in message and "nothing was changed" in message
    assert snapshot(tmp_path) == before and not (tmp_path / "report").exists()


@pytest.mark.parametrize("where", ["root", "dot", "parent", "home", "runs", "data", "report"])
def test_the_project_its_parents_its_runs_and_home_are_refused_even_with_a_marker(where, tmp_path, monkeypatch):
    for name, variable in (("runs", "MAME_RUNS_DIR"), ("data", "MAME_DATA_HOME"), ("report", "MAME_REPORT_BUILD")):
        (tmp_path / name / "inner").mkdir(parents=True)
        (tmp_path / name / SITE_MARKER).write_text("planted")  # a marker where it does not belong changes nothing
        monkeypatch.setenv(variable, str(tmp_path / name / "inner"))
    monkeypatch.chdir(config.ROOT)
    folder = {"root": config.ROOT, "dot": Path("."), "parent": config.ROOT.parent, "home": Path("~")}.get(where,
                                                                                                      tmp_path / where)
    with pytest.raises(ValueError, match=r"^--site .*: it (is|holds) .*nothing was changed"):
        check_site(folder)


def test_dot_inside_a_users_folder_is_refused(docs, monkeypatch):
    monkeypatch.chdir(docs)
    with pytest.raises(ValueError, match="no earlier `mame share` made it"):
        check_site(Path("."))


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "site").write_text("a file")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_site(tmp_path / "site")


def _site_files(tmp_path: Path) -> dict[str, Path]:
    source = tmp_path / "deck.html"
    source.write_text("<html>deck</html>")
    return {"index.html": source}


def test_a_new_or_empty_folder_gets_the_site_with_its_marker_and_an_earlier_site_is_replaced(docs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / ".empty.old").mkdir()  # the name the swap once used for the site it replaced (and removed first)
    (tmp_path / ".empty.old" / "keep.txt").write_text("mine\n")
    files, beside = _site_files(tmp_path), snapshot(tmp_path)
    for folder in (tmp_path / "new" / "site", empty):
        shared = _write_site(folder, files, {"runs.json": "[]\n"})
        assert (folder / SITE_MARKER).is_file() and (folder / "index.html").read_text() == "<html>deck</html>"
        assert SITE_MARKER in shared.members
    (empty / "stale.txt").write_text("left by an earlier site")
    _write_site(empty, files, {"runs.json": "[]\n"})  # marker there: replaced whole
    assert not (empty / "stale.txt").exists() and (empty / SITE_MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".docs.old", ".empty.old"]  # no leftovers
    for sibling in (".docs.old", ".empty.old", "docs"):  # named like the old swap's folder, or beside: not touched
        assert {k: v for k, v in snapshot(tmp_path).items() if k.startswith(sibling)} == {
            k: v for k, v in beside.items() if k.startswith(sibling)}


def test_write_site_itself_refuses_a_users_folder(docs, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="no earlier `mame share` made it"):
        _write_site(docs, _site_files(tmp_path), {})
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != "deck.html"} == before


def test_the_command_line_refuses_in_one_line_and_leaves_the_folder(docs, tmp_path):
    before = snapshot(tmp_path)
    env = {**os.environ, "MAME_REPORT_BUILD": str(tmp_path / "report"), "MAME_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "mame", "share", "--profile", "smoke", "--site", str(docs)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: --site {docs}: the folder is not empty") and proc.stderr.count("\n") == 1
    assert snapshot(tmp_path) == before


# --- the packed copies: no absolute path of this machine, nothing from outside the run folder, no link followed ---

def _run_folder(tmp_path: Path, metrics: dict) -> FakeEntry:
    run_dir = tmp_path / "runs" / "scratch" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    run = PlannedRun("scratch", None, "r1", Path("01_scratch.ipynb"), {})
    return FakeEntry(run, "done", metrics, path=run_dir)


def test_absolute_paths_in_the_packed_metrics_name_no_machine_path_and_the_run_folder_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_DIR", str(tmp_path / "mame-data"))
    home, other = Path.home(), tmp_path / "elsewhere" / "cache"
    metrics = minimal_metrics(dataset={"source": "mame", "path": str(tmp_path / "mame-data" / "data_256"), "fingerprint": "f"},
                              error=f"Traceback: File \"{config.ROOT}/.venv/lib/python3.11/x.py\", line 3: "
                                    f"no {home}/.keras/models/vgg16.h5 (see https://example.org/a/b and {other}/x.npz)")
    metrics["notes"] = [str(config.ROOT / "runs" / "scratch"), str(other), "val/test split, 12 img/s", "/"]
    entry = _run_folder(tmp_path, metrics)
    on_disk = (entry.path / "metrics.json").read_bytes()
    files, texts = run_members(entry)
    assert files == {} and list(texts) == ["runs/scratch/r1/metrics.json"]
    packed = json.loads(texts["runs/scratch/r1/metrics.json"])
    text = texts["runs/scratch/r1/metrics.json"]
    for machine in (str(config.ROOT), str(home), str(tmp_path)):
        assert machine not in text, machine
    assert packed["run"]["dataset"]["path"] == "$MAME_DIR/data_256"
    assert ('File ".venv/lib/python3.11/x.py"' in packed["run"]["error"]
            and "~/.keras/models/vgg16.h5" in packed["run"]["error"]
            and "https://example.org/a/b" in packed["run"]["error"] and f"{ELSEWHERE}/x.npz" in packed["run"]["error"])
    assert packed["notes"] == ["runs/scratch", f"{ELSEWHERE}/cache", "val/test split, 12 img/s", "/"]
    assert (entry.path / "metrics.json").read_bytes() == on_disk  # only the copy is rewritten


def test_portable_takes_the_closest_root_and_keys_too(monkeypatch):
    monkeypatch.setenv("MAME_DIR", str(Path.home() / "datasets" / "MAMe"))
    value = {str(Path.home() / "datasets" / "MAMe" / "a.jpg"): [str(Path.home() / "b"), str(config.ROOT)]}
    assert portable(value) == {"$MAME_DIR/a.jpg": ["~/b", "."]}


def test_artifact_names_that_leave_the_run_folder_or_are_links_are_not_packed(tmp_path):
    secret = tmp_path / ".bashrc"
    secret.write_text("export TOKEN=secret\n")
    metrics = minimal_metrics()
    entry = _run_folder(tmp_path, metrics)
    (entry.path / "model.keras").write_bytes(b"PK model")
    (entry.path / "sub").mkdir()
    (entry.path / "notebook.ipynb").symlink_to(secret)
    (entry.path / "inner.ipynb").write_text("{}")
    (entry.path / "linked").symlink_to(entry.path / "sub")
    for name, expected in (("../../../.bashrc", "leads outside"), ("notebook.ipynb", "symbolic link"),
                           (str(secret), "leads outside"), ("linked/../inner.ipynb", "symbolic link"),
                           ("sub", "is not a file"), (["a"], "is not a file name")):
        metrics["artifacts"] = {"notebook": name, "model": "model.keras"}
        (entry.path / "metrics.json").write_text(json.dumps(metrics))
        warned: list[str] = []
        files, texts = run_members(entry, artifacts=("notebook", "model"), warn=warned.append)
        assert files == {"runs/scratch/r1/model.keras": entry.path.resolve() / "model.keras"}, name
        assert list(texts) == ["runs/scratch/r1/metrics.json"], name
        assert len(warned) == 1 and "\n" not in warned[0] and expected in warned[0] and "notebook" in warned[0], warned


def test_a_linked_metrics_file_or_run_folder_is_not_packed(tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(minimal_metrics()))
    entry = _run_folder(tmp_path, minimal_metrics())
    (entry.path / "metrics.json").unlink()
    (entry.path / "metrics.json").symlink_to(elsewhere)
    warned: list[str] = []
    assert run_members(entry, warn=warned.append) == ({}, {}) and "symbolic link" in warned[0]
    linked = tmp_path / "runs" / "scratch" / "r2"
    linked.symlink_to(entry.path)
    entry.path, warned = linked, []
    assert run_members(entry, warn=warned.append) == ({}, {}) and "symbolic link" in warned[0]


def test_the_zip_has_no_member_outside_it_and_no_machine_path(tmp_path):
    metrics = minimal_metrics()
    metrics["artifacts"] = {"notebook": "notebook.ipynb"}
    entry = _run_folder(tmp_path, metrics)
    notebook = {"cells": [{"cell_type": "code", "source": [f'run_dir = "{tmp_path}/runs/scratch/.r1.partial-x"\n',
                                                          f'data_dir = "{config.ROOT}/data/synthetic/smoke"\n']}]}
    (entry.path / "notebook.ipynb").write_text(json.dumps(notebook))
    files, texts = run_members(entry, artifacts=("notebook",))
    shared = _write_zip(tmp_path / "out" / "share.zip", files, texts)
    with zipfile.ZipFile(shared.path) as archive:
        names = archive.namelist()
        assert sorted(names) == ["runs/scratch/r1/metrics.json", "runs/scratch/r1/notebook.ipynb"]
        body = b"".join(archive.read(n) for n in names).decode()
    assert str(tmp_path) not in body and str(config.ROOT) not in body
    assert 'data_dir = \\"data/synthetic/smoke\\"' in body and f"{ELSEWHERE}/.r1.partial-x" in body
    for bad in ("../x", "/etc/passwd", "runs/../../x", "a\\..\\b", ""):
        with pytest.raises(ValueError, match="not a safe member name"):
            member_name(bad)
        with pytest.raises(ValueError, match="not a safe member name"):
            _write_zip(tmp_path / "bad.zip", {}, {bad: "x"})
    assert not (tmp_path / "bad.zip").exists()
