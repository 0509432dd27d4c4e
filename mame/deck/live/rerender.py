"""One job of the live deck (``mame.deck.live.server``), in a process of its own so that the server outlives any failure
of it and Ctrl-C can stop it whole.

``python -m mame.deck.live.rerender deck|pdf --profile P [--plan F] --result R``

- ``deck``: brings the deck's HTML up to date from the runs as they are (``build(run=False, pdf=False)``: nothing
  is drawn or rendered when nothing the deck is made from changed); its step lines go to this process's stdout.
- ``pdf``: prints ``deck.pdf`` from the current ``deck.html`` unless it was printed from those very bytes.

Writes ``R`` (JSON): ``ok``, ``unchanged``, ``rendered_at``, ``seconds``, and for a failure ``error``: the
exception's type and message; where it was raised in a template when Jinja raised it (``template``, ``line`` and
that line's ``text``); the traceback's last lines.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from pathlib import Path

from mame.deck.render import freshness, templating
from mame.results import atomic_write_json

TRACEBACK_LINES = 12


def template_frame(exc: BaseException) -> dict | None:
    """The template file, line and that line's text where ``exc`` was raised, when a template raised it: Jinja
    puts the template's own lines into the traceback (and syntax errors carry them)."""
    from jinja2 import TemplateSyntaxError

    templates = templating.templates_folder().resolve()
    where = None
    if isinstance(exc, TemplateSyntaxError) and exc.filename:
        where = (Path(exc.filename), exc.lineno)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            path = Path(frame.filename)
            if path.suffix == ".j2" and path.resolve().is_relative_to(templates):
                where = (path, frame.lineno)  # the last such frame: the innermost template line
    if where is None:
        return None
    path, line = where
    try:
        text = path.read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError, TypeError):
        text = ""
    name = path.resolve().relative_to(templates).as_posix() if path.resolve().is_relative_to(templates) else str(path)
    return {"template": name, "line": line, "text": text}


def describe(exc: BaseException) -> dict:
    tb = traceback.format_exception(exc)
    return {"type": type(exc).__name__, "message": str(exc), "where": template_frame(exc),
            "traceback": "".join(tb).splitlines()[-TRACEBACK_LINES:]}


def render_deck(profile: str, plan_file: Path | None) -> dict:
    from mame.deck.render.build import build

    result = build(profile, run=False, pdf=False, plan_file=plan_file)
    rendered_at = result.rendered_at or freshness.recorded(_state_dir()).get("rendered_at", "")
    return {"unchanged": result.unchanged, "rendered_at": rendered_at}


def print_pdf() -> dict:
    from mame.deck.render.build import PDF_PAUSE_MS, build_dirs
    from mame.deck.render.pdf import pdf_page_count, render_pdf

    output = build_dirs()["output"]
    html, pdf = output / "deck.html", output / "deck.pdf"
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no deck rendered yet")
    digest = freshness.html_digest(html)
    if freshness.recorded(_state_dir()).get("pdf_of") == digest and pdf.is_file():
        return {"unchanged": True}
    render_pdf(html, pdf, pause_ms=PDF_PAUSE_MS)
    freshness.note_pdf(_state_dir(), digest)
    print(f"deck  PDF: {pdf_page_count(pdf)} pages", flush=True)
    return {"unchanged": False}


def _state_dir() -> Path:
    from mame.deck.render.build import build_dirs

    return build_dirs()["state"]


def _terminated(signum, frame):
    raise KeyboardInterrupt  # unwinds through the jobs' cleanup (a PDF's browser is killed in render_pdf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mame.deck.live.rerender", description=__doc__)
    parser.add_argument("job", choices=("deck", "pdf"))
    parser.add_argument("--profile", required=True)
    parser.add_argument("--plan", type=Path, default=None)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    t0 = time.perf_counter()
    try:
        outcome = {"ok": True, **(render_deck(args.profile, args.plan) if args.job == "deck" else print_pdf())}
    except KeyboardInterrupt:  # stopped by the server: no result to give
        return 130
    except Exception as exc:  # any failure is the page's to show; the server goes on
        outcome = {"ok": False, "error": describe(exc)}
        print(f"deck  {args.job} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    atomic_write_json(args.result, {**outcome, "seconds": round(time.perf_counter() - t0, 2)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
