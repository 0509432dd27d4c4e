"""Interactive 3-D figures in the deck, on the real toolchain: a two-slide deck with one 3-D projection,
rendered by pandoc through the deck's own macro. The HTML holds plotly.js once, loads nothing from the
network, and the figure turns when dragged with the mouse (headless Chromium, file://, network blocked);
the PDF (decktape) shows the static view instead."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from mame.classes import CLASS_NAMES
from mame.deck.check import browser
from mame.deck.render import templating
from mame.deck.render.html import remote_references, render_html
from mame.deck.render.pdf import render_pdf
from mame.deck.sections import figures3d
from mame.deck.tools import find_chromium
from mame.plots import draw_projection_3d, draw_projection_3d_static, project_features, save_figure, save_plotly_json

DECK = """\
---
title: "3-D deck"
---
{% import "partials/macros.md.j2" as m %}

## Before

Text.

## Features in three dimensions

{{ m.figure3d(f, scripts, "test figure") }}

::: {.caption}
Drag to turn.
:::
"""
PLOT = "section.present:not(.stack) .figure-3d"
FIGURE_SLIDE = 2  # title, "Before", then the figure


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    """The rendered HTML of a deck whose third slide holds a 3-D PCA of three classes."""
    out = tmp_path_factory.mktemp("deck3d")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    features = rng.normal(0, 3, (3, 8))[labels] + rng.normal(0, 1, (90, 8))
    data = project_features(features, labels, dims=3, max_per_class=None, files=[f"{i}.jpg" for i in range(90)])
    save_plotly_json(draw_projection_3d(data, class_names=CLASS_NAMES), out / "fig.json")
    save_figure(draw_projection_3d_static(data, class_names=CLASS_NAMES), out / "fig.png")
    view = {"id": "fig3d-test", "figure": "fig.json", "static": "fig.png"}
    text = templating.environment().from_string(DECK).render(f=view, scripts=figures3d.scripts(out))
    (out / "deck.qmd").write_text(text, encoding="utf-8")
    return render_html(out / "deck.qmd", out / "deck.html", engine="pandoc")


def test_deck_holds_plotly_once_and_loads_nothing_remote(deck):
    html = deck.read_text(encoding="utf-8")
    assert html.count("* plotly.js v") == 1  # the library's header comment: embedded once, inline
    assert remote_references(html) == []  # (plotly.js names a CDN only for geo maps' topojson, never fetched here)


def test_figure_turns_when_dragged_and_shows_a_class_alone_offline(deck):
    tmp = Path(tempfile.mkdtemp(prefix="fig3d-"))
    proc, port = browser._start_chromium(find_chromium(), tmp / "profile")
    requests, errors = [], []
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            chromium = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", timeout=20_000)
            context = chromium.new_context(viewport={"width": 1280, "height": 720})
            context.route(lambda url: not url.startswith(("file:", "data:", "blob:")),
                          lambda route: (requests.append(route.request.url), route.abort()))
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(deck.as_uri(), wait_until="load")
            page.wait_for_function("() => window.Reveal && Reveal.isReady()")
            page.evaluate(f"Reveal.slide({FIGURE_SLIDE})")
            page.wait_for_selector(f"{PLOT}[data-drawn=yes] canvas")
            eye = "() => { const e = document.querySelector('%s')._fullLayout.scene._scene.getCamera().eye;" \
                  " return [e.x, e.y, e.z]; }" % PLOT
            before = page.evaluate(eye)
            box = page.locator(PLOT).bounding_box()
            x, y = box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"]
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(1, 9):
                page.mouse.move(x + 20 * step, y + 4 * step)
            page.mouse.up()
            page.wait_for_timeout(200)
            after = page.evaluate(eye)
            static_shown = page.evaluate("() => getComputedStyle(document.querySelector('.figure-3d-static')).display")
            visible = "() => document.querySelector('%s')._fullData.map((t) => t.visible === true ? 1 : 0).join('')" % PLOT
            entries = page.locator(f"{PLOT} .legend .traces")  # three classes, in two legend columns
            entries.nth(0).dblclick()
            page.wait_for_function(f"() => ({visible})() === '100'", timeout=5_000)
            entries.nth(0).dblclick()
            page.wait_for_function(f"() => ({visible})() === '111'", timeout=5_000)
            chromium.close()
    finally:
        browser._stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    assert np.linalg.norm(np.subtract(after, before)) > 0.2, (before, after)
    assert static_shown == "none" and errors == [] and requests == []


def test_deck_check_passes_with_a_3d_figure(deck, tmp_path):
    check = browser.check_deck(deck, screenshot_dir=tmp_path)
    assert check.ok, check.summary()


def test_pdf_shows_the_static_view(deck, tmp_path):
    pdf = render_pdf(deck, tmp_path / "deck.pdf", pause_ms=60)
    page = PdfReader(pdf).pages[FIGURE_SLIDE]
    assert "Features in three dimensions" in page.extract_text()
    assert CLASS_NAMES[0] not in page.extract_text()  # the live figure's legend is text; the static one a PNG
    listing = subprocess.run(["pdfimages", "-f", str(FIGURE_SLIDE + 1), "-l", str(FIGURE_SLIDE + 1), "-list", str(pdf)],
                             capture_output=True, text=True, check=True).stdout
    sizes = {tuple(int(v) for v in line.split()[3:5]) for line in listing.splitlines()[2:]}
    assert (1280, 540) in sizes, listing
