"""The feature-extraction approach on the test split, with real components at smoke scale: a features run
(EfficientNetB0, random init, 32 px) and classify runs written by the stages' own code on synthetic data,
a tiny CNN as a fine-tuned model; the evaluate stage chooses, refits, rebuilds, checks and scores them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.data.synthetic.generator import SynthSpec, ensure
from mame.stages import classify, evaluate, explain, feature_pipelines, features
from mame.stages.feature_pipelines import ExtractorMismatch, Pipeline
from mame.stages.support import common
from tests.helpers import write_training_metrics

SIZE = 32
BACKBONE = "efficientnetb0"
# Two classify runs on the same frozen features (their classifiers compete within the backbone), one on
# fine-tuned features (the fine-tuning approach: never a feature-extraction candidate).
PROBABILISTIC = ["logistic_regression", "knn", "random_forest", "mlp"]
MARGINS = ["linear_svm", "rbf_svc"]


def identity(root: Path, stage: str, backbone: str | None, variant: str, step: int = 1) -> dict:
    name = variant if backbone is None else backbone if variant == "default" else f"{backbone}-{variant}"
    return {"stage": stage, "backbone": backbone, "variant": variant, "name": name, "seed": 0,
            "folder": str(root / stage / name), "step": step}


def finish(folder: Path, run: dict) -> dict:
    """metrics.json as the runner writes it: the stage's result.json with a run block (what evaluate reads)."""
    metrics = {**json.loads((folder / "result.json").read_text()), "run": run}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def features_run(root: Path, data_dir: Path, *, seed: int | None = 0, variant: str = "default") -> dict:
    run = identity(root, "features", BACKBONE, variant)
    folder = Path(run["folder"])
    folder.mkdir(parents=True)
    splits = features.load_splits(data_dir, ("train", "val"))
    extractor = features.build_extractor(BACKBONE, image_size=SIZE, weights="random", seed=seed)
    extracted = features.extract(extractor, splits, batch_size=16)
    features.save(folder, extractor, extracted, features.centroid_probe(extracted))
    finish(folder, {"cache_key": f"f{variant}".ljust(20, "0"), "params": {"image_size": SIZE}, "seed": 0,
                    "depends_on": {}})
    return run


def classify_run(root: Path, features_identity: dict, variant: str, step: int, classifiers: list[str]) -> dict:
    run = identity(root, "classify", BACKBONE, variant, step)
    folder = Path(run["folder"])
    folder.mkdir(parents=True)
    feature_set = classify.load_features(features_identity["folder"])
    fitted = classify.fit_all(feature_set, classifiers=classifiers, max_iter=200, seed=0)
    classify.save(folder, classify.evaluate(fitted, feature_set), feature_set)
    key = json.loads((Path(features_identity["folder"]) / "metrics.json").read_text())["run"]["cache_key"]
    finish(folder, {"cache_key": "c" * 20, "seed": 0,
                    "params": {"classifiers": classifiers, "max_iter": 200, "feature_layer": None, "standardize": True},
                    "depends_on": {"features": {"name": features_identity["name"], "cache_key": key}}})
    return run


def cnn_run(root: Path, data_dir: Path, stage: str, backbone: str | None, variant: str, seed: int) -> dict:
    """A small untrained CNN saved as the run's model, with its predictions on every validation image (as a
    training run scores them, whatever its max_per_class)."""
    import keras

    from mame.models.cnn_ladder import build_scratch_cnn

    run = identity(root, stage, backbone, variant)
    folder = Path(run["folder"])
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(seed)
    model = build_scratch_cnn(num_classes=len(CLASS_NAMES), image_size=SIZE, filters=(8,), dense_units=(16,))
    common.save_model(model, folder)
    write_training_metrics(folder, SIZE)
    splits = common.load_splits(data_dir, ("val",), seed=seed)  # every validation image, as a training run scores
    val = common.predict(model, splits.records["val"], splits.image_dir, image_size=SIZE, batch_size=16)
    np.savez_compressed(folder / "predictions_val.npz", **val)
    return run


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Data, the runs and the ``inputs`` the runner would hand evaluate."""
    root = tmp_path_factory.mktemp("runs")
    data_dir = ensure(tmp_path_factory.mktemp("data") / "smoke", SynthSpec(4, 2, 0.004, 48))
    frozen = features_run(root, data_dir)
    tuned_features = Path(frozen["folder"]).parent / f"{BACKBONE}-finetuned"
    shutil.copytree(frozen["folder"], tuned_features)  # features of a fine-tuned model, as far as its record says
    metrics = json.loads((tuned_features / "metrics.json").read_text())
    metrics["metrics"]["source"], metrics["run"]["cache_key"] = "finetune", "t" * 20
    (tuned_features / "metrics.json").write_text(json.dumps(metrics))
    tuned_identity = {**identity(root, "features", BACKBONE, "finetuned")}
    inputs = {"features": {frozen["name"]: frozen, tuned_identity["name"]: tuned_identity},
              "classify": {}}
    for variant, step, classifiers, source in (("default", 1, PROBABILISTIC, frozen), ("margins", 2, MARGINS, frozen),
                                               ("finetuned", 3, ["logistic_regression"], tuned_identity)):
        run = classify_run(root, source, variant, step, classifiers)
        inputs["classify"][run["name"]] = run
    inputs["finetune"] = {"custom-step1": cnn_run(root, data_dir, "finetune", "custom", "step1", 1)}
    inputs["scratch"] = {"r1-plain": cnn_run(root, data_dir, "scratch", None, "r1-plain", 2)}
    return {"root": root, "data_dir": data_dir, "inputs": inputs, "frozen": frozen}


def recorded(run: dict) -> dict:
    return json.loads((Path(run["folder"]) / "metrics.json").read_text())


def test_candidates_are_the_classifiers_on_frozen_features_and_the_best_on_validation_is_chosen(study):
    inputs = study["inputs"]
    pool = feature_pipelines.candidates(inputs)
    assert [p.name for p in pool] == [f"classify/{BACKBONE}/{c}" for c in PROBABILISTIC] + \
        [f"classify/{BACKBONE}-margins/{c}" for c in MARGINS]  # never the classifier on fine-tuned features
    chosen = feature_pipelines.choose(inputs)
    assert len(chosen) == 1  # one per backbone
    best = chosen[0]
    val = {p.name: p.val_accuracy for p in pool}
    assert best.val_accuracy == max(val.values())
    assert best.name == next(name for name, acc in val.items() if acc == best.val_accuracy)  # ties: the first
    assert best.why == "best of 6 classifiers on EfficientNetB0 features on validation"
    assert best.val is not None and best.model is not None  # refitted: validation predictions for ensembles


def test_validation_decides_even_when_test_ranks_the_pipelines_otherwise(study, tmp_path):
    """A validation split on which kNN looks best (its labels are kNN's own predictions): kNN is chosen,
    although on the test split another classifier of the same run scores higher."""
    root = tmp_path / "runs"
    run = identity(root, "features", BACKBONE, "default")
    shutil.copytree(study["frozen"]["folder"], run["folder"])
    feature_set = classify.load_features(run["folder"])
    knn = classify.fit_one(feature_set, "knn", {"n_neighbors": 5}, seed=0, max_iter=200)[0]
    with np.load(Path(run["folder"]) / "features_val.npz") as arrays:
        saved = dict(arrays)
    np.savez_compressed(Path(run["folder"]) / "features_val.npz", **{**saved, "labels": knn.predict(saved["features"])})
    taken = classify_run(root, run, "default", 1, ["logistic_regression", "knn", "random_forest", "rbf_svc"])
    inputs = {"features": {run["name"]: run}, "classify": {taken["name"]: taken}}
    best = feature_pipelines.choose(inputs)[0]
    assert (best.classifier, best.val_accuracy) == ("knn", 1.0)
    ledger: list = []
    records, image_dir, classes = evaluate.load_test(study["data_dir"], ledger)
    model, shape = feature_pipelines.build_extractor(best)
    test = {}
    for p in feature_pipelines.candidates(inputs):
        feature_pipelines.refit(p)
        predicted = feature_pipelines.predict(p, model, _test_dataset(records, image_dir, shape), records)
        test[p.classifier] = float(np.mean(predicted["y_pred"] == predicted["y_true"]))
    assert max(test.values()) > test["knn"], test  # the test split would have chosen another one


def _test_dataset(records, image_dir, shape):
    from mame.data import pipeline

    return pipeline.make_dataset(records, image_dir, batch_size=16, allow_test=True, **shape.dataset_args())


def test_the_refit_reproduces_the_recorded_validation_accuracy_or_says_which_run_to_rerun(study, tmp_path):
    for p in feature_pipelines.candidates(study["inputs"]):
        feature_pipelines.refit(p)
        assert np.mean(p.val["y_pred"] == p.val["y_true"]) == p.val_accuracy, p.name
        assert p.val["probabilities"].shape == (len(p.val["y_true"]), len(CLASS_NAMES))
        assert (p.probabilities_from == feature_pipelines.PROBA) == (p.classifier in PROBABILISTIC)
        if p.probabilistic:  # predict_proba: its argmax is the prediction
            np.testing.assert_array_equal(p.val["probabilities"].argmax(axis=1), p.val["y_pred"])
    changed = next(p for p in feature_pipelines.candidates(study["inputs"]) if p.classifier == "mlp")
    changed.val_accuracy += 1 / 58  # a record the refit cannot reproduce
    with pytest.raises(ValueError, match=rf"{changed.name}: refitted .* re-run classify/{BACKBONE}$"):
        feature_pipelines.refit(changed)


def test_a_classify_run_must_have_read_the_features_run_handed_now(study, tmp_path):
    run = study["inputs"]["classify"][BACKBONE]
    moved = {**run, "folder": str(tmp_path / "classify" / BACKBONE)}
    shutil.copytree(run["folder"], moved["folder"])
    inputs = {"features": study["inputs"]["features"], "classify": {BACKBONE: moved}}
    metrics = recorded(moved)
    metrics["run"]["depends_on"]["features"]["cache_key"] = "0" * 20  # fitted on an earlier features run
    (Path(moved["folder"]) / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match=f"classify/{BACKBONE} was fitted on features/{BACKBONE} with cache key 0+, "
                                         f"which now has .*: re-run classify/{BACKBONE}"):
        feature_pipelines.candidates(inputs)
    with pytest.raises(ValueError, match=rf"read features/{BACKBONE}, which the plan does not hand evaluate "
                                         r"\(give it `reads: \[features\]`"):
        feature_pipelines.candidates({"classify": {BACKBONE: moved}})


def test_margin_classifiers_get_a_softmax_of_their_decision_function_and_stay_out_of_ensembles(study):
    svm = next(p for p in feature_pipelines.candidates(study["inputs"]) if p.classifier == "rbf_svc")
    feature_pipelines.refit(svm)
    assert svm.probabilities_from == "softmax of decision_function" and not svm.probabilistic
    np.testing.assert_allclose(svm.val["probabilities"].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(svm.val["probabilities"].argmax(axis=1), svm.model.decision_function(
        classify.load_features(svm.features_path, ("val",)).x["val"]).argmax(axis=1))
    tuned = evaluate.choose_models(study["inputs"], include_scratch=False, include_classify=False)
    result = evaluate.ensembles(tuned + [svm])
    assert result["tried"] == [] and result["method"].startswith("none (fewer than two models with probabilities")


def test_the_rebuilt_extractor_matches_the_run_or_fails_naming_it(study, tmp_path):
    p = feature_pipelines.choose(study["inputs"])[0]
    model, shape = feature_pipelines.build_extractor(p)
    assert (shape.shape, shape.image_size) == ("fixed", SIZE)
    check = feature_pipelines.check_extractor(p, model, study["data_dir"])
    assert check["images"] == feature_pipelines.GUARD_IMAGES and check["relative_difference"] <= 1e-4
    # the run's saved validation features no longer match what its record builds (e.g. its weights changed)
    moved = tmp_path / "features" / BACKBONE
    shutil.copytree(p.features_path, moved)
    with np.load(moved / "features_val.npz") as arrays:
        saved = dict(arrays)
    saved["features"] = saved["features"] * 1.01
    np.savez_compressed(moved / "features_val.npz", **saved)
    p.features_path = moved
    with pytest.raises(ExtractorMismatch, match=rf"features/{BACKBONE}: the extractor rebuilt .* Re-run it "
                                                rf"\(python -m mame run --only features/{BACKBONE} --force\)"):
        feature_pipelines.check_extractor(p, model, study["data_dir"])


def test_an_unseeded_random_extractor_cannot_be_rebuilt_and_the_check_says_so(study, tmp_path):
    root = tmp_path / "runs"
    unseeded = features_run(root, study["data_dir"], seed=None)  # as the features stage built before it seeded
    run = classify_run(root, unseeded, "default", 1, ["logistic_regression"])
    p = feature_pipelines.choose({"features": {unseeded["name"]: unseeded}, "classify": {run["name"]: run}})[0]
    assert p.extractor["seed"] is None
    model, _ = feature_pipelines.build_extractor(p)
    with pytest.raises(ExtractorMismatch, match="seed None"):
        feature_pipelines.check_extractor(p, model, study["data_dir"])


def test_evaluate_scores_each_model_once_and_an_ensemble_mixes_approaches(study, tmp_path):
    inputs = {**study["inputs"], "classify": {k: v for k, v in study["inputs"]["classify"].items()
                                              if not k.endswith("-margins")}}  # the best pipeline has probabilities
    chosen = evaluate.choose_models(inputs)
    assert [c.stage for c in chosen] == ["finetune", "classify", "scratch"]
    ledger: list = []
    records, image_dir, classes = evaluate.load_test(study["data_dir"], ledger)
    with pytest.raises(ValueError, match="data_dir is needed"):
        evaluate.predict_test(chosen, records, image_dir, ledger=[], batch_size=16)
    evaluate.predict_test(chosen, records, image_dir, ledger=ledger, batch_size=16, data_dir=study["data_dir"])
    assert [r.get("model") for r in ledger] == [None, "finetune/custom-step1/model.keras", chosen[1].name,
                                                "scratch/r1-plain/model.keras"]
    assert all(r["n_images"] == len(records) for r in ledger)
    pipeline = chosen[1]
    assert pipeline.check["relative_difference"] <= 1e-4
    ensemble = evaluate.ensembles(chosen)
    assert [e.members for e in ensemble["tried"]] == [["finetune/custom-step1", pipeline.name]]
    mixed = ensemble["chosen"]
    assert mixed.n_val == len(pipeline.val["y_true"]) == 58  # every validation image: both members scored them all
    assert ensemble["method"] == "every subset of 2-2 of the 2 models (fine-tuning: 1, feature extraction: 1)"
    np.testing.assert_allclose(mixed.test["probabilities"], (chosen[0].test["probabilities"]
                                                             + pipeline.test["probabilities"]) / 2, rtol=1e-6)
    table = evaluate.compare(chosen, ensemble, bootstrap=50)
    assert [r["approach"] for r in table] == ["fine-tuning", "feature extraction", "scratch", "ensemble"]
    out = tmp_path / "evaluate"
    out.mkdir()
    result = json.loads(evaluate.save(out, chosen, ensemble, table, ledger, classes).read_text())
    record = result["metrics"]["chosen"]
    assert sum(r["reference"] for r in record) == 1
    reference = max(chosen, key=lambda c: c.val_accuracy)
    assert [r["model"] for r in record if r["reference"]] == [reference.name] == [result["metrics"]["best_single"]]
    entry = record[1]
    assert entry["stage"] == "classify" and entry["approach"] == "feature extraction"
    assert (entry["run"], entry["classifier"], entry["features_run"]) == (BACKBONE, pipeline.classifier, f"features/{BACKBONE}")
    assert entry["probabilities"] == "predict_proba" and entry["in_ensembles"] is True
    assert entry["refit"] == {"max_iter": 200, "standardize": True, "seed": 0, "rbf_svc_max_train": 5000}
    assert entry["params"] == pipeline.params and entry["extractor_check"]["images"] == feature_pipelines.GUARD_IMAGES
    assert f"{pipeline.name}/test" in result["classification"]
    assert (out / f"test_classify_{BACKBONE}_{pipeline.classifier}.npz").is_file()
    # explain takes the conv nets of this record and skips the pipeline
    inputs["evaluate"] = {"stage": "evaluate", "backbone": None, "variant": "default", "name": "default", "seed": 0,
                          "folder": str(tmp_path / "evaluate-run"), "step": 1}
    Path(inputs["evaluate"]["folder"]).mkdir()
    (Path(inputs["evaluate"]["folder"]) / "metrics.json").write_text(json.dumps(result))
    assert [c.name for c in explain.chosen_models(inputs)] == ["finetune/custom-step1", "scratch/r1-plain"]


def test_a_pipeline_is_a_candidate_named_by_its_classifier(tmp_path):
    p = Pipeline("classify", "vgg16-dense-head", tmp_path, 0.5, {}, "vgg16", classifier="logistic_regression",
                 features_name="vgg16", layer="fc2", probabilities_from=feature_pipelines.PROBA)
    assert p.name == "classify/vgg16-dense-head/logistic_regression" and p.features_run == "features/vgg16"
    assert p.record()["feature_layer"] == "fc2" and p.record()["in_ensembles"] is True
