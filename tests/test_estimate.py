"""docs/estimates.md's GPU estimate table is generated from the plan (``make docs``): it lists every stage the
estimate counts, with the plan's run and epoch counts."""

from __future__ import annotations

import re

import pytest

from mame import config, estimate
from mame.engine.plan.load import expand, load_plan


def doc_rows() -> dict[str, list[str]]:
    text = (config.ROOT / estimate.DOC).read_text(encoding="utf-8")
    block = text.split(estimate.BLOCK_BEGIN, 1)[1].split(estimate.BLOCK_END, 1)[0]
    return {m.group(1): [c.strip() for c in line.split("|")[2:-1]]
            for line in block.splitlines() if (m := re.match(r"\| `(\w+)` \|", line))}


def test_the_docs_table_has_the_plans_stages_runs_and_epochs():
    runs = [r for r in expand(load_plan(), "full") if r.stage in ("scratch", "finetune", *estimate.FORWARD_ONLY)]
    expected = {}
    for run in runs:
        count, epochs = expected.get(run.stage, (0, 0))
        expected[run.stage] = (count + 1, epochs + estimate.run_epochs(run))
    found = {stage: (int(cells[0]), int(cells[1])) for stage, cells in doc_rows().items()}
    assert found == expected, f"{estimate.DOC}'s estimate table is out of date with the plan: run `make docs`"


def test_the_block_is_replaced_between_its_markers_and_only_there():
    text = f"before\n{estimate.BLOCK_BEGIN}\nold table\n{estimate.BLOCK_END}\nafter\n"
    assert estimate.replace_block(text, "| new |") == f"before\n{estimate.BLOCK_BEGIN}\n| new |\n{estimate.BLOCK_END}\nafter\n"
    with pytest.raises(ValueError, match="docs/estimates.md: the estimate markers are missing"):
        estimate.replace_block("no markers here", "| new |")
    assert estimate.markdown_block("| t |", ["wall", "needs"]) == "| t |\n\n```\nwall\n```\n\n```\nneeds\n```"


def test_wall_time_on_g_gpus_follows_the_dependencies_not_just_total_over_g():
    # a -> c, b -> c, and a long d alone: on 2 GPUs d runs first (it heads the longest chain), then a, b, c
    order = ["a", "b", "c", "d"]
    deps = {"a": [], "b": [], "c": ["a", "b"], "d": []}
    hours = {"a": 1.0, "b": 1.0, "c": 2.0, "d": 3.5}
    one = estimate.list_schedule(order, deps, hours, 1)
    assert one["hours"] == pytest.approx(7.5)  # one GPU: everything, one after the other
    assert one["critical_path"] == ["d"] and one["critical_path_hours"] == pytest.approx(3.5)
    two = estimate.list_schedule(order, deps, hours, 2)
    assert two["hours"] == pytest.approx(4.0)  # d || a, then b (after a), then c after b: 1 + 1 + 2
    many = estimate.list_schedule(order, deps, hours, 8)
    assert many["hours"] == pytest.approx(3.5)  # no number of GPUs beats the critical path
    hours["c"] = 5.0
    chained = estimate.list_schedule(order, deps, hours, 8)
    assert chained["critical_path"] == ["a", "c"] and chained["hours"] == pytest.approx(6.0)
    assert chained["hours"] > sum(hours.values()) / 8  # the chain, not total / G


def test_the_full_studys_wall_time_shrinks_with_gpus_down_to_its_critical_path():
    walls = estimate.wall_times("full", [1, 4, 64], overhead_s=60)
    assert walls[0]["hours"] == pytest.approx(walls[0]["total_hours"])
    assert walls[0]["hours"] > walls[1]["hours"] > walls[2]["hours"]
    assert walls[2]["hours"] == pytest.approx(walls[2]["critical_path_hours"])
    assert walls[1]["hours"] >= walls[1]["total_hours"] / 4
    path = walls[0]["critical_path"]
    assert path[0].startswith("finetune/vgg16") and path[-1] == "explain/default"  # the VGG16 ladder, then evaluate


def test_a_dataset_folder_is_estimated_at_its_own_size_and_class_count(tmp_path, monkeypatch, capsys):
    """``estimate --data DIR``: the folder's training and validation images and its classes, not MAMe's."""
    from mame import cli
    from mame.engine.run.study import Study
    from tests.data.datasets import class_tree

    data = class_tree(tmp_path / "three", ["a", "b", "c"], 20)
    monkeypatch.setenv("MAME_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAME_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    monkeypatch.setenv("MAME_DATA", "")  # the command sets it for itself
    assert cli.main(["estimate", "--profile", "smoke", "--data", str(data)]) == 0
    assert "profile smoke" in capsys.readouterr().out
    dataset = Study.load("smoke", data=data).prepare().dataset
    assert estimate.split_sizes(load_plan().profile("full"), dataset) == {"train": 42, "val": 9, "classes": 3}
    assert estimate.split_sizes(load_plan().profile("full")) == {"train": 20_300, "val": 1_450, "classes": 29}
    mine = {r["stage"]: r["pflops"] for r in estimate.estimate("smoke", dataset=dataset)}
    synthetic = {r["stage"]: r["pflops"] for r in estimate.estimate("smoke")}
    scaled = synthetic["features"] * (42 + 9) / (116 + 58)  # the folder's images, each counted with a 3-class head
    assert mine["features"] == pytest.approx(scaled, rel=1e-3) and mine["features"] != scaled


def test_runs_sharing_an_architecture_are_built_once_and_their_counts_are_each_runs_own_models():
    """The estimate builds each architecture once a process (the full plan's 58 runs share a few); what it reads of
    that build (MACs, parameters, trainable parameters, layer outputs) equals a build of each run's own model, the
    VGG16 steps' heads, dropout and L2 and the scratch rungs' layers included."""
    import math

    from mame.models import flops
    from mame.stages import finetune, scratch

    runs = [r for r in expand(load_plan(), "smoke") if r.stage == "scratch" or (r.stage == "finetune" and r.backbone == "vgg16"
                                                                              and r.params.get("shape") != "variable")]
    estimate._facts.cache_clear()
    for run in runs:
        if run.stage == "scratch":
            config = scratch.ScratchConfig.from_parameters(run.params)
            model = scratch.build_model(config, 29)
        else:
            config = finetune.FinetuneConfig.from_parameters(run.params)
            model = finetune.build_model(run.backbone, config, 29)
        own = estimate.ModelFacts(flops.model_macs(model), model.count_params(),
                                  sum(math.prod(w.shape) for w in model.trainable_weights),
                                  tuple(math.prod(int(d) for d in layer.output.shape[1:]) for layer in model.layers))
        assert estimate.model_facts(run.stage, run.backbone, config, 29) == own, run.id
    built = estimate._facts.cache_info().misses
    assert len(runs) == 8 + 6 and built < len(runs)  # 8 rungs, VGG16's 6 fixed-shape steps
