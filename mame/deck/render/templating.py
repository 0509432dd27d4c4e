"""Jinja for the deck: StrictUndefined, and filters that make data safe and readable in markdown.

Text that comes from data (class names, notes, error messages, paths) goes through ``md``: markdown
and HTML specials are escaped so that ``|``, ``*``, ``_``, ``<``, ``#`` show literally and can neither
break a pipe table nor inject HTML.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mame import config
from mame.deck.sections.seed_groups import Spread

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#+!|~^$@<>&])")
_LEADING_MARK = re.compile(r"^([-=:])")
_LEADING_NUMBER = re.compile(r"^(\d+)([.)])")


class TemplateOutputError(ValueError):
    """Rendered output still holds template syntax."""


def md(value) -> str:
    """Escape ``value`` for inline markdown (one line; safe inside a pipe-table cell)."""
    text = " ".join(str(value).split())
    text = _MD_SPECIAL.sub(lambda m: m.group(1) if m.group(1) in "<>&" else "\\" + m.group(1), text)
    text = html.escape(text, quote=False)
    text = _LEADING_MARK.sub(r"\\\1", text)  # "- x" starts a list, "= x" underlines, ": x" defines
    return _LEADING_NUMBER.sub(r"\1\\\2", text)  # "1. x" would start a numbered list


SEED_FORMS = ("n", "std", "mean")


def _spread(value, text, unit: str = "", seeds: str = "n") -> str:
    """``text(value) + unit``; for a mean over seeds (``Spread``) by ``seeds``: ``n`` gives ``mean ± std<unit>
    (n=N)``, ``std`` gives ``mean ± std<unit>`` (where the slide says n once), ``mean`` the mean alone."""
    if seeds not in SEED_FORMS:
        raise ValueError(f"seeds={seeds!r}: expected one of {', '.join(SEED_FORMS)}")
    if not isinstance(value, Spread) or seeds == "mean":
        return text(value) + unit
    return f"{text(value)} ± {text(value.std).lstrip('+')}{unit}" + (f" (n={value.n})" if seeds == "n" else "")


def num(value, digits: int = 2, seeds: str = "n") -> str:
    """A number with ``digits`` decimals; '—' for None; a mean over seeds as ``seeds`` says (``_spread``)."""
    return "—" if value is None else _spread(value, lambda v: f"{float(v):.{digits}f}", seeds=seeds)


def pct(value, digits: int = 1, seeds: str = "n") -> str:
    return "—" if value is None else _spread(value, lambda v: f"{100 * float(v):.{digits}f}", "%", seeds)


def thousands(value, seeds: str = "n") -> str:
    return "—" if value is None else _spread(value, lambda v: f"{round(v) if isinstance(v, Spread) else int(v):,}",
                                             seeds=seeds)


def signed(value, digits: int = 3, seeds: str = "n") -> str:
    return "—" if value is None else _spread(value, lambda v: f"{float(v):+.{digits}f}", seeds=seeds)


def points(value, digits: int = 1, seeds: str = "n") -> str:
    """A difference of two accuracies in percentage points: ``+4.0 points``."""
    return "—" if value is None else _spread(value, lambda v: f"{100 * float(v):+.{digits}f}", " points", seeds)


def templates_folder() -> Path:
    """The deck's templates: ``MAME_TEMPLATES`` (a copy to edit) or ``templates/``. Here, not in ``mame.config``:
    every run's cache key hashes ``mame.config``, and where the deck's templates live is no run's business."""
    value = os.environ.get("MAME_TEMPLATES")
    return Path(value).expanduser().resolve() if value else config.TEMPLATES_DIR


# a fenced div's ':::' after text on the same line: pandoc reads it as text and the slides' divs fall apart
GLUED_FENCE = re.compile(r"^[ \t]*(?=[^:\s]).*\S[ \t]*:::(?:[ \t]*\{[^}\n]*\})?[ \t]*$", re.M)


def environment(templates_dir: Path | None = None) -> Environment:
    """Jinja over ``templates_dir`` (default ``templates_folder()``)."""
    env = Environment(loader=FileSystemLoader(str(templates_dir or templates_folder())), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(md=md, num=num, pct=pct, thousands=thousands, signed=signed, points=points)
    return env


def render(name: str, context: dict, *, templates_dir: Path | None = None) -> str:
    """Render template ``name``; refuse output in which ``{{`` or ``{%`` survived."""
    text = environment(templates_dir).get_template(name).render(**context)
    for marker in ("{{", "{%", "{#"):
        if marker in text:
            line = text[: text.index(marker)].count("\n") + 1
            raise TemplateOutputError(f"{name}: rendered output still contains {marker!r} (line {line})")
    glued = GLUED_FENCE.search(text)
    if glued:
        line = text[: glued.start()].count("\n") + 1
        raise TemplateOutputError(f"{name}: a ':::' fence follows text on line {line} of the output (a block tag at the "
                                  f"end of a template line ate its newline): {glued.group(0).strip()[-60:]!r}")
    return text
