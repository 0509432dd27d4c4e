"""Open a revealjs deck in headless Chromium, step through every slide and report problems.

Problems: JavaScript errors (console errors and uncaught exceptions), slides whose content runs
past the configured slide size, content wider than the box that holds it (text cut off or spilling at a
column's edge: an element whose content is wider than itself, or that reaches past its column), and
requests to the network (blocked; a deck must work offline).
Driver: Playwright (PyPI wheel, ships its own node driver) attached over CDP to a Chromium that this
module starts itself, so the browser gets a fresh profile and is killed whole on a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mame.deck.tools import CHROMIUM_FLAGS, SLIDE_HEIGHT, SLIDE_WIDTH, DeckInputError, RenderError, find_chromium

STEP_TIMEOUT_MS = 20_000
_NETWORK = re.compile(r"^(https?|wss?|ftp)://", re.I)

# Extent of the current slide's visible content, in slide pixels (unscaled), plus its title.
_MEASURE_JS = r"""() => {
  const slide = Reveal.getCurrentSlide(), cfg = Reveal.getConfig();
  const box = document.querySelector('.reveal .slides').getBoundingClientRect();
  const k = cfg.height / box.height;
  let right = slide.scrollWidth, bottom = slide.scrollHeight;
  for (const el of slide.querySelectorAll('*')) {
    if (el.closest('aside.notes')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    right = Math.max(right, (r.right - box.left) * k);
    bottom = Math.max(bottom, (r.bottom - box.top) * k);
  }
  const clipped = [], flagged = [];
  const name = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
    ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const text = (el) => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60);
  for (const el of slide.querySelectorAll('*')) {
    if (el.closest('aside.notes') || ['svg', 'img', 'canvas', 'video', 'iframe'].includes(el.tagName.toLowerCase())) continue;
    if (el.closest('svg') || flagged.some((f) => f.contains(el))) continue;  // report the outermost element only
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const wider = (el.scrollWidth - el.clientWidth) * k;
    if (el.clientWidth > 0 && wider > 2) {
      clipped.push({element: name(el), text: text(el), by: Math.round(wider)});
      flagged.push(el);
      continue;
    }
    const column = el.parentElement && el.parentElement.closest('.column');
    if (column) {
      const c = column.getBoundingClientRect(), past = (r.right - c.right) * k;
      if (past > 2) {
        clipped.push({element: name(el), text: text(el), by: Math.round(past)});
        flagged.push(el);
      }
    }
  }
  const heading = slide.querySelector('h1, h2, h3');
  const idx = Reveal.getIndices(slide);
  return {h: idx.h, v: idx.v || 0, title: heading ? heading.textContent.trim().slice(0, 80) : '',
          width: Math.round(right), height: Math.round(bottom),
          slideWidth: cfg.width, slideHeight: cfg.height, clipped: clipped};
}"""


@dataclass
class SlideOverflow:
    index: int  # 0-based position in reading order
    title: str
    width: int  # content extent in slide pixels
    height: int


@dataclass
class SlideClipping:
    index: int  # 0-based position in reading order
    title: str
    element: str  # tag and classes of the element whose content does not fit
    text: str  # the start of its text
    by: int  # how far the content reaches past the element's (or its column's) edge, in slide pixels


@dataclass
class DeckCheck:
    total_slides: int
    js_errors: list[str] = field(default_factory=list)
    overflowing: list[SlideOverflow] = field(default_factory=list)
    clipped: list[SlideClipping] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.js_errors or self.overflowing or self.clipped or self.network_requests)

    def summary(self) -> str:
        """One line per problem, or 'ok'."""
        lines = [f"JS error: {e}" for e in self.js_errors]
        lines += [f"slide {o.index + 1} ({o.title!r}) overflows: {o.width}x{o.height}"
                  for o in self.overflowing]
        lines += [f"slide {c.index + 1} ({c.title!r}): {c.element} is {c.by}px wider than its box ({c.text!r})"
                  for c in self.clipped]
        lines += [f"network request blocked: {u}" for u in self.network_requests]
        return "\n".join(lines) or f"ok ({self.total_slides} slides)"


def _start_chromium(chromium: str, profile: Path) -> tuple[subprocess.Popen, int]:
    """Start headless Chromium with a DevTools port; return the process and the port."""
    log = open(profile.parent / "chromium.log", "wb")
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.is_file() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        time.sleep(0.1)
    _stop(proc)
    tail = (profile.parent / "chromium.log").read_text(errors="replace").strip().splitlines()[-1:]
    raise RenderError(f"chromium did not start ({chromium}): {' '.join(tail) or 'no output'}")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the browser, then SIGKILL its whole process group (renderers included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def _walk(page, check: DeckCheck, screenshot_dir: Path | None) -> None:
    """Visit every slide in reading order, measuring and optionally screenshotting it."""
    count = page.evaluate("Reveal.getSlides().length")
    check.total_slides = page.evaluate("Reveal.getTotalSlides()")
    for i in range(count):
        page.evaluate("(i) => { const s = Reveal.getSlides()[i], x = Reveal.getIndices(s);"
                      " Reveal.slide(x.h, x.v); }", i)
        m = page.evaluate(_MEASURE_JS)
        if m["width"] > m["slideWidth"] + 1 or m["height"] > m["slideHeight"] + 1:
            check.overflowing.append(SlideOverflow(i, m["title"], m["width"], m["height"]))
        check.clipped += [SlideClipping(i, m["title"], c["element"], c["text"], c["by"]) for c in m["clipped"]]
        if screenshot_dir is not None:
            path = screenshot_dir / f"slide-{i + 1:02d}.png"
            page.screenshot(path=str(path), timeout=STEP_TIMEOUT_MS)
            check.screenshots.append(path)


@contextmanager
def browser_page(*, chromium: str | None = None, timeout_s: float = 120, block_network: list | None = None,
                 on_timeout=None):
    """A Playwright page (slide-sized viewport) in a headless Chromium started here with a fresh profile; the
    browser is killed whole on leaving, or after ``timeout_s`` (then ``on_timeout()`` is called). With
    ``block_network`` (a list) every request to the network is aborted and its URL appended to it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RenderError("playwright not installed; run `pip install playwright` (no browser download needed)") from exc

    tmp = Path(tempfile.mkdtemp(prefix="deckcheck-"))
    proc, port = _start_chromium(find_chromium(chromium), tmp / "profile")
    watchdog = threading.Timer(timeout_s, lambda: (on_timeout and on_timeout(), _stop(proc)))
    watchdog.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", timeout=STEP_TIMEOUT_MS)
            try:
                context = browser.new_context(viewport={"width": SLIDE_WIDTH, "height": SLIDE_HEIGHT})
                if block_network is not None:
                    context.route(_NETWORK, lambda route: (block_network.append(route.request.url), route.abort()))
                page = context.new_page()
                page.set_default_timeout(STEP_TIMEOUT_MS)
                yield page
            finally:
                browser.close()
    finally:
        watchdog.cancel()
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def check_deck(html: Path, *, screenshot_dir: Path | None = None, chromium: str | None = None,
               timeout_s: float = 120) -> DeckCheck:
    """Step through every slide of ``html`` in headless Chromium and report what is wrong.

    Every browser step has a timeout and the browser is killed after ``timeout_s`` in all cases.
    """
    html = Path(html).resolve()
    if not html.is_file():
        raise DeckInputError(f"{html}: HTML deck not found")
    if screenshot_dir is not None:
        screenshot_dir = Path(screenshot_dir)
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    check, start, expired = DeckCheck(total_slides=0), time.monotonic(), threading.Event()
    try:
        with browser_page(chromium=chromium, timeout_s=timeout_s, block_network=check.network_requests,
                          on_timeout=expired.set) as page:
            page.on("pageerror", lambda exc: check.js_errors.append(f"uncaught: {exc}"))
            page.on("console", lambda msg: check.js_errors.append(f"console: {msg.text}")
                    if msg.type == "error" else None)
            page.goto(html.as_uri(), wait_until="load")
            page.wait_for_function("() => window.Reveal && Reveal.isReady && Reveal.isReady()")
            page.evaluate("Reveal.configure({transition: 'none', backgroundTransition: 'none'})")
            _walk(page, check, screenshot_dir)
    except RenderError:
        raise
    except Exception as exc:  # Playwright raises its own Error types; all mean the check failed
        why = f"timed out after {timeout_s:.0f} s" if expired.is_set() else str(exc).splitlines()[0]
        errors = f" (page errors: {check.js_errors[:2]})" if check.js_errors else ""
        raise RenderError(f"deck check of {html} failed: {why}{errors}") from exc
    check.seconds = round(time.monotonic() - start, 2)
    return check
