"""What the runner decides without executing anything: cache hits, dependency checks, key propagation."""

from __future__ import annotations

import io

import pytest

from mame.engine.plan.load import PlanError, expand, load_plan
from mame.engine.run import execute, records, scheduler, study
from tests.helpers import minimal_metrics, write_smoke_plan

STAGES = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16, resnet50]
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16, resnet50]
"""
DATASET = {"source": "synthetic", "path": "/data/x", "fingerprint": "f1"}


@pytest.fixture
def planned(tmp_path):
    plan = load_plan(write_smoke_plan(tmp_path / "plan.yaml", STAGES))
    everything = expand(plan, "smoke")
    return plan.profile("smoke"), {r.id: r for r in everything}, everything


def write_done(runs_dir, run, key, status="done"):
    run_dir = runs_dir / run.stage / run.name
    error = {"type": "ValueError", "message": "boom", "cell": 1} if status == "failed" else None
    records.write_metrics(run_dir, minimal_metrics(stage=run.stage, name=run.name, cache_key=key, status=status, error=error))
    return run_dir


def test_keys_chain_through_dependencies(planned):
    profile, by_id, everything = planned
    keys = study.compute_keys(everything, profile, DATASET)
    assert len(set(keys.values())) == len(everything)
    other = study.compute_keys(everything, profile, dict(DATASET, fingerprint="f2"))
    assert all(other[k] != keys[k] for k in keys)  # the data changes every key
    by_id["features/vgg16"].params["batch_size"] = 7
    changed = study.compute_keys(everything, profile, DATASET)
    assert {k for k in keys if keys[k] != changed[k]} == {"features/vgg16", "classify/vgg16"}


def test_a_done_run_with_the_same_key_is_cached_and_a_failed_one_is_not(planned, tmp_path):
    profile, by_id, everything = planned
    keys = study.compute_keys(everything, profile, DATASET)
    run = by_id["features/vgg16"]
    write_done(tmp_path, run, keys[run.id])
    outcome = scheduler._prepare(run, profile, DATASET, keys, {}, tmp_path, False, by_id)
    assert (outcome.state, outcome.cache_key, outcome.detail) == ("cached", keys[run.id], "acc 0.500")
    failed = by_id["features/resnet50"]
    write_done(tmp_path, failed, keys[failed.id], status="failed")
    assert scheduler._existing(tmp_path / "features" / "resnet50")["run"]["status"] == "failed"
    (tmp_path / "features" / "vgg16" / records.METRICS_FILE).write_text("{ corrupt")
    assert scheduler._existing(tmp_path / "features" / "vgg16") is None  # unreadable counts as absent


def test_dependencies_must_be_done_and_current(planned, tmp_path):
    profile, by_id, everything = planned
    keys = study.compute_keys(everything, profile, DATASET)
    classify, features = by_id["classify/vgg16"], by_id["features/vgg16"]
    inputs, problem = scheduler._inputs(classify, keys, {}, tmp_path, by_id)
    assert inputs == {} and problem == "needs features/vgg16, which is not done and current (run it, or drop --only)"
    write_done(tmp_path, features, "0" * 20)  # an older key
    assert scheduler._inputs(classify, keys, {}, tmp_path, by_id)[1].startswith("needs features/vgg16, which is not done")
    write_done(tmp_path, features, keys[features.id])
    inputs, problem = scheduler._inputs(classify, keys, {}, tmp_path, by_id)
    identity = {"stage": "features", "backbone": "vgg16", "variant": "default", "name": "vgg16", "seed": profile.seed,
                "folder": str(tmp_path / "features" / "vgg16"), "step": 1}
    assert problem == "" and inputs == {"features": {**identity, "cache_key": keys[features.id]}}
    assert execute.notebook_inputs(inputs) == {"features": identity}  # the cache key stays with the runner
    failed = scheduler.Outcome(features, "failed", keys[features.id])
    assert scheduler._inputs(classify, keys, {features.id: failed}, tmp_path, by_id)[1] == "needs features/vgg16, which failed"
    skipped = scheduler._prepare(classify, profile, DATASET, keys, {features.id: failed}, tmp_path, False, by_id)
    assert (skipped.state, skipped.detail) == ("skipped", "needs features/vgg16, which failed")


def test_summary_table_counts_each_state(planned):
    _, by_id, _ = planned
    outcomes = [scheduler.Outcome(by_id["features/vgg16"], "cached", "k1", detail="acc 0.500"),
                scheduler.Outcome(by_id["classify/vgg16"], "failed", "k2", 3.0, "ValueError: boom"),
                scheduler.Outcome(by_id["features/resnet50"], "done", "k3", 2.0, "acc 0.100")]
    table = scheduler.summary_table(outcomes).splitlines()
    assert table[-1] == "1 done, 1 cached, 1 failed, 0 skipped"
    assert any(line.startswith("classify/vgg16") and "failed" in line and "ValueError: boom" in line for line in table)
    assert scheduler._first_line("\n\n  first\nsecond") == "  first" and scheduler._first_line("") == ""


def test_run_plan_with_everything_current_executes_nothing(planned, tmp_path, isolated_runs):
    profile, by_id, everything = planned
    dataset = study.prepare_dataset(profile)
    keys = study.compute_keys(everything, profile, dataset)
    for run in everything:
        write_done(isolated_runs, run, keys[run.id])
    out = io.StringIO()
    outcomes = scheduler.run_plan("smoke", plan_file=tmp_path / "plan.yaml", out=out)
    assert [(o.run.id, o.state) for o in outcomes] == [(r.id, "cached") for r in everything]
    assert out.getvalue().splitlines()[0].startswith("[1/4] features/vgg16") and "running" not in out.getvalue()
    only = scheduler.run_plan("smoke", plan_file=tmp_path / "plan.yaml", only="classify/resnet50", out=io.StringIO())
    assert [o.run.id for o in only] == ["classify/resnet50"]
    leftover = isolated_runs / "features" / ".vgg16.partial-999"
    leftover.mkdir()
    scheduler.run_plan("smoke", plan_file=tmp_path / "plan.yaml", out=io.StringIO())
    assert not leftover.exists()  # a killed run's folder is cleaned at the next start


READS = STAGES + """
  evaluate:
    notebook: 04_classify.ipynb
    reads: [features]
"""


def test_a_stage_that_reads_every_run_of_another_gets_them_all_and_depends_on_each(tmp_path):
    plan = load_plan(write_smoke_plan(tmp_path / "plan.yaml", READS))
    profile, everything = plan.profile("smoke"), expand(plan, "smoke")
    summary = next(r for r in everything if r.stage == "evaluate")
    assert summary.name == "default" and summary.reads == {"features": ["vgg16", "resnet50"]}
    keys = study.compute_keys(everything, profile, DATASET)
    by_id = {r.id: r for r in everything}
    by_id["features/resnet50"].params["batch_size"] = 3
    changed = study.compute_keys(everything, profile, DATASET)
    assert changed["evaluate/default"] != keys["evaluate/default"]  # any run it reads changes its key
    assert scheduler._inputs(summary, keys, {}, tmp_path, by_id)[1].startswith("needs features/vgg16, which is not done")
    for name in ("vgg16", "resnet50"):
        write_done(tmp_path, by_id[f"features/{name}"], keys[f"features/{name}"])
    inputs, problem = scheduler._inputs(summary, keys, {}, tmp_path, by_id)
    assert problem == "" and set(inputs) == {"features/vgg16", "features/resnet50"}
    assert execute.notebook_inputs(inputs) == {"features": {
        name: {"stage": "features", "backbone": name, "variant": "default", "name": name, "seed": profile.seed,
               "folder": str(tmp_path / "features" / name), "step": 1} for name in ("vgg16", "resnet50")}}
    bad = READS.replace("reads: [features]", "reads: [finetune]")
    (tmp_path / "plan.yaml").write_text(bad + (tmp_path / "plan.yaml").read_text().split(READS)[1])
    with pytest.raises(PlanError, match="stages.evaluate.reads: 'finetune' must be a stage listed before 'evaluate'"):
        load_plan(tmp_path / "plan.yaml")


VARIANT_READS = STAGES.replace("""    backbones: [vgg16, resnet50]
  classify:""", """    backbones: [vgg16, resnet50]
    variants:
      default: {}
      tuned: {backbones: [vgg16], reads: [finetune], source: finetune}
  classify:""") + """  finetune:
    notebook: 05_finetune.ipynb
    backbones: [vgg16, resnet50]
    variants:
      step1: {}
      step2: {backbones: [vgg16]}
"""


def test_what_a_variant_reads_is_in_its_key_and_handed_to_it(tmp_path):
    plan = load_plan(write_smoke_plan(tmp_path / "plan.yaml", VARIANT_READS))
    profile, everything = plan.profile("smoke"), expand(plan, "smoke")
    by_id = {r.id: r for r in everything}
    keys = study.compute_keys(everything, profile, DATASET)
    by_id["finetune/vgg16-step2"].params["learning_rate"] = 1e-6  # a new fine-tuning result
    changed = study.compute_keys(everything, profile, DATASET)
    assert {k for k in keys if keys[k] != changed[k]} == {"finetune/vgg16-step2", "features/vgg16-tuned"}
    by_id["finetune/resnet50-step1"].params["learning_rate"] = 1e-6  # another backbone's: not read
    again = study.compute_keys(everything, profile, DATASET)
    assert {k for k in keys if changed[k] != again[k]} == {"finetune/resnet50-step1"}
    tuned = by_id["features/vgg16-tuned"]
    for name in ("vgg16-step1", "vgg16-step2"):
        write_done(tmp_path, by_id[f"finetune/{name}"], again[f"finetune/{name}"])
    inputs, problem = scheduler._inputs(tuned, again, {}, tmp_path, by_id)
    handed = execute.notebook_inputs(inputs)["finetune"]
    assert {name: (i["backbone"], i["variant"], i["step"], i["folder"]) for name, i in handed.items()} == {
        name: ("vgg16", f"step{k}", k, str(tmp_path / "finetune" / name)) for k, name in enumerate(("vgg16-step1", "vgg16-step2"), 1)}
    with pytest.raises(study.StudyError, match="features/vgg16-tuned depends on finetune/vgg16-step1"):
        study.compute_keys([tuned] + [r for r in everything if r is not tuned], profile, DATASET)  # out of order
