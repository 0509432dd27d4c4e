"""``python -m mame report`` / ``make report``: run what is stale, then regenerate the deck.

runs → status entries → figures (cached in the run folders) → one context → Jinja (templates/) →
``report/_generated/deck.qmd`` → ``report/_output/deck.html`` (self-contained revealjs) and
``deck.pdf`` (one page per slide). Missing or failed runs become placeholders; the deck always renders.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mame import config
from mame.deck import history, templating
from mame.deck.context import build_context
from mame.deck.dataset import dataset_figures
from mame.deck.features import MAX_POINTS_PER_CLASS
from mame.deck.figures import report_figures, run_figures
from mame.engine.plan import load_plan
from mame.engine.status import collect
from mame.results import atomic_write_text

PDF_PAUSE_MS = 60


@dataclass
class ReportResult:
    qmd: Path
    html: Path
    pdf: Path | None
    outcomes: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    check: object | None = None

    @property
    def ok(self) -> bool:
        runs_ok = not any(o.state in ("failed", "skipped") for o in self.outcomes)
        return runs_ok and (self.check is None or self.check.ok)


def build_dirs() -> dict[str, Path]:
    base = config.report_build_dir()
    return {"generated": base / "_generated", "output": base / "_output", "state": base / "_state"}


def _relative(figures: dict, start: Path) -> dict:
    """Each run's figure paths as the deck source refers to them (relative to its folder)."""
    return {run: _relative_values(figs, start) for run, figs in figures.items()}


def _relative_values(drawn: dict, start: Path) -> dict:
    """Figure paths (a path, a list of paths or None per key) relative to ``start``, the deck source's folder."""
    rel = lambda p: Path(os.path.relpath(p, start)).as_posix()
    return {k: None if v is None else [rel(p) for p in v] if isinstance(v, list) else rel(v) for k, v in drawn.items()}


def render_source(profile_name: str, *, plan_file: Path | None = None) -> tuple[Path, list]:
    """Collect the runs and write the deck source; returns (deck.qmd, status entries)."""
    plan = load_plan(plan_file)
    profile = plan.profile(profile_name)
    dirs = build_dirs()
    left_out: list = []
    entries = collect(profile_name, plan_file, left_out=left_out)
    options = dict(profile.report or {})
    per_class = options.setdefault("points_per_class", MAX_POINTS_PER_CLASS)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"{plan_file or config.plan_path()}: profiles.{profile_name}.report.points_per_class must be "
                         f"a positive integer, got {per_class!r}")
    figures = {e.run.id: run_figures(e, options) for e in entries}
    rendered_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    changes = history.record(dirs["state"] / "history.json", history.snapshot(entries), rendered_at)
    context = build_context(entries, profile, list(plan.stages), figures=_relative(figures, dirs["generated"]),
                            changes=changes, rendered_at=rendered_at, left_out=left_out)
    out_dir = dirs["generated"] / "figures"
    for stage, drawn in report_figures(context, out_dir).items():
        context[stage].update(_relative_values(drawn, dirs["generated"]))
    context["dataset"].update(_relative_values(dataset_figures(context["dataset"], out_dir), dirs["generated"]))
    qmd = atomic_write_text(dirs["generated"] / "deck.qmd", templating.render("deck.qmd.j2", context))
    return qmd, entries


def build(profile_name: str, *, run: bool = True, pdf: bool = True, check: bool = False,
          plan_file: Path | None = None, out=sys.stdout, run_options: dict | None = None) -> ReportResult:
    """``run_options``: how the runs execute (``jobs``, ``executor``, ``address``, ``retries`` of ``run_plan``)."""
    from mame.deck.render import render_html

    outcomes = []
    if run:
        from mame.engine.runner import run_plan

        outcomes = run_plan(profile_name, plan_file=plan_file, out=out, **(run_options or {}))
    qmd, entries = render_source(profile_name, plan_file=plan_file)
    output = build_dirs()["output"]
    html = render_html(qmd, output / "deck.html")
    result = ReportResult(qmd=qmd, html=html, pdf=None, outcomes=outcomes, entries=entries)
    if pdf:
        from mame.deck.pdf import render_pdf

        # No transitions and images embedded as data URIs: a short pause per slide suffices
        # (27 slides: 6.5 s at 50 ms against 14 s at 300 ms, identical pages).
        result.pdf = render_pdf(html, output / "deck.pdf", pause_ms=PDF_PAUSE_MS)
    if check:
        from mame.deck.browser import check_deck

        result.check = check_deck(html, screenshot_dir=output / "screenshots")
    return result
