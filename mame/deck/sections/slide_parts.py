"""What every deck stage module uses: placeholders for runs that cannot be shown, accuracy per split,
the overfitting label, a classification report as slide rows.

Contract with the stages: a training stage (``scratch``, ``finetune``) stores one ``classification`` entry
per split it scored, keyed ``train`` / ``val`` / ``test`` (or ``<model>/<split>``), and its per-epoch
``history``; the other stages are described in their deck modules (``mame/deck/<stage>.py``).
"""

from __future__ import annotations

# (limit on train − val accuracy, label), first match wins; the baseline slide's caption is derived from it.
OVERFITTING = ((0.20, "High"), (0.08, "Medium"), (float("-inf"), "Low"))


def placeholder(kind: str, message: str, path: str = "") -> dict:
    """A clearly-marked gap: ``not_planned``, ``missing`` or ``failed``."""
    return {"kind": kind, "message": message, "path": path}


def entry_placeholder(entry) -> dict | None:
    """None for a usable run, else the placeholder that says why it is not shown."""
    rel = f"{entry.run.stage}/{entry.run.name}"
    if entry.state == "failed":
        return placeholder("failed", f"{entry.run.id} failed: {entry.detail}", f"runs/{rel}/notebook.ipynb")
    if entry.state in ("missing", "unreadable"):
        return placeholder("missing", f"{entry.run.id} has not run yet ({entry.detail or 'no metrics.json'})",
                           f"runs/{rel}")
    return None


def split_accuracy(metrics: dict, split: str) -> float | None:
    """Accuracy on ``split``: the entry keyed ``split`` or, failing that, the best ``<model>/split``."""
    found = metrics["classification"]
    if split in found:
        return found[split]["report"]["accuracy"]
    values = [e["report"]["accuracy"] for k, e in found.items() if k.endswith(f"/{split}")]
    return max(values) if values else None


def overfitting(train: float | None, val: float | None) -> str:
    if train is None or val is None:
        return "—"
    return next(label for limit, label in OVERFITTING if train - val > limit)


MAX_REPORT_CLASSES = 30  # a report table past this shows the lowest and the highest F1 (one slide, two columns)
MAX_SLIDE_CLASSES = 30   # a per-class table or image grid past this shows a chosen 30 and says which
MAX_MATRIX_CLASSES = 30  # a confusion matrix past this shows the classes with the most errors


def matrix_shown(labels: list, split: str) -> str | None:
    """What a confusion matrix of ``labels`` shows when it keeps ``MAX_MATRIX_CLASSES`` (None: every class)."""
    if len(labels) <= MAX_MATRIX_CLASSES:
        return None
    return (f"The {MAX_MATRIX_CLASSES} classes with the most {split} errors (as true or as predicted class) of "
            f"{len(labels)}.")


def spread(items: list, keep: int) -> list:
    """``items`` whole, or ``keep`` of them evenly spread over their order (the first and the last kept)."""
    if len(items) <= keep:
        return list(items)
    return [items[i] for i in sorted({round(k * (len(items) - 1) / (keep - 1)) for k in range(keep)})]


def report_rows(report: dict) -> dict:
    """A classification report as two columns of per-class rows plus the summary rows (seed layout); ``seeds``:
    how many seeds' reports it averages (``mame.deck.sections.seed_groups``), None for one run's. Past
    ``MAX_REPORT_CLASSES`` classes: the half with the lowest F1 and the half with the highest (``shown``: what)."""
    every = [k for k in report if k not in ("accuracy", "macro avg", "weighted avg")]
    names, shown = every, None
    if len(every) > MAX_REPORT_CLASSES:
        by_f1 = sorted(every, key=lambda k: (float(report[k]["f1-score"]), every.index(k)))
        half_of = MAX_REPORT_CLASSES // 2
        names = by_f1[:half_of] + by_f1[-half_of:]
        shown = (f"{MAX_REPORT_CLASSES} of {len(every)} classes: the {half_of} with the lowest F1 (left, lowest first) and "
                 f"the {half_of} with the highest; every class is in the run's metrics.json")
    half = (len(names) + 1) // 2
    row = lambda name: {"name": name, **{k: report[name][k] for k in ("precision", "recall", "f1-score", "support")}}
    left, right = [row(n) for n in names[:half]], [row(n) for n in names[half:]]
    total = report["macro avg"]["support"]
    summary = [{"name": "accuracy", "precision": None, "recall": None, "f1-score": report["accuracy"], "support": total},
               row("macro avg"), row("weighted avg")]
    right = right + summary
    rows = [{"left": left[i] if i < len(left) else None, "right": right[i] if i < len(right) else None}
            for i in range(max(len(left), len(right)))]
    return {"rows": rows, "n_classes": len(every), "seeds": getattr(report["accuracy"], "n", None), "shown": shown}
