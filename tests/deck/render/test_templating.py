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


def test_every_template_parses():
    env = environment()
    names = [p.relative_to(config.TEMPLATES_DIR).as_posix() for p in config.TEMPLATES_DIR.rglob("*.j2")]
    assert "deck.qmd.j2" in names and len(names) >= 8
    for name in names:
        env.get_template(name)
