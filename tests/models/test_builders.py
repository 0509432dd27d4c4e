"""Backbones, weights resolution and models, at 32 px with random weights (nothing downloads)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.applications import efficientnet as k_effnet
from keras.src.applications import resnet as k_resnet
from keras.src.applications import vgg16 as k_vgg16
from keras.src.legacy.saving import legacy_h5_format

from mame.models import backbones, builders, reachability
from mame.models.backbones import WeightsChoice, WeightsError, get_backbone, resolve_weights

SIZE = 32
DIMS = {"vgg16": 4096, "resnet50": 2048, "efficientnetb0": 1280, "efficientnetb3": 1536}
NOTOP_PARAMS = {"vgg16": 14_714_688, "resnet50": 23_587_712,
                "efficientnetb0": 4_049_571, "efficientnetb3": 10_783_535}


def _images(n: int = 2, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def extractors() -> dict[str, keras.Model]:
    return {key: builders.build_feature_extractor(key, image_size=SIZE) for key in DIMS}


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return tmp_path / "models"


def test_registry_matches_keras_source():
    vgg, resnet = get_backbone("vgg16"), get_backbone("resnet50")
    assert (vgg.weights_top.url, vgg.weights_notop.url) == (k_vgg16.WEIGHTS_PATH,
                                                           k_vgg16.WEIGHTS_PATH_NO_TOP)
    assert (resnet.weights_top.md5, resnet.weights_notop.md5) == k_resnet.WEIGHTS_HASHES["resnet50"]
    assert resnet.weights_notop.url == k_resnet.BASE_WEIGHTS_PATH + resnet.weights_notop.name
    for key, short in (("efficientnetb0", "b0"), ("efficientnetb3", "b3")):
        spec = get_backbone(key)
        assert (spec.weights_top.md5, spec.weights_notop.md5) == k_effnet.WEIGHTS_HASHES[short]
        assert spec.weights_notop.name == f"{key}_notop.h5"
        assert spec.weights_top.url == k_effnet.BASE_WEIGHTS_PATH + f"{key}.h5"


def test_get_backbone_unknown_lists_known_keys():
    with pytest.raises(ValueError, match="vgg16, resnet50, efficientnetb0, efficientnetb3"):
        get_backbone("vgg19")


@pytest.mark.parametrize("key", list(DIMS))
def test_extractor_gives_features_of_backbone_dim(extractors, key):
    features = extractors[key].predict_on_batch(_images())
    assert features.shape == (2, DIMS[key]) and features.dtype == np.float32
    assert np.isfinite(features).all()
    info = builders.backbone_info(extractors[key])
    assert info["feature_dim"] == DIMS[key] and info["input_size"] == SIZE
    assert info["weights"] == "random" and info["n_params_conv"] == NOTOP_PARAMS[key]


@pytest.mark.parametrize("key", list(DIMS))
def test_the_pipelines_uint8_pixels_give_the_features_their_float32_values_give(extractors, key):
    pixels = np.round(_images(4)).astype(np.uint8)  # what the fixed-shape pipeline yields; Keras casts at the input
    as_uint8 = extractors[key].predict(tf.data.Dataset.from_tensor_slices(pixels).batch(2), verbose=0)
    as_float = extractors[key].predict(tf.data.Dataset.from_tensor_slices(pixels.astype(np.float32)).batch(2), verbose=0)
    assert np.array_equal(as_uint8, as_float)
    # and in one batch of 4 (compared with float32 pixels in the same batch: oneDNN picks its kernels by batch size,
    # so batches of 2 and of 4 may differ in the last bits on a CPU without AVX-512)
    assert np.array_equal(extractors[key].predict_on_batch(pixels), extractors[key].predict_on_batch(pixels.astype(np.float32)))


@pytest.mark.parametrize("key,module", [("vgg16", keras.applications.vgg16),
                                        ("resnet50", keras.applications.resnet50)])
def test_caffe_preprocessing_is_the_first_layer(extractors, key, module):
    x = _images()
    first = extractors[key].layers[1]
    assert isinstance(first, backbones.CaffePreprocess)
    expected = module.preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(first(x)), expected, rtol=1e-6, atol=1e-4)


def test_efficientnet_rescales_inside(extractors):
    assert isinstance(extractors["efficientnetb0"].layers[1], keras.layers.Rescaling)


def test_notop_param_counts_match_design():
    assert builders.count_params("vgg16", image_size=SIZE) == NOTOP_PARAMS["vgg16"]
    assert builders.count_params("vgg16") == NOTOP_PARAMS["vgg16"]  # 224 px: same conv part


def test_vgg16_fc1_params_at_224():
    info = builders.backbone_info("vgg16", image_size=224)
    assert info["n_params_top"] == 102_764_544 and info["feature_dim"] == 4096
    assert info["n_params"] == 102_764_544 + NOTOP_PARAMS["vgg16"]


def test_unknown_feature_layer_is_refused():
    with pytest.raises(ValueError, match="fc1, fc2"):
        builders.build_feature_extractor("vgg16", image_size=SIZE, feature_layer="block5_pool")


def test_random_policy_uses_no_weights():
    choice = resolve_weights("resnet50", "random")
    assert choice.keras_weights is None and choice.used == "random"


def test_if_cached_with_empty_cache_falls_back_to_random(keras_home):
    choice = resolve_weights("vgg16", "imagenet-if-cached")
    assert choice.used == "random" and choice.keras_weights is None
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in choice.reason
    assert "not in the Keras cache" in choice.reason and "random initialisation" in choice.reason


def test_corrupt_cached_file_is_not_used(keras_home):
    keras_home.mkdir(parents=True)
    (keras_home / "efficientnetb0_notop.h5").write_bytes(b"not an h5 file")
    choice = resolve_weights("efficientnetb0", "imagenet-if-cached")
    assert choice.used == "random" and "md5" in choice.reason
    with pytest.raises(WeightsError, match="efficientnetb0_notop.h5.*md5"):
        resolve_weights("efficientnetb0", "imagenet", allow_download=False)


def test_required_imagenet_without_cache_fails_without_a_download(keras_home, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("resolve_weights tried to download with allow_download=False")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    with pytest.raises(WeightsError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        resolve_weights("resnet50", "imagenet", allow_download=False)


def test_missing_weights_path_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="nothere.h5"):
        resolve_weights("vgg16", str(tmp_path / "nothere.h5"))


def _legacy_vgg16_notop(path) -> keras.Model:
    source = keras.applications.VGG16(include_top=False, weights=None,
                                      input_shape=(SIZE, SIZE, 3))
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    return source


def test_verified_cached_file_and_path_are_loaded(keras_home, monkeypatch):
    keras_home.mkdir(parents=True)
    spec = get_backbone("vgg16")
    file = keras_home / spec.weights_notop.name
    source = _legacy_vgg16_notop(file)
    good = dataclasses.replace(spec.weights_notop, md5=backbones.file_md5(file))
    monkeypatch.setitem(backbones.BACKBONES, "vgg16",
                        dataclasses.replace(spec, weights_notop=good))
    for policy in ("imagenet-if-cached", "imagenet", str(file)):
        choice = resolve_weights("vgg16", policy, include_top=False, allow_download=False)
        assert choice.path == str(file)
        model = builders.build_transfer_model("vgg16", num_classes=3, image_size=SIZE,
                                            weights_choice=choice)
        for name in ("block1_conv1", "block5_conv3"):
            np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                          source.get_layer(name).get_weights()[0])
    assert resolve_weights("vgg16", "imagenet-if-cached", include_top=False).used == "imagenet"


def test_imagenet_vgg16_top_needs_224(tmp_path):
    choice = WeightsChoice("vgg16", "imagenet", "imagenet", True, "test", str(tmp_path / "w.h5"))
    with pytest.raises(ValueError, match="224 px"):
        builders.build_feature_extractor("vgg16", image_size=SIZE, weights_choice=choice)


def test_weights_resolved_without_top_are_refused_for_vgg16_features(tmp_path):
    choice = WeightsChoice("vgg16", "p", "p", False, "test", str(tmp_path / "w.h5"))
    with pytest.raises(ValueError, match="include_top=True"):
        builders.build_feature_extractor("vgg16", image_size=SIZE, weights_choice=choice)


def _gradcam_gradient(model: keras.Model) -> np.ndarray:
    conv_name = builders.last_conv_layer_name(model)
    grad_model = keras.Model(model.inputs, [model.get_layer(conv_name).output, model.output])
    x = tf.constant(_images())
    with tf.GradientTape() as tape:
        conv, predictions = grad_model(x, training=False)
        score = predictions[:, 1]
    grads = tape.gradient(score, conv)
    assert grads is not None and grads.shape == conv.shape
    return grads.numpy()


def test_vgg16_transfer_freezes_first_three_blocks():
    model = builders.build_transfer_model("vgg16", num_classes=5, image_size=SIZE,
                                        dense_units=(16, 8), dropout_rate=0.5, l2=0.1,
                                        trainable_from="block4_conv1")
    assert not model.get_layer("block3_conv3").trainable
    assert model.get_layer("block4_conv1").trainable and model.get_layer("block5_conv3").trainable
    assert model.get_layer("head_dense_2").trainable and model.get_layer("head_dropout_1")
    assert len(model.losses) == 2  # L2 on both head layers
    assert builders.last_conv_layer_name(model) == "block5_conv3"
    assert np.isfinite(_gradcam_gradient(model)).all()


def test_efficientnet_transfer_keeps_batchnorm_frozen():
    model = builders.build_transfer_model("efficientnetb0", num_classes=4, image_size=SIZE,
                                        trainable_from="block6a_expand_conv")
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    assert model.get_layer("top_conv").trainable
    assert not model.get_layer("block5a_expand_conv").trainable
    before = np.array(model.get_layer("top_bn").moving_mean)
    model(_images(), training=True)
    np.testing.assert_array_equal(np.array(model.get_layer("top_bn").moving_mean), before)
    assert builders.last_conv_layer_name(model) == "top_activation"
    assert np.isfinite(_gradcam_gradient(model)).all()


def test_transfer_model_without_trainable_from_freezes_backbone():
    model = builders.build_transfer_model("vgg16", num_classes=3, image_size=SIZE, pooling="flatten")
    head = {"head_dense_1", "predictions"}
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == head
    with pytest.raises(ValueError, match="block9_conv1"):
        builders.build_transfer_model("vgg16", num_classes=3, image_size=SIZE,
                                    trainable_from="block9_conv1")


def test_mixed_bfloat16_keeps_predictions_and_preprocessing_float32():
    previous = builders.configure_precision("mixed_bfloat16")
    try:
        model = builders.build_transfer_model("vgg16", num_classes=3, image_size=SIZE)
    finally:
        builders.configure_precision(previous)
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("caffe_preprocess").compute_dtype == "float32"
    assert model.predict_on_batch(_images()).dtype == np.float32
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        builders.configure_precision("float16")


def test_the_imagenet_classifier_keeps_the_applications_top_and_says_what_it_is():
    model = builders.build_imagenet_classifier("efficientnetb0", image_size=SIZE)
    probabilities = model.predict_on_batch(_images())
    assert probabilities.shape == (2, 1000) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    info = builders.model_info(model)
    assert (info["key"], info["input_size"], info["weights"], info["n_outputs"]) == ("efficientnetb0", SIZE, "random", 1000)
    assert info["n_params"] == model.count_params() > NOTOP_PARAMS["efficientnetb0"]


@pytest.fixture
def weight_server(tmp_path):
    """A real HTTP server on localhost serving a VGG16 notop weights file (legacy h5) in Keras' layout."""
    import http.server
    import threading
    from functools import partial as bind

    served = tmp_path / "served"
    served.mkdir()
    _legacy_vgg16_notop(served / "vgg16_notop.h5")
    handler = bind(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served / "vgg16_notop.h5"
    server.shutdown()


def _point_vgg16_at(monkeypatch, url: str, md5: str) -> None:
    spec = get_backbone("vgg16")
    moved = dataclasses.replace(spec.weights_notop, url=url, md5=md5)
    monkeypatch.setitem(backbones.BACKBONES, "vgg16", dataclasses.replace(spec, weights_notop=moved))


def test_if_available_downloads_once_when_the_host_answers(keras_home, weight_server, monkeypatch):
    base, file = weight_server
    _point_vgg16_at(monkeypatch, base + "vgg16_notop.h5", backbones.file_md5(file))
    choice = resolve_weights("vgg16", "imagenet-if-available", include_top=False)
    assert choice.used == "imagenet" and "downloaded" in choice.reason
    assert backbones.file_md5(Path(choice.path)) == backbones.file_md5(file) and Path(choice.path).parent == keras_home
    again = resolve_weights("vgg16", "imagenet-if-available", include_top=False)
    assert again.used == "imagenet" and "from the Keras cache" in again.reason  # once: the second run reads the cache


def test_if_available_falls_back_to_random_when_the_host_is_down_or_the_file_is_wrong(keras_home, weight_server,
                                                                                      monkeypatch):
    import socket

    with socket.socket() as closed:  # a port nothing listens on: the connect is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    _point_vgg16_at(monkeypatch, f"http://127.0.0.1:{port}/vgg16_notop.h5", "0" * 32)
    choice = resolve_weights("vgg16", "imagenet-if-available", include_top=False)
    assert choice.used == "random" and f"127.0.0.1:{port} refused the connection" in choice.reason
    memo = json.loads((keras_home / reachability.PROBE_FILE).read_text())
    assert memo[f"127.0.0.1:{port}"]["reachable"] is False  # remembered: the other runs do not probe again
    base, _ = weight_server
    _point_vgg16_at(monkeypatch, base + "vgg16_notop.h5", "0" * 32)  # reachable, but the md5 does not match
    choice = resolve_weights("vgg16", "imagenet-if-available", include_top=False)
    assert choice.used == "random" and "cannot download" in choice.reason
    assert not (keras_home / get_backbone("vgg16").weights_notop.name).exists()
