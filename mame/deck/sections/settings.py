"""A run's settings as its slide shows them: what the plan asks for, what changed from the previous
step of a ladder, and what the profile forced instead (e.g. ``epochs 50 → 1 (smoke profile)``).

Parameters resolve as notebook defaults < profile ``params`` < the profile's ``stages.<stage>.params``
< variant < profile ``force`` < ``stages.<stage>.force`` (``mame.engine.plan.load``); the *planned* value is
the one before the two ``force`` layers, the *effective* one is ``PlannedRun.params``.
"""

from __future__ import annotations

LABELS = {"trainable_from": "unfrozen from", "dense_units": "dense head", "dropout_rate": "dropout", "l2": "L2",
          "learning_rate": "learning rate", "batch_size": "batch size", "head_epochs": "head epochs",
          "head_learning_rate": "head learning rate", "image_size": "image size", "convs_per_block": "convs per block",
          "batch_norm": "batch norm"}
# What None means for a setting (otherwise "none").
NONE_MEANS = {"image_size": "backbone default", "trainable_from": "none (frozen)", "patience": "off",
              "devices": "all GPUs"}


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def show(value, key: str = "") -> str:
    """A setting as plain text: ``5e-05``, ``512, 256``, ``yes``/``no``; None as ``NONE_MEANS`` says."""
    if value is None:
        return NONE_MEANS.get(key, "none")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(show(v) for v in value)
    return str(value)


def forced_values(planned: dict, effective: dict) -> list[dict]:
    """Settings the profile changed: ``[{key, label, planned, effective}]`` in ``effective``'s order."""
    return [{"key": k, "label": label(k), "planned": show(planned[k], k), "effective": show(v, k)}
            for k, v in effective.items() if k in planned and planned[k] != v]


def forced_text(forced: list[dict], profile_name: str) -> str:
    """``epochs 50 → 1, batch size 300 → 32 (smoke profile)``; empty when nothing was forced."""
    if not forced:
        return ""
    return ", ".join(f"{f['label']} {f['planned']} → {f['effective']}" for f in forced) + f" ({profile_name} profile)"


def changes(previous: dict | None, current: dict, keys) -> dict:
    """``{key: previous value}`` for each of ``keys`` whose value differs from ``previous`` (none without one)."""
    if previous is None:
        return {}
    return {k: previous.get(k) for k in keys if previous.get(k) != current.get(k)}


def rows(current: dict, keys, changed: dict, resolved: dict | None = None) -> list[dict]:
    """The settings list of a slide: ``[{key, label, value, changed, was}]``.

    ``resolved`` gives what a symbolic value became in the run (``trainable_from: auto`` → a layer name).
    """
    resolved = resolved or {}
    out = []
    for key in keys:
        value = show(current.get(key), key)
        if key in resolved and resolved[key] is not None and show(resolved[key], key) != value:
            value = f"{show(resolved[key], key)} ({value})"
        out.append({"key": key, "label": label(key), "value": value, "changed": key in changed,
                    "was": show(changed[key], key) if key in changed else ""})
    return out


def ladder_keys(runs: list, first: tuple[str, ...]) -> list[str]:
    """``first``, then every other key some run of the ladder sets, in the order the plan first sets them."""
    extra = dict.fromkeys(k for run in runs for k in run.overrides if k not in first)
    return list(first) + list(extra)
