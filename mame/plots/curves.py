"""Learning curves (Keras History dicts) and grouped accuracy bars."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mame.plots.base import PlotError, as_axes_list, class_colors, figure_of, new_figure

PANEL_LABELS = {"loss": "Loss", "accuracy": "Accuracy"}
BEST_COLOR = "#c0392b"
PHASE_COLOR = "#d1d5db"
MAX_LABELLED_EPOCHS = 12  # up to this many epochs, every epoch gets its tick


def draw_learning_curves(history: dict[str, list[float]], *, ax=None, title: str | None = None,
                         log_loss: bool = False, metrics: Sequence[str] = ("loss", "accuracy"),
                         best_epoch: int | None = None, phases: Sequence[dict] | None = None,
                         stacked: bool = False) -> Figure:
    """Train vs validation curves, one panel per metric of ``metrics`` present in ``history``.

    Epochs on x start at 1; a missing ``val_<metric>`` series is tolerated. ``ax`` may be one Axes
    (one metric) or a sequence of Axes, one per metric drawn. ``log_loss`` puts the loss on a log scale.
    ``best_epoch`` (1-based) draws a dotted vertical line on every panel; ``phases`` (``[{name, epochs}]``
    in order, as the training stages record them) shades the first phase and draws a line at each
    boundary between phases. ``stacked`` puts the panels one above the other (a slide column).
    """
    if not isinstance(history, dict):
        raise PlotError(f"history: expected a dict of lists (Keras History.history), got {type(history).__name__}")
    present = [m for m in metrics if _series(history, m) is not None]
    if not present:
        raise PlotError(f"history: expected at least one non-empty series among {list(metrics)}, "
                        f"got keys {sorted(history)}")
    n_epochs = max(len(_series(history, k) or []) for m in present for k in (m, f"val_{m}"))
    spans = phase_spans(phases, n_epochs) if phases else []
    _check_best_epoch(best_epoch, n_epochs)
    if ax is None:
        fig, axes = new_figure("column", nrows=len(present)) if stacked else new_figure("full", ncols=len(present))
        axes = list(axes.ravel())
    else:
        axes = as_axes_list(ax, len(present), "ax")
        fig = figure_of(axes[0])
    for panel, metric in zip(axes, present):
        _draw_metric(panel, history, metric, log=log_loss and metric == "loss", best_epoch=best_epoch, spans=spans,
                     legend=not stacked)
    if stacked:  # one legend above the panels, clear of the curves
        handles, labels = axes[0].get_legend_handles_labels()
        outside = type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
        fig.legend(handles, labels, loc="outside upper center" if outside else "upper center", ncols=len(labels),
                   fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def phase_spans(phases: Sequence[dict], n_epochs: int) -> list[dict]:
    """``[{name, first, last}]`` (1-based epochs, inclusive) of the phases that ran at least one epoch."""
    spans, last = [], 0
    for phase in phases:
        if not isinstance(phase, dict) or not isinstance(phase.get("epochs"), int) or phase["epochs"] < 0:
            raise PlotError(f"phases: expected dicts with a 'name' and a non-negative int 'epochs', got {phase!r}")
        if phase["epochs"]:
            spans.append({"name": str(phase.get("name", "")), "first": last + 1, "last": last + phase["epochs"]})
            last += phase["epochs"]
    if last != n_epochs:
        raise PlotError(f"phases: expected epochs summing to the history's {n_epochs} epochs, got {last}")
    return spans


def _check_best_epoch(best_epoch, n_epochs: int) -> None:
    if best_epoch is not None and (isinstance(best_epoch, bool) or not isinstance(best_epoch, int)
                                   or not 1 <= best_epoch <= n_epochs):
        raise PlotError(f"best_epoch: expected an epoch number from 1 to {n_epochs}, got {best_epoch!r}")


def _series(history: dict, key: str) -> list[float] | None:
    values = history.get(key)
    if values is None:
        return None
    values = np.asarray(values, dtype=float).ravel()
    return values.tolist() if values.size else None


def _draw_metric(ax: Axes, history: dict, metric: str, *, log: bool, best_epoch: int | None = None,
                 spans: list[dict] = (), legend: bool = True) -> None:
    drawn = []
    for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
        values = _series(history, key)
        if values is not None:
            ax.plot(np.arange(1, len(values) + 1), values, style, marker="o" if len(values) <= 30 else None,
                    markersize=3, label=label)
            drawn.append(values)
    n_epochs = max(len(v) for v in drawn)
    if log:
        _log_scale(ax, [v for values in drawn for v in values])
    _draw_phases(ax, spans)
    if best_epoch is not None:
        ax.axvline(best_epoch, color=BEST_COLOR, linestyle=":", linewidth=1.8, label=f"best epoch ({best_epoch})",
                   gid="best-epoch")
    if spans or best_epoch is not None:
        ax.set_xlim(0.5, n_epochs + 0.5)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(PANEL_LABELS.get(metric, metric.replace("_", " ").capitalize()))
    if n_epochs <= MAX_LABELLED_EPOCHS:
        ax.set_xticks(range(1, n_epochs + 1))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize=9)


def _log_scale(ax: Axes, values: list[float]) -> None:
    """A log y axis with plain-number labels; a narrow range is widened so that some tick is labelled."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) < 4:
        ax.set_ylim(min(positive) / 1.6, max(positive) * 1.6)


def _draw_phases(ax: Axes, spans: list[dict]) -> None:
    """Shade the first of several phases, draw a line between phases and name each at the top."""
    if len(spans) < 2:
        return
    first = spans[0]
    ax.axvspan(first["first"] - 0.5, first["last"] + 0.5, color=PHASE_COLOR, alpha=0.35, linewidth=0,
               label=f"{first['name']} phase", gid="phase-span")
    for span in spans[1:]:
        ax.axvline(span["first"] - 0.5, color="0.35", linestyle="-", linewidth=1.2, gid="phase-boundary")
    for span in spans:
        ax.annotate(span["name"], (span["first"] - 0.5, 1.0), xycoords=ax.get_xaxis_transform(), xytext=(4, -4),
                    textcoords="offset points", ha="left", va="top", fontsize=9, color="0.3", gid="phase-name")


def _minor_log_label(value: float, _position) -> str:
    """Plain numbers on a few minor log ticks (mantissa 2, 3 or 5) so the scale stays readable."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""


def draw_accuracy_bars(rows: list[dict], *, x: str, y: str | list[str], ax: Axes | None = None,
                       title: str | None = None, ylim: tuple[float, float] | None = (0, 1),
                       hue: str | None = None) -> Figure:
    """Grouped bars with value labels: one group per distinct ``rows[i][x]``.

    Wide rows: ``y`` lists the columns drawn side by side (e.g. train/val/test). Long rows:
    ``y`` is one column and ``hue`` names the column that splits each group (e.g. classifier).
    Missing values (absent, None or NaN) leave a gap. A value with a ``std`` (a mean over seeds,
    ``mame.deck.sections.seed_groups.Spread``) gets an error bar of ± that std.
    """
    groups, series, values, errors = _bar_table(rows, x, y, hue)
    if ax is None:
        fig, axes = new_figure("full")
        ax = axes[0, 0]
    else:
        fig = figure_of(ax)
    width = 0.8 / len(series)
    colours = class_colors(len(series))
    positions = np.arange(len(groups))
    for i, name in enumerate(series):
        heights = values[:, i]
        spread = errors[:, i] if np.isfinite(errors[:, i]).any() else None
        bars = ax.bar(positions + (i - (len(series) - 1) / 2) * width, heights, width,
                      label=name, color=colours[i], yerr=spread, capsize=3 if spread is not None else 0,
                      error_kw={"elinewidth": 1, "ecolor": "#374151"})
        ax.bar_label(bars, labels=["" if math.isnan(h) else f"{h:.2f}" for h in heights],
                     fontsize=8 if len(groups) * len(series) > 16 else 9, padding=2)
    _format_bar_axes(ax, groups, x, y, ylim, legend=len(series) > 1)
    if title:
        ax.set_title(title)
    return fig


def _format_bar_axes(ax: Axes, groups: list[str], x: str, y: str | list[str],
                     ylim: tuple[float, float] | None, *, legend: bool) -> None:
    tilt = len(groups) > 6
    ax.set_xticks(range(len(groups)), groups, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_xlabel(x)
    ax.set_ylabel(y if isinstance(y, str) else "Accuracy")
    if ylim is not None:
        low, high = ylim
        ax.set_ylim(low, high + 0.08 * (high - low))  # headroom for the value labels
        ax.set_yticks([t for t in ax.get_yticks() if low <= t <= high])
    ax.grid(True, axis="y", alpha=0.3)
    if legend:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _bar_table(rows: list[dict], x: str, y: str | list[str], hue: str | None):
    """(group names, series names, values[group, series] with NaN for missing, errors[group, series]: each
    value's ``std`` where it has one, else NaN)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise PlotError("rows: expected a non-empty list of dicts")
    if hue is not None and not isinstance(y, str):
        raise PlotError("y: expected one column name when hue is given")
    for key in [x] + ([hue] if hue else []):
        if any(key not in r for r in rows):
            raise PlotError(f"rows: expected every row to have the column {key!r}")
    groups = list(dict.fromkeys(str(r[x]) for r in rows))
    series = (list(dict.fromkeys(str(r[hue]) for r in rows)) if hue
              else [y] if isinstance(y, str) else list(y))
    if not series:
        raise PlotError("y: expected at least one column name")
    values = np.full((len(groups), len(series)), np.nan)
    errors = np.full_like(values, np.nan)
    for row in rows:
        g = groups.index(str(row[x]))
        for s, name in enumerate(series):
            column = y if hue else name
            if hue and str(row[hue]) != name:
                continue
            values[g, s] = _number(row.get(column), column)
            errors[g, s] = getattr(row.get(column), "std", np.nan)
    if np.isnan(values).all():
        raise PlotError(f"rows: expected numbers in the column(s) {series if not hue else [y]}, found none")
    return groups, series, values, errors


def _number(value, column: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PlotError(f"rows: expected a number in column {column!r}, got {value!r}") from None
