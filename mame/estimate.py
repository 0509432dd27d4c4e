"""``python -m mame estimate``: expected time of each stage on one accelerator, from a FLOP count.

For every planned run of a profile, the model its notebook would build is counted layer by layer
(``mame.models.flops``) at the run's image size; images per epoch come from the official split sizes
(``full``) or the profile's synthetic counts. Time = FLOPs / sustained throughput, the throughput being
a parameter (``--tflops``, default 100: about a third of an H100/H200's dense bf16 peak, typical for
CNN training). An estimate: data loading, validation passes and start-up are not in it.
"""

from __future__ import annotations

from collections import defaultdict

from mame.classes import CLASS_NAMES, TRAIN_PER_CLASS, VAL_PER_CLASS
from mame.engine.plan import PlannedRun, expand, load_plan

FORWARD_ONLY = {"features": 1.0, "similarity": 1.0}  # extraction: one forward pass per image
DEFAULT_TFLOPS = 100.0


def split_sizes(profile) -> dict[str, int]:
    data = profile.data
    if data.get("source") == "synthetic":
        return {"train": data["train_per_class"] * len(CLASS_NAMES), "val": data["val_per_class"] * len(CLASS_NAMES)}
    return {"train": TRAIN_PER_CLASS * len(CLASS_NAMES), "val": VAL_PER_CLASS * len(CLASS_NAMES)}


def run_epochs(run: PlannedRun) -> int:
    """Passes over the training images: the training stages' epochs (fine-tuning: head + backbone), 1 for
    the extraction stages."""
    p = run.params
    return {"scratch": p.get("epochs", 0), "finetune": p.get("head_epochs", 0) + p.get("epochs", 0)}.get(run.stage, 1)


def run_flops(run: PlannedRun, sizes: dict[str, int]) -> float | None:
    """FLOPs of one planned run (None for stages without a network to count). The training stages' models
    come from their own ``build_model`` with the config built from the run's params; the extraction stages
    are counted as the backbone under fine-tuning's default head (a rounding error next to the backbone)."""
    from mame.models import flops
    from mame.stages import finetune, scratch

    p = run.params
    per_class = p.get("max_per_class")
    train = min(sizes["train"], per_class * len(CLASS_NAMES)) if per_class else sizes["train"]
    val = min(sizes["val"], per_class * len(CLASS_NAMES)) if per_class else sizes["val"]
    if run.stage == "scratch":
        config = scratch.ScratchConfig.from_parameters(p)
        model, epochs = scratch.build_model(config), config.epochs
    elif run.stage == "finetune":
        config = finetune.FinetuneConfig.from_parameters(p)
        model, epochs = finetune.build_model(run.backbone, config), config.head_epochs + config.epochs
    elif run.stage in FORWARD_ONLY:
        model = finetune.build_model(run.backbone, finetune.FinetuneConfig(image_size=p.get("image_size")))
        return 2.0 * flops.model_macs(model) * (train + val)
    else:
        return None
    forward = 2.0 * flops.model_macs(model)
    return epochs * (flops.training_flops_per_image(model) * train + forward * val)


def estimate(profile_name: str, *, tflops: float = DEFAULT_TFLOPS, plan_file=None) -> list[dict]:
    plan = load_plan(plan_file)
    profile = plan.profile(profile_name)
    sizes = split_sizes(profile)
    per_stage: dict[str, dict] = defaultdict(lambda: {"runs": 0, "flops": 0.0, "epochs": 0, "sizes": set()})
    for run in expand(plan, profile_name):
        counted = run_flops(run, sizes)
        if counted is not None:
            row = per_stage[run.stage]
            row["runs"] += 1
            row["flops"] += counted
            row["epochs"] += run_epochs(run)
            row["sizes"].add(run.params.get("image_size") or backbone_size(run.backbone))
    return [{"stage": stage, "runs": row["runs"], "pflops": row["flops"] / 1e15, "epochs": row["epochs"],
             "image_sizes": sorted(row["sizes"]), "hours": row["flops"] / (tflops * 1e12) / 3600}
            for stage, row in per_stage.items()]


def backbone_size(backbone: str | None) -> int | None:
    from mame.models import backbones

    return backbones.get_backbone(backbone).default_size if backbone else None


def format_estimate(rows: list[dict], profile: str, tflops: float) -> str:
    lines = [f"Estimated compute on one accelerator at {tflops:g} TFLOP/s sustained, profile {profile} "
             "(an estimate from FLOP counts: no data loading, validation overhead or start-up)",
             f"{'stage':<10} {'runs':>5} {'PFLOPs':>10} {'hours':>8}"]
    lines += [f"{r['stage']:<10} {r['runs']:>5} {r['pflops']:>10.1f} {r['hours']:>8.2f}" for r in rows]
    lines.append(f"{'total':<10} {sum(r['runs'] for r in rows):>5} {sum(r['pflops'] for r in rows):>10.1f} "
                 f"{sum(r['hours'] for r in rows):>8.2f}")
    return "\n".join(lines)


def format_markdown(rows: list[dict], tflops: float) -> str:
    """The estimate as the README's table (``python -m mame estimate --profile full --markdown``)."""
    lines = ["| stage | runs | passes over train (epochs, all runs) | input px | compute | "
             f"estimate at {tflops:g} TFLOP/s |", "| --- | ---: | ---: | --- | ---: | ---: |"]
    for r in rows:
        sizes = ", ".join(str(s) for s in r["image_sizes"] if s)
        lines.append(f"| `{r['stage']}` | {r['runs']} | {r['epochs']} | {sizes} | {r['pflops']:.1f} PFLOP | "
                     f"{_duration(r['hours'])} |")
    total = sum(r["hours"] for r in rows)
    lines.append(f"| total | {sum(r['runs'] for r in rows)} | | | {sum(r['pflops'] for r in rows):.1f} PFLOP | "
                 f"{_duration(total)} |")
    return "\n".join(lines)


def _duration(hours: float) -> str:
    return "< 1 min" if hours < 1 / 60 else f"{60 * hours:.0f} min" if hours < 1 else f"{hours:.1f} h"


README_BEGIN, README_END = "<!-- estimate --profile full: generated by `make docs`, do not edit -->", "<!-- end of estimate -->"


def replace_block(text: str, table: str, *, where: str = "README.md") -> str:
    """``text`` with the table between the README's estimate markers replaced by ``table``."""
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{where}: the estimate markers are missing ({README_BEGIN!r} ... {README_END!r})")
    head, rest = text.split(README_BEGIN, 1)
    return head + README_BEGIN + "\n" + table + "\n" + README_END + rest.split(README_END, 1)[1]
