"""The deck's figures: drawn with ``mame.plots`` into each run's ``figures/`` folder, and redrawn only
when the run's metrics.json is newer than the figure or the drawing code changed (a stamp in the folder),
so a re-render with no new runs and no new plotting code draws nothing.
Figures that compare runs go to the report's build folder and are redrawn each time (cheap)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from mame import plots
from mame.classes import CLASS_NAMES
from mame.deck import evaluation_figures, explanations, figures3d, similarity
from mame.deck.dataset import dataset_figures
from mame.deck.sections import MAX_POINTS_PER_CLASS
from mame.engine import runs

FIGURES = "figures"
TRAINING_STAGES = ("scratch", "finetune")


CODE_STAMP = ".drawn-by"


@lru_cache(maxsize=1)
def code_stamp() -> str:
    """A hash of the code that draws the figures (``mame/plots``, this module, ``evaluation_figures``, ``explanations``,
    ``figures3d``, ``similarity``)."""
    digest = hashlib.sha256()
    drawers = [Path(__file__), *(Path(m.__file__) for m in (evaluation_figures, explanations, figures3d, similarity))]
    for path in sorted(Path(plots.__file__).parent.glob("*.py")) + drawers:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _same_code(out: Path) -> bool:
    stamp = out / CODE_STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == code_stamp()


def _fresh(path: Path, metrics_file: Path, same_code: bool = True) -> bool:
    return same_code and path.is_file() and path.stat().st_mtime >= metrics_file.stat().st_mtime


def _draw(path: Path, metrics_file: Path, draw, same_code: bool = True) -> Path:
    """Draw and save unless an up-to-date figure is already there; ``draw`` may return None (nothing
    to draw: no file is left at ``path``)."""
    if not _fresh(path, metrics_file, same_code):
        fig = draw()
        if fig is None:
            path.unlink(missing_ok=True)
        else:
            plots.save_figure(fig, path)
    return path


def run_figures(entry, *, projections=("pca",), projections_3d=(),
                points_per_class: int = MAX_POINTS_PER_CLASS) -> dict[str, Path]:
    """Figures of one usable (done or stale) run, keyed by kind (2-D ``projections`` and interactive
    ``projections_3d`` are methods of ``project_features``)."""
    if entry.metrics is None or entry.state not in ("done", "stale"):
        return {}
    metrics_file, out, metrics = entry.path / runs.METRICS_FILE, entry.path / FIGURES, entry.metrics
    same = _same_code(out)
    draw = lambda name, make: _draw(out / f"{name}.png", metrics_file, make, same)
    found = {}
    if metrics["history"] and entry.run.stage in TRAINING_STAGES:
        found["training_curves"] = draw("training_curves", lambda: training_curves(metrics))
    elif metrics["history"]:
        found["learning_curves"] = draw("learning_curves",
                                        lambda: plots.draw_learning_curves(metrics["history"], log_loss=True))
    for name, key in _confusion_figures(entry).items():
        cls = metrics["classification"][key]
        if entry.run.stage == "evaluate":  # the final slide: the whole slide width, no title (the slide has one)
            found[name] = draw(name, lambda cls=cls: plots.draw_confusion_matrix(
                plots.confusion_matrix_data(cls), size="matrix", font_size=evaluation_figures.MATRIX_FONT))
            continue
        title = f"{entry.run.id}: {key} (row-normalised)"
        found[name] = draw(name, lambda cls=cls, title=title: plots.draw_confusion_matrix(
            plots.confusion_matrix_data(cls), title=title))
    if entry.run.stage == "features":
        found.update(_projection_figures(entry, out, metrics_file, projections, same, points_per_class))
        found.update(figures3d.projection_3d_figures(entry, out, projections_3d, lambda path: _fresh(path, metrics_file, same),
                                                     _load_features, points_per_class))
        if (metrics["metrics"].get("structure") or {}).get("outliers"):
            outliers = draw("structure_outliers", lambda: outlier_figure(entry))
            if outliers.is_file():
                found["structure_outliers"] = outliers
    if entry.run.stage == "evaluate":
        found.update(evaluation_figures.evaluation_figures(entry, draw))
    if entry.run.stage == "explain":
        found.update(explanations.explain_figures(entry, draw))
    if entry.run.stage == "similarity" and metrics["metrics"].get("examples"):
        panel = draw("similarity_examples", lambda: similarity.run_examples_figure(entry))
        if panel.is_file():
            found["similarity_examples"] = panel
    if found and not same:
        (out / CODE_STAMP).write_text(code_stamp() + "\n", encoding="utf-8")
    return found


def _confusion_figures(entry) -> dict[str, str]:
    """Figure name -> classification key: the classify run's best model, the evaluate run's reference
    model (best single model on validation) on test, and any other run's test split."""
    if entry.run.stage == "evaluate":
        key = evaluation_figures.reference_key(entry.metrics)
        return {"confusion_test": key} if key else {}
    best = entry.metrics["metrics"].get("best_classifier")
    found = {}
    for key in entry.metrics["classification"]:
        model = key.rpartition("/")[0]
        if entry.run.stage == "classify" and model == best:  # the deck shows the best model's matrix
            found[f"confusion_{model}"] = key
        elif key == "test":
            found["confusion_test"] = key
    return found


def training_curves(metrics: dict):
    """Loss (log scale) and accuracy, train and validation, stacked for a slide column, with the best
    epoch and the boundary between training phases (head, then fine-tuning) marked."""
    m = metrics["metrics"]
    return plots.draw_learning_curves(metrics["history"], log_loss=True, stacked=True,
                                      best_epoch=m.get("best_epoch") or None, phases=m.get("phases") or None)


def _projection_figures(entry, out: Path, metrics_file: Path, methods, same_code: bool,
                        per_class: int = MAX_POINTS_PER_CLASS) -> dict:
    arrays = [entry.path / entry.metrics["artifacts"][k] for k in ("features_train", "features_val")
              if k in entry.metrics["artifacts"]]
    if not arrays:
        return {}
    found = {}
    for method in methods:
        path = out / f"projection_{method}-{per_class}.png"  # another sample size is another figure
        if not _fresh(path, metrics_file, same_code):
            x, y, _ = _load_features(arrays)
            data = plots.project_features(x, y, method=method, max_per_class=per_class, seed=0)
            plots.save_figure(plots.draw_projection(data, class_names=CLASS_NAMES, legend="centroids", size="half"), path)
        found[f"projection_{method}"] = path
    return found


def outlier_figure(entry):
    """Each class's validation image farthest from its class centroid (``metrics.structure.outliers``),
    opened from the run's dataset for display (None when no image can be opened)."""
    from mame.data import metadata
    from mame.deck.evaluation_figures import thumbnail

    try:
        image_dir = metadata.find_image_dir(entry.metrics["run"]["dataset"].get("path", ""))
    except (metadata.DataError, OSError):
        return None
    shown = []
    for name, items in entry.metrics["metrics"]["structure"]["outliers"].items():
        for item in items[:1]:
            picture = thumbnail(image_dir / item["file"])
            if picture is not None:
                shown.append((f"{name}\n(distance {item['distance']:.2f})", picture))
    if not shown:
        return None
    return plots.draw_image_grid([p for _, p in shown], [t for t, _ in shown], ncols=8)


def _load_features(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Features, labels and image files (None when an array file holds no ``files``) of the given splits."""
    xs, ys, files = [], [], []
    for path in paths:
        with np.load(path) as arrays:
            xs.append(arrays["features"])
            ys.append(arrays["labels"])
            files.append(arrays["files"] if "files" in arrays.files else None)
    return np.concatenate(xs), np.concatenate(ys), None if any(f is None for f in files) else np.concatenate(files)


def classify_bars(rows: list[dict], out_dir: Path) -> Path | None:
    """Validation accuracy of each classifier on each backbone's features."""
    if not rows:
        return None
    table = [{"backbone": r["backbone_name"], "classifier": r["classifier"].replace("_", " "),
              "validation accuracy": r["val_accuracy"]} for r in rows]
    fig = plots.draw_accuracy_bars(table, x="backbone", y="validation accuracy", hue="classifier",
                                   title="Classifiers on extracted features (validation)")
    return plots.save_figure(fig, out_dir / "classify_bars.png")


def ladder_figure(ladders: list[dict], out_dir: Path) -> Path | None:
    """Validation accuracy per fine-tuning step, one line per backbone of several steps."""
    steps = [{"backbone": ladder["name"], "step": s["step"], "value": s.get("val")}
             for ladder in ladders if len(ladder["steps"]) > 1 for s in ladder["steps"]]
    if not any(s["value"] is not None for s in steps):
        return None
    fig = plots.draw_ladder(plots.ladder_data(steps))
    return plots.save_figure(fig, out_dir / "finetune_ladder.png")


def backbone_bars(rows: list[dict], out_dir: Path) -> Path | None:
    """Train and validation accuracy of each backbone's best fine-tuning step."""
    if not rows:
        return None
    table = [{"backbone": f"{r['name']}\n#{r['step']}", "train": r["train"], "validation": r["val"]} for r in rows]
    fig, axes = plots.new_figure("column")
    plots.draw_accuracy_bars(table, x="backbone", y=["train", "validation"], ax=axes[0, 0])
    return plots.save_figure(fig, out_dir / "finetune_backbones.png")


def report_figures(context: dict, out_dir: Path) -> dict[str, Path | None]:
    """The figures that compare runs, drawn into the report's build folder."""
    return {"classify_bars": classify_bars(context["classify"]["own_rows"], out_dir),
            "finetune_ladder": ladder_figure(context["finetune"]["multi_step"], out_dir),
            "finetune_backbones": backbone_bars(context["finetune"]["comparison"], out_dir),
            "similarity_scratch": similarity.scratch_figure(context["similarity"], out_dir),
            **dataset_figures(context["dataset"], out_dir)}
