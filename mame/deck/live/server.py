"""``python -m mame report --watch`` / ``make watch``: the deck served live, rendered again as runs finish.

- Serves the deck on ``http://HOST:PORT/`` (127.0.0.1 unless ``--host`` says otherwise). The page carries a
  badge and a script that listens to ``/events`` (server-sent events) and reloads when a newer render exists.
- Renders again when a run folder appears or changes (a run finished or failed: run folders are swapped into
  place whole, ``mame.engine.run.execute``, so a render never sees half a run), or the plan, the templates or the
  report's own files (styles, references) change. File events come from watchfiles; names starting with ``.``
  (a run's ``.partial-`` folder, temp files) and the figures a render draws into run folders are not events.
  Debounced: changes less than ``QUIET_MS`` apart make one batch (at most ``MAX_WAIT_MS``), and changes during
  a render make one more render after it.
- Each render runs in a child process (``mame.deck.live.rerender``): a failed render shows its error on the page
  (the template file and line where Jinja raised it) and the server goes on; the next good render replaces it.
- ``/deck.pdf`` prints the PDF on demand (again only when the HTML changed since it was printed): one print at a
  time, and requests that come while it prints wait for that print's result (no process of their own).
- Only requests naming this server answer: the Host header must be a loopback name (``127.0.0.1``, ``localhost``,
  ``[::1]``) or the ``--host`` given (starlette's TrustedHostMiddleware; else 400), so a page of another site whose
  name was made to point here (DNS rebinding) reads nothing. A request that starts work (``/deck.pdf``, any method
  but GET/HEAD) from a page of another origin (its ``Origin`` header) is refused (403).
- Bound beyond loopback (``--host 0.0.0.0``, a LAN address), it says so in a warning line: anyone who can reach
  the machine can then read the deck and the files served (no password).
- Other paths are files of the output folder (starlette's StaticFiles): ``..``, encoded or not, and symlinks that
  lead out of it are refused (404).
- Unless ``--no-run``, the plan's stale runs start beside it (``python -m mame run``, the same executor options).
- Ctrl-C (or SIGTERM) stops the server and every process it started, with their children (pandoc, decktape,
  Chromium, the runs' workers).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

from mame import config
from mame.deck.live import page as live_page
from mame.deck.live.guard import SameOrigin, allowed_hosts, beyond_loopback
from mame.deck.live.procs import Children
from mame.deck.render import templating
from mame.deck.render.build import build_dirs
from mame.deck.render.figures import FIGURES

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
QUIET_MS = 400
MAX_WAIT_MS = 3000
POLL_S = 0.2


class LiveDeck:
    """The server's state: the render ``version`` pages compare with, the last render's outcome, the jobs."""

    def __init__(self, profile: str, plan_file: Path | None, run_args: list[str] | None, out=sys.stdout):
        self.profile, self.plan_file, self.run_args, self.out = profile, plan_file, run_args, out
        self.output = build_dirs()["output"]
        self.version, self.status, self.error, self.rendered_at = 0, "starting", None, ""
        self.renders, self.jobs_started, self.pdfs = 0, 0, 0
        self.dirty, self.stop = asyncio.Event(), asyncio.Event()
        self.jobs_lock = asyncio.Lock()   # one render or PDF at a time: a PDF never prints a deck being replaced
        self.printing: asyncio.Task | None = None  # the PDF print under way, which every PDF request awaits
        self.children = Children()
        self.work = Path(tempfile.mkdtemp(prefix="mame-live-"))

    def say(self, text: str) -> None:
        print(f"live  {text}", file=self.out, flush=True)

    async def job(self, kind: str) -> dict:
        self.jobs_started += 1
        result = self.work / f"{kind}-{self.jobs_started}.json"  # its own name: a lost job reads no other's result
        cmd = [sys.executable, "-m", "mame.deck.live.rerender", kind, "--profile", self.profile, "--result", str(result)]
        if self.plan_file:
            cmd += ["--plan", str(self.plan_file)]
        code = await self.children.run(cmd)
        try:
            return json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"ok": False, "error": {"type": "RenderProcessLost", "where": None, "traceback": [],
                                           "message": f"the {kind} process ended (exit {code}) without a result"}}

    async def render_loop(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            async with self.jobs_lock:
                before, self.status = self.status, "rendering"
                self.renders += 1
                outcome = await self.job("deck")
            if self.stop.is_set():  # killed by the stop: nothing to report
                return
            if outcome["ok"]:
                self.status, self.error = "ok", None
                self.rendered_at = outcome.get("rendered_at", "")
                if not outcome.get("unchanged") or before in ("starting", "failed") or self.version == 0:
                    self.version += 1
                self.say(f"render {self.renders}: {'unchanged' if outcome.get('unchanged') else 'rendered'} "
                         f"in {outcome['seconds']:.1f} s (version {self.version})")
            else:
                self.status, self.error = "failed", outcome["error"]
                self.version += 1
                where = outcome["error"].get("where")
                self.say(f"render {self.renders} failed: {outcome['error']['message']}"
                         + (f" ({where['template']}, line {where['line']})" if where else "") + "; serving on")

    async def watch_loop(self, paths: list[Path], relevant, recursive: bool) -> None:
        from watchfiles import awatch

        async for changes in awatch(*paths, watch_filter=lambda _change, path: relevant(Path(path)),
                                    step=QUIET_MS, debounce=MAX_WAIT_MS, recursive=recursive, stop_event=self.stop):
            names = sorted({_short(Path(p)) for _, p in changes})
            self.say(f"changed: {', '.join(names[:4])}{f' and {len(names) - 4} more' if len(names) > 4 else ''}")
            self.dirty.set()

    async def run_plan(self) -> None:
        cmd = [sys.executable, "-m", "mame", "run", "--profile", self.profile, *self.run_args]
        if self.plan_file:
            cmd += ["--plan", str(self.plan_file)]
        self.say("starting the stale runs: " + " ".join(cmd[2:]))
        code = await self.children.run(cmd, interrupt_first=True)
        self.say(f"the runs ended (exit {code}); serving on")

    async def pdf(self) -> str | None:
        """Print the PDF if the HTML changed since; None, or the error message. Requests that come while a print
        runs wait for its result (shielded: a client that goes away does not stop it for the others)."""
        if self.printing is None or self.printing.done():
            self.printing = asyncio.create_task(self._print_pdf())
        return await asyncio.shield(self.printing)

    async def _print_pdf(self) -> str | None:
        async with self.jobs_lock:
            self.pdfs += 1
            outcome = await self.job("pdf")
        return None if outcome["ok"] else outcome["error"]["message"]

    def close(self) -> None:
        self.children.kill_all()
        for path in self.work.glob("*"):
            path.unlink(missing_ok=True)
        self.work.rmdir()


def _short(path: Path) -> str:
    for root in (config.runs_dir(), config.ROOT):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return str(path)


def _visible(path: Path, root: Path) -> bool:
    return path.is_relative_to(root) and not any(part.startswith(".") for part in path.relative_to(root).parts)


def watched(plan_file: Path | None) -> tuple[list[Path], object, list[Path], object]:
    """The folders watched recursively (runs, templates) and flat (the report's own files, the plan's folder),
    each with its filter of relevant paths."""
    runs, templates = config.runs_dir(), templating.templates_folder()
    report, plan = config.REPORT_DIR, Path(plan_file or config.plan_path()).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    own = lambda p: p.is_relative_to(runs) and FIGURES in p.relative_to(runs).parts[2:3]  # the deck's figures
    deep = lambda p: (_visible(p, runs) or _visible(p, templates)) and not own(p) and not p.name.endswith(("~", ".swp"))
    flat = lambda p: p == plan or (p.parent == report and not p.name.startswith((".", "_")) and p.name != "node_modules")
    return [runs, templates], deep, sorted({report, plan.parent}), flat


def create_app(live: LiveDeck, should_exit, hosts: list[str] | None = None):
    """The server's app; ``hosts``: the Host header names it answers (``allowed_hosts``; default loopback only)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def page(request):
        deck = live.output / "deck.html"
        if live.status == "failed" and live.error:
            return HTMLResponse(live_page.failed(live.version, live.error), status_code=500)
        if live.version == 0 or not deck.is_file():
            return HTMLResponse(live_page.waiting(live.version, "The first render is running."), status_code=503)
        text = deck.read_text(encoding="utf-8")
        return HTMLResponse(live_page.live_deck(text, live.version, live.rendered_at))

    async def events(request):
        async def stream():
            sent = None
            while not should_exit():
                now = (live.version, live.status)
                if now != sent:
                    sent = now
                    yield live_page.event(*now)
                await asyncio.sleep(POLL_S)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def status(request):
        return JSONResponse({"version": live.version, "status": live.status, "renders": live.renders,
                             "pdfs": live.pdfs, "rendered_at": live.rendered_at, "error": live.error})

    async def pdf(request):
        error = await live.pdf()
        if error:
            return PlainTextResponse(f"The PDF could not be printed: {error}", status_code=500)
        return FileResponse(live.output / "deck.pdf", media_type="application/pdf")

    live.output.mkdir(parents=True, exist_ok=True)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts or allowed_hosts(None), www_redirect=False),
                  Middleware(SameOrigin)]
    return Starlette(routes=[Route("/", page), Route("/deck.html", page), Route("/events", events),
                             Route("/status.json", status), Route("/deck.pdf", pdf),
                             Mount("/", app=StaticFiles(directory=live.output, follow_symlink=False))],
                     middleware=middleware)


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on ``host:port``; with no port asked, ``DEFAULT_PORT`` or any free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in ([port] if port is not None else [DEFAULT_PORT, 0]):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if port is not None:
                raise OSError(f"cannot serve on {host}:{port}: {exc.strerror}; pick another --port (0: any free one)")
            continue
        sock.listen(64)
        return sock
    raise OSError(f"no free port on {host}")


def serve(profile: str, *, plan_file: Path | None = None, host: str | None = None, port: int | None = None,
          run_args: list[str] | None = None, out=sys.stdout) -> int:
    """Serve the live deck until Ctrl-C; ``run_args`` (``mame run`` options) also start the stale runs. ``host``:
    the address asked for (None: 127.0.0.1), whose name the server then also answers to."""
    return asyncio.run(_serve(profile, plan_file, host, port, run_args, out))


async def _serve(profile, plan_file, host, port, run_args, out) -> int:
    import uvicorn

    class Server(uvicorn.Server):
        def capture_signals(self):  # ours below: stop the jobs too, and return instead of re-raising the signal
            return nullcontext()

    hosts = allowed_hosts(host)
    host = host or DEFAULT_HOST
    sock = bind(host, port)
    live = LiveDeck(profile, plan_file, run_args, out)
    server = Server(uvicorn.Config(create_app(live, lambda: server.should_exit, hosts), log_level="warning",
                                   timeout_graceful_shutdown=3, lifespan="off"))
    if beyond_loopback(sock):
        live.say(f"warning: serving on {host}, beyond this machine's loopback: anyone who can reach this machine on "
                 f"port {sock.getsockname()[1]} can read the deck, its PDF and the files served, with no password "
                 f"(answering the host names {', '.join(hosts)}); leave out --host to serve this machine only")

    stopping = []

    def stop() -> None:  # the jobs go first (in a thread): a request waiting on a PDF then ends by itself
        server.force_exit = server.should_exit
        server.should_exit = True
        live.stop.set()
        if not stopping:
            stopping.append(loop.run_in_executor(None, live.children.kill_all))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    deep, deep_filter, flat, flat_filter = watched(plan_file)
    tasks = [asyncio.create_task(live.render_loop()), asyncio.create_task(live.watch_loop(deep, deep_filter, True)),
             asyncio.create_task(live.watch_loop(flat, flat_filter, False))]
    if run_args is not None:
        tasks.append(asyncio.create_task(live.run_plan()))
    live.dirty.set()
    shown = f"[{host}]" if ":" in host else host
    live.say(f"serving the deck of profile {profile} at http://{shown}:{sock.getsockname()[1]}/ "
             f"(renders again when runs, the plan, templates or report files change; Ctrl-C stops)")
    try:
        await server.serve(sockets=[sock])
    finally:
        live.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *stopping, return_exceptions=True)
        live.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    live.say("stopped")
    return 0
