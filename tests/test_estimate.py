"""The README's GPU estimate table is generated from the plan (``make docs``): it lists every stage the
estimate counts, with the plan's run and epoch counts."""

from __future__ import annotations

import re

import pytest

from mame import config, estimate
from mame.engine.plan import expand, load_plan


def readme_rows() -> dict[str, list[str]]:
    text = (config.ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(estimate.README_BEGIN, 1)[1].split(estimate.README_END, 1)[0]
    return {m.group(1): [c.strip() for c in line.split("|")[2:-1]]
            for line in block.splitlines() if (m := re.match(r"\| `(\w+)` \|", line))}


def test_the_readme_table_has_the_plans_stages_runs_and_epochs():
    runs = [r for r in expand(load_plan(), "full") if r.stage in ("scratch", "finetune", *estimate.FORWARD_ONLY)]
    expected = {}
    for run in runs:
        count, epochs = expected.get(run.stage, (0, 0))
        expected[run.stage] = (count + 1, epochs + estimate.run_epochs(run))
    found = {stage: (int(cells[0]), int(cells[1])) for stage, cells in readme_rows().items()}
    assert found == expected, "README.md's estimate table is out of date with the plan: run `make docs`"


def test_the_block_is_replaced_between_its_markers_and_only_there():
    text = f"before\n{estimate.README_BEGIN}\nold table\n{estimate.README_END}\nafter\n"
    assert estimate.replace_block(text, "| new |") == f"before\n{estimate.README_BEGIN}\n| new |\n{estimate.README_END}\nafter\n"
    with pytest.raises(ValueError, match="README.md: the estimate markers are missing"):
        estimate.replace_block("no markers here", "| new |")
