"""The live deck (`python -m mame report --watch`): a real server process on a free loopback port, real smoke runs
finishing into the folder it watches, real renders, and the page in headless Chromium reloading itself."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from mame import config
from mame.deck.check.browser import browser_page
from tests.helpers import ONE_EPOCH_SCRATCH, REPO, smoke_study_env, write_smoke_plan

pytestmark = pytest.mark.slow

TWO_RUNS = ONE_EPOCH_SCRATCH + """\
      r2-deeper: {epochs: 200, patience: null, batch_size: 32, filters: [32, 64, 128], convs_per_block: 2}
"""
SERVING = re.compile(r"at (http://([^/\s]+):(\d+)/)")


class LiveServer:
    """``python -m mame report --watch --no-run`` in a process of its own; its output is collected."""

    def __init__(self, env: dict, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "mame", "report", "--watch", "--profile", "smoke", "--port", "0",
                                      *(args or ["--no-run"])], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.url, self.host, self.port = None, None, None
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while self.url is None and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)
        assert self.url, f"the server printed no address: {self.output()}"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if (m := SERVING.search(line)) and self.url is None:
                self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` sent as is (no client-side normalisation of ``..`` or escapes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def status(self) -> dict:
        return json.loads(self.get("/status.json")[1])

    def wait_for(self, predicate, what: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.status()
            if predicate(state):
                return state
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last state {state}; server said:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"the server did not stop on SIGINT within 60 s:\n{self.output()}") from None


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    templates = root / "templates"
    shutil.copytree(config.TEMPLATES_DIR, templates)
    mp = smoke_study_env(root, MAME_REPORT_BUILD=str(root / "report"), MAME_TEMPLATES=str(templates))
    server = LiveServer(dict(os.environ))
    try:
        server.wait_for(lambda s: s["version"] >= 1 and s["status"] == "ok", "the first render")
        yield root, templates, server
    finally:
        server.stop()
        mp.undo()


def _run(*only: str, runs_dir: Path | None = None) -> None:
    env = {**os.environ, **({"MAME_RUNS_DIR": str(runs_dir)} if runs_dir else {})}
    proc = subprocess.run([sys.executable, "-m", "mame", "run", "--profile", "smoke", "--only", ",".join(only)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _headline(run_dir: Path) -> str:
    """The run's headline as the deck's "what changed" slide shows a run that is now done."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["headline"]["name"] == "val_accuracy"
    return f"done {metrics['headline']['value']:.3f}"


def test_a_run_finishing_into_the_watched_folder_reloads_the_open_page_with_its_number(study):
    root, _, server = study
    with browser_page() as page:
        page.goto(server.url, wait_until="load")
        page.wait_for_function("() => window.Reveal && Reveal.isReady && Reveal.isReady()")
        before = server.status()["version"]
        page.evaluate("window.__notReloaded = true")
        _run("=scratch/r1-plain")
        finished = time.monotonic()
        # (the best rung's own slide waits for the evaluate stage's choice: the "what changed" slide shows the run)
        number = _headline(root / "runs" / "scratch" / "r1-plain")
        page.wait_for_function("() => !window.__notReloaded && document.body && document.body.textContent"
                               f".replace(/\\s+/g, ' ').includes('scratch/r1-plain missing {number}')", timeout=60_000)
        took = time.monotonic() - finished
    assert server.status()["version"] > before
    assert took < 30, f"the page showed the run {took:.1f} s after it finished"
    print(f"the open page showed the finished run's {number} {took:.1f} s after the run ended")


def test_two_runs_finishing_together_give_one_render(study):
    root, _, server = study
    staging = root / "staging"
    _run("=scratch/r2-deeper", "=scratch/r3-batchnorm", runs_dir=staging)
    (root / "runs" / "scratch").mkdir(parents=True, exist_ok=True)
    server.wait_for(lambda s: s["status"] == "ok", "an idle server")
    time.sleep(1.5)
    renders = server.status()["renders"]
    for name in ("r2-deeper", "r3-batchnorm"):  # a run lands the way the runner lands it: one rename of its folder
        (staging / "scratch" / name).rename(root / "runs" / "scratch" / name)
        time.sleep(0.1)
    server.wait_for(lambda s: s["renders"] > renders and s["status"] == "ok", "the render of the two runs")
    time.sleep(3 + 1)  # longer than the debounce's longest wait: a second render would have started
    assert server.status()["renders"] == renders + 1, server.output()
    page = server.get("/")[1]
    for name in ("r2-deeper", "r3-batchnorm"):  # the provenance slide's row of each run names its cache key
        key = json.loads((root / "runs" / "scratch" / name / "metrics.json").read_text())["run"]["cache_key"]
        assert re.search(rf"<td[^>]*>{key}</td>".encode(), page), name


def test_a_broken_template_shows_its_error_and_line_and_the_next_good_render_recovers(study):
    _, templates, server = study
    template = templates / "sections" / "scratch.md.j2"
    good = template.read_text()
    lines = good.splitlines(keepends=True)
    broken_line = 3
    template.write_text("".join(lines[:broken_line - 1] + ["{{ no_such_value_here }}\n"] + lines[broken_line - 1:]))
    with browser_page() as page:
        page.goto(server.url, wait_until="load")
        try:
            server.wait_for(lambda s: s["status"] == "failed", "the failed render")
            page.wait_for_function("() => document.body.textContent.includes('failed to render')", timeout=30_000)
            where = page.inner_text(".where")
            assert "sections/scratch.md.j2" in where and f"line {broken_line}:" in where and "no_such_value_here" in where
            status, body = server.get("/")
            assert status == 500 and b"no_such_value_here" in body
        finally:
            template.write_text(good)
        server.wait_for(lambda s: s["status"] == "ok", "the recovering render")
        page.wait_for_function("() => window.Reveal && Reveal.isReady && Reveal.isReady()", timeout=30_000)
    assert server.get("/")[0] == 200 and server.proc.poll() is None


@pytest.mark.parametrize("path", ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                  "/..%2f..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                  "/....//....//etc/passwd", "/secret.txt", "/link/secret.txt"])
def test_paths_outside_the_decks_folder_are_refused(study, path):
    root, _, server = study
    output = root / "report" / "_output"
    (root / "secret.txt").write_text("not for the web")
    (output / "inside.txt").write_text("served")
    for name, target in (("secret.txt", root / "secret.txt"), ("link", root)):
        if not (output / name).is_symlink():
            (output / name).symlink_to(target)
    assert server.get("/inside.txt") == (200, b"served")
    status, body = server.get(path)
    assert status in (403, 404) and b"not for the web" not in body and b"root:" not in body


def test_it_listens_on_loopback_only_by_default(study):
    _, _, server = study
    listening = [c.laddr for c in psutil.Process(server.proc.pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert server.host == "127.0.0.1" and [tuple(a) for a in listening] == [("127.0.0.1", server.port)]


def test_ctrl_c_stops_the_server_with_the_pdf_it_was_printing_and_its_chromium(study):
    root, _, first = study
    env = {**os.environ, "MAME_REPORT_BUILD": str(root / "report-ctrl-c")}
    server = LiveServer(env)
    try:
        server.wait_for(lambda s: s["status"] == "ok" and s["version"] >= 1, "the first render")
        threading.Thread(target=lambda: server.get("/deck.pdf"), daemon=True).start()
        deadline, tree = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            tree = psutil.Process(server.proc.pid).children(recursive=True)
            if any("chrom" in p.name() for p in tree if p.is_running()):
                break
            time.sleep(0.1)
        assert any("chrom" in p.name() for p in tree), f"no Chromium printing the PDF: {server.output()}"
        os.killpg(server.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        assert server.proc.wait(timeout=30) == 0, server.output()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    time.sleep(0.5)
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running: {[p.cmdline()[:2] for p in left]}"
    assert "stopped" in server.output()
    assert first.proc.poll() is None  # the other server goes on


def _tree(pid: int) -> list:
    return [p for p in psutil.Process(pid).children(recursive=True) if p.is_running()]


def test_with_runs_beside_it_the_deck_fills_in_as_they_finish_and_ctrl_c_stops_them(tmp_path):
    plan = write_smoke_plan(tmp_path / "plan.yaml", TWO_RUNS)
    runs = tmp_path / "runs"
    mp = smoke_study_env(tmp_path, MAME_REPORT_BUILD=str(tmp_path / "report"))
    try:
        server = LiveServer(dict(os.environ), "--plan", str(plan), "--jobs", "1")
    finally:
        mp.undo()
    try:
        deadline = time.monotonic() + 300
        while not (runs / "scratch" / "r1-plain" / "metrics.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        key = json.loads((runs / "scratch" / "r1-plain" / "metrics.json").read_text())["run"]["cache_key"]
        deadline = time.monotonic() + 60
        while not re.search(rf"<td[^>]*>{key}</td>".encode(), server.get("/")[1]) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert re.search(rf"<td[^>]*>{key}</td>".encode(), server.get("/")[1]), server.output()
        deadline = time.monotonic() + 120  # the second run under way: its process started, its .partial folder there
        while not list((runs / "scratch").glob(".r2-deeper.partial-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (runs / "scratch" / "r2-deeper").exists(), f"the second run ended before it could be stopped:\n{server.output()}"
        tree = _tree(server.proc.pid)
        # the runner's forkserver and the run's process forked from it (the same command line)
        assert sum("forkserver" in " ".join(p.cmdline()) for p in tree) >= 2, [p.cmdline()[:3] for p in tree]
        os.killpg(server.proc.pid, signal.SIGINT)
        assert server.proc.wait(timeout=60) == 0, server.output()
    finally:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
    time.sleep(0.5)
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running: {[p.cmdline()[:3] for p in left]}"
    everything = "\n".join(server.lines)  # not only the last lines: a run's epochs may follow the start by many
    assert "starting the stale runs" in everything and "stopped" in server.output(), everything
