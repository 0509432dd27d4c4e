"""Constants and helpers shared by the tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from mame.classes import CLASS_NAMES
from mame.data import official
from mame.deck.render import templating
from mame.deck.render.build import _relative
from mame.deck.render.context import build_context, by_stage
from mame.deck.render.figures import run_figures
from mame.deck.sections.registry import DeckInputs
from mame.engine.plan.load import PlannedRun, Profile
from mame.metrics import classification_result

REPO = Path(__file__).resolve().parents[1]
# The official MAMe metadata, shipped (gzipped) with the package (mame.data.official), so every clone has it.
OFFICIAL_FIXTURES = official.FOLDER
OFFICIAL_FILES = official.FILES

# Generated smoke data is shared by every test (it is deterministic), so it is made once.
TEST_DATA_HOME = Path(os.environ.get("MAME_TEST_DATA_HOME", REPO / "data" / "test-cache"))

# What the setup section says of MAMe (real or synthetic), for tests that render a section's template alone.
MAME_SETUP = {"mame": True, "n_classes": 29, "dataset_name": "synthetic MAMe (generated)", "title": "MAMe: Museum Art Medium",
              "dataset": {"source": "synthetic"}, "splits_said": None}

SMOKE_PROFILE = """
profiles:
  smoke:
    data: {source: synthetic, train_per_class: 4, val_per_class: 2, test_fraction: 0.004, size: 48}
    params: {batch_size: 16}
    force: {image_size: 32, weights: random, max_iter: 100}
    timeouts: {start: 120, execution: 300}
    report: {projections: [pca]}
"""


# The `stages:` block of a plan with one scratch run of one epoch (a run with a model.keras, in seconds); a test adds
# its own lines after it (more variants, more stages).
ONE_EPOCH_SCRATCH = """
stages:
  scratch:
    notebook: 01_scratch.ipynb
    variants:
      r1-plain: {epochs: 1, patience: null, batch_size: 32}
"""


def write_smoke_plan(path: Path, stages: str) -> Path:
    """A plan file with the given ``stages:`` block and a small smoke profile."""
    path.write_text(stages + SMOKE_PROFILE)
    return path


def unpack_official_metadata(dest: Path) -> Path:
    """The official metadata CSVs, as MAMe ships them, in ``dest``; FileNotFoundError if a fixture is gone."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in OFFICIAL_FILES:
        (dest / name).write_bytes(official.read_bytes(name))
    return dest


def minimal_metrics(**run_overrides):
    """A valid metrics.json dict of a done run; ``run_overrides`` replace fields of its ``run`` block."""
    run = {
        "stage": "features", "name": "vgg16", "backbone": "vgg16", "variant": "default",
        "cache_key": "0123456789abcdef0123", "params": {"batch_size": 16}, "profile": "smoke", "seed": 0,
        "dataset": {"source": "synthetic", "path": "/tmp/x", "fingerprint": "abc"},
        "git": {"commit": None, "dirty": None}, "versions": {"python": "3.11"},
        "device": {"kind": "cpu", "name": "test cpu"}, "started": "2026-01-01T00:00:00+00:00",
        "ended": "2026-01-01T00:00:01+00:00", "duration_s": 1.0, "status": "done", "error": None,
        "depends_on": {}, "test_split_reads": [],
    }
    run.update(run_overrides)
    return {"schema_version": 1, "run": run, "headline": {"name": "acc", "value": 0.5}, "metrics": {},
            "classification": {"val": classification_result([0, 1, 2], [0, 1, 1], class_names=CLASS_NAMES)},
            "history": {"loss": [1.0, 0.5]},
            "artifacts": {}, "notes": []}


# --- the deck's tests: status entries made from real metrics dicts, and a deck rendered from them ---

PROFILE = Profile("smoke", {"source": "synthetic"}, {}, {}, None, 0, 60, 60)
NO_CHANGES = {"first": True, "rows": [], "since": None}


@dataclass
class FakeEntry:
    """The shape of mame.engine.run.status.Entry, built from real metrics dicts."""
    run: PlannedRun
    state: str
    metrics: dict | None
    detail: str = ""
    path: Path = field(default_factory=lambda: Path("/nowhere"))
    combined: object = None  # set by mame.deck.sections.seed_groups for an entry folding several seeds' runs


def deck_inputs(entries: list = (), *, figures: dict | None = None, names: dict | None = None, profile=PROFILE,
                options: dict | None = None) -> DeckInputs:
    """What a deck stage module's ``section`` reads besides its own runs, for ``entries`` (any stages)."""
    return DeckInputs(grouped=by_stage(list(entries)), figures=figures or {}, profile=profile, names=names or {},
                      entries=list(entries), options=options or {})


def render_deck(entries: list, out: Path, plan=("scratch", "finetune", "evaluate")) -> SimpleNamespace:
    """The deck source of ``entries`` (figures drawn into their run folders) under ``out/_generated``."""
    figures = {e.run.id: run_figures(e) for e in entries}
    generated = out / "_generated"
    generated.mkdir(parents=True, exist_ok=True)
    context = build_context(entries, PROFILE, list(plan), figures=_relative(figures, generated), changes=NO_CHANGES,
                            rendered_at="now")
    source = templating.render("deck.qmd.j2", context)
    (generated / "deck.qmd").write_text(source)
    return SimpleNamespace(context=context, source=source, figures=figures, qmd=generated / "deck.qmd")


def slide(source: str, heading: str) -> str:
    """The markdown of the slide titled ``heading`` in a deck source."""
    return source.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0].split("\n# ", 1)[0]


def smoke_study_env(root: Path, **more: str):
    """A MonkeyPatch pointing the runs at ``root/runs`` and the data at the shared smoke data (plus ``more``
    variables); the caller undoes it."""
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setenv("MAME_RUNS_DIR", str(root / "runs"))
    mp.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    for name, value in more.items():
        mp.setenv(name, value)
    return mp


def wait_for(predicate, timeout: float, what: str):
    """``predicate()``'s first true value, polled every 50 ms; an AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for {what}")


def write_training_metrics(folder: Path, image_size: int, *, shape: str = "fixed", config: dict | None = None) -> Path:
    """The part of a training run's metrics.json the later stages read (its input shape and settings), for a
    run folder a test builds by hand."""
    import json

    metrics = {"shape": shape, "image_size": image_size, "config": {**(config or {}), "shape": shape},
               **({"target_pixels": image_size ** 2, "placement": "corner"} if shape == "variable" else {})}
    path = Path(folder) / "metrics.json"
    path.write_text(json.dumps({"metrics": metrics}))
    return path
