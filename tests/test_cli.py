"""The command line as a user types it: readable reports and one-line errors, never a traceback."""

import re
import shutil
import subprocess
import sys

from mame import config


def mame(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mame", *args], cwd=config.ROOT, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_data_check_on_the_official_csv_without_images(official_csv_dir, tmp_path):
    shutil.copy(official_csv_dir / "MAMe_dataset.csv", tmp_path)
    proc = mame("data", "check", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"train\s+20,300", out) and re.search(r"val\s+1,450", out) and re.search(r"test\s+15,657", out)
    assert "37,407 of 37,407 images missing" in out
    assert len([line for line in out.splitlines() if re.match(r"  \S.*\s+700\s+50\s+\d", line)]) == 29


def test_a_csv_without_the_label_column_is_one_line_naming_the_file(official_csv_dir, tmp_path):
    lines = (official_csv_dir / "MAMe_dataset.csv").read_text().splitlines()[:5]
    (tmp_path / "MAMe_dataset.csv").write_text("\n".join(",".join(l.split(",")[:1] + l.split(",")[2:]) for l in lines))
    proc = mame("data", "check", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'MAMe_dataset.csv'}: missing column 'Medium' (found: Image file, Museum, "
        "Museum-based instance ID, Subset, Width, Height, Product size, Aspect ratio)"]


def test_unknown_profile_is_a_one_line_error():
    proc = mame("status", "--profile", "huge")
    assert proc.returncode == 2 and "unknown profile 'huge'; known: smoke, demo, auto, full" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_make_help_documents_every_target():
    makefile = (config.ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    proc = subprocess.run(["make", "--no-print-directory", "help"], cwd=config.ROOT, capture_output=True, text=True)
    listed = set(re.findall(r"make (\S+)", proc.stdout))
    assert {"help", "setup", "run", "status", "report", "test", "bench", "clean"} <= listed
    assert targets <= listed, targets - listed


def test_the_full_profile_without_mame_dir_says_what_to_set(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "MAME_DIR"}
    env["MAME_RUNS_DIR"] = str(tmp_path / "runs")
    proc = mame("run", "--profile", "full", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "profile 'full' reads the real MAMe: set MAME_DIR" in proc.stderr
    synth = mame("data", "synth", "--profile", "full", env=env)
    assert synth.returncode == 2 and "synthetic data belongs to profiles with data.source: synthetic" in synth.stderr


def test_status_on_real_metadata_without_runs_lists_every_entry_missing(official_csv_dir, tmp_path):
    import os

    env = dict(os.environ, MAME_DIR=str(official_csv_dir), MAME_RUNS_DIR=str(tmp_path / "runs"))
    proc = mame("status", "--profile", "full", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("features/", "classify/"))]
    assert len(rows) == 23 and all(" missing " in row for row in rows)  # features: 5 + VGG16 fine-tuned + 5 VS;
    # classify: 5 + dense head + fine-tuned + 5 VS


def test_watch_on_a_port_in_use_is_a_one_line_error_naming_it():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = mame("report", "--watch", "--no-run", "--profile", "smoke", "--port", str(port))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"error: cannot serve on 127.0.0.1:{port}: ") and "--port" in proc.stderr
    proc = mame("report", "--watch", "--check")
    assert proc.returncode == 2 and "--check" in proc.stderr and "Traceback" not in proc.stderr


def test_data_keeps_its_runs_apart_named_after_its_folder(tmp_path):
    """``--data`` without ``MAME_RUNS_DIR``: the runs go to ``runs-<folder name>/`` (a dotted name kept whole), never
    into the runs of another dataset."""
    import os

    from tests.data.datasets import class_tree

    data = class_tree(tmp_path / "my shells.v2", ["a", "b"], 3)
    env = {k: v for k, v in os.environ.items() if k not in ("MAME_RUNS_DIR", "MAME_DATA")}
    env["MAME_DATA_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-m", "mame", "status", "--profile", "smoke", "--data", str(data)], cwd=config.ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"dataset {data}: runs in {config.ROOT / 'runs-my-shells.v2'}, deck in {config.ROOT / 'report-my-shells.v2'}"
            in proc.stderr)
    assert f"runs in {config.ROOT / 'runs-my-shells.v2'}" in proc.stdout
    assert not (config.ROOT / "runs-my-shells.v2").exists()  # status makes nothing
