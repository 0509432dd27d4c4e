"""What a profile does by weights: the settings of runs whose backbone starts from ImageNet weights
(``stages.<stage>.pretrained``) and the runs it leaves out when a backbone would start from random weights
(``stages.<stage>.random_weights: skip``), with what needs or reads them. The plan asks
``mame.models.weight_files.outlook``, which decides as the run will, without importing Keras or
downloading anything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeftOut:
    """A run the profile leaves out because its backbone would start from random weights."""

    id: str
    stage: str
    backbone: str | None
    variant: str
    reason: str   # why (no ImageNet weights for the backbone, or a run it needs was left out)
    how_to: str = ""  # how a user gets the weights
    root: str = ""    # the first cause, for a run left out because of another (its reason when empty)

    def __post_init__(self):
        if not self.root:
            object.__setattr__(self, "root", self.reason)


def weights_outlook(profile, stage: str, backbone: str | None, params: dict, seen: dict):
    """ImageNet or random init for a run of ``backbone`` with ``params`` (resolved without the ``pretrained``
    layers), where the profile's settings of ``stage`` depend on it (None elsewhere); ``seen`` memoises."""
    if backbone is None or not profile.asks_weights(stage):
        return None
    from mame.models import weight_files

    policy = str(params["weights"])
    key = (backbone, policy)
    if key not in seen:
        seen[key] = weight_files.outlook(backbone, policy)
    return seen[key]


def leave_out_dependants(runs: list, dropped: list[LeftOut]) -> list:
    """``runs`` without those that need a left-out run, or read a stage whose runs of their backbone were all
    left out (features/vgg16-finetuned reads VGG16's fine-tuning); each is added to ``dropped``."""
    while True:
        gone = {d.id: d for d in dropped}
        newly = [LeftOut(run.id, run.stage, run.backbone, run.variant, f"it needs {cause.id}, which is left out: {cause.root}",
                         cause.how_to, cause.root)
                 for run in runs if (cause := _left_out_cause(run, gone)) is not None]
        if not newly:
            return _without_reads_of(runs, gone)
        dropped.extend(newly)
        ids = {d.id for d in newly}
        runs = [r for r in runs if r.id not in ids]


def _left_out_cause(run, gone: dict[str, LeftOut]) -> LeftOut | None:
    """The left-out run that ``run`` needs, or the first left-out run of a stage it reads and of whose runs
    of its backbone none is left; None when nothing it depends on is left out."""
    needed = next((gone[f"{s}/{n}"] for s, n in run.needs.items() if f"{s}/{n}" in gone), None)
    if needed is not None or run.backbone is None:
        return needed
    return next((d for s, names in run.reads.items() if not names
                 for d in gone.values() if (d.stage, d.backbone) == (s, run.backbone)), None)


def _without_reads_of(runs: list, gone: dict[str, LeftOut]) -> list:
    """``runs`` whose ``reads`` no longer name a left-out run (evaluate reads every features run)."""
    for run in runs:
        run.reads = {stage: [n for n in names if f"{stage}/{n}" not in gone] for stage, names in run.reads.items()}
    return runs
