"""Grad-CAM on the real Keras models built here: through the flat transfer graph and the scratch CNN, and
on a hand-weighted model whose maps are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from mame.models import builders, gradcam
from mame.models.cnn_ladder import build_scratch_cnn

SIZE = 32


def images(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def halves_model():
    """``(n, 8, 8, 3) -> 2 classes``, weights set by hand: layer ``halves`` (2x2 kernel, stride 2, no bias)
    gives 4x4 maps, feature 0 the mean of channel 0 over each 2x2 cell and feature 1 that of channel 1;
    global average pooling; a softmax where class 0 counts feature 0 for and feature 1 against (weight
    0.02), class 1 the opposite. Grad-CAM's channel weights are then +w for the class's own feature and -w
    for the other (w > 0), so a class's map before upsampling is ReLU(w * (own - other))."""
    import keras

    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="halves")
    dense = keras.layers.Dense(2, activation="softmax", name="classes")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[:, :, 0, 0] = kernel[:, :, 1, 1] = 0.25
    conv.set_weights([kernel])
    dense.set_weights([np.array([[0.02, -0.02], [-0.02, 0.02]], np.float32), np.zeros(2, np.float32)])
    return model


def halves(left: float, right: float) -> np.ndarray:
    """Channel 0 at ``left`` on the left half, channel 1 at ``right`` on the right half, zero elsewhere."""
    image = np.zeros((8, 8, 3), np.float32)
    image[:, :4, 0], image[:, 4:, 1] = left, right
    return image


# The map of the left half: 1 on the 4x4 grid's two left columns, 0 on its two right ones; upsampled
# bilinearly (half-pixel centres) to 8 columns, the two boundary pixels sit 1/4 and 3/4 of the way between
# a hot and a cold cell. Without the ReLU the cold cells would be negative (the other class's feature)
# and pull those two pixels down before the final clip.
LEFT = np.tile(np.array([1.0, 1.0, 1.0, 0.75, 0.25, 0.0, 0.0, 0.0], np.float32), (8, 1))
RIGHT = LEFT[:, ::-1]


def test_a_map_explains_the_class_asked_for_not_the_predicted_one():
    model = halves_model()
    image = halves(100.0, 200.0)  # the right half brighter: class 1 predicted (logit gap 0.02 * 2 * 50 = 2)
    x = np.stack([image, image])
    maps, classes, probabilities = gradcam.heatmaps_with_probabilities(model, x, class_index=np.array([0, 1]),
                                                                       layer_name="halves")
    np.testing.assert_allclose(probabilities[0], [1 / (1 + np.exp(2)), 1 / (1 + np.exp(-2))], rtol=1e-5)
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(maps[0], LEFT, atol=1e-5)   # class 0: the evidence for it, on the left
    np.testing.assert_allclose(maps[1], RIGHT, atol=1e-5)  # class 1: on the right
    # by default each image's predicted class: the brighter half wins
    predicted, classes = gradcam.heatmaps(model, np.stack([image, halves(200.0, 100.0)]), layer_name="halves")
    assert classes.tolist() == [1, 0]
    np.testing.assert_allclose(predicted, np.stack([RIGHT, LEFT]), atol=1e-5)


@pytest.mark.parametrize("key", ["vgg16", "resnet50", "efficientnetb0"])
def test_maps_are_finite_scaled_to_their_peak_and_shaped_like_the_input(key):
    model = builders.build_transfer_model(key, num_classes=29, image_size=SIZE, dense_units=(16,))
    maps, classes = gradcam.heatmaps(model, images())
    assert maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all()
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0)  # each map divided by its own peak
    assert classes.tolist() == model.predict_on_batch(images()).argmax(axis=1).tolist()


def test_two_different_models_give_different_maps_and_a_class_can_be_chosen():
    import keras

    keras.utils.set_random_seed(2)
    keras_seeded = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    other = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    a, predicted = gradcam.heatmaps(keras_seeded, images())
    b, _ = gradcam.heatmaps(other, images())
    assert not np.allclose(a, b)
    chosen, _ = gradcam.heatmaps(keras_seeded, images(), class_index=np.array([3, 3, 3]))
    for i in range(3):
        if predicted[i] != 3:  # another class explained: another map
            assert np.abs(chosen[i] - a[i]).max() > 0.1, i
    np.testing.assert_allclose(gradcam.heatmaps(keras_seeded, images(), class_index=predicted)[0], a)


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


def test_every_class_gets_its_own_map_scaled_to_its_peak():
    import keras

    keras.utils.set_random_seed(0)
    model = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    x = images(4)
    maps, classes = gradcam.heatmaps(model, np.repeat(x, 29, axis=0), class_index=np.tile(np.arange(29), 4))
    maps = maps.reshape(4, 29, SIZE, SIZE)
    predicted = model.predict_on_batch(x).argmax(axis=1)
    for i in range(4):
        peaks = maps[i].max(axis=(1, 2))
        assert np.all((peaks == 0.0) | np.isclose(peaks, 1.0)), peaks  # each map scaled to its peak (or no heat)
        assert (peaks > 0).sum() >= 20  # a random model has some positive evidence for most classes
        for c in range(29):
            if c != predicted[i] and peaks[c] > 0:  # the predicted class's map is not every class's map
                assert np.abs(maps[i, c] - maps[i, predicted[i]]).max() > 0.1, (i, c)


def test_a_mixed_precision_model_gets_maps_too():
    """A model trained in mixed_bfloat16 (the default on GPUs and bf16 CPUs) keeps that policy when loaded:
    the gradient is taken at the layer's own (bfloat16) output, then cast. Its maps and probabilities are
    those of the same weights in float32, to bfloat16's precision."""
    import keras

    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin = build_scratch_cnn(num_classes=29, image_size=SIZE, filters=(8, 16))
    twin.set_weights(model.get_weights())
    chosen = np.array([1, 2, 3])
    maps, _, probabilities = gradcam.heatmaps_with_probabilities(model, images(), class_index=chosen)
    assert maps.dtype == np.float32 and maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all()
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 29)
    expected, _, expected_probabilities = gradcam.heatmaps_with_probabilities(twin, images(), class_index=chosen)
    np.testing.assert_allclose(maps, expected, atol=0.05)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-3)


def test_hot_area_is_the_share_at_half_the_peak_or_more():
    maps = np.zeros((3, 4, 4), np.float32)
    maps[0, 0, :3] = [1.0, 0.5, 0.4]    # two of 16 pixels at >= half the peak, one of them exactly at half
    maps[1] = 0.9                       # flat: every pixel is hot
    np.testing.assert_allclose(gradcam.hot_area(maps)[:2], [2 / 16, 1.0])
    np.testing.assert_allclose(gradcam.hot_area(maps, level=0.4)[:2], [3 / 16, 1.0])
    np.testing.assert_allclose(gradcam.hot_area(maps, level=1.0)[:2], [1 / 16, 1.0])  # the peak itself counts
    assert np.isnan(gradcam.hot_area(maps)[2])  # an all-zero map has no peak


def test_a_class_asked_for_must_be_one_per_image_and_one_the_model_has():
    model, x = halves_model(), np.stack([halves(100.0, 200.0)] * 2)
    with pytest.raises(ValueError, match=r"one integer class per image \(2,\), got int64 of shape \(1,\)"):
        gradcam.heatmaps(model, x, class_index=np.array([0]), layer_name="halves")
    with pytest.raises(ValueError, match=r"class_index: classes \[1, 2\] asked for, the model has 2 \(0-1\)"):
        gradcam.heatmaps(model, x, class_index=np.array([1, 2]), layer_name="halves")
    with pytest.raises(ValueError, match="got float64"):
        gradcam.heatmaps(model, x, class_index=np.array([0.0, 1.0]), layer_name="halves")
