"""The explain stage's parts on smoke data with two small real CNNs: validation images only, the maps
and their mask measures, the comparison and what it saves (the ladders' test runs it through papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.data import masks
from mame.data.synthetic.generator import SynthSpec, ensure
from mame.stages import explain
from mame.stages.support import common, selection
from mame.stages.support.selection import Candidate
from tests.helpers import write_training_metrics
from tests.stages.test_evaluate import handed

SIZE = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return ensure(tmp_path_factory.mktemp("explain") / "smoke", SynthSpec(2, 3, 0.004, 48))


def trained_candidate(folder: Path, stage: str, run: str, seed: int, *, backbone=None, variant="", step=1) -> Candidate:
    import keras

    from mame.models.cnn_ladder import build_scratch_cnn

    keras.utils.set_random_seed(seed)
    model = build_scratch_cnn(num_classes=len(CLASS_NAMES), image_size=SIZE, filters=(8, 16), dense_units=(16,))
    folder.mkdir(parents=True)
    common.save_model(model, folder)
    return Candidate(stage, run, folder, 0.1 * seed, {}, backbone, variant=variant, step=step)


@pytest.fixture(scope="module")
def explained(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    chosen = [trained_candidate(root / "finetune", "finetune", "custom-step2", 2, backbone="custom", variant="step2", step=2),
              trained_candidate(root / "scratch", "scratch", "r1-plain", 1, variant="r1-plain")]
    data = explain.sample(data_dir, per_class=2, seed=0)
    return chosen, data, explain.explain(chosen, data, batch_size=7)


def test_sample_takes_validation_images_only_and_shows_one_per_class(data_dir):
    data = explain.sample(data_dir, per_class=2, seed=0)
    assert {r.subset for r in data.records} == {"val"}
    assert np.bincount([r.label for r in data.records], minlength=29).tolist() == [2] * 29
    assert [data.records[i].label for i in data.display] == list(range(29))
    again = explain.sample(data_dir, per_class=2, seed=0)
    assert [r.image_file for r in again.records] == [r.image_file for r in data.records]
    assert [r.image_file for r in explain.sample(data_dir, per_class=2, seed=1).records] != \
        [r.image_file for r in data.records]  # 3 val images per class: the seed picks which two
    with pytest.raises(ValueError, match="per_class"):
        explain.sample(data_dir, per_class=0)


def test_maps_explain_the_true_class_and_measure_heat_where_a_mask_exists(explained, data_dir):
    chosen, data, out = explained
    labels = np.array([r.label for r in data.records])
    object_masks, known = masks.load_masks(data_dir, data.records, image_size=SIZE)
    assert 0 < known.sum() < len(known)
    for e in out:
        assert e.maps.shape == (len(data.records), SIZE, SIZE) and np.isfinite(e.maps).all()
        peaks = e.maps.max(axis=(1, 2))
        assert np.all((peaks == 0) | np.isclose(peaks, 1.0)) and (peaks > 0).any()  # each map scaled to its peak
        np.testing.assert_array_equal(e.class_index, labels)  # target "true"
        empty = e.maps.max(axis=(1, 2)) == 0  # no positive evidence anywhere: no heat to place
        assert np.isnan(e.mass[~known]).all()
        np.testing.assert_array_equal(np.isnan(e.mass[known]), empty[known])
        np.testing.assert_allclose(e.chance[known], object_masks[known].mean(axis=(1, 2)))
        assert e.layer == "block2_conv1"  # the scratch CNN's last Conv2D (filters 8, 16: two blocks)
    assert not np.allclose(out[0].maps, out[1].maps)
    predicted = explain.explain(chosen[:1], data, target="predicted")[0]
    np.testing.assert_array_equal(predicted.class_index, predicted.probabilities.argmax(axis=1))
    same = predicted.class_index == labels
    assert (~same).any()  # an untrained model gets some images wrong
    np.testing.assert_allclose(predicted.maps[same], out[0].maps[same], atol=1e-5)
    for i in np.flatnonzero(~same & (predicted.maps.max(axis=(1, 2)) > 0) & (out[0].maps.max(axis=(1, 2)) > 0)):
        assert np.abs(predicted.maps[i] - out[0].maps[i]).max() > 0.1, i  # another class explained: another map
    with pytest.raises(ValueError, match="target"):
        explain.explain(chosen, data, target="other")


def test_compare_and_save_write_what_the_deck_reads(explained, tmp_path):
    chosen, data, out = explained
    summary = explain.compare(out, data, bootstrap=200)
    rows = summary["models"]
    assert [r["reference"] for r in rows] == [True, False]  # the fine-tuned model, best on validation
    assert rows[0]["label"] == "custom #2 (fine-tuned)" and rows[1]["label"] == "Scratch r1-plain"
    masked = int(np.sum(~np.isnan(out[0].mass)))
    both = int(np.sum(~np.isnan(out[0].mass) & ~np.isnan(out[1].mass)))
    assert summary["comparison"]["mass"]["n"] == both and rows[0]["n_measured"] == masked
    assert rows[0]["n_empty"] == int(np.sum(out[0].maps.max(axis=(1, 2)) == 0))
    assert rows[0]["mass_inside"] == pytest.approx(np.nanmean(out[0].mass))
    labels = np.array([r.label for r in data.records])
    for row, e in zip(rows, out, strict=True):
        assert row["model"] == e.candidate.name and row["hot_area"] == pytest.approx(np.nanmean(e.hot))
        per_class = {CLASS_NAMES[k]: float(np.nanmean(e.mass[labels == k])) for k in range(len(CLASS_NAMES))
                     if (~np.isnan(e.mass[labels == k])).any()}
        assert len(per_class) > 1 and row["per_class_mass"] == pytest.approx(per_class)  # each class's own images
        low, high = row["mass_ci"]
        assert low < row["mass_inside"] < high  # two finite bounds around the mean
    assert summary["comparison"]["hot_area"]["n"] == int(np.sum(~np.isnan(out[0].hot) & ~np.isnan(out[1].hot)))
    explain.save(tmp_path, out, data, summary, target="true", per_class=2)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["metrics"]["shown"] == list(CLASS_NAMES) and result["artifacts"] == {"gradcam": "gradcam.npz"}
    with np.load(tmp_path / "gradcam.npz") as arrays:
        assert arrays["images"].shape == (29, explain.DISPLAY_SIZE, explain.DISPLAY_SIZE, 3)
        assert list(arrays["labels"]) == [r["label"] for r in rows]
        shown = np.array(data.display)
        np.testing.assert_allclose(arrays["probabilities_1"], out[1].probabilities[shown])
        known = masks.load_masks(data.data_dir, [data.records[i] for i in shown], image_size=8)[1]
        np.testing.assert_array_equal(arrays["mask_known"], known)


# The ladders as the runner hands them: VGG16's step 2 is the best on validation, rung r2 the best rung.
LADDERS = [("finetune", "vgg16", "step1", 1, 0.30), ("finetune", "vgg16", "step2", 2, 0.90),
           ("finetune", "resnet50", "step1", 1, 0.50), ("scratch", None, "r1-plain", 1, 0.20),
           ("scratch", None, "r2-deeper", 2, 0.60)]


def evaluate_run(folder: Path, chosen: list[dict] | None) -> dict:
    """An evaluate run's folder with its metrics.json (only what explain reads), and its identity."""
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"models": [], **({"chosen": chosen} if chosen else {})}}))
    return {"stage": "evaluate", "backbone": None, "variant": "default", "name": "default", "seed": 0,
            "folder": str(folder), "step": 1}


def record(model: str, val_accuracy: float) -> dict:
    stage, run = model.split("/")
    return {"model": model, "stage": stage, "run": run, "val_accuracy": val_accuracy, "why": "as evaluate chose"}


def test_explain_takes_exactly_the_models_the_evaluate_run_recorded(tmp_path):
    inputs = handed(tmp_path, LADDERS)
    again = [c.name for c in selection.choose_models(inputs)]
    assert again == ["finetune/vgg16-step2", "finetune/resnet50-step1", "scratch/r2-deeper"]  # what choosing gives
    taken = [record("finetune/vgg16-step1", 0.31), record("scratch/r1-plain", 0.21)]  # NOT the best on validation
    inputs["evaluate"] = evaluate_run(tmp_path / "evaluate" / "default", taken)
    chosen = explain.chosen_models(inputs)
    assert [c.name for c in chosen] == ["finetune/vgg16-step1", "scratch/r1-plain"]
    tuned, rung = chosen
    assert tuned.path == tmp_path / "finetune" / "vgg16-step1" and rung.path == tmp_path / "scratch" / "r1-plain"
    assert (tuned.backbone, tuned.variant, tuned.step, tuned.val_accuracy) == ("vgg16", "step1", 1, 0.31)
    assert (rung.backbone, rung.variant, rung.step, rung.why) == (None, "r1-plain", 1, "as evaluate chose")
    assert [explain.label(c) for c in chosen] == ["VGG16 #1 (fine-tuned)", "Scratch r1-plain"]


def test_explain_says_which_file_lacks_the_record_and_never_chooses_instead(tmp_path):
    inputs = handed(tmp_path, LADDERS)
    with pytest.raises(ValueError, match=r"needs: \[evaluate\]"):
        explain.chosen_models(inputs)
    inputs["evaluate"] = evaluate_run(tmp_path / "evaluate" / "default", None)
    path = tmp_path / "evaluate" / "default" / "metrics.json"
    with pytest.raises(ValueError, match=f"{path}: no metrics.chosen record"):
        explain.chosen_models(inputs)
    path.unlink()
    with pytest.raises(ValueError, match=f"{path}: cannot read the evaluate run's metrics"):
        explain.chosen_models(inputs)
    path.write_text(json.dumps({"metrics": {"chosen": [record("finetune/efficientnetb0-step1", 0.4)]}}))
    with pytest.raises(ValueError, match="evaluate chose finetune/efficientnetb0-step1, which the plan does not hand"):
        explain.chosen_models(inputs)


def test_a_label_comes_from_the_identity_not_the_run_name(tmp_path):
    tuned = Candidate("finetune", "whatever-it-is-called", tmp_path, 0.5, {}, "vgg16", variant="lr-small", step=4)
    assert explain.label(tuned) == "VGG16 #4 (fine-tuned)"
    assert explain.label(Candidate("scratch", "x", tmp_path, 0.5, {}, None, variant="r7-gap", step=7)) == "Scratch r7-gap"


def test_explain_skips_the_classifiers_on_features_evaluate_chose(tmp_path):
    inputs = handed(tmp_path, LADDERS)
    pipeline = {**record("finetune/vgg16-step2", 0.9), "model": "classify/vgg16/logistic_regression",
                "stage": "classify", "run": "vgg16", "classifier": "logistic_regression"}
    taken = [record("finetune/vgg16-step2", 0.9), pipeline, record("scratch/r2-deeper", 0.6)]
    inputs["evaluate"] = evaluate_run(tmp_path / "evaluate" / "default", taken)
    assert [c.name for c in explain.chosen_models(inputs)] == ["finetune/vgg16-step2", "scratch/r2-deeper"]
    path = tmp_path / "evaluate" / "default" / "metrics.json"
    path.write_text(json.dumps({"metrics": {"chosen": [pipeline]}}))
    with pytest.raises(ValueError, match="evaluate chose no conv net to explain .*classify/vgg16/logistic_regression"):
        explain.chosen_models(inputs)


def deeper_candidate(folder: Path, seed: int) -> Candidate:
    """A fine-tuned stand-in whose last conv map is coarser than the scratch CNN's (three blocks, not two)."""
    import keras

    from mame.models.cnn_ladder import build_scratch_cnn

    keras.utils.set_random_seed(seed)
    model = build_scratch_cnn(num_classes=len(CLASS_NAMES), image_size=SIZE, filters=(8, 16, 32), dense_units=(16,))
    folder.mkdir(parents=True)
    common.save_model(model, folder)
    return Candidate("finetune", "deep-step1", folder, 0.5, {}, "custom", variant="step1", step=1)


def test_models_are_compared_at_the_same_map_grid_and_the_grids_effect_is_shown_for_the_reference(data_dir, tmp_path):
    """Heat on the object depends on the map's resolution: a coarse last-conv map spreads heat over the image. By
    default every model is explained at a map as fine as the finest last-conv grid among them; the reference is
    explained at its own last layer too; explained each at its last layer, the comparison says the grids differ."""
    from mame.deck.sections.explain import comparison, explain_conclusions

    chosen = [deeper_candidate(tmp_path / "deep", 3), trained_candidate(tmp_path / "scratch", "scratch", "r1-plain", 1,
                                                                        variant="r1-plain")]
    data = explain.sample(data_dir, per_class=1, seed=0)
    last = explain.explain(chosen, data, batch_size=16, grid="last")
    assert last[0].grid != last[1].grid and last[0].native is None
    common_grid = explain.explain(chosen, data, batch_size=16)
    assert common_grid[0].grid == common_grid[1].grid == last[1].grid  # the scratch CNN's finer grid, for both
    assert common_grid[0].layer != last[0].layer and common_grid[1].layer == last[1].layer
    native = common_grid[0].native
    assert (native["layer"], native["grid"]) == (last[0].layer, list(last[0].grid))
    assert native["mass_inside"] == pytest.approx(explain._mean(last[0].mass))
    for out, same in ((common_grid, True), (last, False)):
        summary = explain.compare(out, data, bootstrap=50)
        assert summary["comparison"]["same_grid"] is same
        assert summary["comparison"]["grids"] == {"scratch": list(out[1].grid), "finetuned": list(out[0].grid)}
        models = [{"label": r["label"], "chance": r["chance"]} for r in summary["models"]]
        said = " ".join(explain_conclusions({"ready": True, "models": models,
                                             "comparison": comparison(summary["comparison"])}))
        assert ("different map grids" in said) is not same, said
    with pytest.raises(ValueError, match="grid"):
        explain.explain(chosen, data, grid="finest")


def test_a_variable_shape_model_is_explained_on_each_unpadded_image_and_shown_beside_the_others(data_dir, tmp_path):
    """Grad-CAM of a variable-shape model: its own padded batches (bucket by bucket), each map cut to its image (no
    pad) and squeezed to the square the masks and the other models' maps have; in record order; not the reference."""
    import keras

    from mame.data import pipeline
    from mame.models import builders, gradcam

    keras.utils.set_random_seed(0)
    model = builders.build_transfer_model("efficientnetlite0", num_classes=len(CLASS_NAMES), image_size=64,
                                          dense_units=[8], variable=True)
    folder = tmp_path / "vs"
    folder.mkdir()
    common.save_model(model, folder)
    write_training_metrics(folder, 64, shape="variable")
    vs = Candidate("finetune", "efficientnetlite0-step1-vs", folder, 0.9, {}, "efficientnetlite0", variant="step1-vs",
                   step=7, shape="variable")
    scratch = trained_candidate(tmp_path / "scratch", "scratch", "r1-plain", 1, variant="r1-plain")
    whole = explain.sample(data_dir, per_class=1, seed=0)
    data = explain.Sample(whole.records[:10], whole.image_dir, whole.data_dir, [0, 5], whole.known[:10], whole.classes)  # 10 images
    out = {e.candidate.name: e for e in explain.explain([vs, scratch], data, batch_size=4)}
    e = out["finetune/efficientnetlite0-step1-vs"]
    assert e.maps.shape == (len(data.records), 64, 64) and e.layer == "top_activation" and e.image_size == 64
    assert explain.label(vs) == "EfficientNet-Lite0 step1-vs (fine-tuned, variable shape)"
    loaded = builders.load_model(folder / common.MODEL_FILE, compile=False)
    for i in (0, 4, 9):  # the image alone in its bucket's padded shape: the same map, cut to the image
        record = data.records[i]
        ((images, _),) = list(pipeline.make_dataset([record], data.image_dir, target_pixels=64 * 64, batch_size=1))
        (h, w) = np.asarray(images["valid_size"])[0]
        assert (h, w) != tuple(images["image"].shape[1:3])  # the batch holds pad beside the image
        alone, _, probabilities = gradcam.heatmaps_with_probabilities(
            loaded, np.asarray(images["image"]), layer_name="top_activation", class_index=np.array([record.label]),
            valid_size=np.asarray(images["valid_size"]))
        crop = alone[:, :h, :w]
        np.testing.assert_allclose(e.maps[i], explain._resize(crop / crop.max(), 64)[0], atol=1e-4)
        np.testing.assert_allclose(e.probabilities[i], probabilities[0], rtol=1e-4, atol=1e-6)
    summary = explain.compare(list(out.values()), data, bootstrap=50)
    rows = {r["model"]: r for r in summary["models"]}
    assert rows["finetune/efficientnetlite0-step1-vs"]["shape"] == "variable" and summary["comparison"] is None
    assert not rows["finetune/efficientnetlite0-step1-vs"]["reference"]  # the scratch model meets fixed-shape ones only
