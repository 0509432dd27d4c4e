"""A plan's profiles: data, scale and the settings per stage, by weights too (``stages.<stage>.params``,
``force``, ``pretrained`` and ``random_weights``), and how a run's parameters resolve through them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    def weights_rule(self, stage: str) -> str:
        """``run`` (default) or ``skip``: whether this profile runs ``stage`` for a backbone left with random
        weights (``stages.<stage>.random_weights``)."""
        return str((self.stages.get(stage) or {}).get("random_weights", "run"))

    def asks_weights(self, stage: str) -> bool:
        """Whether the plan must know, for ``stage``, which backbones get ImageNet weights."""
        block = self.stages.get(stage) or {}
        return "pretrained" in block or self.weights_rule(stage) != "run"


def parse_profile(path: Path, name: str, spec: dict) -> Profile:
    if not isinstance(spec, dict) or "data" not in spec:
        raise PlanError(f"{path}: profile {name!r} needs a 'data' mapping")
    timeouts = spec.get("timeouts", {})
    backbones = spec.get("backbones")
    return Profile(name=name, data=spec["data"], params=spec.get("params", {}), force=spec.get("force", {}),
                   backbones=tuple(backbones) if backbones else None, seed=int(spec.get("seed", 0)),
                   start_timeout=int(timeouts.get("start", 120)),
                   execution_timeout=int(timeouts.get("execution", 3600)), report=spec.get("report", {}),
                   stages=_check_profile_stages(path, name, spec.get("stages") or {}),
                   resources=_check_resources(f"{path}: profile {name!r}, resources", spec.get("resources") or {}),
                   seeds=tuple(check_seeds(f"{path}: profile {name!r}, seeds", spec["seeds"])) if "seeds" in spec else None)


def check_seeds(where: str, seeds) -> list[int]:
    """``seeds: [0, 1, 2]``: a non-empty list of distinct non-negative integers."""
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise PlanError(f"{where}: expected a non-empty list of distinct non-negative integers, not {seeds!r}")
    return list(seeds)


RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


def _check_resources(where: str, resources) -> dict:
    """``{num_cpus: 4, num_gpus: 1, memory: 8e9}``: what one run asks Ray for (numbers; memory in bytes)."""
    if not isinstance(resources, dict) or set(resources) - set(RESOURCE_KEYS):
        raise PlanError(f"{where}: expected a mapping with {', '.join(RESOURCE_KEYS)}, not {resources!r}")
    bad = {k: v for k, v in resources.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
    if bad:
        raise PlanError(f"{where}: {', '.join(f'{k}: {v!r}' for k, v in bad.items())} is not a number of 0 or more")
    return dict(resources)


PROFILE_STAGE_KEYS = ("params", "force", "pretrained", "random_weights", "backbones", "resources", "seeds")
WEIGHTS_RULES = ("run", "skip")


def _check_profile_stages(path: Path, name: str, stages: dict) -> dict:
    for stage, block in stages.items():
        where = f"{path}: profile {name!r}, stages.{stage}"
        if not isinstance(block, dict) or set(block) - set(PROFILE_STAGE_KEYS):
            raise PlanError(f"{where}: expected a mapping with {', '.join(map(repr, PROFILE_STAGE_KEYS))}")
        pretrained = block.get("pretrained", {})
        if not isinstance(pretrained, dict) or set(pretrained) - {"params", "force"}:
            raise PlanError(f"{where}.pretrained: expected a mapping with 'params' and/or 'force' (the settings of "
                            "runs whose backbone starts from ImageNet weights)")
        if "weights" in {**(pretrained.get("params") or {}), **(pretrained.get("force") or {})}:
            raise PlanError(f"{where}.pretrained: cannot set 'weights' (it depends on them)")
        if not isinstance(block.get("backbones", []), list):
            raise PlanError(f"{where}.backbones: expected a list of the stage's backbones")
        _check_resources(f"{where}.resources", block.get("resources") or {})
        if "seeds" in block:
            block["seeds"] = check_seeds(f"{where}.seeds", block["seeds"])
        if block.get("random_weights", "run") not in WEIGHTS_RULES:
            raise PlanError(f"{where}.random_weights: expected one of {', '.join(WEIGHTS_RULES)}, "
                            f"not {block['random_weights']!r}")
    return stages


def check_profile_stage(path: Path, profile: Profile, stage: str, notebook: Path, declared: dict) -> None:
    for kind, block in (("params", profile.stage_params(stage, pretrained=True)),
                        ("force", profile.stage_force(stage, pretrained=True))):
        unknown = [k for k in block if k not in declared or k in RUNNER_PARAMS]
        if unknown:
            raise PlanError(f"{path}: profile {profile.name!r} stages.{stage}.{kind} sets {unknown}, "
                            f"not parameters of {notebook.name}")
    if profile.asks_weights(stage) and "weights" not in declared:
        raise PlanError(f"{path}: profile {profile.name!r} stages.{stage} has settings by weights, but "
                        f"{notebook.name} has no 'weights' parameter")


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
