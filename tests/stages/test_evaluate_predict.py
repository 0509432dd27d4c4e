"""evaluate.predict_test on models saved as the training stages save them, with tiny real CNNs and synthetic
data: one pass over the test images per model, each in the test-split ledger, each model's own probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.data.synthetic.generator import SynthSpec, ensure
from mame.stages import evaluate
from mame.stages.support import common
from mame.stages.support.selection import Candidate
from tests.helpers import write_training_metrics

SIZE = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return ensure(tmp_path_factory.mktemp("evaluate-predict") / "smoke", SynthSpec(1, 1, 0.004, 48))


def saved_model(folder: Path, seed: int):
    """A small untrained CNN saved in ``folder`` as a training run saves its model; the model in memory."""
    import keras

    from mame.models.cnn_ladder import build_scratch_cnn

    keras.utils.set_random_seed(seed)
    model = build_scratch_cnn(num_classes=len(CLASS_NAMES), image_size=SIZE, filters=(8,), dense_units=(16,))
    folder.mkdir(parents=True)
    common.save_model(model, folder)
    write_training_metrics(folder, SIZE)
    return model


def own_predictions(model, records, image_dir) -> tuple[np.ndarray, np.ndarray]:
    """The in-memory model's probabilities on ``records``, batch by batch, and the labels the batches carry."""
    from mame.data import pipeline

    dataset = pipeline.make_dataset(records, image_dir, image_size=SIZE, batch_size=7, allow_test=True)
    batches = [(np.asarray(model(images, training=False)), labels.numpy()) for images, labels in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_predict_test_scores_each_saved_model_once_with_its_own_probabilities(data_dir, tmp_path):
    models = {"finetune": saved_model(tmp_path / "finetune" / "custom-step2", seed=1),
              "scratch": saved_model(tmp_path / "scratch" / "r1-plain", seed=2)}
    chosen = [Candidate("finetune", "custom-step2", tmp_path / "finetune" / "custom-step2", 0.5, {}, "custom",
                        variant="step2", step=2),
              Candidate("scratch", "r1-plain", tmp_path / "scratch" / "r1-plain", 0.4, {}, variant="r1-plain")]
    ledger: list = []
    records, image_dir, _ = evaluate.load_test(data_dir, ledger)
    assert {r.subset for r in records} == {"test"} and len(records) >= len(CLASS_NAMES)
    assert ledger == [{"what": "evaluate: the test split's records", "n_images": len(records)}]

    evaluate.predict_test(chosen, records, image_dir, ledger=ledger, batch_size=16)

    assert len(ledger) == 1 + len(chosen)  # one pass per model, after the read of the records
    for entry, c in zip(ledger[1:], chosen):
        assert entry["model"] == f"{c.name}/{common.MODEL_FILE}"
        assert entry["n_images"] == len(records)
        assert c.name in entry["what"]
    labels = np.array([r.label for r in records])
    expected = {}
    for c in chosen:
        expected[c.name], batch_labels = own_predictions(models[c.stage], records, image_dir)
        np.testing.assert_array_equal(batch_labels, labels)
        np.testing.assert_array_equal(c.test["y_true"], labels)
        assert c.test["probabilities"].shape == (len(records), len(CLASS_NAMES))
        np.testing.assert_allclose(c.test["probabilities"], expected[c.name], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(c.test["y_pred"], c.test["probabilities"].argmax(axis=1))
    first, second = expected.values()
    assert np.abs(first - second).max() > 1e-3  # the two models disagree: each got its own probabilities
