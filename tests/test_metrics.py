import numpy as np
import pytest
from sklearn.metrics import classification_report

from mame.classes import CLASS_NAMES
from mame.metrics import accuracy, classification_result


def test_matches_sklearn_and_lists_every_class():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 29, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 29, 300))
    entry = classification_result(y_true, y_pred, class_names=CLASS_NAMES)
    expected = classification_report(y_true, y_pred, labels=range(29), target_names=CLASS_NAMES,
                                      output_dict=True, zero_division=0)
    for name in CLASS_NAMES:
        assert entry["report"][name]["f1-score"] == pytest.approx(expected[name]["f1-score"])
    assert accuracy(entry) == pytest.approx(np.mean(y_true == y_pred))
    matrix = np.array(entry["confusion_matrix"]["matrix"])
    assert matrix.shape == (29, 29) and matrix.sum() == 300 and np.trace(matrix) == (y_true == y_pred).sum()
    assert entry["confusion_matrix"]["labels"] == list(CLASS_NAMES)


def test_absent_classes_still_give_accuracy():
    entry = classification_result([0, 0, 1], [0, 1, 1], class_names=CLASS_NAMES)
    assert entry["report"]["accuracy"] == pytest.approx(2 / 3)
    assert "micro avg" not in entry["report"]
    assert entry["report"]["Woven fabric"]["support"] == 0


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 1], [0], "same non-zero length"),
    ([0, 29], [0, 1], r"\[0, 28\]"),
    ([[0, 1]], [[0, 1]], "1-d array"),
    ([0.5, 1], [0, 1], "integer class indices"),
])
def test_bad_input_says_what_was_expected(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_result(y_true, y_pred, class_names=CLASS_NAMES)
