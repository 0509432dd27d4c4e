"""The task-similarity stage: the measure on constructed label sets, the ImageNet names, a weights file on
tiny images (the stage through the runner and papermill runs with the ladders, tests/stages/test_ladders.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mame.data.synthetic.generator import SynthSpec, generate
from mame.models import imagenet_labels
from mame.stages import similarity


def test_one_imagenet_label_per_class_is_a_similarity_of_one():
    labels = np.repeat(np.arange(29), 3)
    top1 = 100 + 7 * labels  # class c always gets ImageNet label 100 + 7c
    result = similarity.similarity_measure(top1, labels, top1[::3], labels[::3])
    assert result["map_accuracy"] == 1.0
    assert result["nmi"] == pytest.approx(1.0) and result["ami"] == pytest.approx(1.0)
    assert result["distinct_labels"] == 29 and result["unseen_val_labels"] == 0


def test_several_labels_per_class_still_map_perfectly_but_lower_nmi():
    labels = np.repeat(np.arange(29), 4)
    top1 = 2 * labels + np.tile([0, 1], 58)  # two ImageNet labels per class: many-to-one
    result = similarity.similarity_measure(top1, labels, top1, labels)
    assert result["map_accuracy"] == 1.0
    assert 0.5 < result["nmi"] < 1.0


def test_uninformative_labels_score_the_chance_level_and_the_measure_is_deterministic():
    rng = np.random.default_rng(0)
    train_y, val_y = rng.integers(0, 29, 2000), rng.integers(0, 29, 600)
    train_top1, val_top1 = rng.integers(0, 5, 2000), rng.integers(0, 5, 600)  # labels unrelated to classes
    first = similarity.similarity_measure(train_top1, train_y, val_top1, val_y)
    assert first == similarity.similarity_measure(train_top1, train_y, val_top1, val_y)
    # the same numbers worked out here from the counts: each of the 5 labels goes to its most frequent train
    # class, an unseen label (none here) to the most frequent class; NMI = I(y; t) / mean(H(y), H(t))
    majority = [np.bincount(train_y[train_top1 == t], minlength=29).argmax() for t in range(5)]
    assert first["map_accuracy"] == pytest.approx(np.mean(np.take(majority, val_top1) == val_y))
    assert first["chance"] == pytest.approx(np.mean(val_y == np.bincount(train_y).argmax()))
    joint = np.zeros((29, 5))
    np.add.at(joint, (val_y, val_top1), 1 / len(val_y))
    py, pt = joint.sum(axis=1), joint.sum(axis=0)
    nonzero = joint > 0
    mutual = np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(py, pt)[nonzero]))
    entropy = [-np.sum(p[p > 0] * np.log(p[p > 0])) for p in (py, pt)]
    assert first["nmi"] == pytest.approx(mutual / np.mean(entropy))
    assert 0 < first["nmi"] < 0.05  # unrelated labels: next to no shared information (finite samples: not 0)
    assert first["map_accuracy"] < 0.08 and abs(first["ami"]) < 0.01
    one_label = similarity.similarity_measure(np.zeros(2000, int), train_y, np.zeros(600, int), val_y)
    assert one_label["map_accuracy"] == one_label["chance"]  # every image mapped to the majority class
    assert one_label["nmi"] == 0.0


def test_the_map_is_learned_on_train_and_unseen_labels_go_to_the_majority_class():
    mapping, fallback = similarity.many_to_one_map(np.array([5, 5, 5, 9, 9]), np.array([1, 1, 2, 3, 3]))
    assert mapping == {5: 1, 9: 3} and fallback == 1
    tied, _ = similarity.many_to_one_map(np.array([4, 4]), np.array([7, 2]))
    assert tied == {4: 2}  # a tie goes to the lower class index
    result = similarity.similarity_measure([5, 9], [1, 3], [5, 9, 42], [1, 3, 1])
    assert result["unseen_val_labels"] == 1 and result["map_accuracy"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        similarity.many_to_one_map(np.array([1, 2]), np.array([1]))


def test_imagenet_names_come_from_the_package_in_keras_order():
    classes = imagenet_labels.imagenet_classes()
    assert len(classes) == 1000 and [c.index for c in classes] == list(range(1000))
    assert [c.synset for c in classes] == sorted(c.synset for c in classes)  # Keras' index order
    names = imagenet_labels.class_names()
    assert names[0] == "tench" and names[671] == "mountain bike" and names[999] == "toilet tissue"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("similarity") / "mame", SynthSpec(3, 2, 0.004, 32, seed=5))


def test_a_weights_file_counts_as_trained_and_forces_the_heads_input_size(tiny, tmp_path):
    from mame.models import builders

    path = tmp_path / "b0.weights.h5"  # a user's own weights for the full application (top included)
    builders.build_imagenet_classifier("efficientnetb0", weights_choice="random").save_weights(path)
    model = similarity.build_model("efficientnetb0", image_size=32, weights=str(path))
    assert model.meaningful and model.info["image_size"] == 224
    assert any("image_size 32 ignored" in note for note in model.info["notes"])
    splits = similarity.load_splits(tiny, ("train", "val"), max_per_class=1)
    predicted = similarity.predict(model, splits, batch_size=32, top_k=3)
    assert predicted["val"].top_indices.shape == (58, 3)  # max_per_class subsamples training only
    assert np.all(np.diff(predicted["val"].top_probabilities, axis=1) <= 0)  # most probable first
    similarity.save(tmp_path, model, predicted, similarity.measure(predicted),
                    similarity.examples(predicted["val"], n=4), top_k=3)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["headline"]["name"] == "similarity_map_accuracy"
    with pytest.raises(ValueError, match="does not read the test split"):
        similarity.load_splits(tiny, ("train", "test"))
