"""Pooling over the valid region of a padded batch: the mean over the valid cells, numerically; a padded image's
features close to the unpadded image's for every backbone (the convolutions still see the pad at the border);
a saved variable-shape model loads again. Real Keras at small sizes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mame.data import aspect_buckets
from mame.models import builders
from mame.models.valid_pooling import ValidRegionPooling


def test_the_pooled_vector_is_the_mean_over_the_valid_cells():
    rng = np.random.default_rng(0)
    feature_map = rng.normal(size=(4, 5, 7, 6)).astype("float32")
    image = np.zeros((4, 40, 56, 3), "float32")  # an 8-pixel stride: 40 x 56 pixels give 5 x 7 cells
    valid = np.array([[40, 56], [17, 30], [1, 1], [35, 9]], "int32")
    pooled = np.asarray(ValidRegionPooling(stride=8)([feature_map, valid, image]))
    for i, (h, w) in enumerate(valid):
        rows, cols = [(5, 7), (2, 4), (1, 1), (4, 1)][i]  # cells whose centre (8 i + 4) is inside: 17 px, 2 rows
        np.testing.assert_allclose(pooled[i], feature_map[i, :rows, :cols].mean(axis=(0, 1)), rtol=1e-6)
    assert not np.allclose(pooled[1], feature_map[1].mean(axis=(0, 1)))  # not the plain average


# The relative gap |f(padded) - f(alone)| / |f(alone)| of synthetic MAMe images of 128 x 64, 96 x 96 and 64 x 128
# pixels padded by 32 pixels below and to the right (sides kept multiples of the 32-pixel stride, so that "same"
# padding samples both on one grid: a 1-pixel change of an odd side moves the grid, and the interior cells of
# EfficientNet-Lite0 then differ by 97 %), measured: EfficientNet-Lite0 (ImageNet weights) 0.39-0.44, ResNet50 (random
# weights) 0.12-0.16. The pad is mid-grey, about zero after preprocessing like a convolution's own padding, but deeper
# layers see the pad's non-zero activations, and Lite0's last cells see the whole image: the gap is the border's.
GAP_BOUNDS = {"efficientnetlite0": 0.55, "resnet50": 0.25}


@pytest.mark.parametrize("key", sorted(GAP_BOUNDS))
def test_a_padded_images_features_stay_close_to_the_image_alone_and_the_pad_is_not_averaged(key):
    from mame.data.synthetic.families import render

    model = builders.build_variable_extractor(key, weights_choice="imagenet" if key == "efficientnetlite0" else "random")
    feature_map = keras.Model(model.inputs, model.get_layer("valid_pool").input[0])
    rng = np.random.default_rng(3)
    for name, (height, width) in (("Albumen photograph", (128, 64)), ("Bronze", (96, 96)), ("Woven fabric", (64, 128))):
        picture = render(name, rng, width, height).astype("float32")
        padded = np.empty((1, height + 32, width + 32, 3), "float32")
        padded[:] = aspect_buckets.PAD_RGB
        padded[0, :height, :width] = picture
        valid = np.array([[height, width]], "int32")
        alone = model.predict({"image": picture[None], "valid_size": valid}, verbose=0)[0]
        inside = model.predict({"image": padded, "valid_size": valid}, verbose=0)[0]
        gap = np.linalg.norm(inside - alone) / np.linalg.norm(alone)
        print(f"{key} {name} {height}x{width} padded by 32: gap {gap:.3f}")
        assert gap < GAP_BOUNDS[key], name
        cells = np.asarray(feature_map.predict({"image": padded, "valid_size": valid}, verbose=0))[0]
        np.testing.assert_allclose(inside, cells[:height // 32, :width // 32].mean(axis=(0, 1)), rtol=1e-4, atol=1e-6)
        assert not np.allclose(inside, cells.mean(axis=(0, 1)), rtol=1e-3)  # the pad's row and column left out


def test_a_saved_variable_shape_model_loads_and_gives_the_same_features(tmp_path):
    model = builders.build_variable_extractor("efficientnetlite0", weights_choice="random")
    model.save(tmp_path / "model.keras")
    again = builders.load_model(tmp_path / "model.keras", compile=False)
    batch = {"image": np.random.default_rng(0).uniform(0, 255, (2, 48, 40, 3)).astype("float32"),
             "valid_size": np.array([[48, 40], [30, 21]], "int32")}
    np.testing.assert_allclose(again.predict(batch, verbose=0), model.predict(batch, verbose=0), rtol=1e-5)
