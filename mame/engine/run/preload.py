"""What the forkserver imports once before it forks a process per run (``mame.engine.run.processes``): the
libraries every run's notebook imports that cost seconds, and the engine that executes it. Nothing here
touches a GPU or creates TensorFlow's runtime (no device listed, no tensor made): each run's process does that
with its own environment. A library that fails to import is left for the run, which shows the error."""

from __future__ import annotations

import importlib
import os

from mame.engine.run.environment import QUIET_ENV

MODULES = ("numpy", "scipy", "pandas", "sklearn", "sklearn.metrics", "sklearn.linear_model", "PIL.Image",
           "matplotlib.pyplot", "tensorflow", "keras", "IPython.core.interactiveshell", "papermill", "nbformat",
           "mame.engine.run.notebook_engine", "mame.engine.run.execute")

for key, value in QUIET_ENV.items():
    os.environ.setdefault(key, value)
# what the libraries' C++ side prints while they load (before any log setting applies) is not the runner's to show
_saved = os.dup(2)
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 2)
try:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the run imports it again and shows the error there
            continue
finally:
    os.dup2(_saved, 2)
    os.close(_saved)
    os.close(_null)
