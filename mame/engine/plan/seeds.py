"""A plan's seeds: ``seeds: [0, 1, 2]`` on a variant, a stage, a profile's stage block or a profile makes one
run per seed (``mame.engine.plan.load.expand`` calls ``expand_seeds`` on the runs it planned, ``plan`` being its
``Plan``). A run of several seeds is named ``<run>-s<seed>`` and gets its seed as the notebook's ``seed``
and in its cache key."""

from __future__ import annotations

from dataclasses import replace

from mame.engine.plan.profiles import PlanError, Profile


def declared_seeds(plan, profile: Profile, stage: str, variant: str) -> list[int] | None:
    """The seeds asked for a stage's variant, the most specific first: the variant's ``seeds:``, its stage's, the
    profile's ``stages.<stage>.seeds``, the profile's ``seeds:``; None when none of them says."""
    spec = plan.stages[stage]
    for found in ((spec["variants"].get(variant) or {}).get("seeds"), spec.get("seeds"),
                  (profile.stages.get(stage) or {}).get("seeds"), profile.seeds):
        if found is not None:
            return list(found)
    return None


def expand_seeds(plan, profile: Profile, runs: list) -> list:
    """One run per seed (``runs`` in plan order: what a run needs comes before it). A run runs its declared seeds
    (``declared_seeds``); one that declares none runs once per seed of the seeded runs it needs (classify per
    seed of its features), else once with the profile's seed. Seed s of a run needs seed s of a seeded run; a
    run named ``<run>-s<seed>`` unless its seeds are just the profile's one."""
    seeds_of: dict[str, tuple[list[int], bool]] = {}
    out = []
    for run in runs:
        own = declared_seeds(plan, profile, run.stage, run.variant)
        theirs = {dep: seeds_of[dep][0] for dep in (f"{s}/{n}" for s, n in run.needs.items())
                  if dep in seeds_of and seeds_of[dep][1]}
        if own is None:
            distinct = {tuple(v) for v in theirs.values()}
            if len(distinct) > 1:
                raise PlanError(f"{plan.path}: {run.id} needs runs with different seeds "
                                f"({', '.join(f'{d}: {v}' for d, v in theirs.items())}); give it its own 'seeds:'")
            own = list(distinct.pop()) if distinct else [profile.seed]
        for dep, seeds in theirs.items():
            if missing := [s for s in own if s not in seeds]:
                raise PlanError(f"{plan.path}: {run.id} runs seeds {own}, but {dep}, which it needs, runs {seeds} "
                                f"(no {missing})")
        seeded = own != [profile.seed]
        seeds_of[run.id] = (own, seeded)
        for seed in own:
            needs = {stage: f"{name}-s{seed}" if seeds_of.get(f"{stage}/{name}", ([], False))[1] else name
                     for stage, name in run.needs.items()}
            out.append(replace(run, seed=seed, seeded=seeded, seeds=tuple(own), needs=needs, params=dict(run.params),
                               reads=dict(run.reads)))
    return out
