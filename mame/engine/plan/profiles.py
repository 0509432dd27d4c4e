"""A plan's profiles: data, scale and the settings per stage, by weights too (``stages.<stage>.params``,
``force``, ``pretrained`` and ``random_weights``), and how a run's parameters resolve through them."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TIMEOUTS = {"start": 120, "execution": 3600}  # seconds (the plan schema shows them as the defaults)
RUNNER_PARAMS = ("run_dir", "data_dir", "inputs", "profile", "backbone", "seed", "checkpoint_dir")


class PlanError(ValueError):
    """The plan file is malformed or refers to something that does not exist."""


@dataclass(frozen=True)
class Profile:
    name: str
    data: dict
    params: dict
    force: dict
    backbones: tuple[str, ...] | None
    seed: int
    start_timeout: int
    execution_timeout: int
    report: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # stage -> {"params": {...}, "force": {...}}
    resources: dict = field(default_factory=dict)  # what one run asks a Ray cluster for: {num_cpus, num_gpus, memory}
    seeds: tuple[int, ...] | None = None  # ``seeds: [0, 1, 2]``: one run per seed wherever the plan says none
    size_from_data: bool = False  # the auto profile: sized from the dataset and the machine (``sizing``)
    sizing: tuple[str, ...] = ()  # what the sizing chose, as printed before a command runs (empty: not sized)
    sized_for: str = ""           # what it was sized for, as the setup slide says it ("700 training images, ...")

    def resources_for(self, stage: str) -> dict:
        """What one run of ``stage`` asks the Ray executor for: the profile's ``resources`` under the stage
        block's own (``stages.<stage>.resources``)."""
        return {**self.resources, **((self.stages.get(stage) or {}).get("resources") or {})}

    def stage_params(self, stage: str, *, pretrained: bool = False) -> dict:
        return self._layer(stage, "params", pretrained)

    def stage_force(self, stage: str, *, pretrained: bool = False) -> dict:
        return self._layer(stage, "force", pretrained)

    def _layer(self, stage: str, kind: str, pretrained: bool) -> dict:
        block = self.stages.get(stage) or {}
        out = dict(block.get(kind) or {})
        if pretrained:
            out.update((block.get("pretrained") or {}).get(kind) or {})
        return out

    def runs_backbone(self, stage: str, backbone: str | None) -> bool:
        """Whether this profile runs ``stage`` for ``backbone``: its ``backbones:`` and the stage block's."""
        if backbone is None:
            return True
        only = (self.stages.get(stage) or {}).get("backbones")
        return (self.backbones is None or backbone in self.backbones) and (only is None or backbone in only)

    def runs_variant(self, stage: str, variant: str, backbone: str | None) -> bool:
        """Whether this profile runs ``variant`` of ``stage`` for ``backbone`` (``stages.<stage>.variants.<variant>
        .backbones``; a stage without backbones: an empty list leaves the variant out)."""
        only = (((self.stages.get(stage) or {}).get("variants") or {}).get(variant) or {}).get("backbones")
        return only is None or (backbone in only if backbone is not None else bool(only))

    def weights_rule(self, stage: str) -> str:
        """``run`` (default) or ``skip``: whether this profile runs ``stage`` for a backbone left with random
        weights (``stages.<stage>.random_weights``)."""
        return str((self.stages.get(stage) or {}).get("random_weights", "run"))

    def asks_weights(self, stage: str) -> bool:
        """Whether the plan must know, for ``stage``, which backbones get ImageNet weights."""
        block = self.stages.get(stage) or {}
        return "pretrained" in block or self.weights_rule(stage) != "run"


def parse_profile(name: str, spec: dict) -> Profile:
    """A profile of a plan that passed its checks (``mame.engine.plan.load_plan``)."""
    timeouts = spec.get("timeouts", {})
    backbones = spec.get("backbones")
    return Profile(name=name, data=spec["data"], params=spec.get("params") or {}, force=spec.get("force") or {},
                   backbones=tuple(backbones) if backbones else None, seed=spec.get("seed", 0),
                   start_timeout=timeouts.get("start", DEFAULT_TIMEOUTS["start"]),
                   execution_timeout=timeouts.get("execution", DEFAULT_TIMEOUTS["execution"]),
                   report=spec.get("report") or {}, stages=spec.get("stages") or {}, resources=spec.get("resources") or {},
                   seeds=tuple(spec["seeds"]) if "seeds" in spec else None,
                   size_from_data=bool(spec.get("size_from_data", False)))


def resolve_params(declared: dict, profile: Profile, stage: str, overrides: dict, *, forced: bool = True,
                   pretrained: bool = False) -> dict:
    """notebook defaults < profile params < the profile's params for this stage (and, with ``pretrained``,
    its ``pretrained.params``) < variant < profile force < the profile's force for this stage (and its
    ``pretrained.force``); the force layers only when ``forced``."""
    params = {k: v for k, v in declared.items() if k not in RUNNER_PARAMS}
    layers = [profile.params, profile.stage_params(stage, pretrained=pretrained), overrides]
    if forced:
        layers += [profile.force, profile.stage_force(stage, pretrained=pretrained)]
    for layer in layers:
        params.update({k: v for k, v in layer.items() if k in params})
    return params
