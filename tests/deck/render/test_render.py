"""Rendering toolchain: .qmd -> self-contained revealjs HTML -> PDF, and the headless deck check."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image

from mame import config
from mame.deck import tools
from mame.deck.check.browser import check_deck
from mame.deck.render.html import DeckInputError, RenderError, remote_references, render_html
from mame.deck.render.pdf import pdf_page_count, render_pdf


def _chromium_or_skip() -> str:
    """Chromium path; skip only when it is missing and we cannot install it (not root)."""
    try:
        return tools.find_chromium()
    except RenderError:
        if os.geteuid() != 0:
            pytest.skip("chromium missing and not root: install it with `apt-get install -y chromium`")
        raise


SAMPLE = """\
---
title: "Sample deck"
subtitle: "Rendering check"
---

# Results

## Table

| class | value | note |
|:------|------:|:-----|
| Oil on canvas | 0.91 | left \\| right |
| Ivory | 0.55 | &lt;b&gt; |

## Figure

![Striped figure](fig.png){width="50%"}

## Two columns

::: {.columns}
::: {.column width="50%"}
Left column text
:::
::: {.column width="50%"}
::: {.placeholder}
Run missing: no metrics.json.
:::
:::
:::

## Notes

Visible text with $x^2$.

::: notes
Speaker notes only.
:::
"""
SAMPLE_SLIDES = 6  # title, section "Results", and four "##" slides

_ROWS = "\n".join(f"| Class number {i:02d} | 0.{i:02d} | 0.{99 - i:02d} | {50 + i} |" for i in range(29))
BAD = f"""\
---
title: "Bad deck"
---

## Classification report {{.smaller}}

| class | precision | recall | support |
|:--|--:|--:|--:|
{_ROWS}

## Too long

""" + "\n".join(f"- line {i}" for i in range(60)) + """

## Too wide

<div style="width: 1600px; height: 40px; background: #ccc">a table wider than the slide</div>

## Boom

<script>throw new Error("boom")</script>

After the script.
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("sample")
    image = Image.new("RGB", (64, 32), "white")
    image.paste((200, 80, 40), (0, 0, 32, 32))
    image.save(src / "fig.png")
    (src / "deck.qmd").write_text(SAMPLE, encoding="utf-8")
    return src / "deck.qmd"


@pytest.fixture(scope="module")
def sample_html(sample, tmp_path_factory) -> Path:
    return render_html(sample, tmp_path_factory.mktemp("out") / "deck.html")


def test_render_html_is_one_self_contained_file(sample_html):
    assert [p.name for p in sample_html.parent.iterdir()] == ["deck.html"]
    text = sample_html.read_text(encoding="utf-8")
    assert remote_references(text) == []
    assert not re.search(r"(src|href)=[\"']https?:|@import url\(https?:", text)
    assert "mathjax" not in text.lower() and "katex" not in text.lower()
    assert re.search(r"<img[^>]+src=\"data:image/png;base64,", text)
    assert 'src="fig.png"' not in text


def test_table_cells_keep_escaped_text(sample_html):
    text = sample_html.read_text(encoding="utf-8")
    assert re.search(r"<td[^>]*>&lt;b&gt;</td>", text)  # shown as the text <b>, not bold
    assert re.search(r"<td[^>]*>left \| right</td>", text)
    assert '<aside class="notes">' in text


def test_remote_references_flags_loads_not_links():
    assert remote_references('<script src="https://cdn.example.org/m.js"></script>')
    assert remote_references('<link rel="stylesheet" href="//cdn.example.org/a.css">')
    assert remote_references("<style>@import url(https://fonts.example.org/f.css);</style>")
    assert remote_references('<img src="http://example.org/a.png">')
    assert remote_references('<a href="https://example.org">paper</a><img src="data:x">') == []


def test_render_errors_name_file_and_fix(tmp_path, monkeypatch):
    with pytest.raises(DeckInputError, match="nope.qmd: deck source not found"):
        render_html(tmp_path / "nope.qmd", tmp_path / "out.html")
    (tmp_path / "bad.qmd").write_text("## A\n\n![x](missing.png)\n", encoding="utf-8")
    with pytest.raises(DeckInputError, match="missing.png"):
        render_html(tmp_path / "bad.qmd", tmp_path / "out" / "bad.html")
    assert list((tmp_path / "out").iterdir()) == []  # atomic: nothing half-written
    monkeypatch.setattr(config, "REPORT_DIR", tmp_path)
    with pytest.raises(RenderError, match=r"reveal.js not found in .*; run `make setup`"):
        render_html(tmp_path / "bad.qmd", tmp_path / "x.html", engine="pandoc")
    (tmp_path / "deck.html").write_text("<html></html>")
    with pytest.raises(RenderError, match=r"decktape not found in .*; run `make setup`"):
        render_pdf(tmp_path / "deck.html", tmp_path / "deck.pdf", chromium=_chromium_or_skip())


def test_render_pdf_one_page_per_slide(sample_html):
    _chromium_or_skip()
    pdf = render_pdf(sample_html, sample_html.with_suffix(".pdf"))
    assert pdf_page_count(pdf) == SAMPLE_SLIDES
    assert pdf.read_bytes().startswith(b"%PDF")


def test_pdf_page_count_rejects_non_pdf(tmp_path):
    (tmp_path / "x.pdf").write_text("not a pdf")
    with pytest.raises(DeckInputError, match="x.pdf"):
        pdf_page_count(tmp_path / "x.pdf")


def test_check_deck_sample_is_clean(sample_html, tmp_path):
    _chromium_or_skip()
    result = check_deck(sample_html, screenshot_dir=tmp_path)
    assert result.total_slides == SAMPLE_SLIDES
    assert result.ok, result.summary()
    assert len(result.screenshots) == SAMPLE_SLIDES
    with Image.open(result.screenshots[2]) as shot:
        assert shot.size == (1280, 720)


def test_check_deck_reports_overflow_and_js_error(tmp_path):
    _chromium_or_skip()
    (tmp_path / "bad.qmd").write_text(BAD, encoding="utf-8")
    result = check_deck(render_html(tmp_path / "bad.qmd", tmp_path / "bad.html"))
    assert result.total_slides == 5
    assert [(o.index, o.title) for o in result.overflowing] == [(2, "Too long"), (3, "Too wide")]  # 29 rows fit
    assert result.overflowing[0].height > 720
    assert result.overflowing[1].width > 1280 and result.overflowing[1].height <= 720
    assert any("boom" in error for error in result.js_errors), result.js_errors
    assert not result.ok


def test_check_deck_blocks_and_reports_network_requests(sample_html, tmp_path):
    _chromium_or_skip()
    text = sample_html.read_text(encoding="utf-8")
    deck = tmp_path / "net.html"
    deck.write_text(text.replace("<h2>Table</h2>", '<h2>Table</h2><img src="https://example.invalid/a.png">', 1))
    result = check_deck(deck)
    assert result.network_requests == ["https://example.invalid/a.png"]
    assert not result.ok


def test_check_deck_missing_file(tmp_path):
    with pytest.raises(DeckInputError, match="missing.html: HTML deck not found"):
        check_deck(tmp_path / "missing.html")


def test_a_timed_out_pdf_print_leaves_no_browser_behind(tmp_path):
    """Puppeteer starts Chromium in its own process group: the timeout must still stop it."""
    import time

    qmd = tmp_path / "long.qmd"
    qmd.write_text('---\ntitle: "Long"\n---\n\n' + "".join(f"## Slide {i}\n\nText {i}.\n\n" for i in range(60)))
    html = render_html(qmd, tmp_path / "long.html")
    with pytest.raises(RenderError, match="decktape timed out"):
        render_pdf(html, tmp_path / "deck.pdf", timeout_s=6)  # the browser has started; 60 slides take longer
    time.sleep(1.0)
    marker = f"--user-data-dir={tmp_path}".encode()
    left = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in entry.read_bytes():
                left.append(entry.parent.name)
        except OSError:
            continue
    assert not left, f"browser processes left running: {left}"
    assert not (tmp_path / "deck.pdf").exists()
