"""Grad-CAM on the real Keras models built here: through the flat transfer graph and the scratch CNN."""

from __future__ import annotations

import numpy as np
import pytest

from mame.models import builders, gradcam
from mame.models.scratch import build_scratch_cnn

SIZE = 32


def images(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("key", ["vgg16", "resnet50", "efficientnetb0"])
def test_maps_are_finite_in_0_1_and_shaped_like_the_input(key):
    model = builders.build_transfer_model(key, num_classes=29, image_size=SIZE, dense_units=(16,))
    maps, classes = gradcam.heatmaps(model, images())
    assert maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert classes.tolist() == model.predict_on_batch(images()).argmax(axis=1).tolist()


def test_two_different_models_give_different_maps_and_a_class_can_be_chosen():
    keras_seeded = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    other = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    a, _ = gradcam.heatmaps(keras_seeded, images())
    b, _ = gradcam.heatmaps(other, images())
    assert not np.allclose(a, b)
    chosen, classes = gradcam.heatmaps(keras_seeded, images(), class_index=np.array([3, 3, 3]))
    assert classes.tolist() == [3, 3, 3] and chosen.shape == a.shape


def test_mass_inside_a_mask():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, :2, :2] = 1.0               # all heat in the top-left quarter
    maps[1] = 1.0                       # uniform heat
    masks = np.zeros((2, 4, 4), bool)
    masks[:, :2, :2] = True
    np.testing.assert_allclose(gradcam.mass_inside(maps, masks), [1.0, 0.25])
    assert np.isnan(gradcam.mass_inside(np.zeros((1, 4, 4)), masks[:1]))[0]
    with pytest.raises(ValueError, match="same shape"):
        gradcam.mass_inside(maps, masks[:, :2])


def test_only_positive_evidence_counts_for_every_class():
    model = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    x = images(4)
    for c in range(29):
        maps, _ = gradcam.heatmaps(model, x, class_index=np.full(4, c))
        assert maps.min() >= 0.0  # ReLU of the weighted activations: negative evidence is dropped
        assert all(m.max() in (0.0, 1.0) or np.isclose(m.max(), 1.0) for m in maps)  # each map scaled to its peak


def test_a_mixed_precision_model_gets_maps_too():
    """A model trained in mixed_bfloat16 (the default on GPUs and bf16 CPUs) keeps that policy when loaded:
    the gradient is taken at the layer's own (bfloat16) output, then cast."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    maps, classes, probabilities = gradcam.heatmaps_with_probabilities(model, images(), class_index=np.array([1, 2, 3]))
    assert maps.dtype == np.float32 and maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all()
    assert probabilities.shape == (3, 29) and classes.tolist() == [1, 2, 3]


def test_hot_area_is_the_share_at_half_the_peak_or_more():
    maps = np.zeros((3, 4, 4), np.float32)
    maps[0, 0, :2] = [1.0, 0.6]         # two of 16 pixels at >= half the peak
    maps[1] = 0.9                       # flat: every pixel is hot
    np.testing.assert_allclose(gradcam.hot_area(maps)[:2], [2 / 16, 1.0])
    assert np.isnan(gradcam.hot_area(maps)[2])  # an all-zero map has no peak
