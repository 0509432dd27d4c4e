"""What a plan's JSON Schema cannot know, checked when the plan loads (for every profile, before any run starts):
the notebooks' parameters, and references between stages, variants, backbones and profiles.

Each problem is one line, as the schema's are (``mame.engine.plan.check``): file and line, key path, problem, and
"did you mean ...?" where a close name exists.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from mame import config
from mame.engine.plan.check import did_you_mean, locator
from mame.engine.plan.profiles import RUNNER_PARAMS, PlanError
from mame.engine.plan.schema_build import PARAMETERS

VARIANT_KEYS = ("about", "needs", "backbones", "reads", "seeds")  # reserved in a variant: not notebook parameters


@lru_cache(maxsize=32)
def notebook_parameters(notebook: Path) -> dict:
    """The names and default values of the notebook's ``parameters`` cell."""
    import papermill

    if not notebook.exists():
        raise PlanError(f"{notebook}: notebook not found")
    found = papermill.inspect_notebook(str(notebook))
    defaults = {}
    for key, info in found.items():
        try:
            defaults[key] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            raise PlanError(f"{notebook}: parameter {key!r} must default to a literal "
                            f"(number, string, list, dict, True/False/None), not {info['default']!r}") from None
    return defaults


def notebook_path(spec: dict) -> Path:
    notebook = Path(spec["notebook"])
    return notebook if notebook.is_absolute() else config.EXPERIMENTS_DIR / notebook


def settable(stage_spec: dict) -> list[str]:
    """The parameters a plan may set for a stage: its notebook's, less the runner's own."""
    return [k for k in notebook_parameters(notebook_path(stage_spec)) if k not in RUNNER_PARAMS]


def plan_problems(path: Path, text: str, raw: dict) -> list[str]:
    """Every problem of a plan that passed its schema, one line each (empty: none)."""
    at = locator(path, text)
    stages = raw["stages"]
    for spec in stages.values():
        if not notebook_path(spec).exists():
            return [at(["stages", _name(stages, spec), "notebook"], f"{notebook_path(spec)}: notebook not found")]
    problems = [p for name, spec in stages.items() for p in _stage_problems(at, stages, name, spec)]
    for name, profile in raw["profiles"].items():
        problems += _profile_problems(at, stages, name, profile)
    return problems


def _name(stages: dict, spec: dict) -> str:
    return next(name for name, s in stages.items() if s is spec)


def _unknown(at, keys, names, allowed, what: str, *, also=()) -> list[str]:
    """A line for each of ``names`` not in ``allowed``; "did you mean" looks in ``also`` too (a variant's reserved keys)."""
    return [at(keys + [n], f"{what}{did_you_mean(n, [*allowed, *also])}") for n in names if n not in allowed]


def _stage_problems(at, stages: dict, name: str, spec: dict) -> list[str]:
    order, where, out = list(stages), ["stages", name], []
    for key in ("needs", "reads"):
        earlier = order[:order.index(name)]
        out += [at(where + [key], f"{need!r} must be a stage listed before {name!r} (earlier: {', '.join(earlier) or 'none'})")
                for need in spec.get(key, []) if need not in earlier]
    declared, backbones = settable(spec), spec.get("backbones", [])
    notebook = notebook_path(spec).name
    for variant, overrides in (spec.get("variants") or {}).items():
        overrides, here = overrides or {}, where + ["variants", variant]
        params = [k for k in overrides if k not in VARIANT_KEYS]
        out += _unknown(at, here, params, declared, f"not a parameter of {notebook}", also=VARIANT_KEYS)
        out += _unknown(at, here + ["backbones"], overrides.get("backbones", []), backbones, f"not a backbone of stage {name!r}")
        out += _unknown(at, here + ["reads"], overrides.get("reads", []), order, "not a stage of the plan")
        out += _unknown(at, here + ["needs"], overrides.get("needs", {}), spec.get("needs", []), f"not a stage {name!r} needs")
    return out


def _profile_problems(at, stages: dict, name: str, profile: dict) -> list[str]:
    where, out = ["profiles", name], []
    # a profile's own params go to every stage whose notebook has them: a name no notebook of this plan has, nor the
    # shipped ones (whose parameters the schema knows: a profile may serve a plan with fewer stages), is a typo
    every = sorted({k for spec in stages.values() for k in settable(spec)} | set(PARAMETERS))
    for kind in ("params", "force"):
        out += _unknown(at, where + [kind], profile.get(kind) or {}, every, "not a parameter of any stage's notebook")
    all_backbones = {b for spec in stages.values() for b in spec.get("backbones", [])}
    out += _unknown(at, where + ["backbones"], profile.get("backbones") or [], all_backbones, "no stage runs this backbone")
    for stage, block in (profile.get("stages") or {}).items():
        if stage not in stages:
            out += _unknown(at, where + ["stages"], [stage], stages, "not a stage of the plan")
            continue
        out += _profile_stage_problems(at, where + ["stages", stage], stages[stage], block or {}, stage)
    return out


def _profile_stage_problems(at, where: list, spec: dict, block: dict, stage: str) -> list[str]:
    declared, notebook = settable(spec), notebook_path(spec).name
    out = _unknown(at, where + ["backbones"], block.get("backbones") or [], spec.get("backbones", []),
                   f"not a backbone of stage {stage!r}")
    variants = spec.get("variants") or {"default": {}}
    for variant, settings in (block.get("variants") or {}).items():
        if variant not in variants:
            out += _unknown(at, where + ["variants"], [variant], variants, f"not a variant of stage {stage!r}")
            continue
        out += _unknown(at, where + ["variants", variant, "backbones"], (settings or {}).get("backbones") or [],
                        spec.get("backbones", []), f"not a backbone of stage {stage!r}")
    layers = [([kind], block.get(kind) or {}) for kind in ("params", "force")]
    layers += [(["pretrained", kind], (block.get("pretrained") or {}).get(kind) or {}) for kind in ("params", "force")]
    for keys, layer in layers:
        out += _unknown(at, where + keys, layer, declared, f"not a parameter of {notebook}")
        if keys[0] == "pretrained" and "weights" in layer:
            out.append(at(where + keys + ["weights"], "cannot be set here: these settings depend on the weights"))
    if ("pretrained" in block or block.get("random_weights", "run") != "run") and "weights" not in declared:
        out.append(at(where, f"has settings by weights, but {notebook} has no 'weights' parameter"))
    return out
