import numpy as np
import pytest

from mame.engine.run import records
from mame.stages import classify


def write_features(run_dir, n_per_class=6, n_classes=29, dim=16, seed=0, splits=("train", "val")):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, dim))
    for split in splits:
        labels = np.repeat(np.arange(n_classes), n_per_class)
        feats = centres[labels] + rng.normal(0, 1, (len(labels), dim))
        np.savez(run_dir / f"features_{split}.npz", features=feats.astype(np.float32), labels=labels,
                 class_names=np.array([f"class {i}" for i in range(n_classes)]))
    return run_dir


def test_classifiers_learn_separable_features_and_save_a_valid_result(tmp_path):
    feature_set = classify.load_features(write_features(tmp_path))
    fitted = classify.fit_all(feature_set, classifiers=classify.KNOWN, max_iter=500)
    table = classify.evaluate(fitted, feature_set, split="val")
    for name in classify.KNOWN:
        assert table[name]["val_accuracy"] > 0.8, name  # chance is 1/29
    out = tmp_path / "out"
    out.mkdir()
    classify.save(out, table, feature_set)
    result = records.load_result(out)
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


def test_hyper_parameters_are_chosen_on_validation_and_recorded(tmp_path):
    feature_set = classify.load_features(write_features(tmp_path, n_per_class=4, dim=8))
    grids = {"knn": {"n_neighbors": [1, 3, 40]}}
    fitted = classify.fit_all(feature_set, classifiers=("knn", "random_forest"), grids=grids)
    tried = fitted["knn"]["tried"]
    assert [t["params"] for t in tried] == [{"n_neighbors": k} for k in (1, 3, 40)]  # the grid, in its order
    best = max(tried, key=lambda t: t["val_accuracy"])
    assert fitted["knn"]["params"] == best["params"] and fitted["knn"]["val_accuracy"] == best["val_accuracy"]
    assert tried[2]["val_accuracy"] < best["val_accuracy"]  # 40 neighbours over 4 images a class: worse
    assert len(fitted["random_forest"]["tried"]) == len(classify.GRIDS["random_forest"]["max_features"])
    only = classify.fit_all(feature_set, classifiers=("knn",), grids=grids, search="none")
    assert [t["params"] for t in only["knn"]["tried"]] == [{"n_neighbors": 1}]
    table = classify.evaluate(fitted, feature_set, split="val")
    assert table["knn"]["params"] == best["params"] and table["knn"]["predict_seconds"] >= 0
    np.testing.assert_array_equal(table["knn"]["y_pred"], fitted["knn"]["model"].predict(feature_set.x["val"]))
    out = tmp_path / "out"
    out.mkdir()
    classify.save(out, table, feature_set)
    result = records.load_result(out)
    row = next(r for r in result["metrics"]["classifiers"] if r["classifier"] == "knn")
    assert row["params"] == best["params"] and len(row["tried"]) == 3
    assert any("chosen on validation" in note for note in result["notes"])
    with pytest.raises(ValueError, match="non-empty list"):
        classify.candidates("knn", {"knn": {"n_neighbors": 5}})


def test_no_classifier_or_selection_step_reads_the_test_split(tmp_path):
    """The stage loads train and val only; a test features file next to them is never opened."""
    write_features(tmp_path, splits=("train", "val"))
    (tmp_path / "features_test.npz").write_bytes(b"never to be read")  # would fail np.load if it were opened
    feature_set = classify.load_features(tmp_path)
    assert set(feature_set.x) == {"train", "val"}
    fitted = classify.fit_all(feature_set, classifiers=("knn",))
    table = classify.evaluate(fitted, feature_set, split="val")
    assert table["knn"]["split"] == "val"
    with pytest.raises(ValueError, match="does not read the test split"):
        classify.load_features(tmp_path, splits=("train", "val", "test"))


def test_the_rbf_svm_past_its_cap_is_fitted_on_a_seeded_class_balanced_sample_and_refitted_identically(tmp_path):
    feature_set = classify.load_features(write_features(tmp_path))  # 29 classes x 6 training images
    fitted = classify.fit_all(feature_set, classifiers=("rbf_svc", "knn"), rbf_svc_max_train=58)
    assert fitted["rbf_svc"]["train_images"] == [58, 174] and fitted["knn"]["train_images"] == [174, 174]
    rows = classify.train_rows(feature_set.y["train"], 58, seed=0)
    assert np.bincount(feature_set.y["train"][rows]).tolist() == [2] * 29  # each class keeps its share
    assert np.array_equal(rows, classify.train_rows(feature_set.y["train"], 58, seed=0))  # seeded
    assert not np.array_equal(rows, classify.train_rows(feature_set.y["train"], 58, seed=1))
    model, _, _ = classify.fit_one(feature_set, "rbf_svc", fitted["rbf_svc"]["params"], max_train=58)  # as evaluate refits
    assert model[-1].support_vectors_.shape[0] <= 58
    assert np.array_equal(model.predict(feature_set.x["val"]), fitted["rbf_svc"]["val_pred"])
    table = classify.evaluate(fitted, feature_set)
    assert [row["train_images"] for row in classify.summary(table)] == [[58, 174], [174, 174]]
    uncapped = classify.fit_all(feature_set, classifiers=("rbf_svc",), rbf_svc_max_train=None)
    assert uncapped["rbf_svc"]["train_images"] == [174, 174]


def test_the_linear_svms_epochs_are_bounded_by_the_images_it_sees_in_all():
    # regularisation 1/(C n) shrinks with n: unbounded, its epochs (each over n images) grew with n too
    epochs = {n: classify.make_classifier("linear_svm", n_samples=n, max_iter=1000)[-1].max_iter
              for n in (116, 1_160, 2_000, 8_671, 20_300, 1_000_000)}
    assert epochs == {116: 1000, 1_160: 1000, 2_000: 1000, 8_671: 231, 20_300: 99, 1_000_000: 20}
    assert all(n * (e - 1) < classify.SGD_SAMPLE_PASSES for n, e in epochs.items() if classify.MIN_SGD_EPOCHS < e < 1000)
