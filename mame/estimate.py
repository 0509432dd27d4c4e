"""``python -m mame estimate``: expected time of each stage on one accelerator, from a FLOP count.

For every planned run of a profile, the model its notebook would build is counted layer by layer
(``mame.models.flops``) at the run's image size; images per epoch and classes come from the official split
sizes (``full``), the profile's synthetic counts, or a dataset folder's own (``--data``). Time = FLOPs /
sustained throughput, the throughput being a parameter (``--tflops``, default 100: about a third of an
H100/H200's dense bf16 peak, typical for CNN training). An estimate: data loading, validation passes and start-up are not in it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from mame.classes import CLASS_NAMES, TRAIN_PER_CLASS, VAL_PER_CLASS
from mame.engine.plan.load import PlannedRun, expand, load_plan

FORWARD_ONLY = {"features": 1.0, "similarity": 1.0}  # extraction: one forward pass per image
DEFAULT_TFLOPS = 100.0


def split_sizes(profile, dataset: dict | None = None) -> dict[str, int]:
    """Training and validation images and classes: a dataset folder's own (``dataset``: its prepared description, as
    a run records it), the synthetic data's (per class x MAMe's 29) or the real MAMe's official split."""
    data = profile.data
    if dataset is not None and dataset.get("source") == "folder":
        return {"train": dataset["counts"]["train"], "val": dataset["counts"]["val"], "classes": len(dataset["classes"])}
    if data.get("source") == "folder":
        raise ValueError(f"profile {profile.name!r} reads a dataset folder: its sizes come from the prepared dataset")
    if data.get("source") == "synthetic":
        return {"train": data["train_per_class"] * len(CLASS_NAMES), "val": data["val_per_class"] * len(CLASS_NAMES),
                "classes": len(CLASS_NAMES)}
    return {"train": TRAIN_PER_CLASS * len(CLASS_NAMES), "val": VAL_PER_CLASS * len(CLASS_NAMES), "classes": len(CLASS_NAMES)}


def run_epochs(run: PlannedRun) -> int:
    """Passes over the training images: the training stages' epochs (fine-tuning: head + backbone), 1 for
    the extraction stages."""
    p = run.params
    return {"scratch": p.get("epochs", 0), "finetune": p.get("head_epochs", 0) + p.get("epochs", 0)}.get(run.stage, 1)


def run_images(run: PlannedRun, sizes: dict[str, int]) -> tuple[int, int]:
    """The training and validation images one planned run reads: the split sizes, capped by its ``max_per_class``."""
    per_class = run.params.get("max_per_class")
    cap = per_class * sizes["classes"] if per_class else None
    return tuple(min(sizes[split], cap) if cap else sizes[split] for split in ("train", "val"))


# The config fields that shape a model's layers (what ``build_model`` reads, less L2, a penalty on the weights): runs
# that agree on these have one model, so each architecture is built and measured once per process.
FINETUNE_ARCHITECTURE = ("image_size", "placement", "dense_units", "dropout_rate")
SCRATCH_ARCHITECTURE = ("image_size", "filters", "convs_per_block", "batch_norm", "pooling", "dense_units", "dropout_rate")


@dataclass(frozen=True)
class ModelFacts:
    """What the estimates read of a built model: MACs of one forward pass, parameters (all and trainable, the backbone
    frozen as ``build_model`` leaves it) and each layer's output size for one image (at fixed shape)."""
    macs: int
    params: int
    trainable: int
    outputs: tuple[int, ...]


@lru_cache(maxsize=None)
def _facts(stage: str, backbone: str | None, classes: int, architecture: tuple) -> ModelFacts:
    """The ``ModelFacts`` of the model ``stage`` builds for ``backbone`` with the ``architecture`` fields given (the
    rest at their defaults; fine-tuning at fixed shape)."""
    import math

    from mame.models import flops
    from mame.stages import finetune, scratch

    fields = {name: list(value) if isinstance(value, tuple) else value for name, value in architecture}
    if stage == "scratch":
        model = scratch.build_model(scratch.ScratchConfig(**fields), classes)
    else:
        model = finetune.build_model(backbone, finetune.FinetuneConfig(**fields, shape="fixed"), classes)
    outputs = tuple(math.prod(int(d) for d in layer.output.shape[1:]) for layer in model.layers
                    if getattr(layer, "output", None) is not None and not isinstance(layer.output, (list, tuple)))
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return ModelFacts(flops.model_macs(model), int(model.count_params()), int(trainable), outputs)


def model_facts(stage: str, backbone: str | None, config, classes: int) -> ModelFacts:
    """``ModelFacts`` of the model a run of ``stage`` with ``config`` builds for ``classes`` classes (each architecture
    built once per process: a plan's runs share a few)."""
    names = SCRATCH_ARCHITECTURE if stage == "scratch" else FINETUNE_ARCHITECTURE
    values = ((name, getattr(config, name)) for name in names)
    return _facts(stage if stage == "scratch" else "finetune", backbone, classes,
                  tuple((n, tuple(v) if isinstance(v, list) else v) for n, v in values))


def run_flops(run: PlannedRun, sizes: dict[str, int]) -> float | None:
    """FLOPs of one planned run (None for stages without a network to count). The training stages' models
    come from their own ``build_model`` with the config built from the run's params; the extraction stages
    are counted as the backbone under fine-tuning's default head (a rounding error next to the backbone). A
    variable-shape run is counted at fixed shape (the same pixel budget) times its padded batches' extra pixels
    (``aspect_buckets.PADDED_PIXELS``)."""
    from mame.data.aspect_buckets import PADDED_PIXELS
    from mame.models import flops
    from mame.stages import finetune, scratch

    p = run.params
    classes = sizes["classes"]
    train, val = run_images(run, sizes)
    pad = PADDED_PIXELS if p.get("shape") == "variable" else 1.0
    if run.stage == "scratch":
        config = scratch.ScratchConfig.from_parameters(p)
        macs, epochs = model_facts("scratch", None, config, classes).macs, config.epochs
    elif run.stage == "finetune":
        config = finetune.FinetuneConfig.from_parameters(p)
        macs, epochs = model_facts("finetune", run.backbone, config, classes).macs, config.head_epochs + config.epochs
    elif run.stage in FORWARD_ONLY:
        macs = model_facts(run.stage, run.backbone, finetune.FinetuneConfig(image_size=p.get("image_size")), classes).macs
        return 2.0 * macs * (train + val) * pad
    else:
        return None
    return epochs * (2.0 * macs * flops.TRAIN_FORWARD_RATIO * train + 2.0 * macs * val) * pad


def measured_seconds(run: PlannedRun, sizes: dict[str, int], costs: list, device: str) -> float | None:
    """Seconds of one planned run from per-image costs measured on ``device`` (``mame.measured_costs``): a forward pass
    per train and val image for the extraction stages; for fine-tuning, each epoch's training images at the measured
    training cost and its validation images at the forward one. None where this backbone was not measured there."""
    from mame.data.aspect_buckets import PADDED_PIXELS
    from mame.measured_costs import best

    if run.stage not in (*FORWARD_ONLY, "finetune") or not run.backbone:
        return None
    p = run.params
    train, val = run_images(run, sizes)
    size = p.get("image_size") or backbone_size(run.backbone)
    pad = PADDED_PIXELS if p.get("shape") == "variable" else 1.0
    forward = best(costs, "forward", run.backbone, device)
    if forward is None:
        return None
    if run.stage in FORWARD_ONLY:
        return forward.at(size) * (train + val) * pad
    trained = best(costs, "train", run.backbone, device)
    if trained is None:
        return None
    return run_epochs(run) * (trained.at(size) * train + forward.at(size) * val) * pad


def measured(profile_name: str, costs: list, *, plan_file=None, dataset: dict | None = None, plan=None) -> dict:
    """Per device kind with measured costs, per stage they cover: hours over the runs measured, those runs, all runs."""
    plan = plan or load_plan(plan_file)
    sizes = split_sizes(plan.profile(profile_name), dataset)
    runs = [r for r in expand(plan, profile_name) if r.stage in (*FORWARD_ONLY, "finetune")]
    found = {}
    for device in sorted({c.device for c in costs}):
        rows: dict[str, dict] = {}
        for run in runs:
            row = rows.setdefault(run.stage, {"hours": 0.0, "measured": 0, "runs": 0})
            row["runs"] += 1
            seconds = measured_seconds(run, sizes, costs, device)
            if seconds is not None:
                row["hours"] += seconds / 3600
                row["measured"] += 1
        found[device] = rows
    return found


def format_measured(found: dict, costs: list, where) -> str:
    """What the measured per-image costs give, and which measurements they are (or that there are none)."""
    from mame.measured_costs import MIN_IMAGES

    if not costs:
        return (f"No per-image costs measured in {where}: the hours above are FLOP counts only (a features or finetune "
                f"run over {MIN_IMAGES} images or more measures its backbone's on the device it ran on).")
    lines = [f"From per-image costs measured by the runs in {where} (one run at a time; a cost carried to another "
             "image size by its pixel count):"]
    for device, rows in found.items():
        lines.append(f"  on {device}: " + ", ".join(
            f"{stage} {row['hours']:.2f} h ({row['measured']} of {row['runs']} runs measured)" for stage, row in rows.items()))
    lines.append("  measured by: " + "; ".join(
        f"{c.run} ({c.kind}, {c.backbone}, {c.device_name or c.device}): {c.seconds_per_image * 1000:.2f} ms an image at "
        f"{c.image_size} px over {c.images:,} images" for c in costs))
    return "\n".join(lines)


def estimate(profile_name: str, *, tflops: float = DEFAULT_TFLOPS, plan_file=None, dataset: dict | None = None,
             plan=None) -> list[dict]:
    plan = plan or load_plan(plan_file)
    profile = plan.profile(profile_name)
    sizes = split_sizes(profile, dataset)
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


def wall_times(profile_name: str, gpus: list[int], *, tflops: float = DEFAULT_TFLOPS, plan_file=None, dataset: dict | None = None,
               overhead_s: float = 0.0, plan=None) -> list[dict]:
    """The plan's wall time on each count of ``gpus`` accelerators, each run on one (``--executor ray``, one GPU per run):
    runs start as soon as every run they need or read has ended and an accelerator is free, the one heading
    the longest remaining chain first. Also the critical path (no number of GPUs goes below it) and the
    total / G bound. Each run lasts its FLOPs at ``tflops`` plus ``overhead_s``; uncounted runs (classifiers,
    evaluation, Grad-CAM) last ``overhead_s`` only."""
    plan = plan or load_plan(plan_file)
    profile = plan.profile(profile_name)
    sizes = split_sizes(profile, dataset)
    runs = expand(plan, profile_name)
    hours = {r.id: (run_flops(r, sizes) or 0.0) / (tflops * 1e12) / 3600 + overhead_s / 3600 for r in runs}
    deps = {r.id: [f"{s}/{n}" for s, n in r.needs.items()] + [f"{s}/{n}" for s, names in r.reads.items() for n in names]
            for r in runs}
    return [{"gpus": g, **list_schedule([r.id for r in runs], deps, hours, g), "total_hours": sum(hours.values())}
            for g in gpus]


def list_schedule(order: list[str], deps: dict[str, list[str]], hours: dict[str, float], workers: int) -> dict:
    """Makespan of running ``order`` (a dependency order) on ``workers`` machines, longest-remaining-chain
    first; and the critical path: the longest chain of runs through ``deps``."""
    import heapq

    tail: dict[str, float] = {}  # the longest chain from a run to the end, itself included
    after: dict[str, list[str]] = {run: [] for run in order}
    for run in order:
        for dep in deps[run]:
            after[dep].append(run)
    for run in reversed(order):
        tail[run] = hours[run] + max((tail[n] for n in after[run]), default=0.0)
    head = max(order, key=lambda r: tail[r]) if order else None
    path = []
    while head is not None:
        path.append(head)
        head = max(after[head], key=lambda r: tail[r]) if after[head] else None
    left = {run: len(deps[run]) for run in order}
    ready = [(-tail[r], order.index(r), r) for r in order if not left[r]]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (end, run)
    now = 0.0
    while ready or running:
        while ready and len(running) < workers:
            _, _, run = heapq.heappop(ready)
            heapq.heappush(running, (now + hours[run], run))
        now, run = heapq.heappop(running)
        for nxt in after[run]:
            left[nxt] -= 1
            if not left[nxt]:
                heapq.heappush(ready, (-tail[nxt], order.index(nxt), nxt))
    return {"hours": now, "critical_path_hours": tail[path[0]] if path else 0.0, "critical_path": path}


def format_wall(walls: list[dict], profile: str, tflops: float) -> str:
    total = walls[0]["total_hours"] if walls else 0.0
    lines = [f"Wall time of profile {profile} with one run per accelerator at {tflops:g} TFLOP/s "
             f"(total compute {_duration(total)}; critical path {_duration(walls[0]['critical_path_hours']) if walls else '-'}: "
             f"{' -> '.join(walls[0]['critical_path']) if walls else ''})",
             f"{'GPUs':>5} {'wall':>10} {'total / GPUs':>14}"]
    lines += [f"{w['gpus']:>5} {_duration(w['hours']):>10} {_duration(total / w['gpus']):>14}" for w in walls]
    return "\n".join(lines)


def run_needs(run: PlannedRun, sizes: dict[str, int]) -> dict | None:
    """What one run asks of a machine, estimated (not measured) from the model it builds: GPU memory at the
    run's batch size and precision, and disk for what it writes (feature arrays; a training run's
    model.keras with its optimizer state). None for stages without a network to count.

    Training: fp32 weights, their gradients and Adam's two moments (16 bytes a trainable parameter, 4 a
    frozen one), plus every layer's output kept for the backward pass and its gradient (2 x batch x
    activations, 2 bytes each in mixed_bfloat16, else 4). Extraction: the weights and the largest layer's
    input and output for one batch. Allocator slack, cuDNN workspaces and the input pipeline come on top: take it as the
    order of magnitude a GPU must offer, and check ``nvidia-smi`` on the first real run."""

    from mame.models import backbones
    from mame.stages import finetune, scratch

    p = run.params
    images = sum(run_images(run, sizes))
    act_bytes = 2 if p.get("precision") == "mixed_bfloat16" else 4
    batch = int(p.get("batch_size") or 32)
    if run.stage == "scratch":
        facts = model_facts("scratch", None, scratch.ScratchConfig.from_parameters(p), sizes["classes"])
    elif run.stage in ("finetune", *FORWARD_ONLY):
        config = finetune.FinetuneConfig.from_parameters(p) if run.stage == "finetune" else \
            finetune.FinetuneConfig(image_size=p.get("image_size"))
        facts = model_facts(run.stage, run.backbone, config, sizes["classes"])  # variable shape: at fixed shape, padded
    else:
        return None
    from mame.data.aspect_buckets import PADDED_PIXELS

    pad = PADDED_PIXELS if p.get("shape") == "variable" else 1.0
    sizes_out = [size * pad for size in facts.outputs]
    activations = sum(sizes_out)
    params = facts.params
    if run.stage in FORWARD_ONLY:  # inference keeps a layer's input and output at a time, not every layer's
        gpu = params * 4 + 2 * batch * max(sizes_out) * act_bytes
        spec = backbones.get_backbone(run.backbone)
        disk = len(spec.feature_layers) * spec.feature_dim * images * 4 if run.stage == "features" else 0
    else:
        trainable = facts.trainable
        gpu = trainable * 16 + (params - trainable) * 4 + 2 * batch * activations * act_bytes
        disk = params * 4 + trainable * 8  # model.keras: weights and Adam's moments
    return {"gpu_gb": gpu / 1e9, "disk_gb": disk / 1e9, "batch_size": batch,
            "image_size": p.get("image_size") or backbone_size(run.backbone),
            "precision": p.get("precision", "float32")}


def needs_table(profile_name: str, *, plan_file=None, dataset: dict | None = None, plan=None) -> list[dict]:
    """``run_needs`` for each (stage, backbone) of the plan: the largest run of each."""
    plan = plan or load_plan(plan_file)
    profile = plan.profile(profile_name)
    sizes = split_sizes(profile, dataset)
    rows: dict[tuple, dict] = {}
    for run in expand(plan, profile_name):
        needs = run_needs(run, sizes)
        if needs is None:
            continue
        key = (run.stage, run.backbone or "-")
        if key not in rows or needs["gpu_gb"] > rows[key]["gpu_gb"]:
            rows[key] = {"stage": run.stage, "backbone": run.backbone or "-", "run": run.id, **needs}
    return list(rows.values())


def format_needs(rows: list[dict], profile: str) -> str:
    lines = [f"What one run asks of a GPU box, profile {profile} (estimated from the models: memory = weights, "
             "gradients, Adam moments and one batch's activations; disk = feature arrays / model.keras)",
             f"{'stage':<11} {'backbone':<18} {'batch':>5} {'px':>4} {'precision':<15} {'GPU GB':>7} {'disk GB':>8}"]
    lines += [f"{r['stage']:<11} {r['backbone']:<18} {r['batch_size']:>5} {r['image_size'] or '-':>4} "
              f"{r['precision']:<15} {r['gpu_gb']:>7.1f} {r['disk_gb']:>8.2f}" for r in rows]
    return "\n".join(lines)


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
    """The estimate as docs/estimates.md's table (``python -m mame estimate --profile full --markdown``)."""
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


DOC = "docs/estimates.md"  # where `make docs` writes the generated block
BLOCK_BEGIN, BLOCK_END = "<!-- estimate --profile full: generated by `make docs`, do not edit -->", "<!-- end of estimate -->"


def markdown_block(table: str, extras: list[str]) -> str:
    """What goes between the markers: the markdown table, then each plain-text table (wall time, needs) fenced."""
    return "\n\n".join([table, *(f"```\n{text}\n```" for text in extras)])


def replace_block(text: str, block: str, *, where: str = DOC) -> str:
    """``text`` with what stands between the estimate markers replaced by ``block``."""
    if BLOCK_BEGIN not in text or BLOCK_END not in text:
        raise ValueError(f"{where}: the estimate markers are missing ({BLOCK_BEGIN!r} ... {BLOCK_END!r})")
    head, rest = text.split(BLOCK_BEGIN, 1)
    return head + BLOCK_BEGIN + "\n" + block + "\n" + BLOCK_END + rest.split(BLOCK_END, 1)[1]
