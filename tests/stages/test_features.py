import numpy as np
import pytest

from mame.data.synthetic.generator import SynthSpec, generate
from mame.stages import features


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
        "train": features.Extracted(centres[labels_train] + rng.normal(0, 0.1, (87, 8)), labels_train, [], 1.0),
        "val": features.Extracted(centres[labels_val] + rng.normal(0, 0.1, (29, 8)), labels_val, [], 1.0),
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
