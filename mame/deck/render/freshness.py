"""Whether the deck must be rendered again, and the step lines a render prints.

The deck's inputs are fingerprinted: every planned run's state and its metrics.json (path, size,
modification time), the runs left out, the plan file, the profile, the templates, the report's own files
(styles, references, reveal.js lock file), the lock file of the Python packages and the code that draws and
renders (``cache.closure_fingerprint`` of the deck's modules, as cache keys hash code). When the fingerprint
equals the one recorded at the last render and its outputs are still there as that render left them (size
and modification time), nothing is drawn, rendered or printed again: ``make report`` with nothing new
leaves deck.html and deck.pdf untouched, and their "rendered" time stays that of the last real render.
The PDF is printed again only when the HTML it would come from differs from the one it was printed from.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mame import config
from mame.deck.render import templating
from mame.engine.run import cache
from mame.results import atomic_write_json

STATE_FILE = "deck-inputs.json"
DECK_MODULES = {"mame.deck.render.build", "mame.deck.render.html", "mame.deck.render.pdf", "mame.deck.check.browser"}


def _file_sig(path: Path) -> list | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _digest(paths) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def inputs_fingerprint(entries: list, left_out: list, profile, plan_file: Path | None, *, pdf: bool) -> str:
    """A hash of everything the deck is made from (module docstring)."""
    report_files = [p for p in config.REPORT_DIR.iterdir() if p.is_file()]
    payload = {
        "runs": [[e.run.id, e.state, e.detail, _file_sig(Path(e.path) / "metrics.json")] for e in entries],
        "left_out": [[d.id, d.reason] for d in left_out],
        "plan": _digest([Path(plan_file or config.plan_path())]),
        "profile": [profile.name, json.dumps(profile.report, sort_keys=True, default=str)]
        + ([profile.sized_for] if profile.sized_for else []),
        "templates": _digest(p for p in templating.templates_folder().rglob("*") if p.is_file()),
        "report": _digest(report_files),
        "packages": _digest([p for p in [config.ROOT / "requirements.lock"] if p.is_file()]),
        "code": cache.closure_fingerprint(DECK_MODULES),
        "pdf": pdf,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def recorded(state_dir: Path) -> dict:
    try:
        return json.loads(_state_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def unchanged(state_dir: Path, fingerprint: str, outputs: dict[str, Path]) -> dict | None:
    """The record of the last render when it had these inputs and its ``outputs`` are as it left them."""
    last = recorded(state_dir)
    if last.get("inputs") != fingerprint:
        return None
    if any(_file_sig(path) is None or _file_sig(path) != last.get("outputs", {}).get(name)
           for name, path in outputs.items()):
        return None
    return last


def record(state_dir: Path, fingerprint: str, outputs: dict[str, Path], rendered_at: str, pdf_of: str | None) -> None:
    """Note a finished render: its inputs, its outputs' size and time, and the HTML the PDF was printed from."""
    atomic_write_json(_state_path(state_dir), {"inputs": fingerprint, "rendered_at": rendered_at, "pdf_of": pdf_of,
                                               "outputs": {k: _file_sig(p) for k, p in outputs.items()}})


def note_pdf(state_dir: Path, pdf_of: str) -> None:
    """Note a PDF printed outside a render (the live deck's, on demand) from the HTML whose digest is ``pdf_of``."""
    last = recorded(state_dir)
    if last:
        atomic_write_json(_state_path(state_dir), {**last, "pdf_of": pdf_of})


def html_digest(html: Path) -> str:
    return hashlib.sha256(Path(html).read_bytes()).hexdigest()


class Steps:
    """One line per step of a deck build, with its time: ``deck  pandoc (HTML) ........ 2.3 s`` (``out`` None:
    silent)."""

    def __init__(self, out=sys.stdout):
        self.out = out

    @contextmanager
    def step(self, what: str):
        t0 = time.perf_counter()
        yield
        self.say(f"{what} {'.' * max(2, 56 - len(what))} {time.perf_counter() - t0:5.1f} s")

    def say(self, text: str) -> None:
        if self.out is not None:
            print(f"deck  {text}", file=self.out, flush=True)
