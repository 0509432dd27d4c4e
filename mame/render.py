"""Render a Quarto-compatible markdown deck (.qmd) to one self-contained revealjs HTML file.

Uses ``quarto render`` when Quarto is on PATH, else pandoc from ``pypandoc_binary`` with the
reveal.js copy in ``report/node_modules``. PDF printing lives in :mod:`mame.render_pdf`, the
headless-browser deck check in :mod:`mame.deckcheck`; both are re-exported here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mame import config

SLIDE_WIDTH = 1280
SLIDE_HEIGHT = 720
SETUP_HINT = "run `make setup`"
TOOL_TIMEOUT_S = 180

# Flags for headless Chromium on a root, offline machine (a fresh --user-data-dir is added per run).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)

# Resource loads from the network: scripts, stylesheets, media, CSS imports and url()s.
_REMOTE_PATTERNS = (
    re.compile(r"<(?:script|img|iframe|video|audio|source|embed)\b[^>]*?\bsrc\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"<link\b[^>]*?\bhref\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?(https?:)?//", re.I),
    re.compile(r"url\(\s*[\"']?https?://", re.I),
)


class RenderError(RuntimeError):
    """A rendering tool is missing or failed; the message says which and how to fix it."""


class DeckInputError(RenderError, ValueError):
    """The deck source or rendered file given to the toolchain is unusable."""


def node_modules_dir() -> Path:
    return config.REPORT_DIR / "node_modules"


def styles_css() -> Path:
    return config.REPORT_DIR / "styles.css"


def revealjs_dir() -> Path:
    """The reveal.js package installed by npm; RenderError when it is missing."""
    path = node_modules_dir() / "reveal.js"
    if not (path / "dist" / "reveal.js").is_file():
        raise RenderError(f"reveal.js not found in {path.parent}; {SETUP_HINT}")
    return path


def remote_references(html: str) -> list[str]:
    """Snippets of ``html`` that would load a resource over the network."""
    found = []
    for pattern in _REMOTE_PATTERNS:
        found += [html[m.start():m.end() + 40] for m in pattern.finditer(html)]
    return found


def find_chromium(chromium: str | None = None) -> str:
    """Path of a Chromium executable: the argument, $CHROMIUM, /usr/bin/chromium or PATH."""
    candidates = [chromium, os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium",
                  "chromium-browser", "google-chrome"]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    raise RenderError("chromium not found (set CHROMIUM or install it: `apt-get install -y chromium`)")


def run_tool(cmd: list[str], what: str, *, cwd: Path | None = None,
             timeout_s: float = TOOL_TIMEOUT_S, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` and return its stderr; RenderError with the first error line on failure.

    The tool runs in its own process group, killed whole on timeout (browsers included).
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RenderError(f"{what} timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (stderr + stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "rror" in ln), lines[-1] if lines else "no output")
        raise RenderError(f"{what} failed (exit {proc.returncode}): {detail}")
    return stderr


def _check_source(source_qmd: Path) -> Path:
    source = Path(source_qmd).resolve()
    if not source.is_file():
        raise DeckInputError(f"{source}: deck source not found")
    return source


def _pandoc_cmd(source: Path, out: Path) -> list[str]:
    import pypandoc

    try:
        pandoc = pypandoc.get_pandoc_path()
    except OSError as exc:
        raise RenderError("pandoc not found; install pypandoc_binary (`make setup`)") from exc
    variables = {"revealjs-url": revealjs_dir().as_posix(), "theme": "white",
                 "width": SLIDE_WIDTH, "height": SLIDE_HEIGHT, "margin": 0.04, "center": "false",
                 "slideNumber": "'c/t'", "hash": "true", "transition": "none",
                 "navigationMode": "linear"}
    cmd = [pandoc, source.name, "-f", "markdown", "-t", "revealjs", "-s", "--embed-resources",
           "--mathml", "--slide-level=2", "--css", styles_css().as_posix(), "-o", str(out)]
    return cmd + [arg for key, value in variables.items() for arg in ("-V", f"{key}={value}")]


def _quarto_cmd(quarto: str, source: Path, out_dir: Path, name: str) -> list[str]:
    meta = {"embed-resources": "true", "html-math-method": "mathml", "width": SLIDE_WIDTH,
            "height": SLIDE_HEIGHT, "slide-number": "c/t", "hash": "true",
            "css": styles_css().as_posix()}
    cmd = [quarto, "render", source.name, "--to", "revealjs", "--output", name,
           "--output-dir", str(out_dir)]
    return cmd + [arg for key, value in meta.items() for arg in ("-M", f"{key}:{value}")]


def _render_to(source: Path, tmp_dir: Path, engine: str) -> Path:
    quarto = shutil.which("quarto")
    if engine == "quarto" and not quarto:
        raise RenderError("quarto not found on PATH; install Quarto or use engine='pandoc'")
    if engine != "pandoc" and quarto:
        run_tool(_quarto_cmd(quarto, source, tmp_dir, "deck.html"), "quarto render", cwd=source.parent)
        found = sorted(tmp_dir.rglob("*.html"))
        if not found:
            raise RenderError(f"quarto render wrote no HTML for {source}")
        return found[0]
    out = tmp_dir / "deck.html"
    log = run_tool(_pandoc_cmd(source, out), "pandoc", cwd=source.parent)
    missing = re.findall(r"Could not fetch resource\s+'?([^'\n]+?)'?\s*$", log, re.M)
    if missing:
        raise DeckInputError(f"{source}: cannot embed resource {missing[0]!r} (missing or unreadable)")
    return out


def render_html(source_qmd: Path, out_html: Path, *, engine: str = "auto") -> Path:
    """Render ``source_qmd`` to one self-contained HTML deck at ``out_html`` (atomic write).

    ``engine`` is ``auto`` (Quarto if on PATH, else pandoc), ``quarto`` or ``pandoc``.
    """
    if engine not in ("auto", "quarto", "pandoc"):
        raise ValueError(f"engine must be auto, quarto or pandoc, not {engine!r}")
    source = _check_source(source_qmd)
    out_html = Path(out_html).resolve()
    out_html.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=out_html.parent) as tmp:
        produced = _render_to(source, Path(tmp), engine)
        remote = remote_references(produced.read_text(encoding="utf-8", errors="replace"))
        if remote:
            raise RenderError(f"{source}: rendered deck would load from the network: {remote[0]!r}")
        os.replace(produced, out_html)
    return out_html


def __getattr__(name: str) -> Any:
    """Lazy re-exports so ``from mame.render import render_pdf, check_deck`` works."""
    if name in ("render_pdf", "pdf_page_count"):
        from mame import render_pdf as module
    elif name in ("check_deck", "DeckCheck"):
        from mame import deckcheck as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
