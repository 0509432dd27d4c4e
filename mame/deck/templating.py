"""Jinja for the deck: StrictUndefined, and filters that make data safe and readable in markdown.

Text that comes from data (class names, notes, error messages, paths) goes through ``md``: markdown
and HTML specials are escaped so that ``|``, ``*``, ``_``, ``<``, ``#`` show literally and can neither
break a pipe table nor inject HTML.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mame import config

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


def num(value, digits: int = 2) -> str:
    """A number with ``digits`` decimals; '—' for None."""
    return "—" if value is None else f"{float(value):.{digits}f}"


def pct(value, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * float(value):.{digits}f}%"


def thousands(value) -> str:
    return "—" if value is None else f"{int(value):,}"


def signed(value, digits: int = 3) -> str:
    return "—" if value is None else f"{float(value):+.{digits}f}"


def points(value, digits: int = 1) -> str:
    """A difference of two accuracies in percentage points: ``+4.0 points``."""
    return "—" if value is None else f"{100 * float(value):+.{digits}f} points"


def environment(templates_dir: Path = config.TEMPLATES_DIR) -> Environment:
    env = Environment(loader=FileSystemLoader(str(templates_dir)), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(md=md, num=num, pct=pct, thousands=thousands, signed=signed, points=points)
    return env


def render(name: str, context: dict, *, templates_dir: Path = config.TEMPLATES_DIR) -> str:
    """Render template ``name``; refuse output in which ``{{`` or ``{%`` survived."""
    text = environment(templates_dir).get_template(name).render(**context)
    for marker in ("{{", "{%", "{#"):
        if marker in text:
            line = text[: text.index(marker)].count("\n") + 1
            raise TemplateOutputError(f"{name}: rendered output still contains {marker!r} (line {line})")
    return text
