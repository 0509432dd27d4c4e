"""The deck's figures: drawn with ``mame.plots`` into each run's ``figures/`` folder, and redrawn only
when the run's metrics.json is newer than the figure or the drawing code changed (a stamp in the folder),
so a re-render with no new runs and no new plotting code draws nothing.

What a run gets: its learning curves (any run with a history; the training stages' own curves come from
their deck module), the confusion matrix of a ``test`` split, and what its stage's deck module draws
(``run_figures`` in ``mame.deck.sections.registry``). Figures that compare runs (``report_figures``) go to the
report's build folder and are redrawn each time (cheap); the data slides' figures (``dataset_figures``) go there
too, redrawn only when the dataset, its counts, a sample image or the drawing code changed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from mame import config, plots
from mame.data import metadata
from mame.deck.sections import registry
from mame.engine.run import cache, records
from mame.engine.run.provenance import cpu_count
from mame.results import atomic_write_text

FIGURES = "figures"
CODE_STAMP = ".drawn-by"


@lru_cache(maxsize=4)
def code_stamp(package_dir: Path = config.PACKAGE_DIR) -> str:
    """A hash of the code that draws the figures, hashed as cache keys hash code (syntax trees, no comments):
    this module's own code and the import closure of ``mame.plots`` and of every deck stage module the registry
    lists (their ``run_figures``); not the engine code this module finds and reads runs with, so a change
    there redraws nothing."""
    drawing = {"mame.plots"} | {stage.module.__name__ for stage in registry.STAGES}
    own = cache.module_fingerprint(Path(package_dir) / "deck" / "render" / "figures.py")
    return hashlib.sha256((cache.closure_fingerprint(drawing, package_dir=Path(package_dir)) + own).encode()).hexdigest()[:16]


@dataclass
class Drawer:
    """How a deck module draws one run's figures: ``draw(name, make)`` saves ``make()`` (a Figure, or None
    for nothing to draw) as ``out/<name>.png`` unless an up-to-date one is there; ``fresh(path)`` says
    whether a file it writes itself is up to date; ``options`` are the profile's ``report:`` settings."""
    out: Path
    metrics_file: Path
    same_code: bool
    options: dict = field(default_factory=dict)

    def fresh(self, path: Path) -> bool:
        return self.same_code and path.is_file() and path.stat().st_mtime >= self.metrics_file.stat().st_mtime

    def draw(self, name: str, make) -> Path:
        path = self.out / f"{name}.png"
        if not self.fresh(path):
            fig = make()
            if fig is None:
                path.unlink(missing_ok=True)
            else:
                plots.save_figure(fig, path)
        return path


def _same_code(out: Path) -> bool:
    stamp = out / CODE_STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == code_stamp()


def drawable(entry) -> bool:
    """A run with figures: done or stale, with its metrics."""
    return entry.metrics is not None and entry.state in ("done", "stale")


def run_figures(entry, options: dict | None = None) -> dict[str, Path]:
    """Figures of one usable (done or stale) run, keyed by kind; ``options``: the profile's ``report:``
    settings (``projections``, ``projections_3d``, ``points_per_class``)."""
    if not drawable(entry):
        return {}
    out, metrics = entry.path / FIGURES, entry.metrics
    drawer = Drawer(out, entry.path / records.METRICS_FILE, _same_code(out), dict(options or {}))
    stage = registry.BY_NAME.get(entry.run.stage)
    hook = stage.hook("run_figures") if stage else None
    found = dict(hook(entry, drawer)) if hook else {}
    if metrics["history"] and "training_curves" not in found:
        found["learning_curves"] = drawer.draw("learning_curves",
                                               lambda: plots.draw_learning_curves(metrics["history"], log_loss=True))
    if "test" in metrics["classification"] and "confusion_test" not in found:
        cls = metrics["classification"]["test"]
        found["confusion_test"] = drawer.draw("confusion_test", lambda: plots.draw_confusion_matrix(
            plots.confusion_matrix_data(cls), title=f"{entry.run.id}: test (row-normalised)"))
    if found and not drawer.same_code:
        (out / CODE_STAMP).write_text(code_stamp() + "\n", encoding="utf-8")
    return found


def dataset_figures(section: dict, out_dir: Path) -> dict[str, Path | None]:
    """The "Data" slides' figures (``mame.deck.sections.dataset``) in ``out_dir``, drawn again only when what they
    show may differ: another dataset folder, other counts, a sample image or the metadata CSV changed, other drawing code (the key
    beside them, ``dataset_figures.key``)."""
    from mame.deck.sections import dataset

    names = {name: out_dir / file for name, file in dataset.FILES.items()}
    key = _dataset_key(section, dataset)
    stamp = out_dir / "dataset_figures.key"
    if key and stamp.is_file() and stamp.read_text(encoding="utf-8") == key and names["counts_figure"].is_file():
        return {name: (path if path.is_file() else None) for name, path in names.items()}
    stamp.unlink(missing_ok=True)
    drawn = dataset.dataset_figures(section, out_dir)
    for name, path in drawn.items():
        if path is None:
            names[name].unlink(missing_ok=True)
    if key and drawn["counts_figure"] is not None:
        atomic_write_text(stamp, key)
    return drawn


def _dataset_key(section: dict, dataset) -> str | None:
    """What the dataset figures depend on, hashed (None when the dataset cannot be read)."""
    if not section["ready"]:
        return None
    try:
        image_dir = metadata.find_image_dir(section["path"])
        shown = [(r.image_file, *_stat(image_dir / r.image_file)) for r in dataset.sample_records(section["path"])]
        shown.append(_stat(metadata.metadata_path(section["path"])))  # the sizes the aspect ratios are read from
    except (metadata.DataError, OSError):
        return None
    code = code_stamp() + cache.module_fingerprint(Path(dataset.__file__))
    text = json.dumps([str(section["path"]), section["counts"], shown, code], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stat(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


def report_figures(context: dict, out_dir: Path) -> dict[str, dict]:
    """The figures that compare runs, drawn into the report's build folder: ``{stage: {section key: path}}``."""
    drawn = {}
    for stage in registry.STAGES:
        hook = stage.hook("report_figures")
        if hook:
            drawn[stage.stage] = hook(context[stage.stage], out_dir)
    return drawn


def side_by_side_figures(entries: list, options: dict, steps, workers: int | None = None) -> dict[str, dict[str, Path]]:
    """``run_figures`` of each entry, a line per run on ``steps`` as it finishes: in ``workers`` forked processes
    (default: one per core, at most one per run; figures already drawn are kept there as here), else here. The
    children are forks of this process (same code, same matplotlib settings), so a figure drawn there is the one
    drawn here, byte for byte (a test compares them)."""
    def line(entry, seconds: float) -> None:
        projections = ", ".join(options.get("projections") or [])
        what = f"figures: {entry.run.id}" + (f" ({projections})" if projections else "")
        steps.say(f"{what} {'.' * max(2, 56 - len(what))} {seconds:5.1f} s")

    drawn: dict[str, dict[str, Path]] = {entry.run.id: {} for entry in entries}  # in the order given
    entries = [entry for entry in entries if drawable(entry)]  # a run without figures gets no line
    workers = workers or min(len(entries), cpu_count())
    if not entries:
        return drawn
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for entry in entries:
            drawn[entry.run.id], seconds = _timed_run_figures(entry, options)
            line(entry, seconds)
        return drawn
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(_timed_run_figures, entry, options): entry for entry in entries}
        for future in as_completed(futures):
            found, seconds = future.result()
            drawn[futures[future].run.id] = found
            line(futures[future], seconds)
    return drawn


@contextmanager
def one_thread():
    """BLAS and OpenMP on one thread. threadpoolctl limits only the libraries loaded when it is entered, and
    scikit-learn loads an OpenMP of its own (t-SNE's gradient) and SciPy's OpenBLAS when first imported: they are
    imported first. Unlimited, t-SNE spun on every core in each process drawing side by side (1.6 s alone, 7.6 s
    beside another), and its result depended on the machine's core count."""
    import sklearn.decomposition  # noqa: F401
    import sklearn.manifold  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _timed_run_figures(entry, options: dict) -> tuple[dict[str, Path], float]:
    """One run's figures on one thread (BLAS, OpenMP), wherever they are drawn: runs go side by side on the
    cores instead, and a figure does not depend on how many threads computed it."""
    start = time.perf_counter()
    with one_thread():
        found = run_figures(entry, options)
    return found, time.perf_counter() - start
