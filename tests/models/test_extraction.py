"""Running built models over a dataset: one loop for single-output extractors, the ImageNet head and
multi-layer extractors, with the same throughput figures (32 px, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mame.models import builders, extraction

SIZE = 32


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def efficientnet():
    return builders.build_feature_extractor("efficientnetb0", image_size=SIZE)


def test_extract_features_returns_features_labels_and_throughput(efficientnet):
    images, labels = _images(5), np.array([0, 1, 2, 1, 0])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    stats: dict = {}
    features, got = extraction.extract_features(efficientnet, dataset, stats=stats)
    assert features.shape == (5, 1280) and features.dtype == np.float32
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_allclose(features[:2], efficientnet(images[:2]), atol=1e-4)
    assert set(stats) == {"n_images", "seconds", "warmup_seconds", "images_per_second", "batch_shapes"}
    assert stats["batch_shapes"] == 1  # fixed shape: one shape, one trace
    assert stats["n_images"] == 5 and stats["images_per_second"] > 0 and stats["seconds"] >= stats["warmup_seconds"]
    only_images = tf.data.Dataset.from_tensor_slices(images).batch(2)
    features, got = extraction.extract_features(efficientnet, only_images, with_labels=False)
    assert features.shape == (5, 1280) and got.size == 0
    with pytest.raises(ValueError, match="labels"):
        extraction.extract_features(efficientnet, only_images)
    with pytest.raises(ValueError, match="empty dataset"):
        extraction.extract_features(efficientnet, dataset.take(0))


def test_one_loop_takes_several_layers_from_one_pass():
    model, info = extraction.build_extractor("vgg16", image_size=SIZE, extra_layers=["fc2"])
    alone, alone_info = extraction.build_extractor("vgg16", image_size=SIZE)
    assert isinstance(model.output, dict) and not isinstance(alone.output, dict)
    assert (info["feature_layer"], info["feature_dim"], info["n_params"]) == ("fc1", 4096, alone_info["n_params"])
    assert info["extra_layers"] == {"fc2": {"dim": 4096, "kept": ["fc1", "fc2"]}} and alone_info["extra_layers"] == {}
    images, labels = _images(3), np.array([2, 0, 1])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    stats, extra = {}, {}
    features, got = extraction.extract_features(model, dataset, stats=stats, extra=extra)
    expected = model([images])  # built on the extractor's input list
    np.testing.assert_allclose(features, expected["features"], rtol=1e-5, atol=1e-5)
    assert list(extra) == ["fc2"] and extra["fc2"].shape == (3, 4096) and extra["fc2"].dtype == np.float32
    np.testing.assert_allclose(extra["fc2"], expected["fc2"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, labels)
    assert stats["n_images"] == 3 and set(stats) == {"n_images", "seconds", "warmup_seconds", "images_per_second", "batch_shapes"}
    untouched: dict = {}
    extraction.extract_features(alone, dataset, extra=untouched)
    assert untouched == {}  # a single-output model has nothing beside its features


def test_the_imagenet_classifier_runs_through_the_same_loop():
    model = builders.build_imagenet_classifier("efficientnetb0", image_size=SIZE)
    dataset = tf.data.Dataset.from_tensor_slices((_images(3), np.arange(3))).batch(2)
    probabilities, labels = extraction.extract_features(model, dataset)
    assert probabilities.shape == (3, 1000) and labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
