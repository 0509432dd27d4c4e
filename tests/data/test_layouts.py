"""Any dataset on disk: class folders (with or without split folders), or a CSV; the seeded stratified split; the
prepared index the stages read; a clear error for each kind of bad input, with nothing written to the user's folder."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mame.data import dataset_index, metadata, prepared
from mame.data.layouts import read_layout
from mame.data.metadata import DataError
from tests.data.datasets import class_tree, csv_dataset, picture, save


def prepare(source: Path, tmp_path: Path, seed: int = 0, **settings) -> tuple[dict, metadata.Metadata]:
    dest = tmp_path / f"prepared-{seed}-{len(list(tmp_path.glob('prepared-*')))}"
    about = dataset_index.prepare(source, dest, seed=seed, **settings)
    return about, metadata.read_metadata(dest)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_class_folders_nested_any_case_sorted_with_non_images_skipped_and_nothing_written_there(tmp_path):
    root = class_tree(tmp_path / "shells", ["zebra", "Apple", "mango  tree"], 10, nested=True, ext=".JPG")
    (root / "zebra" / "notes.txt").write_text("not an image")
    (root / "zebra" / ".DS_Store").write_bytes(b"\0")
    before = listing(root)
    about, meta = prepare(root, tmp_path)
    assert meta.classes == ("Apple", "mango tree", "zebra")  # sorted as Python sorts; whitespace collapsed
    assert about["layout"] == "class folders" and about["skipped"] == {"count": 1, "first": ["zebra/notes.txt"]}
    files = [r.image_file for r in meta.records]
    assert len(files) == 30 and "Apple/part1/1.JPG" in files  # images at any depth below their class folder
    assert all(meta.classes[r.label] == r.image_file.split("/")[0].replace("  ", " ") for r in meta.records)
    assert metadata.find_image_dir(about_dir(tmp_path)) == root
    assert listing(root) == before  # the user's folder is only read


def about_dir(tmp_path: Path) -> Path:
    return next(p for p in tmp_path.glob("prepared-*") if (p / prepared.ABOUT).is_file())


def test_no_split_given_draws_a_seeded_split_stratified_by_class_and_says_so(tmp_path):
    root = class_tree(tmp_path / "d", ["a", "b", "c", "d"], 20)
    about, meta = prepare(root, tmp_path, seed=3)
    counts = meta.counts()
    assert all(counts["val"][c] == counts["test"][c] == 3 and counts["train"][c] == 14 for c in meta.classes)  # 15 % each
    assert about["splits"] == {"given": [], "drawn": {"from": "all images", "seed": 3, "stratified": True,
                                                       "val": 0.15, "test": 0.15}}
    same, again = prepare(root, tmp_path, seed=3)[1], prepare(root, tmp_path, seed=4)[1]
    split_of = lambda m: {r.image_file: r.subset for r in m.records}
    assert split_of(same) == split_of(meta) and split_of(again) != split_of(meta)  # the seed decides, and only it
    _, wider = prepare(root, tmp_path, seed=3, split={"val": 0.25, "test": 0.1})
    assert wider.counts()["val"]["a"] == 5 and wider.counts()["test"]["a"] == 2


def test_split_folders_by_their_hugging_face_aliases_in_any_case(tmp_path):
    root = tmp_path / "aliases"
    class_tree(root, ["x", "y"], 4, split="Training")
    class_tree(root, ["x", "y"], 2, split="valid", seed=50)
    class_tree(root, ["x", "y"], 3, split="EVAL", seed=90)  # Hugging Face: eval is a test alias
    about, meta = prepare(root, tmp_path)
    assert {s: sum(v.values()) for s, v in meta.counts().items()} == {"train": 8, "val": 4, "test": 6}
    assert about["splits"] == {"given": ["train", "val", "test"], "drawn": None}
    assert all(r.image_file.startswith({"train": "Training/", "val": "valid/", "test": "EVAL/"}[r.subset])
               for r in meta.records)


def test_train_and_test_folders_only_validation_comes_from_train_and_test_stays_whole(tmp_path):
    root = tmp_path / "two"
    class_tree(root, ["x", "y", "z"], 10, split="train")
    class_tree(root, ["x", "y", "z"], 4, split="test", seed=70)
    about, meta = prepare(root, tmp_path)
    counts = meta.counts()
    assert counts["test"] == {"x": 4, "y": 4, "z": 4}
    assert counts["val"] == {"x": 2, "y": 2, "z": 2} and counts["train"] == {"x": 8, "y": 8, "z": 8}
    assert about["splits"]["drawn"]["from"] == "train" and "test" not in about["splits"]["drawn"]
    assert all(r.image_file.startswith("test/") for r in meta.records if r.subset == "test")


def test_a_csv_with_other_column_names_an_image_folder_and_split_aliases(tmp_path):
    rows = [(f"{label}/{i}.png", f" {label} ", split) for label in ("oak", "ash") for i, split in
            enumerate(["train", "TRAIN", "train", "Validation", "dev", "test", "Testing"])]
    table = csv_dataset(tmp_path / "trees", rows, columns=("path", "species", "subset"), name="labels.csv", images="img")
    about, meta = prepare(table.parent, tmp_path, csv_file="labels.csv", images="img",
                          columns={"file": "path", "label": "species", "split": "subset"})
    assert meta.classes == ("ash", "oak")  # labels stripped, sorted
    assert {s: sum(v.values()) for s, v in meta.counts().items()} == {"train": 6, "val": 4, "test": 4}
    assert metadata.find_image_dir(about_dir(tmp_path)) == table.parent / "img"
    assert about["layout"] == "CSV labels.csv (columns: path = file, species = label, subset = split)"
    _, ordered = prepare(table, tmp_path, images="img", columns={"file": "path", "label": "species", "split": "subset"},
                         classes=["oak", "ash"])  # the CSV file itself; the class order given
    assert ordered.classes == ("oak", "ash") and ordered.records[0].label == 0


def test_forty_classes_each_in_every_split(tmp_path):
    names = [f"class {i:02d}" for i in range(40)]
    _, meta = prepare(class_tree(tmp_path / "forty", names, 5), tmp_path)
    assert len(meta.classes) == 40
    assert all(min(meta.counts()[s].values()) >= 1 for s in ("train", "val", "test"))


def test_grey_palette_cmyk_and_alpha_images_come_out_rgb(tmp_path):
    from mame.data import pipeline

    root = class_tree(tmp_path / "modes", ["a", "b"], 6, modes=("RGB", "L", "RGBA", "P", "CMYK", "LA"))
    _, meta = prepare(root, tmp_path)
    records = meta.split("train")
    image_dir = metadata.find_image_dir(about_dir(tmp_path))
    modes = Counter(Image.open(image_dir / r.image_file).mode for r in records)
    assert {"L", "RGBA", "P", "CMYK", "LA"} <= set(modes)
    for record, (image, label) in zip(records, zip(*pipeline.load_arrays(records, image_dir, image_size=24))):
        expected = np.asarray(Image.open(image_dir / record.image_file).convert("RGB").resize((24, 24), Image.BILINEAR),
                              dtype=np.float32)
        assert image.shape == (24, 24, 3) and label == record.label
        assert np.abs(image - expected).mean() < 6, record.image_file  # the RGB image, not its alpha or a grey channel


def test_sizes_are_read_from_the_headers_and_a_changed_image_changes_the_fingerprint(tmp_path):
    root = class_tree(tmp_path / "sizes", ["a", "b"], 4)
    _, meta = prepare(root, tmp_path)
    first = next(r for r in meta.records if r.image_file == "a/2.png")
    assert (first.width, first.height) == (46, 28) and first.aspect_ratio == pytest.approx(46 / 28)
    dest = about_dir(tmp_path)
    before = metadata.dataset_fingerprint(dest)
    dataset_index.prepare(root, dest, seed=0)
    assert metadata.dataset_fingerprint(dest) == before  # nothing changed: the same fingerprint
    save(picture(7, size=(50, 50)), root / "a" / "2.png")
    dataset_index.prepare(root, dest, seed=0)
    assert metadata.dataset_fingerprint(dest) != before
    changed = next(r for r in metadata.read_metadata(dest).records if r.image_file == "a/2.png")
    assert (changed.width, changed.height) == (50, 50)


@pytest.mark.parametrize("case", ["empty class", "one class", "too small", "unreadable", "mixed top level",
                                  "csv missing file", "csv empty label", "csv twice", "csv bad split", "csv no label column",
                                  "classes list", "no train"])
def test_bad_input_is_one_clear_line_naming_the_file(tmp_path, case):
    root = tmp_path / "bad"
    expected = {
        "empty class": r"bad/b: empty class folder",
        "one class": r"bad: one class \(a\): a classification study needs at least two",
        "too small": r"class 'b' has 2 image\(s\) to split: a stratified train / val / test split needs at least 3",
        "unreadable": r"bad: 1 unreadable image\(s\): a/broken.png",
        "mixed top level": r"split folders \(train\) beside other folders \(cats\)",
        "csv missing file": r"metadata.csv: 1 of 6 files it names are not in .*bad \(first: gone.png\)",
        "csv empty label": r"metadata.csv line 3: empty label for '1.png'",
        "csv twice": r"metadata.csv line 4: '0.png' is listed twice \(first on line 2\)",
        "csv bad split": r"metadata.csv line 2: split 'holdout' is not one of",
        "csv no label column": r"metadata.csv: no column 'label' for the image labels \(found: file_name, kind\)",
        "classes list": r"the class list names classes without images: c",
        "no train": r"split folders or column give val, test but no train split",
    }[case]
    settings = {}
    if case in ("empty class", "one class", "too small", "unreadable", "classes list"):
        class_tree(root, ["a", "b"] if case != "one class" else ["a"], 4 if case != "too small" else 2)
        if case == "empty class":
            for f in (root / "b").iterdir():
                f.unlink()
        if case == "too small":
            class_tree(root, ["a"], 5)
        if case == "unreadable":
            (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        if case == "classes list":
            settings["classes"] = ["a", "b", "c"]
    elif case == "mixed top level":
        class_tree(root, ["x"], 2, split="train")
        class_tree(root, ["cats"], 2)
    elif case == "no train":
        class_tree(root, ["x", "y"], 2, split="val")
        class_tree(root, ["x", "y"], 2, split="test")
    else:
        rows = [(f"{i}.png", "ab"[i % 2], None) for i in range(6)]
        table = csv_dataset(root, rows)
        text = table.read_text()
        text = {"csv missing file": text.replace("4.png", "gone.png"),
                "csv empty label": text.replace("1.png,b", "1.png,  "),
                "csv twice": text.replace("2.png,a", "0.png,a"),
                "csv bad split": text.replace("file_name,label", "file_name,label,split").replace(",a\n", ",a,holdout\n")
                .replace(",b\n", ",b,train\n"),
                "csv no label column": text.replace("file_name,label", "file_name,kind")}[case]
        table.write_text(text)
    before = listing(root)
    with pytest.raises(DataError) as raised:
        dataset_index.prepare(root, tmp_path / "out", seed=0, **settings)
    message = str(raised.value)
    assert re.search(expected, message), message
    assert "\n" not in message and str(root) in message  # one line, naming where
    assert listing(root) == before and not (tmp_path / "out" / prepared.ABOUT).exists()  # nothing written, nothing lost


def test_read_layout_finds_metadata_csv_before_class_folders(tmp_path):
    rows = [(f"{c}/{i}.png", c, None) for c in ("u", "v") for i in range(3)]
    table = csv_dataset(tmp_path / "hf", rows)  # its images sit in class folders too: the CSV says what they are
    found = read_layout(table.parent)
    assert found.layout.startswith("CSV metadata.csv") and found.classes == ("u", "v")
    assert read_layout(table.parent, layout="folders").layout == "class folders"


def test_the_prepared_description_is_json_without_times_so_a_copy_keeps_the_fingerprint(tmp_path):
    root = class_tree(tmp_path / "orig", ["a", "b"], 4)
    about, _ = prepare(root, tmp_path)
    dest = about_dir(tmp_path)
    fingerprint = metadata.dataset_fingerprint(dest)
    os.utime(root / "a" / "0.png", ns=(1, 1))  # touched, not changed
    dataset_index.prepare(root, dest, seed=0)
    assert metadata.dataset_fingerprint(dest) == fingerprint
    assert json.loads((dest / prepared.ABOUT).read_text())["classes"] == ["a", "b"]
