"""``python -m mame data check DIR`` on datasets that are not MAMe: counts per class and split, sizes, duplicates,
unreadable and skipped files named, the fingerprint; MAMe's folder still gets MAMe's check."""

from __future__ import annotations

import shutil
import subprocess
import sys

from mame import config
from mame.data.folder_check import check_any, check_folder, format_folder_report
from tests.data.datasets import class_tree, csv_dataset


def mame_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mame", *args], cwd=config.ROOT, capture_output=True, text=True, timeout=120)


def test_split_folders_counts_sizes_and_a_clean_verdict_through_the_command_line(tmp_path):
    root = tmp_path / "leaves"
    class_tree(root, ["maple", "oak"], 5, split="train", modes=("RGB", "L"))
    class_tree(root, ["maple", "oak"], 2, split="valid", seed=40)
    class_tree(root, ["maple", "oak"], 2, split="test", seed=80)
    done = mame_cli("data", "check", str(root))
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  layout: class folders in split folders (test, train, valid)" in lines
    assert "  2 classes, 18 images" in lines
    assert [line.split() for line in lines if line.split()[:1] in (["maple"], ["oak"], ["all"])] == [
        ["maple", "5", "2", "2", "9"], ["oak", "5", "2", "2", "9"], ["all", "10", "4", "4", "18"]]
    assert "  width  min 40 / median 43 / max 52" in lines  # the files' own sizes, from their headers
    assert "No duplicates (no two files with the same bytes)." in lines and "No unreadable images." in lines
    assert lines[-2].startswith("Fingerprint: ") and lines[-1] == "Result: OK"


def test_duplicates_across_classes_unreadable_and_skipped_files_are_named(tmp_path):
    root = class_tree(tmp_path / "mixed", ["a", "b", "c"], 4)
    shutil.copy(root / "a" / "0.png", root / "b" / "copy.png")  # the same image under two classes
    shutil.copy(root / "c" / "1.png", root / "c" / "again.png")  # twice in one class: a note, not a problem
    (root / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (root / "a" / "readme.txt").write_text("not an image")
    report = check_folder(root)
    text = format_folder_report(report)
    assert not report.ok and [len(g) for g in report.conflicting()] == [2]
    assert "2 groups of identical files (the same bytes), 1 of them across classes or splits:" in text
    assert "  a/0.png (a) = b/copy.png (b)" in text
    assert f"  {root / 'c' / 'broken.png'}: " in text
    assert "1 files skipped (not .bmp, .gif, .jpeg, .jpg or .png): a/readme.txt" in text
    assert "(no split given: the study draws val and test from each class (seeded, stratified))" in text
    assert text.splitlines()[-1] == "Result: PROBLEMS FOUND"


def test_a_csv_with_its_own_column_names_and_the_fingerprint_follows_the_bytes(tmp_path):
    rows = [(f"{i}.png", "xy"[i % 2], "train" if i < 6 else "test") for i in range(8)]
    table = csv_dataset(tmp_path / "csvset", rows, columns=("img", "kind", "part"), name="list.csv")
    args = ["data", "check", str(table.parent), "--csv", "list.csv", "--file-column", "img", "--label-column", "kind",
            "--split-column", "part"]
    first = mame_cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "  layout: CSV list.csv (columns: img = file, kind = label, part = split)" in first.stdout
    assert "(splits as given: train, test; the study draws the missing ones from train" in first.stdout
    (table.parent / "3.png").write_bytes((table.parent / "5.png").read_bytes())  # same name, other bytes
    second = mame_cli(*args)
    fingerprint = [line for line in first.stdout.splitlines() if line.startswith("Fingerprint")]
    assert fingerprint and fingerprint != [line for line in second.stdout.splitlines() if line.startswith("Fingerprint")]
    wrong = mame_cli("data", "check", str(table.parent), "--csv", "list.csv")
    assert wrong.returncode == 1 and "error: " in wrong.stdout and "no column 'file_name'" in wrong.stdout
    assert "Traceback" not in wrong.stdout + wrong.stderr


def test_the_mame_folder_still_gets_mames_check_with_its_fingerprint(official_csv_dir):
    text, ok = check_any(official_csv_dir, verify_images=False)
    assert text.startswith("MAMe dataset check:") and not ok  # no images there
    assert "matches the official MAMe split sizes" in text
    assert any(line.startswith("Fingerprint: ") and len(line.split()[1]) == 64 for line in text.splitlines())
