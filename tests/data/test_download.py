"""The downloader against a real HTTP server on 127.0.0.1 (with Range) serving small zips."""

from __future__ import annotations

import hashlib
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mame.data.download import ARCHIVES, DownloadError, download, extract_zip


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


def test_md5_mismatch_leaves_no_archive(served, tmp_path):
    server, _ = served
    dest = tmp_path / "mame"
    expected = "MAMe_metadata.zip: md5 .* does not match the published 0bca98"
    with pytest.raises(DownloadError, match=expected):
        download(dest, parts=["metadata"], base_url=server.url)  # the official md5
    assert not (dest / "MAMe_metadata.zip").exists()
    assert not (dest / "MAMe_metadata.zip.part").exists()
    assert not (dest / "MAMe_dataset.csv").exists()


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


def test_archive_members_cannot_escape(tmp_path):
    archive = tmp_path / "evil.zip"
    make_zip(archive, {"../outside.txt": b"x"})
    with pytest.raises(DownloadError, match="escapes"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def test_official_table(tmp_path):
    assert ARCHIVES["metadata"] == ("MAMe_metadata.zip", "0bca980978e3883f753f01ccad955981")
    assert ARCHIVES["data"] == ("MAMe_data.zip", "39b11ef14dba807faf284f74ec2576d3")
    assert ARCHIVES["data_256"] == ("MAMe_data_256.zip", None)
    with pytest.raises(ValueError, match="unknown part 'images'"):
        download(tmp_path / "mame", parts=["metadata", "images"])
    assert not (tmp_path / "mame").exists()
