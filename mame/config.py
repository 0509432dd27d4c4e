"""Every path the project uses, derived from the package location, plus profile loading.

Environment overrides (all optional):

- ``MAME_RUNS_DIR``  where run folders go (default ``<repo>/runs``)
- ``MAME_DATA_HOME`` where generated synthetic datasets go (default ``<repo>/data``)
- ``MAME_DIR``       the real MAMe dataset folder (``MAMe_dataset.csv`` plus ``data_256/`` or ``data/``)
- ``MAME_DATA``      a dataset studied instead of the profile's data (``--data``, ``make report DATA=``): a folder
                     of class folders, a folder with a ``metadata.csv``, or a CSV file
- ``MAME_PLAN``      an alternative plan file (default ``experiments/plan.yaml``)
- ``MAME_REPORT_BUILD`` where the deck is built (default ``<repo>/report``)
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
EXPERIMENTS_DIR = ROOT / "experiments"
TEMPLATES_DIR = ROOT / "templates"
REPORT_DIR = ROOT / "report"
SCHEMA_DIR = PACKAGE_DIR / "engine" / "schema"

METADATA_CSV = "MAMe_dataset.csv"
LABELS_CSV = "MAMe_labels.csv"
IMAGE_DIR_CANDIDATES = ("data_256", "data")
MASK_DIR = "masks"   # object masks beside the images, where the data knows them (the synthetic generator writes them)


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def runs_dir() -> Path:
    return _env_path("MAME_RUNS_DIR", ROOT / "runs")


def data_home() -> Path:
    return _env_path("MAME_DATA_HOME", ROOT / "data")


def plan_path() -> Path:
    return _env_path("MAME_PLAN", EXPERIMENTS_DIR / "plan.yaml")


def real_data_dir() -> Path | None:
    value = os.environ.get("MAME_DIR")
    return Path(value).expanduser().resolve() if value else None


def dataset_override() -> Path | None:
    """``MAME_DATA``: the dataset that replaces every profile's data (None: the profile's own)."""
    value = os.environ.get("MAME_DATA", "").strip()
    return Path(value).expanduser().resolve() if value else None


def report_build_dir() -> Path:
    """Where the deck's build folders go: ``_generated/`` (Quarto sources), ``_output/`` (deck.html,
    deck.pdf) and ``_state/`` (what the last decks showed). ``MAME_REPORT_BUILD`` overrides."""
    return _env_path("MAME_REPORT_BUILD", REPORT_DIR)


def synthetic_dir(profile: str) -> Path:
    """Where the synthetic dataset of a profile is generated."""
    return data_home() / "synthetic" / profile
