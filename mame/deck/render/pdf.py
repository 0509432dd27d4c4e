"""Print a revealjs HTML deck to PDF, one page per slide, with decktape and headless Chromium.

Chromium's own ``--print-to-pdf`` prints a reveal deck as one blank page; decktape steps through
the slides and prints each one at the slide size. The deck is opened with ``?static-figures``: interactive
figures (WebGL, unreliable in a headless print) show their static view instead (see ``figures3d``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mame.deck.tools import (
    CHROMIUM_FLAGS,
    SETUP_HINT,
    SLIDE_HEIGHT,
    SLIDE_WIDTH,
    STATIC_QUERY,
    DeckInputError,
    RenderError,
    find_chromium,
    kill_processes_with,
    node_modules_dir,
    run_tool,
)


def decktape_script() -> Path:
    """decktape's entry point in report/node_modules; RenderError when it is missing."""
    path = node_modules_dir() / "decktape" / "decktape.js"
    if not path.is_file():
        raise RenderError(f"decktape not found in {node_modules_dir()}; {SETUP_HINT}")
    return path


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise RenderError("node not found on PATH; install Node.js (`apt-get install -y nodejs npm`)")
    return node


def _decktape_cmd(html: Path, out: Path, chromium: str, profile: Path, pause_ms: int) -> list[str]:
    flags = [f for f in CHROMIUM_FLAGS if f != "--headless"] + [f"--user-data-dir={profile}"]
    return [_node(), str(decktape_script()), "reveal", "--chrome-path", chromium,
            *(f"--chrome-arg={flag}" for flag in flags),
            "--size", f"{SLIDE_WIDTH}x{SLIDE_HEIGHT}", "--pause", str(pause_ms),
            "--load-pause", "200", f"{html.as_uri()}?{STATIC_QUERY}", str(out)]


def render_pdf(html: Path, out_pdf: Path, *, chromium: str | None = None,
               pause_ms: int = 300, timeout_s: float = 300) -> Path:
    """Print the deck ``html`` to ``out_pdf`` (one 1280x720 page per slide; atomic write)."""
    html = Path(html).resolve()
    if not html.is_file():
        raise DeckInputError(f"{html}: HTML deck not found")
    browser = find_chromium(chromium)
    out_pdf = Path(out_pdf).resolve()
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pdf-", dir=out_pdf.parent) as tmp:
        produced, profile = Path(tmp) / "deck.pdf", Path(tmp) / "chromium-profile"
        cmd = _decktape_cmd(html, produced, browser, profile, pause_ms)
        try:
            run_tool(cmd, "decktape", timeout_s=timeout_s, env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"})
        finally:  # a browser left behind by a timed-out or crashed decktape would hold CPU and memory
            kill_processes_with(f"--user-data-dir={profile}")
        if not produced.is_file() or pdf_page_count(produced) == 0:
            raise RenderError(f"decktape printed no pages for {html}")
        os.replace(produced, out_pdf)
    return out_pdf


def pdf_page_count(pdf: Path) -> int:
    """Number of pages in ``pdf`` (pypdf, else poppler's ``pdfinfo``)."""
    pdf = Path(pdf)
    if not pdf.is_file():
        raise DeckInputError(f"{pdf}: PDF not found")
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        return _pdfinfo_pages(pdf)
    try:
        return len(PdfReader(pdf).pages)
    except PdfReadError as exc:
        raise DeckInputError(f"{pdf}: not a readable PDF ({exc})") from exc


def _pdfinfo_pages(pdf: Path) -> int:
    if not shutil.which("pdfinfo"):
        raise RenderError("cannot count PDF pages: install pypdf (pip) or poppler-utils (apt)")
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, timeout=60)
    pages = [ln.split()[-1] for ln in out.stdout.splitlines() if ln.startswith("Pages:")]
    if out.returncode != 0 or not pages:
        raise DeckInputError(f"{pdf}: not a readable PDF ({out.stderr.strip()[:120]})")
    return int(pages[0])
