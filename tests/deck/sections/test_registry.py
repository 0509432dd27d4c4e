"""The deck's stage registry: every stage has its six places, and the deck iterates the registry."""

from __future__ import annotations

import re

import pytest
import yaml

from mame import config
from mame.deck.render import templating
from mame.deck.render.context import build_context
from mame.deck.sections import registry
from tests.helpers import NO_CHANGES, PROFILE

PLAN = yaml.safe_load((config.EXPERIMENTS_DIR / "plan.yaml").read_text())


def test_the_registry_and_the_plan_have_the_same_stages():
    assert {s.stage for s in registry.STAGES} == set(PLAN["stages"])
    assert len(registry.BY_NAME) == len(registry.STAGES)


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.stage)
def test_each_stage_lines_up_in_its_six_places(stage):
    name = stage.stage
    order = list(PLAN["stages"])
    assert PLAN["stages"][name]["notebook"] == f"{order.index(name) + 1:02d}_{name}.ipynb"  # numbers follow plan order
    assert (config.EXPERIMENTS_DIR / PLAN["stages"][name]["notebook"]).is_file()
    assert (config.PACKAGE_DIR / "stages" / f"{name}.py").is_file()
    assert stage.module.__name__ == f"mame.deck.sections.{name}" and callable(stage.module.section)
    assert (config.TEMPLATES_DIR / stage.template).is_file() and stage.template == f"sections/{name}.md.j2"
    for hook in ("run_figures", "report_figures", "conclusions"):
        assert stage.hook(hook) is None or callable(stage.hook(hook))


def test_an_empty_deck_has_every_stage_under_its_chapter_in_registry_order():
    """No run yet: each stage's section renders (placeholders), under one heading per chapter, in order;
    a stage the plan lacks says so with the registry's words."""
    planned = [s.stage for s in registry.STAGES if s.stage != "similarity"]
    context = build_context([], PROFILE, planned, figures={}, changes=NO_CHANGES, rendered_at="now",
                            references={"mame_paper": {"citation": "c", "doi": "d", "what": "w", "baselines": []},
                                        "references": []})
    assert [k for k in context if k in registry.BY_NAME] == [s.stage for s in registry.STAGES]
    source = templating.render("deck.qmd.j2", context)
    chapters = re.findall(r"^# (.+)$", source, re.M)
    assert chapters == list(dict.fromkeys(s.chapter for s in registry.STAGES)) + ["Appendix"]
    assert ("Not run yet: the task-similarity measure (ImageNet predictions on the dataset's images) needs a 'similarity' "
            "stage") in source
    assert source.index("## Task similarity") < source.index("## Backbones as feature extractors")


def test_the_figure_stamp_covers_every_drawing_module():
    """Cached figures are redrawn when any module the deck's drawing code imports changes: every stage's
    deck module and every plot module is in the closure the stamp hashes."""
    from mame.engine.run import cache

    covered = {p.relative_to(config.PACKAGE_DIR).as_posix() for p in cache.module_closure({"mame.deck.render.figures"})}
    assert {f"deck/sections/{s.stage}.py" for s in registry.STAGES} <= covered
    assert {f"plots/{p.name}" for p in (config.PACKAGE_DIR / "plots").glob("*.py")} <= covered
