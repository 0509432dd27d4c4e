"""A stage's notebook parameters, declared once, in Python: the one source of every default.

Each stage module declares its stage parameters as a ``StageConfig`` dataclass, each field with its default
and the one-line comment its notebook shows (``param``), and ``NOTEBOOK = Notebook(...)``: which notebook
the fields go to and how that notebook declares the runner's parameters (``RUNNER_DEFAULTS``; papermill
needs them in the cell, the runner sets them). The notebook's ``parameters`` cell is generated from that
declaration by ``python -m mame.stages.support.notebook_cells`` (``make docs``), and a test fails when a committed
notebook differs from what it writes: edit the dataclass, never the cell.

Stage code takes its defaults from the same fields (``FeaturesConfig.batch_size`` as a keyword default), so
a function called outside a notebook behaves as the notebook does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields

DOC = "doc"  # a field's metadata key: the comment its notebook line carries


def param(default, doc: str = ""):
    """A config field with its ``default`` and the comment (``doc``) of its line in the notebook's parameters
    cell; a list or dict default is copied for every instance."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={DOC: doc})
    return field(default=default, metadata={DOC: doc})


class StageConfig:
    """Base of a stage's parameter dataclass: the single declaration of its notebook's stage parameters."""

    @classmethod
    def defaults(cls) -> dict:
        """Each field's default value (a fresh copy for list defaults)."""
        return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(cls)}

    @classmethod
    def docs(cls) -> dict:
        """Each field's comment in the notebook (empty where it has none)."""
        return {f.name: f.metadata.get(DOC, "") for f in fields(cls)}

    @classmethod
    def from_parameters(cls, namespace: Mapping, *, strict: bool = True):
        """The config whose fields take their values from ``namespace`` (a notebook's ``globals()``, a planned
        run's params); other names there are ignored. ``strict``: every field must be there, else ValueError;
        otherwise a missing field keeps its default."""
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in namespace]
        if strict and missing:
            raise ValueError(f"{cls.__name__}: no value for {', '.join(missing)} (expected every field: {', '.join(names)})")
        return cls(**{name: namespace[name] for name in names if name in namespace})


# The runner's parameters (``python -m mame run`` sets them; the engine's ``RUNNER_PARAMS``, a test compares), with
# the values a notebook run by hand gets: papermill needs them declared in the parameters cell.
RUNNER_DEFAULTS = {"run_dir": ".", "data_dir": "data/synthetic/smoke", "inputs": {}, "profile": "smoke",
                   "backbone": None, "seed": 0}
CHECKPOINT_DIR_DOC = "per-epoch checkpoints (None: inside run_dir, no resume across runs)"
IDENTITY = '{"stage", "backbone", "variant", "name", "seed", "folder", "step"}'  # the runner's identity of a run


@dataclass(frozen=True)
class Notebook:
    """How ``experiments/<name>`` declares its parameters: the runner's first (``RUNNER_DEFAULTS``, with this
    stage's ``backbone``, ``inputs`` and its comment, and ``checkpoint_dir`` for a stage that resumes), then the
    fields of ``config``, then those of ``outside`` (parameters the notebook passes besides its config)."""
    name: str
    config: type
    backbone: str | None = None
    inputs: dict = field(default_factory=dict)
    inputs_doc: str = ""
    checkpoints: bool = False
    outside: type | None = None

    def runner(self) -> list[tuple[str, object, str]]:
        """(name, default, comment) of each runner parameter, in the cell's order."""
        values = {**RUNNER_DEFAULTS, "backbone": self.backbone, "inputs": self.inputs}
        lines = [(name, value, self.inputs_doc if name == "inputs" else "") for name, value in values.items()]
        return lines + ([("checkpoint_dir", None, CHECKPOINT_DIR_DOC)] if self.checkpoints else [])

    def stage(self) -> list[tuple[str, object, str]]:
        """(name, default, comment) of each stage parameter: the config's fields, then ``outside``'s."""
        out = []
        for declared in (self.config, self.outside):
            if declared is not None:
                docs = declared.docs()
                out += [(name, value, docs[name]) for name, value in declared.defaults().items()]
        return out
