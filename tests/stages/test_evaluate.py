"""The evaluate stage's choices on made-up predictions: models and ensembles chosen on validation only,
scored on test, compared with the best single model."""

from __future__ import annotations

import ast
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mame import config
from mame.classes import CLASS_NAMES
from mame.stages import evaluate
from mame.stages.support import selection
from mame.stages.support.selection import Candidate

N_VAL, N_TEST, CLASSES = 120, 200, 29


def probs(y, accuracy, rng, confidence=0.6):
    """Probabilities whose argmax is right on about ``accuracy`` of the rows."""
    right = rng.random(len(y)) < accuracy
    top = np.where(right, y, (y + 1 + rng.integers(0, CLASSES - 1, len(y))) % CLASSES)
    p = rng.random((len(y), CLASSES)) * (1 - confidence) / CLASSES
    p[np.arange(len(y)), top] += confidence
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def write_run(folder: Path, val_accuracy: float, seed: int, *, shape: str = "fixed", config: dict | None = None) -> str:
    rng = np.random.default_rng(seed)
    y = np.arange(N_VAL) % CLASSES
    folder.mkdir(parents=True)
    np.savez_compressed(folder / "predictions_val.npz", y_true=y, probabilities=probs(y, val_accuracy, rng),
                        files=np.array([f"{i}.jpg" for i in range(N_VAL)]))
    config = {"learning_rate": 1e-4, **(config or {}), "shape": shape}
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"shape": shape, "config": config}}))
    return str(folder)


def identity(stage: str, backbone: str | None, variant: str, step: int, folder: Path) -> dict:
    """What the runner hands a notebook for one run (``PlannedRun.identity``)."""
    name = variant if backbone is None else f"{backbone}-{variant}"
    return {"stage": stage, "backbone": backbone, "variant": variant, "name": name, "seed": 0,
            "folder": str(folder / stage / name), "step": step}


# (stage, backbone, variant, step, validation accuracy); the runs' names are never parsed
RUNS = [("finetune", "vgg16", "step1", 1, 0.55), ("finetune", "vgg16", "step2", 2, 0.70),
        ("finetune", "resnet50", "step1", 1, 0.50), ("finetune", "efficientnetb0", "step1", 1, 0.45),
        ("scratch", None, "r1-plain", 1, 0.30), ("scratch", None, "r7-gap", 7, 0.40)]


def handed(tmp_path, runs=RUNS) -> dict:
    inputs: dict = {}
    for i, (stage, backbone, variant, step, accuracy) in enumerate(runs):
        run = identity(stage, backbone, variant, step, tmp_path)
        write_run(Path(run["folder"]), accuracy, seed=i)
        inputs.setdefault(stage, {})[run["name"]] = run
    return inputs


@pytest.fixture
def inputs(tmp_path):
    return handed(tmp_path)


def add_test(chosen, accuracy_by_name, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(N_TEST) % CLASSES
    for c in chosen:
        p = probs(y, accuracy_by_name[c.name], rng)
        c.test = {"y_true": y, "y_pred": p.argmax(axis=1), "probabilities": p}


def test_the_best_step_per_backbone_and_the_best_rung_are_chosen_on_validation(inputs):
    chosen = evaluate.choose_models(inputs)
    names = [c.name for c in chosen]
    assert names[-1] == "scratch/r7-gap"
    assert set(names[:-1]) == {"finetune/vgg16-step2", "finetune/resnet50-step1", "finetune/efficientnetb0-step1"}
    assert [c.val_accuracy for c in chosen[:-1]] == sorted((c.val_accuracy for c in chosen[:-1]), reverse=True)
    every = evaluate.choose_models(inputs, select="all", include_scratch=False)
    assert len(every) == 4 and all(c.stage == "finetune" for c in every)
    assert all(c.best_step for c in chosen[:-1]) and not chosen[-1].best_step
    assert sorted(c.name for c in every if c.best_step) == sorted(names[:-1])  # every step taken, the best marked
    with pytest.raises(ValueError, match="no finished finetune, classify or scratch run"):
        evaluate.choose_models({"finetune": {}, "scratch": {}})
    with pytest.raises(ValueError, match=r"inputs\['scratch'\]\['r1-plain'\]: expected the runner's run identity"):
        evaluate.choose_models({"scratch": {"r1-plain": inputs["scratch"]["r1-plain"]["folder"]}})  # a bare folder


def test_each_choice_says_why_with_the_identity_the_runner_handed(inputs):
    chosen = {c.name: c for c in evaluate.choose_models(inputs)}
    vgg, resnet, rung = chosen["finetune/vgg16-step2"], chosen["finetune/resnet50-step1"], chosen["scratch/r7-gap"]
    assert (vgg.backbone, vgg.variant, vgg.step) == ("vgg16", "step2", 2)
    assert (rung.backbone, rung.variant, rung.step) == (None, "r7-gap", 7)
    assert vgg.why == "best of 2 VGG16 fine-tuning steps on validation"
    assert resnet.why == "the only ResNet50 fine-tuning step"
    assert rung.why == "best of 2 scratch rungs on validation"
    every = evaluate.choose_models(inputs, select="all", include_scratch=False)
    assert {c.name: c.why for c in every}["finetune/vgg16-step1"] == (
        "every VGG16 fine-tuning step is taken (select='all'): step 1 of 2")
    assert {c.name: c.why for c in every}["finetune/vgg16-step2"] == (
        "every VGG16 fine-tuning step is taken (select='all'): step 2 of 2, the best of 2 on validation")


def test_a_backbone_comes_from_the_identity_and_ties_keep_the_earlier_step(tmp_path):
    runs = [("finetune", "resnet50", "lr-small", 1, 0.60), ("finetune", "resnet50", "a-later-one", 2, 0.60),
            ("finetune", "vgg16", "step10", 10, 0.50), ("finetune", "vgg16", "step9", 9, 0.50)]
    inputs = handed(tmp_path, runs)
    for first, second in (("resnet50-lr-small", "resnet50-a-later-one"), ("vgg16-step9", "vgg16-step10")):
        shutil.copyfile(Path(inputs["finetune"][first]["folder"]) / "predictions_val.npz",
                        Path(inputs["finetune"][second]["folder"]) / "predictions_val.npz")  # an exact tie
    inputs["finetune"]["odd-name"] = inputs["finetune"].pop("resnet50-a-later-one")  # a name that parses to nothing
    chosen = {c.backbone: c for c in evaluate.choose_models(inputs)}
    assert set(chosen) == {"resnet50", "vgg16"}
    assert (chosen["resnet50"].variant, chosen["vgg16"].step) == ("lr-small", 9)  # plan order, not alphabetical
    marked = {c.backbone: c.step for c in evaluate.choose_models(inputs, select="all") if c.best_step}
    assert marked == {"resnet50": 1, "vgg16": 9}  # select="all" marks the same steps


def test_an_earlier_step_and_an_earlier_rung_win_when_validation_says_so(tmp_path):
    """Not the plan's last step or rung: the best on validation, wherever it stands in the plan."""
    runs = [("finetune", "vgg16", "step1", 1, 0.40), ("finetune", "vgg16", "step2", 2, 0.75),
            ("finetune", "vgg16", "step3", 3, 0.50), ("scratch", None, "r1-plain", 1, 0.35),
            ("scratch", None, "r2-deeper", 2, 0.55), ("scratch", None, "r3-batchnorm", 3, 0.25)]
    chosen = {c.stage: c for c in evaluate.choose_models(handed(tmp_path, runs))}
    assert (chosen["finetune"].step, chosen["scratch"].variant) == (2, "r2-deeper")
    record = {r["stage"]: r for r in evaluate.chosen_record(list(chosen.values()), "finetune/vgg16-step2")}
    assert record["finetune"]["step"] == 2 and record["scratch"]["step"] == 2


def test_runs_scored_on_different_validation_images_are_not_compared(tmp_path):
    """A run that scored a subsample of validation (or another dataset's) against runs that scored all of it: the
    choice would compare different image sets, so it fails naming both sets; every choice records its set."""
    inputs = handed(tmp_path)
    chosen = evaluate.choose_models(inputs)
    assert {(r["n_val"], r["val_fingerprint"]) for r in evaluate.chosen_record(chosen, chosen[0].name)} == {
        (N_VAL, selection.validation_set([f"{i}.jpg" for i in range(N_VAL)])["val_fingerprint"])}
    folder = Path(inputs["scratch"]["r1-plain"]["folder"])
    with np.load(folder / "predictions_val.npz") as arrays:
        kept = {name: arrays[name][:N_VAL // 2] for name in arrays.files}  # half the images, as a subsample scores
    np.savez_compressed(folder / "predictions_val.npz", **kept)
    with pytest.raises(ValueError, match=rf"scratch/r1-plain: {N_VAL // 2} images .* different validation images|"
                                         rf"different validation images .*scratch/r1-plain: {N_VAL // 2} images"):
        evaluate.choose_models(inputs)


def test_a_training_stages_subsample_takes_training_images_only(tmp_path):
    from mame.data.synthetic.generator import SynthSpec, generate
    from mame.stages.support import common

    data_dir = generate(tmp_path / "mame", SynthSpec(4, 3, 0.004, 24))
    whole, sampled = common.load_splits(data_dir), common.load_splits(data_dir, max_per_class=2, seed=1)
    assert len(sampled.records["train"]) == 2 * 29 < len(whole.records["train"])
    assert [r.image_file for r in sampled.records["val"]] == [r.image_file for r in whole.records["val"]]  # every one
    explained = common.load_splits(data_dir, ("val",), max_per_class=1, subsampled=("val",))
    assert len(explained.records["val"]) == 29  # explain's few validation images a class


def test_ensembles_are_chosen_on_validation_and_scored_on_the_members_test_predictions(inputs):
    chosen = evaluate.choose_models(inputs)
    add_test(chosen, {c.name: 0.9 if c.name.endswith("r7-gap") else 0.5 for c in chosen})
    result = evaluate.ensembles(chosen)
    tuned = [c for c in chosen if c.stage == "finetune"]
    assert len(result["tried"]) == 4  # 3 pairs and 1 triple of the 3 fine-tuned models; never the scratch rung
    best = max(result["tried"], key=lambda e: e.val_accuracy)
    assert result["chosen"] is best and all(m.startswith("finetune/") for m in best.members)
    members = [c for c in tuned if c.name in best.members]
    expected = np.mean([m.test["probabilities"] for m in members], axis=0).argmax(axis=1)
    np.testing.assert_array_equal(result["chosen"].test["y_pred"], expected)


def test_greedy_selection_when_there_are_many_models(inputs):
    chosen = evaluate.choose_models(inputs, select="all", include_scratch=False)
    add_test(chosen, {c.name: 0.5 for c in chosen})
    result = evaluate.ensembles(chosen, exhaustive_up_to=2)
    assert result["method"] == "greedy forward selection on validation"
    assert result["tried"][0].members[0] == "finetune/vgg16-step2"  # starts from the best single model


def shared_mistakes(y, accuracy, rng):
    """Probabilities right on about ``accuracy`` of the rows, every mistake on the same wrong class (the next
    one) and the confidence varying by row, so that averaging more members does not always help."""
    right = rng.random(len(y)) < accuracy
    top = np.where(right, y, (y + 1) % CLASSES)
    confidence = rng.uniform(0.3, 0.9, len(y))
    p = rng.random((len(y), CLASSES)) * (1 - confidence[:, None]) / CLASSES
    p[np.arange(len(y)), top] += confidence
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


# Fine-tuned models whose validation and test rankings are reversed: (validation accuracy, test accuracy).
REVERSED = [(0.7, 0.4), (0.6, 0.5), (0.5, 0.6)]
REVERSED_MANY = [(0.7, 0.4), (0.6, 0.5), (0.55, 0.55), (0.5, 0.6), (0.4, 0.7)]


def members_with_test(accuracies: list[tuple[float, float]], seed: int) -> list[Candidate]:
    """Fine-tuned candidates with made-up validation and test predictions, each about as accurate as asked."""
    rng = np.random.default_rng(seed)
    found = []
    for i, (val_accuracy, test_accuracy) in enumerate(accuracies):
        split = {}
        for name, n, accuracy in (("val", N_VAL, val_accuracy), ("test", N_TEST, test_accuracy)):
            y = np.arange(n) % CLASSES
            p = shared_mistakes(y, accuracy, rng)
            split[name] = {"y_true": y, "y_pred": p.argmax(axis=1), "probabilities": p,
                           "files": np.array([f"{name}-{j}.jpg" for j in range(n)])}
        measured = float((split["val"]["y_pred"] == split["val"]["y_true"]).mean())
        c = Candidate("finetune", f"net{i}-step1", Path(f"/runs/finetune/net{i}-step1"), measured, split["val"],
                      f"net{i}", test=split["test"], variant="step1", step=1)
        found.append(c)
    return found


def mean_accuracy(members: list[Candidate], split: str) -> float:
    """Accuracy of the members' averaged probabilities on ``split`` (every member predicted the same rows)."""
    parts = [getattr(m, split) for m in members]
    averaged = np.mean([p["probabilities"] for p in parts], axis=0)
    return float((averaged.argmax(axis=1) == parts[0]["y_true"]).mean())


def best_subset(members: list[Candidate], split: str) -> list[str]:
    """The subset of two or more best on ``split`` (fewer members on a tie), checked to be a clear winner."""
    subsets = [list(s) for k in range(2, len(members) + 1) for s in itertools.combinations(members, k)]
    scores = sorted(((mean_accuracy(s, split), -len(s)) for s in subsets), reverse=True)
    assert scores[0] != scores[1], f"no clear best subset on {split}: {scores[:2]}"
    return [m.name for m in max(subsets, key=lambda s: (mean_accuracy(s, split), -len(s)))]


def greedy_sequence(members: list[Candidate], choose_on: str) -> list[list[str]]:
    """Forward selection from the best single model on validation, adding at each step the member that makes
    the average best on ``choose_on``; stops once an addition lowers validation accuracy (two or more in)."""
    singles = sorted((mean_accuracy([m], "val") for m in members), reverse=True)
    assert singles[0] > singles[1], "no clear best single model on validation"
    current, sequence = [max(members, key=lambda m: mean_accuracy([m], "val"))], []
    while len(current) < len(members):
        best = max((current + [m] for m in members if m not in current), key=lambda s: mean_accuracy(s, choose_on))
        sequence.append([m.name for m in best])
        if mean_accuracy(best, "val") < mean_accuracy(current, "val") and len(current) >= 2:
            break
        current = best
    return sequence


def assert_test_predictions_average_the_members(ensemble, members: list[Candidate]) -> None:
    picked = [m for m in members if m.name in ensemble.members]
    assert len(picked) == len(ensemble.members)
    expected = np.mean([m.test["probabilities"] for m in picked], axis=0)
    np.testing.assert_allclose(ensemble.test["probabilities"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ensemble.test["y_pred"], expected.argmax(axis=1))
    np.testing.assert_array_equal(ensemble.test["y_true"], picked[0].test["y_true"])


def test_every_subset_is_tried_and_the_one_kept_is_best_on_validation_though_test_prefers_another():
    members = members_with_test(REVERSED, seed=0)
    on_val, on_test = best_subset(members, "val"), best_subset(members, "test")
    assert on_val != on_test  # the test split would keep another ensemble: choosing on it would show
    result = evaluate.ensembles(members)
    assert result["method"].startswith("every subset of 2-3 of the 3 models")
    subsets = [list(s) for k in (2, 3) for s in itertools.combinations(members, k)]
    assert [e.members for e in result["tried"]] == [[m.name for m in s] for s in subsets]
    assert [e.val_accuracy for e in result["tried"]] == [mean_accuracy(s, "val") for s in subsets]
    assert result["chosen"].members == on_val
    assert_test_predictions_average_the_members(result["chosen"], members)


def test_greedy_selection_adds_at_every_step_the_member_best_on_validation():
    members = members_with_test(REVERSED_MANY, seed=5)
    on_val, on_test = greedy_sequence(members, "val"), greedy_sequence(members, "test")
    assert on_val != on_test  # greedy on the test split would add other members
    assert len(on_val) >= 2
    result = evaluate.ensembles(members, exhaustive_up_to=len(members) - 1)
    assert result["method"] == "greedy forward selection on validation"
    assert [e.members for e in result["tried"]] == on_val
    by_name = {m.name: m for m in members}
    kept = max(on_val, key=lambda names: (mean_accuracy([by_name[n] for n in names], "val"), -len(names)))
    assert result["chosen"].members == kept
    assert_test_predictions_average_the_members(result["chosen"], members)


def test_compare_tests_each_model_against_the_best_single_one_on_validation(inputs):
    chosen = evaluate.choose_models(inputs)
    add_test(chosen, {c.name: 0.6 for c in chosen})
    table = evaluate.compare(chosen, evaluate.ensembles(chosen), bootstrap=200)
    reference = [row for row in table if row["reference"]]
    assert [row["model"] for row in reference] == ["finetune/vgg16-step2"]  # best on val, whatever test says
    for row in table:
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        assert ("vs_best" in row) != row["reference"]
    assert table[-1]["kind"] == "ensemble"


def test_save_records_the_chosen_models_and_why(inputs, tmp_path):
    chosen = evaluate.choose_models(inputs)
    add_test(chosen, {c.name: 0.6 for c in chosen})
    ensemble = evaluate.ensembles(chosen)
    table = evaluate.compare(chosen, ensemble, bootstrap=50)
    out = tmp_path / "evaluate"
    out.mkdir()
    metrics = json.loads(evaluate.save(out, chosen, ensemble, table, ledger=[], classes=CLASS_NAMES).read_text())["metrics"]
    record = metrics["chosen"]
    assert [r["model"] for r in record] == [c.name for c in chosen]
    assert record[0] == {"model": "finetune/vgg16-step2", "stage": "finetune", "run": "vgg16-step2", "backbone": "vgg16",
                         "variant": "step2", "step": 2, "seed": 0, "shape": "fixed", "approach": "fine-tuning",
                         "val_accuracy": chosen[0].val_accuracy,
                         "why": "best of 2 VGG16 fine-tuning steps on validation", "best_step": True, "reference": True,
                         **selection.validation_set([f"{i}.jpg" for i in range(N_VAL)])}
    assert record[-1]["stage"] == "scratch" and record[-1]["backbone"] is None and record[-1]["step"] == 7
    assert "best_step" not in record[-1]
    assert record[-1]["why"] == "best of 2 scratch rungs on validation"
    assert [r["model"] for r in record if r["reference"]] == [metrics["best_single"]]


def test_only_the_evaluate_stage_asks_for_the_test_split():
    callers = {}
    for path in config.PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Attribute) and node.attr == "read_test_split":
                name = "read_test_split"
            elif isinstance(node, ast.keyword) and node.arg == "allow_test" and getattr(node.value, "value", None) is True:
                name = "allow_test=True"
            if name:
                callers.setdefault(name, set()).add(path.relative_to(config.PACKAGE_DIR).as_posix())
    assert callers == {"read_test_split": {"stages/evaluate.py"}, "allow_test=True": {"stages/evaluate.py"}}


def test_with_several_seeds_the_run_best_on_validation_is_chosen_and_its_seed_is_said(tmp_path):
    inputs: dict = {}
    for i, (variant, step, seed, accuracy) in enumerate([("step1", 1, 0, 0.50), ("step1", 1, 1, 0.60),
                                                         ("step2", 2, 0, 0.55), ("step2", 2, 1, 0.45)]):
        run = {**identity("finetune", "vgg16", variant, step, tmp_path), "seed": seed}
        run["name"] += f"-s{seed}"
        run["folder"] += f"-s{seed}"
        write_run(Path(run["folder"]), accuracy, seed=i)
        inputs.setdefault("finetune", {})[run["name"]] = run
    accuracy = {c.run: c.val_accuracy for c in selection.candidates(inputs)}
    best = max(accuracy, key=accuracy.get)
    (chosen,) = evaluate.choose_models(inputs, include_classify=False)
    assert chosen.run == best and chosen.seed == int(best[-1])
    assert chosen.why == (f"best of 2 VGG16 fine-tuning steps on validation, seed {chosen.seed} of 0, 1 "
                          "(best on validation)")
    assert evaluate.chosen_record([chosen], chosen.name)[0]["seed"] == chosen.seed
    every = evaluate.choose_models(inputs, select="all", include_classify=False)
    assert [(c.run, c.best_step) for c in every if c.best_step] == [(best, True)]  # the best seed run of the best step


def test_a_variable_shape_step_is_compared_on_test_with_its_fixed_shape_twin_not_the_best_step(tmp_path):
    """The MAMe paper's FS vs VS question like for like: each shape's step is chosen on validation within its shape,
    and a variable-shape step meets the fixed-shape step of the same settings on test (scored for that alone: never
    the reference, never in an ensemble), not whichever fixed-shape step was best."""
    inputs: dict = {}
    for i, (variant, step, accuracy, shape, lr) in enumerate([("step1", 1, 0.55, "fixed", 1e-4), ("step2", 2, 0.70, "fixed", 5e-5),
                                                              ("step1-vs", 3, 0.60, "variable", 1e-4)]):
        run = identity("finetune", "vgg16", variant, step, tmp_path)
        write_run(Path(run["folder"]), accuracy, seed=i, shape=shape, config={"learning_rate": lr})
        inputs.setdefault("finetune", {})[run["name"]] = run
    chosen = evaluate.choose_models(inputs, include_classify=False)
    by_name = {c.name: c for c in chosen}
    assert set(by_name) == {"finetune/vgg16-step2", "finetune/vgg16-step1-vs", "finetune/vgg16-step1"}
    variable, twin = by_name["finetune/vgg16-step1-vs"], by_name["finetune/vgg16-step1"]
    assert (variable.shape, variable.twin, twin.twin_of) == ("variable", "finetune/vgg16-step1", "finetune/vgg16-step1-vs")
    assert variable.why == "the only VGG16 variable-shape fine-tuning step" and "fixed-shape twin" in twin.why
    assert by_name["finetune/vgg16-step2"].best_step and not twin.best_step
    add_test(chosen, {"finetune/vgg16-step2": 0.7, "finetune/vgg16-step1-vs": 0.5, "finetune/vgg16-step1": 0.3})
    ensemble = evaluate.ensembles(chosen)
    assert all("finetune/vgg16-step1" not in e.members for e in ensemble["tried"])
    table = evaluate.compare(chosen, ensemble, bootstrap=50)
    assert [r["model"] for r in table if r["reference"]] == ["finetune/vgg16-step2"]
    (pair,) = evaluate.shape_pairs(chosen)
    assert (pair["fixed"], pair["variable"], pair["paired_by"]) == ("finetune/vgg16-step1", "finetune/vgg16-step1-vs",
                                                                     "the same settings at fixed shape")
    fixed_right = twin.test["y_pred"] == twin.test["y_true"]
    variable_right = variable.test["y_pred"] == variable.test["y_true"]
    assert pair["fixed_accuracy"] == fixed_right.mean() and pair["variable_accuracy"] == variable_right.mean()
    assert pair["mcnemar"]["delta_pp"] == pytest.approx(100 * (variable_right.mean() - fixed_right.mean()))
    assert pair["mcnemar"]["discordant"] == int((fixed_right != variable_right).sum())
    record = {r["model"]: r for r in evaluate.chosen_record(chosen, "finetune/vgg16-step2")}
    assert record["finetune/vgg16-step1"]["twin_of"] == "finetune/vgg16-step1-vs"
    assert record["finetune/vgg16-step1-vs"]["shape"] == "variable"
