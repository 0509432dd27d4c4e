"""The live deck's server answers only requests naming it, starts work only for its own pages, prints one PDF at a
time, and says so when it serves beyond loopback: the real Starlette app served by uvicorn on a free loopback port
(in a thread), raw HTTP requests (http.client: the Host and Origin headers exactly as written), the real PDF job
process (``mame.deck.live.rerender``), and a real server process for what it prints."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn

from mame import config
from mame.deck.live.guard import allowed_hosts
from mame.deck.live.server import LiveDeck, bind, create_app
from mame.deck.render import freshness
from mame.deck.render.build import build_dirs
from tests.helpers import REPO, wait_for


@pytest.fixture
def live(tmp_path, monkeypatch):
    """A LiveDeck over an empty build folder of its own (no render loop: the tests drive the server)."""
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    monkeypatch.setenv("MAME_RUNS_DIR", str(tmp_path / "runs"))
    deck = LiveDeck("smoke", None, None, out=open(os.devnull, "w"))
    yield deck
    deck.close()
    deck.out.close()


class Served:
    """``create_app(live, hosts)`` served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, live: LiveDeck, hosts=None):
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.own = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(live, lambda: self.server.should_exit, hosts),
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "the server to start")

    def request(self, path: str, method: str = "GET", **headers: str) -> tuple[int, bytes]:
        """``method path`` with these headers (``host`` replaces the one http.client would send)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, headers={"host": f"127.0.0.1:{self.port}", **headers})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def serve(live):
    started: list[Served] = []

    def start(hosts=None) -> Served:
        started.append(Served(live, hosts))
        return started[-1]

    yield start
    for served in started:
        served.stop()


# --- Host allow-list ---

@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}", "127.0.0.1"])
def test_loopback_host_names_are_answered(serve, host):
    served = serve()
    status, body = served.request("/status.json", host=host.format(port=served.port))
    assert status == 200 and b'"pdfs":0' in body


BAD_HOSTS = ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}", "localhost.evil:{port}",
             "10.0.0.5:{port}", "[::2]:{port}", "", "127.0.0.1:{port}:1"]


@pytest.mark.parametrize("path", ["/status.json", "/", "/events", "/deck.pdf", "/inside.txt"])
def test_any_other_host_gets_400_on_every_path(live, serve, path):
    served = serve()
    (live.output / "inside.txt").write_text("served")
    assert served.request("/inside.txt") == (200, b"served")
    for host in BAD_HOSTS:
        status, body = served.request(path, host=host.format(port=served.port))
        assert status == 400 and b"served" not in body, host
    assert live.pdfs == 0 and live.jobs_started == 0


def test_a_host_given_with_host_is_answered_too(serve):
    hosts = allowed_hosts("192.168.1.20")
    assert hosts == ["127.0.0.1", "localhost", "[::1]", "192.168.1.20"]
    served = serve(hosts)
    assert served.request("/status.json", host=f"192.168.1.20:{served.port}")[0] == 200
    assert served.request("/status.json", host=f"evil.example:{served.port}")[0] == 400
    assert "[fe80::1]" in allowed_hosts("fe80::1") and "evil.example" not in allowed_hosts("0.0.0.0")


# --- Origin check on what starts work ---

@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9", "https://127.0.0.1:{port}", "null",
                                    "http://localhost:{port}"])
def test_a_foreign_origin_may_not_print_the_pdf_or_post(live, serve, origin):
    served = serve()
    origin = origin.format(port=served.port)
    assert served.request("/deck.pdf", origin=origin)[0] == 403
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/deck.pdf", "/", "/status.json"):
            assert served.request(path, method, origin=origin)[0] == 403, (method, path)
    assert served.request("/status.json", origin=origin)[0] == 200  # reading starts nothing
    assert live.pdfs == 0 and live.jobs_started == 0


def test_its_own_origin_or_none_reaches_the_pdf_job(live, serve):
    served = serve()
    status, body = served.request("/deck.pdf", origin=served.own)
    assert status == 500 and b"no deck rendered yet" in body  # the real job process ran, and found no deck
    assert served.request("/deck.pdf")[0] == 500  # no Origin header: a link followed, curl
    assert served.request("/deck.pdf", "POST", origin=served.own)[0] == 405  # passes the check; the route takes GET
    assert live.pdfs == 2 and live.jobs_started == 2


# --- one PDF print at a time ---

def _many(served: Served, n: int) -> list[tuple[int, bytes]]:
    """``n`` GET /deck.pdf at once (each thread waits at a barrier until all are ready)."""
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        return served.request("/deck.pdf")

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_pdf_requests_share_one_print_process(live, serve):
    served = serve()
    responses = _many(served, 10)  # the real job process: no deck yet, so it fails, for all ten alike
    assert [status for status, _ in responses] == [500] * 10 and len({body for _, body in responses}) == 1
    assert b"no deck rendered yet" in responses[0][1]
    assert live.pdfs == 1 and live.jobs_started == 1
    _many(served, 3)  # a later request prints again (the deck may have changed since)
    assert live.pdfs == 2 and live.jobs_started == 2


def test_concurrent_pdf_requests_all_get_the_one_pdf(live, serve):
    html, pdf = live.output / "deck.html", live.output / "deck.pdf"
    live.output.mkdir(parents=True, exist_ok=True)
    html.write_text("<html><body>deck</body></html>")
    pdf.write_bytes(b"%PDF-1.4 printed from that deck")
    # A render's record saying the PDF was printed from this very HTML: the real job finds it so and prints nothing.
    freshness.record(build_dirs()["state"], "inputs", {"html": html}, "now", pdf_of=freshness.html_digest(html))
    responses = _many(serve(), 10)
    assert responses == [(200, pdf.read_bytes())] * 10
    assert live.pdfs == 1 and live.jobs_started == 1


# --- what the server says when it serves beyond loopback, over a real socket ---

SERVING = re.compile(r"at http://[^/\s]+:(\d+)/")


def _serve(tmp_path, *host: str) -> tuple[list[str], int]:
    """Start ``mame report --watch --no-run`` (with ``host`` args), send one request naming another host, stop it;
    the lines it printed up to its address, and that request's status."""
    env = {**os.environ, "MAME_REPORT_BUILD": str(tmp_path / "report"), "MAME_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "mame", "report", "--watch", "--no-run", "--profile", "smoke", "--port", "0",
                             *host], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lines and SERVING.search(lines[-1])):
            lines.append(proc.stdout.readline().rstrip())
        port = int(SERVING.search(lines[-1]).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/status.json", headers={"Host": f"evil.example:{port}"})
        status = conn.getresponse().status
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    return lines, status


def test_serving_beyond_loopback_prints_a_warning_and_still_refuses_other_hosts(tmp_path):
    lines, status = _serve(tmp_path, "--host", "0.0.0.0")
    warning = [line for line in lines if "warning" in line]
    assert len(warning) == 1 and "0.0.0.0" in warning[0] and "anyone who can reach this machine" in warning[0], lines
    assert status == 400


def test_on_loopback_it_gives_no_warning(tmp_path):
    lines, status = _serve(tmp_path)
    assert not [line for line in lines if "warning" in line] and "127.0.0.1" in lines[-1] and status == 400


def test_make_watch_ignores_a_host_variable_from_the_shell():
    def dry_run(**env: str) -> str:
        proc = subprocess.run(["make", "-n", "--no-print-directory", "watch", "NO_RUN=1"], cwd=config.ROOT, text=True,
                              env={**os.environ, **env}, capture_output=True, timeout=60)
        return next(line for line in proc.stdout.splitlines() if "mame report --watch" in line)

    assert "--host" not in dry_run(HOST="evil.example")  # shells often export HOST
    assert "--host 0.0.0.0" in dry_run(WATCH_HOST="0.0.0.0")
