"""The deck's figures: drawn with ``mame.plots`` into each run's ``figures/`` folder, and redrawn only
when the run's metrics.json is newer than the figure (so a re-render with no new runs draws nothing).
Figures that compare runs go to the report's build folder and are redrawn each time (cheap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mame import plots
from mame.classes import CLASS_NAMES
from mame.engine import runs

FIGURES = "figures"
MAX_POINTS_PER_CLASS = 100  # as the seed deck: "approximately 100 points per class"


def _fresh(path: Path, metrics_file: Path) -> bool:
    return path.is_file() and path.stat().st_mtime >= metrics_file.stat().st_mtime


def _draw(path: Path, metrics_file: Path, draw) -> Path:
    """Draw and save unless an up-to-date figure is already there."""
    if not _fresh(path, metrics_file):
        plots.save_figure(draw(), path)
    return path


def run_figures(entry, *, projections=("pca",)) -> dict[str, Path]:
    """Figures of one usable (done or stale) run, keyed by kind."""
    if entry.metrics is None or entry.state not in ("done", "stale"):
        return {}
    metrics_file, out, found = entry.path / runs.METRICS_FILE, entry.path / FIGURES, {}
    metrics = entry.metrics
    if metrics["history"]:
        found["learning_curves"] = _draw(out / "learning_curves.png", metrics_file,
                                         lambda: plots.draw_learning_curves(metrics["history"], log_loss=True))
    best = metrics["metrics"].get("best_classifier")
    for key, cls in metrics["classification"].items():
        model, _, split = key.rpartition("/")
        if entry.run.stage == "classify" and model == best:  # the deck shows the best model's matrix
            name = f"confusion_{model}"
        elif key == "test":
            name = "confusion_test"
        else:
            continue
        title = f"{entry.run.id}: {key} (row-normalised)"
        found[name] = _draw(out / f"{name}.png", metrics_file,
                            lambda cls=cls, title=title: plots.draw_confusion_matrix(
                                plots.confusion_matrix_data(cls), title=title))
    if entry.run.stage == "features":
        found.update(_projection_figures(entry, out, metrics_file, projections))
    return found


def _projection_figures(entry, out: Path, metrics_file: Path, methods) -> dict:
    arrays = [entry.path / entry.metrics["artifacts"][k] for k in ("features_train", "features_val")
              if k in entry.metrics["artifacts"]]
    if not arrays:
        return {}
    found = {}
    for method in methods:
        path = out / f"projection_{method}.png"
        if not _fresh(path, metrics_file):
            x, y = _load_features(arrays)
            data = plots.project_features(x, y, method=method, max_per_class=MAX_POINTS_PER_CLASS, seed=0)
            title = f"{entry.metrics['metrics'].get('name', entry.run.backbone)} features: {method.upper()}"
            plots.save_figure(plots.draw_projection(data, class_names=CLASS_NAMES, title=title), path)
        found[f"projection_{method}"] = path
    return found


def _load_features(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for path in paths:
        with np.load(path) as arrays:
            xs.append(arrays["features"])
            ys.append(arrays["labels"])
    return np.concatenate(xs), np.concatenate(ys)


def classify_bars(rows: list[dict], out_dir: Path) -> Path | None:
    """Validation accuracy of each classifier on each backbone's features."""
    if not rows:
        return None
    table = [{"backbone": r["backbone_name"], "classifier": r["classifier"].replace("_", " "),
              "validation accuracy": r["val_accuracy"]} for r in rows]
    fig = plots.draw_accuracy_bars(table, x="backbone", y="validation accuracy", hue="classifier",
                                   title="Classifiers on extracted features (validation)")
    return plots.save_figure(fig, out_dir / "classify_bars.png")
