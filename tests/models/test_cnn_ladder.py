"""The from-scratch CNN: one switch per rung of the baseline ladder, each visible in the graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mame.models import builders
from mame.models.cnn_ladder import build_scratch_cnn

SIZE = 32


def images(n: int = 2, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def kinds(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_outputs_probabilities_and_the_last_conv_gets_gradients():
    model = build_scratch_cnn(num_classes=29, image_size=SIZE, l2=0.01)
    probabilities = model.predict_on_batch(images())
    assert probabilities.shape == (2, 29)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    conv_name = builders.last_conv_layer_name(model)
    assert conv_name == "block3_conv1"
    grad_model = keras.Model(model.inputs, [model.get_layer(conv_name).output, model.output])
    with tf.GradientTape() as tape:
        conv, predictions = grad_model(tf.constant(images()), training=False)
        score = predictions[:, 1]
    grads = tape.gradient(score, conv)
    assert grads is not None and np.isfinite(grads.numpy()).all()


def test_each_switch_changes_the_graph_it_should():
    plain = build_scratch_cnn(num_classes=5, image_size=SIZE, filters=(8, 16), pooling="flatten",
                              dense_units=(32,), dropout_rate=0.0)
    assert "BatchNormalization" not in kinds(plain) and "Dropout" not in kinds(plain) and "Flatten" in kinds(plain)
    deeper = build_scratch_cnn(num_classes=5, image_size=SIZE, filters=(8, 16), convs_per_block=2,
                               pooling="flatten", dense_units=(32,), dropout_rate=0.0)
    assert kinds(deeper).count("Conv2D") == 4 and kinds(plain).count("Conv2D") == 2
    bn = build_scratch_cnn(num_classes=5, image_size=SIZE, filters=(8, 16), batch_norm=True, pooling="flatten",
                           dense_units=(32,), dropout_rate=0.5)
    assert kinds(bn).count("BatchNormalization") == 2 and "Dropout" in kinds(bn)
    assert not bn.get_layer("block1_conv1").use_bias  # the BN shift replaces the bias
    assert bn.get_layer("block1_bn1").momentum == 0.9
    gap = build_scratch_cnn(num_classes=5, image_size=SIZE, filters=(8, 16), pooling="avg", dense_units=(32,))
    assert "GlobalAveragePooling2D" in kinds(gap)
    # flattening 8x8x16 features into 32 units costs 32x more weights than averaging them
    assert plain.count_params() - gap.count_params() == (8 * 8 * 16 - 16) * 32
    l2 = build_scratch_cnn(num_classes=5, image_size=SIZE, filters=(8,), l2=0.1)
    assert l2.get_layer("block1_conv1").kernel_regularizer is not None and len(l2.losses) > 0


def test_impossible_shapes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="64 px"):
        build_scratch_cnn(num_classes=3, image_size=SIZE, filters=(8,) * 6)
    with pytest.raises(ValueError, match="pooling"):
        build_scratch_cnn(num_classes=3, image_size=SIZE, pooling="max")


def test_saved_models_load_back_in_a_fresh_process(tmp_path):
    """A VGG16 transfer model carries a custom layer; loading must not depend on what the caller imported."""
    import subprocess
    import sys

    from mame import config

    model = builders.build_transfer_model("vgg16", num_classes=3, image_size=SIZE, dense_units=(8,))
    model.save(tmp_path / "m.keras")
    code = ("import sys; from mame.models import builders; "
            f"m = builders.load_model({str(tmp_path / 'm.keras')!r}, compile=False); print(m.input_shape)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=config.ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "(None, 32, 32, 3)" in proc.stdout, proc.stderr[-2000:]
