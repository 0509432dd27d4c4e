import pytest
from jinja2 import UndefinedError

from mame import config
from mame.deck.render.templating import TemplateOutputError, environment, md, num, pct, render


@pytest.mark.parametrize("text, shown", [
    ("Wood | <b>bold</b>", r"Wood \| &lt;b&gt;bold&lt;/b&gt;"),
    ("a_b*c#d", r"a\_b\*c\#d"),
    ("- starts like a list", r"\- starts like a list"),
    ("1. starts like a numbered list", r"1\. starts like a numbered list"),
    (": starts like a definition", r"\: starts like a definition"),
    ("line one\nline two", "line one line two"),
    ("{{ not a template }}", r"\{\{ not a template \}\}"),
    ("a & b", "a &amp; b"),
    ("$x$", r"\$x\$"),
])
def test_md_escapes_what_would_change_the_markdown(text, shown):
    assert md(text) == shown


def test_number_filters():
    assert num(0.12345) == "0.12" and num(None) == "—" and num(3, 1) == "3.0"
    assert pct(0.8135, 2) == "81.35%" and pct(None) == "—"


def test_strict_undefined_names_the_missing_key(tmp_path):
    (tmp_path / "t.md.j2").write_text("{{ setup.profile }}")
    with pytest.raises(UndefinedError, match="profile"):
        render("t.md.j2", {"setup": {}}, templates_dir=tmp_path)


def test_output_with_surviving_template_syntax_is_refused(tmp_path):
    (tmp_path / "t.md.j2").write_text("{{ '{{' }} raw")
    with pytest.raises(TemplateOutputError, match=r"still contains '\{\{' \(line 1\)"):
        render("t.md.j2", {}, templates_dir=tmp_path)


def test_a_fence_glued_to_text_by_a_block_tag_at_a_line_end_is_refused(tmp_path):
    """``{% endif %}`` ending a line eats its newline (trim_blocks): the next ':::' lands after the text, pandoc
    reads it as text and the divs after it fall apart (a deck printed 23 of its 65 slides)."""
    (tmp_path / "t.md.j2").write_text("::: {.caption}\nSome text.{% if x %} More.{% endif %}\n:::\n")
    with pytest.raises(TemplateOutputError, match=r"':::' fence follows text on line 2"):
        render("t.md.j2", {"x": True}, templates_dir=tmp_path)
    (tmp_path / "ok.md.j2").write_text("::: {.caption}\nSome text.{{ ' More.' if x else '' }}\n:::\n")
    assert render("ok.md.j2", {"x": True}, templates_dir=tmp_path).endswith("Some text. More.\n:::\n")


def test_no_template_line_ends_its_text_with_a_block_tag_that_eats_the_newline():
    """With trim_blocks a block tag ending a line of text joins the next line to it; such a tag ends in ``+%}``."""
    import re

    tag = re.compile(r"\{%-?.*?\+?%\}")
    glued = [f"{p.relative_to(config.TEMPLATES_DIR)}:{i}" for p in config.TEMPLATES_DIR.rglob("*.j2")
             for i, line in enumerate(p.read_text().splitlines(), start=1)
             if line.rstrip().endswith("%}") and not line.rstrip().endswith("+%}") and tag.sub("", line).strip()]
    assert glued == []


def test_every_template_parses():
    env = environment()
    names = [p.relative_to(config.TEMPLATES_DIR).as_posix() for p in config.TEMPLATES_DIR.rglob("*.j2")]
    assert "deck.qmd.j2" in names and len(names) >= 8
    for name in names:
        env.get_template(name)
