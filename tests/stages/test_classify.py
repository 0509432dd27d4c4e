import numpy as np
import pytest

from mame.engine import runs
from mame.stages import classify


def write_features(run_dir, n_per_class=6, n_classes=29, dim=16, seed=0, splits=("train", "val")):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, dim))
    for split in splits:
        labels = np.repeat(np.arange(n_classes), n_per_class)
        feats = centres[labels] + rng.normal(0, 1, (len(labels), dim))
        np.savez(run_dir / f"features_{split}.npz", features=feats.astype(np.float32), labels=labels)
    return run_dir


def test_classifiers_learn_separable_features_and_save_a_valid_result(tmp_path):
    feature_set = classify.load_features(write_features(tmp_path))
    fitted = classify.fit_all(feature_set, classifiers=classify.KNOWN, max_iter=500)
    table = classify.evaluate(fitted, feature_set, split="val")
    for name in classify.KNOWN:
        assert table[name]["val_accuracy"] > 0.8, name  # chance is 1/29
    out = tmp_path / "out"
    out.mkdir()
    classify.save(out, table)
    result = runs.load_result(out)
    assert set(result["classification"]) == {f"{n}/val" for n in classify.KNOWN}
    assert result["headline"]["value"] == max(row["val_accuracy"] for row in table.values())
    with np.load(out / result["artifacts"]["predictions_knn"]) as arrays:
        assert np.array_equal(arrays["y_pred"], table["knn"]["y_pred"])


def test_missing_or_malformed_feature_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"features_train.npz: missing"):
        classify.load_features(tmp_path)
    np.savez(tmp_path / "features_train.npz", feats=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"features_train.npz: expected arrays 'features' and 'labels'"):
        classify.load_features(tmp_path)


def test_unknown_classifier_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown classifier 'svm'; known: logistic_regression, linear_svm"):
        classify.make_classifier("svm")


def test_convergence_is_reported(tmp_path):
    feature_set = classify.load_features(write_features(tmp_path, dim=64))
    fitted = classify.fit_all(feature_set, classifiers=("logistic_regression",), max_iter=1)
    assert fitted["logistic_regression"]["converged"] is False
