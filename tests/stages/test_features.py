import json

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.data.synthetic.generator import SynthSpec, generate
from mame.stages import features
from tests.helpers import write_training_metrics


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("tiny") / "mame", SynthSpec(4, 2, 0.004, 32, seed=3))


def test_load_splits_subsamples_per_class_and_never_reads_test(tiny_dataset):
    splits = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=2, seed=0)
    assert splits.summary() == {"train": 58, "val": 58}
    again = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=2, seed=0)
    assert [r.image_file for r in again.records["train"]] == [r.image_file for r in splits.records["train"]]
    with pytest.raises(ValueError, match="does not read the test split"):
        features.load_splits(tiny_dataset, ("train", "test"))


def test_centroid_probe_scores_separable_features_perfectly():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (29, 8))
    make = lambda n: (np.repeat(np.arange(29), n), None)
    labels_train, _ = make(3)
    labels_val, _ = make(1)
    extracted = {
        "train": features.Extracted(centres[labels_train] + rng.normal(0, 0.1, (87, 8)), labels_train, [], 1.0,
                                    classes=CLASS_NAMES),
        "val": features.Extracted(centres[labels_val] + rng.normal(0, 0.1, (29, 8)), labels_val, [], 1.0, classes=CLASS_NAMES),
    }
    probe = features.centroid_probe(extracted)
    assert np.array_equal(probe["y_pred"], labels_val)


def test_extraction_end_to_end_on_tiny_images(tiny_dataset, tmp_path):
    splits = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=1)
    extractor = features.build_extractor("efficientnetb0", image_size=32, weights="random")
    assert extractor.weights.used == "random" and extractor.info["feature_dim"] == 1280
    extracted = features.extract(extractor, splits, batch_size=16)
    assert extracted["train"].features.shape == (29, 1280)
    assert list(extracted["val"].labels) == [r.label for r in splits.records["val"]]
    features.save(tmp_path, extractor, extracted, features.centroid_probe(extracted))
    with np.load(tmp_path / "features_train.npz") as arrays:
        assert arrays["features"].shape == (29, 1280) and len(arrays["files"]) == 29


def test_vgg16_saves_fc2_beside_fc1_from_one_pass_and_classify_reads_either(tiny_dataset, tmp_path):
    from mame.stages import classify

    splits = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=1)
    extractor = features.build_extractor("vgg16", image_size=32, weights="random")  # extra_layers="above": fc2
    alone = features.build_extractor("vgg16", image_size=32, weights="random", extra_layers=[])
    assert extractor.info["feature_layer"] == "fc1" and extractor.info["extra_layers"] == {
        "fc2": {"dim": 4096, "kept": ["fc1", "fc2"]}}
    assert extractor.info["n_params"] == alone.info["n_params"]  # counted up to fc1, as the extractor alone
    extracted = features.extract(extractor, splits, batch_size=16)
    assert extracted["train"].features.shape == extracted["train"].layers["fc2"].shape == (29, 4096)
    fc1 = extracted["train"].features
    dense = extractor.model.get_layer("fc2")
    expected = np.maximum(fc1 @ dense.kernel.numpy() + dense.bias.numpy(), 0)  # fc2 = relu(W fc1 + b)
    np.testing.assert_allclose(extracted["train"].layers["fc2"], expected, rtol=1e-4, atol=1e-4)
    features.save(tmp_path, extractor, extracted, features.centroid_probe(extracted))
    own, top = classify.load_features(tmp_path), classify.load_features(tmp_path, layer="fc2")
    assert own.layer == "fc1" and top.layer == "fc2" and classify.load_features(tmp_path, layer="fc1").layer == "fc1"
    np.testing.assert_array_equal(top.x["val"], extracted["val"].layers["fc2"])
    with pytest.raises(ValueError, match="saved no 'block5_pool' layer"):
        classify.load_features(tmp_path, layer="block5_pool")


def _fake_finetune_run(folder, model, val_accuracy: float, n: int = 20):
    """A finetune run folder: a saved model and validation predictions with the given accuracy."""
    from mame.stages.support import common

    folder.mkdir(parents=True)
    if model is not None:
        common.save_model(model, folder)
    write_training_metrics(folder, 32)
    y = np.arange(n) % 29
    right = int(round(val_accuracy * n))
    pred = np.where(np.arange(n) < right, y, (y + 1) % 29)
    np.savez(folder / "predictions_val.npz", y_true=y, probabilities=np.eye(29, dtype=np.float32)[pred],
             files=np.array([f"{i}.jpg" for i in range(n)]))
    return str(folder)


def test_fine_tuned_features_come_from_the_best_validation_step_below_its_softmax(tiny_dataset, tmp_path):
    import keras

    from mame.models import builders, extraction
    from mame.stages.support import finetuned_extractor

    build = lambda units, dropout: builders.build_transfer_model("efficientnetb0", num_classes=29, image_size=32,
                                                                  dense_units=units, dropout_rate=dropout)
    worse, better = build([8], 0.0), build([8, 6], 0.5)
    def identity(backbone, step, folder):  # what the runner hands (PlannedRun.identity)
        return {"stage": "finetune", "backbone": backbone, "variant": f"step{step}", "name": f"{backbone}-step{step}",
                "seed": 0, "folder": folder, "step": step}

    runs = [identity("efficientnetb0", 1, _fake_finetune_run(tmp_path / "step1", worse, 0.30)),
            identity("efficientnetb0", 2, _fake_finetune_run(tmp_path / "step2", better, 0.55)),
            identity("efficientnetb0", 3, _fake_finetune_run(tmp_path / "step3", None, 0.55)),  # a tie keeps the earlier step
            identity("vgg16", 1, _fake_finetune_run(tmp_path / "vgg", None, 0.95)),  # another backbone's: never taken
            dict(identity("vgg16", 2, _fake_finetune_run(tmp_path / "odd", None, 0.99)), name="efficientnetb0-x")]
    inputs = {"finetune": {run["name"]: run for run in runs}}  # the last one's name says efficientnetb0; it is VGG16's
    chosen, pool = finetuned_extractor.choose_run("efficientnetb0", inputs)
    assert chosen.name == "finetune/efficientnetb0-step2" and len(pool) == 3
    assert (chosen.backbone, chosen.step) == ("efficientnetb0", 2)
    assert chosen.why == "best of 3 EfficientNetB0 fine-tuning steps on validation"
    assert extraction.softmax_input_layer(better) == "head_dense_2"  # dropout skipped: the identity at inference
    extractor = features.build_extractor("efficientnetb0", image_size=64, source="finetune", inputs=inputs)
    info = extractor.info
    assert (info["feature_layer"], info["feature_dim"], info["image_size"]) == ("head_dense_2", 6, 32)
    assert info["weights"] == "fine-tuned (finetune/efficientnetb0-step2)" and info["source"] == "finetune"
    assert info["finetune"]["val_accuracy"] == 0.55 and "image_size=64 does not apply" in info["notes"][0]
    splits = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=1)
    extracted = features.extract(extractor, splits, batch_size=16)
    images = np.stack([keras.utils.img_to_array(keras.utils.load_img(splits.image_dir / r.image_file, target_size=(32, 32)))
                       for r in splits.records["val"][:4]])
    direct = keras.Model(better.inputs, better.get_layer("head_dense_2").output).predict(images, verbose=0)
    np.testing.assert_allclose(extracted["val"].features[:4], direct, rtol=1e-3, atol=1e-4)
    (tmp_path / "out").mkdir()
    saved = json.loads(features.save(tmp_path / "out", extractor, extracted, features.centroid_probe(extracted)).read_text())
    assert saved["metrics"]["finetune"]["run"] == "finetune/efficientnetb0-step2" and saved["notes"][-1] == info["notes"][0]
    with pytest.raises(ValueError, match="needs the finetune runs of resnet50"):
        features.build_extractor("resnet50", source="finetune", inputs=inputs)


def test_variable_shape_features_come_back_in_record_order_each_as_its_own_batch_gives_it(tiny_dataset, tmp_path):
    """Variable shape: batches come bucket by bucket (several padded shapes); the features are put back in record
    order, and each image's row equals what a batch of that image alone gives (inference-mode BatchNorm, pooling over
    the valid region: the batch around an image changes nothing). Saved and recorded as variable shape."""
    from mame.data import pipeline

    splits = features.load_splits(tiny_dataset, ("train", "val"), max_per_class=1)
    extractor = features.build_extractor("efficientnetlite0", image_size=32, weights="random", shape="variable", seed=0)
    assert extractor.info["shape"] == "variable" and extractor.info["target_pixels"] == 32 * 32
    extracted = features.extract(extractor, splits, batch_size=16)
    assert extracted["val"].extra["batch_shapes"] > 1  # several buckets, so the yield order is not record order
    records = splits.records["val"]
    assert list(extracted["val"].labels) == [r.label for r in records]
    for i in (0, 7, 23, 41, len(records) - 1):
        alone = pipeline.make_dataset([records[i]], splits.image_dir, target_pixels=32 * 32, batch_size=1)
        (images, _), = list(alone)
        row = np.asarray(extractor.model.predict_on_batch(images))[0]
        np.testing.assert_allclose(extracted["val"].features[i], row, rtol=1e-4, atol=1e-5)
    saved = features.save(tmp_path, extractor, extracted, features.centroid_probe(extracted))
    metrics = json.loads(saved.read_text())["metrics"]
    assert (metrics["shape"], metrics["placement"], metrics["batch_shapes"]["val"], metrics["tensorflow_gpus"]) == (
        "variable", "corner", extracted["val"].extra["batch_shapes"], 0)


def test_a_variable_shape_models_predictions_come_back_in_record_order(tiny_dataset):
    from mame.classes import CLASS_NAMES
    from mame.data import pipeline
    from mame.data.input_shape import InputShape
    from mame.models import builders
    from mame.stages.support import common

    splits = features.load_splits(tiny_dataset, ("val",))
    records = splits.records["val"][:24]
    model = builders.build_transfer_model("efficientnetlite0", num_classes=len(CLASS_NAMES), image_size=32,
                                          dense_units=[8], variable=True)
    shape = InputShape("variable", 32)
    predicted = common.predict(model, records, splits.image_dir, image_size=shape, batch_size=8)
    assert list(predicted["files"]) == [r.image_file for r in records]
    for i in (0, 5, 17, 23):
        (images, _), = list(pipeline.make_dataset([records[i]], splits.image_dir, batch_size=1, **shape.dataset_args()))
        np.testing.assert_allclose(predicted["probabilities"][i], np.asarray(model.predict_on_batch(images))[0],
                                   rtol=1e-4, atol=1e-6)
