"""The downloader against a real HTTP server on 127.0.0.1 (with Range) serving small zips."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mame.data.dataset_check import check_dataset, format_report
from mame.data.download import ARCHIVES, PROVENANCE, DownloadError, download, extract_zip, read_provenance


class ArchiveServer(ThreadingHTTPServer):
    """Serves the files of ``root``; records each request's path and Range header."""

    def __init__(self, root: Path, honour_range: bool = True):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.root, self.honour_range = root, honour_range
        self.cut_after: int | None = None  # close the connection after this many body bytes
        self.requests: list[tuple[str, str | None]] = []
        self.bytes_sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/mame-dataset/"


class RangeHandler(BaseHTTPRequestHandler):
    server: ArchiveServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.server.root / Path(self.path).name
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = self._range_start()
        if start >= len(data) > 0:
            self.send_error(416, "Range Not Satisfiable")
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:][: self.server.cut_after]
        self.server.bytes_sent += len(body)  # counted before the write: the client may finish before this thread resumes
        self.wfile.write(body)
        self.close_connection = True

    def _range_start(self) -> int:
        header = self.headers.get("Range")
        if not header or not self.server.honour_range:
            return 0
        return int(header.removeprefix("bytes=").split("-")[0])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Keep any configured HTTP proxy out of the way: requests go straight to 127.0.0.1."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def make_zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def served(tmp_path):
    """Small stand-ins for the official archives, served over HTTP; yields (server, md5s)."""
    root = tmp_path / "served"
    root.mkdir()
    csv = b"Image file,Medium\n" + b"".join(b"%d.jpg,Bronze\n" % i for i in range(2000))
    md5s = {
        "MAMe_metadata.zip": make_zip(root / "MAMe_metadata.zip",
                                      {"MAMe_dataset.csv": csv, "MAMe_labels.csv": b"0,A\n"}),
        "MAMe_data_256.zip": make_zip(root / "MAMe_data_256.zip",
                                      {"data_256/1.jpg": b"\xff\xd8jpeg", "data_256/2.jpg": b"x"}),
    }
    server = ArchiveServer(root)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, md5s
    server.shutdown()
    server.server_close()


def test_full_download_checks_and_extracts(served, tmp_path):
    server, md5s = served
    dest = tmp_path / "mame"
    seen = []
    paths = download(dest, base_url=server.url, checksums=md5s,
                     progress=lambda name, done, total: seen.append((name, done, total)))
    assert paths == [dest / "MAMe_metadata.zip", dest / "MAMe_data_256.zip"]
    assert (dest / "MAMe_dataset.csv").read_bytes().startswith(b"Image file,Medium\n0.jpg")
    assert (dest / "data_256" / "1.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert not list(dest.glob("*.part"))
    assert [r[1] for r in server.requests] == [None, None]
    size = (server.root / "MAMe_data_256.zip").stat().st_size
    assert seen[-1] == ("MAMe_data_256.zip", size, size)
    download(dest, base_url=server.url, checksums=md5s)  # already there: nothing fetched
    assert len(server.requests) == 2


def test_resume_from_partial_file(served, tmp_path):
    server, md5s = served
    dest = tmp_path / "mame"
    dest.mkdir()
    data = (server.root / "MAMe_metadata.zip").read_bytes()
    half = len(data) // 2
    (dest / "MAMe_metadata.zip.part").write_bytes(data[:half])
    download(dest, parts=["metadata"], base_url=server.url, checksums=md5s)
    assert server.requests == [("/mame-dataset/MAMe_metadata.zip", f"bytes={half}-")]
    assert server.bytes_sent == len(data) - half
    assert (dest / "MAMe_metadata.zip").read_bytes() == data
    assert (dest / "MAMe_labels.csv").read_bytes() == b"0,A\n"


def test_existing_archive_with_a_wrong_md5_is_fetched_again(served, tmp_path):
    server, md5s = served
    dest = tmp_path / "mame"
    dest.mkdir()
    stale = dest / "MAMe_metadata.zip"
    make_zip(stale, {"MAMe_dataset.csv": b"Image file,Medium\nold.jpg,Bronze\n", "MAMe_labels.csv": b"0,A\n"})
    download(dest, parts=["metadata"], base_url=server.url, checksums=md5s)
    assert server.requests == [("/mame-dataset/MAMe_metadata.zip", None)]
    assert stale.read_bytes() == (server.root / "MAMe_metadata.zip").read_bytes()
    assert (dest / "MAMe_dataset.csv").read_bytes().startswith(b"Image file,Medium\n0.jpg")


def test_interrupted_transfer_keeps_part_and_resumes(served, tmp_path):
    server, md5s = served
    server.cut_after = 1000
    dest = tmp_path / "mame"
    cut_short = r"MAMe_metadata.zip: got 1,000 of [\d,]+ bytes; run again to resume"
    with pytest.raises(DownloadError, match=cut_short):
        download(dest, parts=["metadata"], base_url=server.url, checksums=md5s)
    assert (dest / "MAMe_metadata.zip.part").stat().st_size == 1000
    assert not (dest / "MAMe_metadata.zip").exists()
    server.cut_after = None
    download(dest, parts=["metadata"], base_url=server.url, checksums=md5s)
    assert server.requests[-1] == ("/mame-dataset/MAMe_metadata.zip", "bytes=1000-")
    assert (dest / "MAMe_dataset.csv").is_file()


def test_server_ignoring_range_restarts_cleanly(served, tmp_path):
    server, md5s = served
    server.honour_range = False
    dest = tmp_path / "mame"
    dest.mkdir()
    (dest / "MAMe_metadata.zip.part").write_bytes(b"stale bytes")
    download(dest, parts=["metadata"], base_url=server.url, checksums=md5s, extract=False)
    served_bytes = (server.root / "MAMe_metadata.zip").read_bytes()
    assert (dest / "MAMe_metadata.zip").read_bytes() == served_bytes
    assert not (dest / "MAMe_dataset.csv").exists()


@pytest.mark.parametrize("part", [p for p, (_, md5) in ARCHIVES.items() if md5 is not None])
def test_every_archive_with_a_published_md5_is_checked_against_it(served, tmp_path, part):
    server, _ = served
    name, md5 = ARCHIVES[part]
    make_zip(server.root / name, {"data/1.jpg": b"not the official archive"})
    dest = tmp_path / "mame"
    with pytest.raises(DownloadError, match=f"{name}: md5 .* does not match the published {md5}"):
        download(dest, parts=[part], base_url=server.url)  # the official md5
    assert sorted(p.name for p in dest.iterdir()) == []  # no archive, no .part, nothing unpacked, no provenance


def test_http_error_is_reported(served, tmp_path):
    server, md5s = served
    with pytest.raises(DownloadError, match="MAMe_data.zip: HTTP 404"):
        download(tmp_path, parts=["data"], base_url=server.url, checksums=md5s)


def test_unreachable_host_fails_fast_with_advice(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as error:
        download(tmp_path, base_url=f"http://127.0.0.1:{port}/mame-dataset/", timeout=5)
    message = str(error.value)
    assert message.startswith(f"cannot reach 127.0.0.1:{port} (Connection refused): download "
                              f"http://127.0.0.1:{port}/mame-dataset/MAMe_metadata.zip by hand")
    assert f"MAME_DIR={tmp_path}" in message and "\n" not in message


def test_silent_server_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(DownloadError, match=r"\(timed out after 0.5 s\)"):
            download(tmp_path, parts=["metadata"], base_url=url, timeout=0.5)


@pytest.mark.parametrize("evil", ["../outside.txt", "data_256/../../outside.txt", "data_256/../inside.txt",
                                  "/tmp/outside.txt", "\\\\host\\outside.txt", "C:/outside.txt"])
def test_members_with_dotdot_or_absolute_names_are_refused_before_anything_is_unpacked(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    make_zip(archive, {"data_256/good.jpg": b"fine", evil: b"x"})
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as error:
        extract_zip(archive, dest)
    assert str(error.value) == f"{archive}: member {evil!r} has an absolute name or '..'; refused, nothing unpacked"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["evil.zip"]


def test_a_zip_bomb_member_is_refused_naming_the_zip_and_the_member(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("MAMe_dataset.csv", b"Image file,Medium\n" * 100)  # small and repetitive: fine
        bundle.writestr("data_256/bomb.jpg", bytes(8 << 20))  # 8 MiB of zeros: ~1000 times its compressed size
    with pytest.raises(DownloadError, match=r"bomb.zip: member 'data_256/bomb.jpg' expands [\d,]+ times "
                                            r"\(8,388,608 bytes\), over the cap of 100 \(a zip bomb\?\)"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    extract_zip(archive, tmp_path / "dest", max_ratio=5000)  # the cap is the only thing that stopped it
    assert (tmp_path / "dest" / "data_256" / "bomb.jpg").stat().st_size == 8 << 20


def test_the_total_unpacked_size_is_capped_before_anything_is_written(tmp_path):
    archive = tmp_path / "big.zip"
    make_zip(archive, {f"data_256/{i}.jpg": bytes(range(256)) * 4 for i in range(5)})  # 1,024 bytes each
    with pytest.raises(DownloadError, match=r"big.zip: member 'data_256/3.jpg' brings the unpacked size to 4,096 "
                                            r"bytes, over the cap of 4,000 bytes; refused, nothing unpacked"):
        extract_zip(archive, tmp_path / "dest", max_bytes=4000)
    assert not (tmp_path / "dest").exists()
    extract_zip(archive, tmp_path / "dest", max_bytes=5120)
    assert len(list((tmp_path / "dest" / "data_256").iterdir())) == 5


def test_an_archive_without_a_published_checksum_has_its_sha256_recorded_and_shown_by_the_data_check(served, tmp_path):
    server, md5s = served
    dest = tmp_path / "mame"
    download(dest, base_url=server.url, checksums={"MAMe_metadata.zip": md5s["MAMe_metadata.zip"]})
    served_zip = (server.root / "MAMe_data_256.zip").read_bytes()
    sha256 = hashlib.sha256(served_zip).hexdigest()
    recorded = read_provenance(dest)
    assert recorded["MAMe_data_256.zip"]["sha256"] == sha256 == json.loads((dest / PROVENANCE).read_text())[
        "archives"]["MAMe_data_256.zip"]["sha256"]
    assert recorded["MAMe_data_256.zip"]["checked"] == "no published checksum: sha256 recorded"
    assert recorded["MAMe_data_256.zip"]["size"] == len(served_zip)
    assert recorded["MAMe_metadata.zip"]["checked"] == f"md5 matches the checksum given ({md5s['MAMe_metadata.zip']})"
    write_dataset_csv(dest)
    text = format_report(check_dataset(dest, verify_images=False))
    assert f"Downloaded archives ({dest / PROVENANCE})" in text
    assert f"  MAMe_data_256.zip: sha256 {sha256}, md5 {md5s['MAMe_data_256.zip']}, {len(served_zip):,} bytes; " \
           "no published checksum: sha256 recorded (" in text


def test_an_archive_found_again_is_kept_only_if_its_recorded_sha256_matches(served, tmp_path):
    server, md5s = served
    dest = tmp_path / "mame"
    download(dest, parts=["data_256"], base_url=server.url, extract=False)
    assert len(server.requests) == 1
    download(dest, parts=["data_256"], base_url=server.url, extract=False)
    assert len(server.requests) == 1  # the same bytes: kept
    make_zip(dest / "MAMe_data_256.zip", {"data_256/1.jpg": b"tampered"})
    download(dest, parts=["data_256"], base_url=server.url, extract=False)
    assert len(server.requests) == 2  # other bytes than the recorded ones: fetched again
    assert (dest / "MAMe_data_256.zip").read_bytes() == (server.root / "MAMe_data_256.zip").read_bytes()


@pytest.mark.parametrize("text", ["{", "[]", '{"archives": {"a.zip": {"sha256": 1}}}', '{"archives": 3}'])
def test_an_unreadable_provenance_is_a_one_line_problem_of_the_data_check(tmp_path, text):
    write_dataset_csv(tmp_path)
    (tmp_path / PROVENANCE).write_text(text)
    report = check_dataset(tmp_path, verify_images=False)
    (problem,) = report.problems
    assert problem.startswith(f"{tmp_path / PROVENANCE}: unreadable download provenance (") and "\n" not in problem
    assert "Traceback" not in format_report(report)


def write_dataset_csv(root: Path) -> None:
    (root / "MAMe_dataset.csv").write_text("Image file,Medium,Museum,Museum-based instance ID,Subset,Width,Height,"
                                           "Product size,Aspect ratio\n1.jpg,Bronze,M,1,train,8.0,8.0,64.0,1.0\n")


def test_official_table(tmp_path):
    assert ARCHIVES["metadata"] == ("MAMe_metadata.zip", "0bca980978e3883f753f01ccad955981")
    assert ARCHIVES["data"] == ("MAMe_data.zip", "39b11ef14dba807faf284f74ec2576d3")
    assert ARCHIVES["data_256"] == ("MAMe_data_256.zip", None)
    with pytest.raises(ValueError, match="unknown part 'images'"):
        download(tmp_path / "mame", parts=["metadata", "images"])
    assert not (tmp_path / "mame").exists()
