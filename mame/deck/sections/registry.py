"""The deck's stages, one declaration each, in slide order.

A stage ``X`` lines up six ways: plan stage ``X:`` (``experiments/plan.yaml``), notebook
``experiments/NN_X.ipynb``, stage code ``mame/stages/X.py``, deck module ``mame/deck/X.py``, template
``templates/sections/X.md.j2`` and context key ``X``. The deck module provides:

- ``section(entries, deck) -> dict``: the template's context from the stage's runs (``entries``, plan order)
  and the ``DeckInputs`` (every run by stage, the figures, the profile, display names); it must render a
  placeholder-bearing dict when ``entries`` is empty;
- optionally ``run_figures(entry, drawer) -> {name: path}``: figures of one usable run, drawn into its
  folder through ``drawer`` (``mame.deck.render.figures.Drawer``: redrawn only when stale);
- optionally ``report_figures(section, out_dir) -> {section key: path | None}``: figures that compare runs,
  drawn into the report's build folder and set into the section under those keys;
- optionally ``conclusions(context) -> list[str]``: its lines of the conclusions slide, computed from the
  whole context.

``context``, ``figures`` and ``templates/deck.qmd.j2`` iterate ``STAGES``; nothing else lists the stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from mame.deck.sections import classify, evaluate, explain, features, finetune, scratch, similarity


@dataclass(frozen=True)
class DeckStage:
    module: ModuleType
    chapter: str          # the "# " heading its slides sit under (consecutive stages may share one)
    not_planned: str      # what is missing when the plan has no such stage: "Not run yet: <this> needs ..."

    @property
    def stage(self) -> str:
        return self.module.__name__.rpartition(".")[2]

    @property
    def template(self) -> str:
        return f"sections/{self.stage}.md.j2"

    @property
    def section(self) -> Callable:
        return self.module.section

    def hook(self, name: str) -> Callable | None:
        """The module's optional ``run_figures``, ``report_figures`` or ``conclusions`` (None when absent)."""
        return getattr(self.module, name, None)


STAGES: tuple[DeckStage, ...] = (
    DeckStage(scratch, "Baseline", "the baseline trained from scratch"),
    DeckStage(similarity, "Feature extraction", "the task-similarity measure (ImageNet predictions on the dataset's images)"),
    DeckStage(features, "Feature extraction", "the ImageNet backbones as feature extractors"),
    DeckStage(classify, "Classification", "the classifiers on extracted features"),
    DeckStage(finetune, "Fine tuning", "the fine-tuning ladder"),
    DeckStage(evaluate, "Final result", "the test-split evaluation"),
    DeckStage(explain, "Explanations", "Grad-CAM maps"),
)
BY_NAME = {s.stage: s for s in STAGES}


@dataclass
class DeckInputs:
    """What a stage's ``section`` may read besides its own runs."""
    grouped: dict[str, list]          # stage -> its status entries (plan order)
    figures: dict                     # run id -> {figure name: path}; "_report" -> figures comparing runs
    profile: object                   # engine.plan.Profile
    names: dict[str, str]             # backbone key -> display name
    entries: list = field(default_factory=list)   # every planned run
    options: dict = field(default_factory=dict)   # the profile's ``report:`` settings

    def usable(self, stage: str) -> list:
        """The done or stale runs of ``stage`` with metrics."""
        return [e for e in self.grouped.get(stage, []) if e.metrics is not None and e.state in ("done", "stale")]
