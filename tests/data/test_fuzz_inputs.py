"""Fuzzing (hypothesis) of what a user's dataset holds: corrupt CSV rows for the MAMe loader, and bad or unusual
images for ``python -m mame data check`` and the image loading path. Every input ends in one clear line naming
the file and the problem (a ``DataError``, a check report line, ``error: ...`` from the command), never a
traceback; convertible images (CMYK, palette, alpha, 16-bit, grey) load as RGB; nothing outside the folder
changes. Examples are bounded so these tests together stay well under a minute."""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mame import cli
from mame.classes import CLASS_INDEX
from mame.data.dataset_check import MAX_IMAGE_PIXELS
from mame.data.metadata import COLUMNS, DataError, read_metadata

HEADER = ",".join(COLUMNS)
GOOD_ROWS = ["436018.jpg,Oil on canvas,Metropolitan Museum of Art,29.100.60,train,3144.0,3840.0,12072960.0,0.8187",
             '334898.jpg,Bronze,Metropolitan Museum of Art,"1984.433.193a, b",val,300.0,200.0,60000.0,1.5',
             "1980.266.jpeg,Woven fabric ,Metropolitan Museum of Art,1980.266,test,256.0,256.0,65536.0,1.0"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_TF = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture()
def workspace(tmp_path):
    """``(dataset folder, check)``: ``check()`` asserts that nothing beside the dataset folder changed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    before = snapshot(outside)
    data = tmp_path / "data"

    def check():
        assert snapshot(outside) == before
        assert {p.name for p in tmp_path.iterdir()} <= {"cache", "data", "outside"}

    return data, check


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_line(message: str, path: Path) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    assert str(path) in message, message


# --- corrupt CSV rows -------------------------------------------------------------------------------------------

TROUBLE = [b"\x00", b"\xff", b"\xe9", b'"', b"\r", b"\n", b",", b"\x1e", b"\x85", b"\xef\xbb\xbf"]  # NUL, bad UTF-8, quote, line ends


@st.composite
def corrupt_csv(draw) -> bytes:
    rows = [row.split(",") for row in GOOD_ROWS]
    how = draw(st.sampled_from(["field", "row", "bytes", "header"]))
    if how == "field":  # one field of one row replaced by anything
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][draw(st.integers(0, len(rows[row]) - 1))] = draw(text)
        body = [HEADER, *[",".join(r) for r in rows]]
    elif how == "row":  # a whole row of arbitrary text
        body = [HEADER, *GOOD_ROWS[:1], draw(text), *GOOD_ROWS[1:]]
    elif how == "header":
        body = [draw(text), *GOOD_ROWS]
    else:
        body = [HEADER, *GOOD_ROWS]
    data = ("\n".join(body) + "\n").encode("utf-8")
    if how == "bytes":  # raw bytes spliced in anywhere: NUL, bad UTF-8, stray quotes and line ends
        at = draw(st.integers(0, len(data)))
        spliced = draw(st.one_of(st.binary(min_size=1, max_size=12),
                                 st.lists(st.sampled_from(TROUBLE), min_size=1, max_size=4).map(b"".join)))
        data = data[:at] + spliced + data[at + draw(st.integers(0, 8)):]
    return data


@FUZZ
@given(data=corrupt_csv())
def test_corrupt_csv_rows_end_in_one_line_naming_the_file(workspace, data):
    folder, unchanged = workspace
    csv_path = fresh(folder) / "MAMe_dataset.csv"
    csv_path.write_bytes(data)
    try:
        meta = read_metadata(folder)
    except DataError as error:
        assert_one_clear_line(str(error), csv_path)
        assert str(error).startswith(str(csv_path))
    else:
        assert all(r.image_file and "/" not in r.image_file for r in meta.records)
    code, out, err = run_cli("data", "check", str(folder), "--no-images")
    assert code in (1, 2) and "Traceback" not in out + err
    if code == 2:
        assert err.startswith(f"error: {csv_path}") and err.count("\n") == 1, err
    assert csv_path.read_bytes() == data
    unchanged()


@pytest.mark.parametrize(("row", "problem"), [
    ("../../etc/passwd,Bronze,M,1,train,1.0,1.0,1.0,1.0", "'Image file' '../../etc/passwd' is not a plain file name"),
    ("a\x00.jpg,Bronze,M,1,train,1.0,1.0,1.0,1.0", "is not a plain file name"),
    ("1.jpg,Bronze,M,1,train,nan,1.0,1.0,1.0", "Width 'nan' is not a finite number"),
    ("1.jpg,Bronze,M,1,train,1.0,1e999,1.0,1.0", "Height '1e999' is not a finite number"),
    ('1.jpg,"Bronze,M,1,train,1.0,1.0,1.0,1.0\n' + "x" * 140_000, "not a readable CSV row"),
])
def test_rows_found_by_fuzzing_are_refused_with_the_line(tmp_path, row, problem):
    path = tmp_path / "MAMe_dataset.csv"
    path.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_metadata(path)
    assert problem in str(error.value) and str(error.value).startswith(f"{path} line ")


@pytest.mark.parametrize("header", ["0\x1e0", "Image file\x0bMedium", "\x85"])
def test_a_header_with_a_line_breaking_character_is_one_line_of_the_command(tmp_path, header):
    (tmp_path / "MAMe_dataset.csv").write_text(f"{header}\n{GOOD_ROWS[0]}\n", encoding="utf-8")
    code, out, err = run_cli("data", "check", str(tmp_path))
    assert code == 2 and out == "" and err.startswith(f"error: {tmp_path / 'MAMe_dataset.csv'}: missing column 'Image file'")
    assert len(err.splitlines()) == 1, err


def test_a_csv_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "MAMe_dataset.csv"
    path.write_bytes(f"{HEADER}\n".encode() + "1.jpg,Bronze,Musée,1,train,1.0,1.0,1.0,1.0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"MAMe_dataset.csv: not UTF-8 text \(byte b'\\xe9'"):
        read_metadata(path)


# --- bad and unusual images -------------------------------------------------------------------------------------

def png_chunks(width: int, height: int, bit_depth: int, colour: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def bomb_png() -> bytes:
    """A real decompression bomb: a 1-bit PNG of 20,000 x 20,001 pixels (over the cap and Pillow's limit) whose
    ~220 kB unpack to 50 MB of rows, and to 1.2 GB once decoded as RGB."""
    width, height = 20_000, MAX_IMAGE_PIXELS // 20_000 + 1
    row = b"\x00" + bytes(width // 8)
    return png_chunks(width, height, 1, 0, row * height)


def encoded(pixels: np.ndarray | Image.Image, fmt: str, **options) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
CONVERTIBLE = {  # name -> bytes that must load as RGB
    "cmyk.jpg": encoded(Image.fromarray(RGB).convert("CMYK"), "JPEG"),
    "palette.png": encoded(Image.fromarray(RGB).convert("P"), "PNG"),
    "alpha.png": encoded(Image.fromarray(RGB).convert("RGBA"), "PNG"),
    "grey-alpha.png": encoded(Image.fromarray(RGB).convert("LA"), "PNG"),
    "grey.jpg": encoded(Image.fromarray(RGB).convert("L"), "JPEG"),
    "grey16.png": encoded(Image.fromarray((RGB[..., 0].astype(np.uint16) * 257)), "PNG"),
    "rgb16.png": png_chunks(4, 3, 16, 2, b"".join(b"\x00" + np.full((4, 3), 40_000, ">u2").tobytes() for _ in range(3))),
    "wide.png": encoded(np.zeros((1, 10_000, 3), np.uint8), "PNG"),
    "tall.jpg": encoded(np.zeros((10_000, 1, 3), np.uint8), "JPEG"),
}
WHOLE = {"photo.jpg": encoded(RGB, "JPEG"), "photo.png": encoded(RGB, "PNG")}
OTHER_FORMATS = {fmt: encoded(RGB, fmt) for fmt in ("TIFF", "PPM", "ICO")}  # whole images Pillow reads and TF does not


@st.composite
def bad_image(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["empty", "truncated", "not an image", "header bomb"]))
    if kind == "empty":
        return "empty.jpg", b""
    if kind == "truncated":
        name = draw(st.sampled_from(sorted(WHOLE)))
        return name, WHOLE[name][:draw(st.integers(1, len(WHOLE[name]) - 13))]  # cut before the end marker
    if kind == "not an image":
        other = OTHER_FORMATS[draw(st.sampled_from(sorted(OTHER_FORMATS)))] if draw(st.booleans()) else b""
        return draw(st.sampled_from(["text.jpg", "noise.png"])), other or draw(st.binary(min_size=1, max_size=64).filter(
            lambda b: not b.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8", b"BM", b"RIFF"))))
    width = draw(st.integers(20_000, 65_535))  # a header that claims more pixels than the cap
    return "bomb.png", png_chunks(width, MAX_IMAGE_PIXELS // width + 1, 8, 2, b"\x00")


def write_image_set(folder: Path, name: str, data: bytes) -> Path:
    images = fresh(folder) / "data_256"
    images.mkdir()
    (images / name).write_bytes(data)
    (folder / "MAMe_dataset.csv").write_text(f"{HEADER}\n{name},Bronze,M,1,train,16.0,12.0,192.0,1.33\n")
    return images / name


def check_line(folder: Path, path: Path) -> tuple[int, str]:
    code, out, err = run_cli("data", "check", str(folder))
    assert "Traceback" not in out + err and err == ""
    lines = [line for line in out.splitlines() if str(path) in line]
    return code, "\n".join(lines)


@FUZZ
@given(case=bad_image())
def test_a_bad_image_is_one_line_of_the_data_check(workspace, case):
    folder, unchanged = workspace
    path = write_image_set(folder, *case)
    before = snapshot(folder)
    code, line = check_line(folder, path)
    assert code == 1 and line.startswith(f"  {path}: ") and "\n" not in line, line
    assert snapshot(folder) == before
    unchanged()


@pytest.mark.parametrize("name", sorted(CONVERTIBLE) + sorted(WHOLE))
def test_convertible_images_pass_the_data_check(tmp_path, name):
    path = write_image_set(tmp_path, name, {**CONVERTIBLE, **WHOLE}[name])
    code, line = check_line(tmp_path, path)
    assert code == 0 and line == "", line


def test_a_real_decompression_bomb_is_refused_from_its_header(tmp_path):
    from mame.data.pipeline import load_arrays

    path = write_image_set(tmp_path, "bomb.png", bomb_png())
    assert path.stat().st_size < 300_000
    code, line = check_line(tmp_path, path)
    assert code == 1 and line == f"  {path}: 20,000 x 20,001 pixels, over the cap of 400,000,000 " \
                                 "(a decompression bomb? MAMe's largest image has 373 Mpx)"
    with pytest.raises(DataError) as error:
        load_arrays(read_metadata(tmp_path).split("train"), path.parent, image_size=8)
    assert str(error.value) == f"{path}: corrupt image: 20000 x 20001 pixels, over the cap of 400,000,000 (a decompression bomb?)"


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_IMAGE_CACHE", str(tmp_path / "cache"))


@FUZZ_TF
@given(case=bad_image(), cached=st.booleans())
def test_a_bad_image_fails_loading_with_one_line_naming_it(workspace, private_cache, case, cached):
    from mame.data.pipeline import iterate_numpy, make_dataset

    folder, unchanged = workspace
    path = write_image_set(folder, *case)
    records = read_metadata(folder).split("train")
    with pytest.raises(DataError) as error:
        list(iterate_numpy(make_dataset(records, path.parent, image_size=8, cache=cached)))
    assert_one_clear_line(str(error.value), path)
    assert str(error.value).startswith(f"{path}: corrupt image: ")
    if case[0] == "bomb.png":  # refused by the pipeline's own header check, before TensorFlow allocates anything
        width, height = struct.unpack(">II", case[1][16:24])
        assert str(error.value).endswith(f"image: {width} x {height} pixels, over the cap of 400,000,000 (a decompression bomb?)")
    unchanged()


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_convertible_images_load_as_rgb(tmp_path, private_cache, name):
    from mame.data.pipeline import load_arrays

    path = write_image_set(tmp_path / "data", name, CONVERTIBLE[name])
    images, labels = load_arrays(read_metadata(tmp_path / "data").split("train"), path.parent, image_size=8)
    assert images.shape == (1, 8, 8, 3) and labels.tolist() == [CLASS_INDEX["Bronze"]]
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
    if name.startswith("grey16"):
        expected = np.asarray(image_16bit_as_8bit(path).resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(images[0].mean(axis=(0, 1)) - expected.mean(axis=(0, 1))).max() < 12  # the same picture, in RGB


def image_16bit_as_8bit(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return Image.fromarray((np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8)).convert("RGB")
