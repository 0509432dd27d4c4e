"""The ``parameters`` cell of every stage notebook, generated from its stage's declaration (``mame.stages.support.parameters``).

``python -m mame.stages.support.notebook_cells`` (part of ``make docs``) rewrites the cell of each notebook in
``experiments/`` whose text differs from what the declaration gives, and nothing else of the notebook (the
cell keeps its id and its ``parameters`` tag); ``--check`` only lists them and exits 1 if there are any. A
stage declares ``NOTEBOOK`` (a ``parameters.Notebook``) in its module ``mame.stages.<stage>``; the notebook is
``experiments/NN_<stage>.ipynb``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from mame import config
from mame.files import atomic_write
from mame.stages.support.parameters import Notebook

PARAMETERS_TAG = "parameters"
RUNNER_HEADER = "# Set by the runner (python -m mame run):"
COMMAND = "python -m mame.stages.support.notebook_cells"


def declared() -> list[Notebook]:
    """Every stage's ``NOTEBOOK``, in notebook order."""
    import mame.stages

    found = []
    for info in pkgutil.iter_modules(mame.stages.__path__):
        module = importlib.import_module(f"mame.stages.{info.name}")
        if isinstance(getattr(module, "NOTEBOOK", None), Notebook):
            found.append(module.NOTEBOOK)
    return sorted(found, key=lambda n: n.name)


def literal(value) -> str:
    """``value`` as the Python literal the cell shows (strings in double quotes); ValueError if it is not one
    that reads back as itself."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(literal(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    else:
        raise ValueError(f"{value!r}: a notebook parameter defaults to a literal (number, string, list, dict, "
                         "True/False/None)")
    if ast.literal_eval(text) != value:
        raise ValueError(f"{value!r} does not read back from {text!r}")
    return text


def _line(name: str, value, doc: str) -> str:
    return f"{name} = {literal(value)}" + (f"  # {doc}" if doc else "")


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def cell_source(notebook: Notebook) -> str:
    """The text of ``notebook``'s parameters cell: the runner's parameters, then the stage's."""
    where = " and ".join(_dotted(c) for c in (notebook.config, notebook.outside) if c is not None)
    header = (f"# Stage parameters, generated from {where} ({COMMAND}: edit the dataclass, not this cell); "
              "variants in experiments/plan.yaml override them:")
    lines = [RUNNER_HEADER, *(_line(*p) for p in notebook.runner()), header, *(_line(*p) for p in notebook.stage())]
    return "\n".join(lines)


def parameters_cell(nb, path: Path):
    """The one code cell tagged ``parameters`` of ``nb`` (ValueError naming ``path`` if there is not exactly one)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and PARAMETERS_TAG in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: expected one code cell tagged {PARAMETERS_TAG!r}, found {len(cells)}")
    return cells[0]


def generated(notebook: Notebook, path: Path) -> tuple[str, str]:
    """(the notebook file's text now, its text with the generated parameters cell)."""
    import nbformat

    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    parameters_cell(nb, path).source = cell_source(notebook)
    nbformat.validate(nb)
    return text, nbformat.writes(nb) + "\n"


def _paths(folder: Path) -> list[tuple[Notebook, Path]]:
    pairs = [(n, folder / n.name) for n in declared()]
    missing = [str(path) for _, path in pairs if not path.is_file()]
    if missing:
        raise ValueError(f"notebook not found: {', '.join(missing)}")
    return pairs


def stale(folder: Path = config.EXPERIMENTS_DIR) -> list[Path]:
    """The stage notebooks in ``folder`` whose text is not what the generator writes."""
    return [path for notebook, path in _paths(folder) if len(set(generated(notebook, path))) > 1]


def write(folder: Path = config.EXPERIMENTS_DIR) -> list[Path]:
    """Rewrite the stage notebooks in ``folder`` that are stale (atomically); returns them."""
    changed = []
    for notebook, path in _paths(folder):
        now, wanted = generated(notebook, path)
        if now != wanted:
            atomic_write(path, wanted)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list the notebooks whose cell is stale (exit 1 if any)")
    parser.add_argument("--folder", type=Path, default=config.EXPERIMENTS_DIR, help="the notebooks' folder")
    args = parser.parse_args(argv)
    found = stale(args.folder) if args.check else write(args.folder)
    for path in found:
        print(f"{path}: parameters cell {'stale' if args.check else 'written'}")
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
