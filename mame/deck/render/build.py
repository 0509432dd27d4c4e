"""``python -m mame report`` / ``make report``: run what is stale, then regenerate the deck.

runs → status entries → figures (cached in the run folders) → one context → Jinja (templates/) →
``report/_generated/deck.qmd`` → ``report/_output/deck.html`` (self-contained revealjs) and
``deck.pdf`` (one page per slide). Missing or failed runs become placeholders; the deck always renders.
With nothing new since the last render nothing is rendered (``mame.deck.render.freshness``), and that path imports
no plotting code (the drawing modules are imported where a render starts).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mame import config
from mame.deck.render import freshness
from mame.deck.sections import history
from mame.engine.run.status import collect
from mame.engine.run.study import Study
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
    unchanged: bool = False   # nothing rendered: the deck's inputs were those of the last render
    rendered_at: str = ""
    pdf_of: str | None = None  # sha256 of the HTML the PDF was printed from

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


def render_source(profile_name: str, *, plan_file: Path | None = None, collected: tuple | None = None,
                  steps: freshness.Steps | None = None, rendered_at: str | None = None,
                  study: Study | None = None) -> tuple[Path, list]:
    """Collect the runs and write the deck source; returns (deck.qmd, status entries). ``collected``: the
    (entries, left out) ``collect`` gave, when the caller already has them; ``steps`` prints a line per step;
    ``rendered_at``: the time the slides say (default: now); ``study``: the command's plan, runs and keys
    (``mame.engine.run.study``; built from ``plan_file`` when not given)."""
    from mame.deck.render import templating
    from mame.deck.render.context import build_context, by_stage
    from mame.deck.render.figures import dataset_figures, report_figures, run_figures, side_by_side_figures
    from mame.deck.sections.features import MAX_POINTS_PER_CLASS

    study = study or Study.load(profile_name, plan_file)
    plan, profile = study.plan, study.profile
    dirs = build_dirs()
    steps = steps or freshness.Steps(None)
    if collected is None:
        left_out: list = []
        entries = collect(profile_name, left_out=left_out, study=study)
    else:
        entries, left_out = collected
    options = dict(profile.report or {})
    options.setdefault("points_per_class", MAX_POINTS_PER_CLASS)  # (a positive integer: the plan's schema says so)
    figures = {}
    for stage, group in by_stage(entries).items():
        if stage == "features":  # one line per feature set: its projections are the slow figures
            figures.update(side_by_side_figures(group, options, steps))
            continue
        with steps.step(f"figures: {stage} ({len(group)} run{'s' if len(group) > 1 else ''})"):
            figures.update({e.run.id: run_figures(e, options) for e in group})
    rendered_at = rendered_at or _now()
    changes = history.record(dirs["state"] / "history.json", history.snapshot(entries), rendered_at)
    with steps.step("slides' numbers (context)"):
        context = build_context(entries, profile, list(plan.stages), figures=_relative(figures, dirs["generated"]),
                                changes=changes, rendered_at=rendered_at, left_out=left_out)
    out_dir = dirs["generated"] / "figures"
    with steps.step("figures comparing runs"):
        for stage, drawn in report_figures(context, out_dir).items():
            context[stage].update(_relative_values(drawn, dirs["generated"]))
    with steps.step("dataset figures"):
        context["dataset"].update(_relative_values(dataset_figures(context["dataset"], out_dir), dirs["generated"]))
    with steps.step("Jinja (deck.qmd)"):
        qmd = atomic_write_text(dirs["generated"] / "deck.qmd", templating.render("deck.qmd.j2", context))
    return qmd, entries


def build(profile_name: str, *, run: bool = True, pdf: bool = True, check: bool = False,
          plan_file: Path | None = None, out=None, run_options: dict | None = None,
          rerender: bool = False, study: Study | None = None) -> ReportResult:
    """``run_options``: how the runs execute (``jobs``, ``executor``, ``address``, ``retries`` of ``run_plan``).
    Nothing is rendered when the deck's inputs are those of the last render and its files are as it left them
    (``mame.deck.render.freshness``; ``rerender`` renders anyway); the PDF only when the HTML changed. ``study``: the
    command's plan, runs and keys, which the runner and the deck share (built from ``plan_file`` when not given)."""
    out, outcomes = out or sys.stdout, []
    study = study or Study.load(profile_name, plan_file)
    if run:
        from mame.engine.run.scheduler import run_plan

        outcomes = run_plan(profile_name, out=out, study=study, **(run_options or {}))
    steps, dirs = freshness.Steps(out), build_dirs()
    output = dirs["output"]
    files = {"qmd": dirs["generated"] / "deck.qmd", "html": output / "deck.html"}
    if pdf:
        files["pdf"] = output / "deck.pdf"
    with steps.step("collect the runs"):
        left_out: list = []
        entries = collect(profile_name, left_out=left_out, study=study)
        fingerprint = freshness.inputs_fingerprint(entries, left_out, study.profile, plan_file, pdf=pdf)
    last = None if rerender else freshness.unchanged(dirs["state"], fingerprint, files)
    if last is not None:
        steps.say(f"unchanged since the render of {last['rendered_at']}: nothing drawn, rendered or printed")
        result = ReportResult(qmd=files["qmd"], html=files["html"], pdf=files.get("pdf"), outcomes=outcomes,
                              entries=entries, unchanged=True)
    else:
        result = _render(profile_name, study, (entries, left_out), files, pdf, steps, outcomes)
        freshness.record(dirs["state"], fingerprint, files, result.rendered_at, result.pdf_of)
    if check:
        from mame.deck.check.browser import check_deck

        with steps.step("browser check"):
            result.check = check_deck(result.html, screenshot_dir=output / "screenshots")
    return result


def _render(profile_name, study, collected, files, pdf, steps, outcomes) -> ReportResult:
    from mame.deck.render.html import render_html

    rendered_at = _now()
    qmd, entries = render_source(profile_name, collected=collected, steps=steps, rendered_at=rendered_at, study=study)
    with steps.step("pandoc (HTML)"):
        html = render_html(qmd, files["html"])
    result = ReportResult(qmd=qmd, html=html, pdf=None, outcomes=outcomes, entries=entries,
                          rendered_at=rendered_at)
    if pdf:
        from mame.deck.render.pdf import pdf_page_count, render_pdf

        digest, last = freshness.html_digest(html), freshness.recorded(build_dirs()["state"])
        if last.get("pdf_of") == digest and files["pdf"].is_file():
            steps.say("PDF: the HTML is the one it was printed from; kept")
            result.pdf = files["pdf"]
        else:
            # No transitions and images embedded as data URIs: a short pause per slide suffices
            # (27 slides: 6.5 s at 50 ms against 14 s at 300 ms, identical pages).
            with steps.step("PDF (decktape)"):
                result.pdf = render_pdf(html, files["pdf"], pause_ms=PDF_PAUSE_MS)
            steps.say(f"PDF: {pdf_page_count(result.pdf)} pages")
        result.pdf_of = digest
    return result


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
