"""The package layout's promises: import-linter contracts, no cycles, light data layer, every module imports."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mame
from mame import config

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts over the ``mame`` package found in ``root``."""
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path):
    """A private copy of the package and its pyproject.toml, to break on purpose."""
    shutil.copytree(config.PACKAGE_DIR, tmp_path / "mame", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(config.ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_import_contracts_hold():
    result = lint_imports(config.ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 kept, 0 broken" in result.stdout


def test_a_stage_importing_the_engine_breaks_the_contracts(tree):
    stage = tree / "mame" / "stages" / "classify.py"
    stage.write_text(stage.read_text() + "\nimport mame.engine  # breaks the layering\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Stages never import the engine or the deck BROKEN" in result.stdout
    assert "mame.stages.classify -> mame.engine" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("deck/tools.py", "def _later():\n    from mame.deck import render\n", "No cycles"),
    ("data/metadata.py", "def _later():\n    from mame.models import builders\n", "Layers"),
    ("plots/base.py", "def _later():\n    import tensorflow\n", "Base modules, plots and the engine"),
    ("models/builders.py", "def _later():\n    from mame.plots import base\n", "Models and plots stay independent"),
    ("deck/sections/evaluate.py", "def _later():\n    from mame.stages.support import significance\n",
     "The deck imports no stage code"),
    ("engine/plan/load.py", "def _later():\n    from mame.engine.run import records\n", "The plan is below running it"),
    ("deck/sections/slide_parts.py", "def _later():\n    from mame.deck.render import build\n", "No cycles"),
])
def test_each_contract_catches_what_it_forbids(tree, module, line, contract):
    path = tree / "mame" / module
    path.write_text(path.read_text() + "\n\n" + line)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert any(l.startswith(contract) and l.endswith("BROKEN") for l in result.stdout.splitlines()), result.stdout


def test_the_data_layer_imports_no_tensorflow_at_import_time():
    code = ("import importlib, pkgutil, sys, mame.data\n"
            "names = [m.name for m in pkgutil.walk_packages(mame.data.__path__, 'mame.data.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(len(names), *sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, timeout=120)
    count, *heavy = result.stdout.split()
    assert result.returncode == 0 and int(count) >= 12, result.stderr  # metadata, pipeline, check, download, synthetic/*
    assert heavy == [], f"importing the data layer loaded {heavy}"


def test_every_module_imports():
    for info in pkgutil.walk_packages(mame.__path__, "mame."):
        if info.name != "mame.__main__":
            importlib.import_module(info.name)


def test_python_dash_m_mame_runs():
    result = subprocess.run([sys.executable, "-m", "mame", "--help"], cwd=config.ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "run" in result.stdout and "report" in result.stdout


def module_names_used_twice(package: Path) -> dict[str, list[str]]:
    """Module names found in more than one folder of ``package``, but a stage's name in exactly the stages' folder
    and the deck's sections (a stage's code and its slides are one thing: that stage)."""
    from mame.deck.sections.registry import STAGES

    folders: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            folders.setdefault(path.stem, set()).add(path.parent.relative_to(package.parent).as_posix())
    stage_pair = {"mame/stages", "mame/deck/sections"}
    return {name: sorted(where) for name, where in folders.items()
            if len(where) > 1 and not (name in {s.stage for s in STAGES} and where == stage_pair)}


def test_a_module_name_says_one_thing(tree):
    assert module_names_used_twice(config.PACKAGE_DIR) == {}
    (tree / "mame" / "deck" / "render" / "check.py").write_text('"""Another job under a name the plan uses."""\n')
    assert module_names_used_twice(tree / "mame") == {"check": ["mame/deck/render", "mame/engine/plan"]}
