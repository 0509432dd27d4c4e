"""Render a Quarto-compatible markdown deck (.qmd) to one self-contained revealjs HTML file.

Uses ``quarto render`` when Quarto is on PATH, else pandoc from ``pypandoc_binary`` with the
reveal.js copy in ``report/node_modules``. PDF printing lives in :mod:`mame.deck.render.pdf`, the
headless-browser deck check in :mod:`mame.deck.check.browser`; the helpers all three share in
:mod:`mame.deck.tools`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from mame import config
from mame.deck.tools import SETUP_HINT, SLIDE_HEIGHT, SLIDE_WIDTH, DeckInputError, RenderError, node_modules_dir, run_tool  # noqa: F401

# Resource loads from the network: scripts, stylesheets, media, CSS imports and url()s.
_REMOTE_PATTERNS = (
    re.compile(r"<(?:script|img|iframe|video|audio|source|embed)\b[^>]*?\bsrc\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"<link\b[^>]*?\bhref\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?(https?:)?//", re.I),
    re.compile(r"url\(\s*[\"']?https?://", re.I),
)


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
