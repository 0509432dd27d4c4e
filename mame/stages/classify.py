"""Stage ``classify``: classical classifiers trained on a backbone's extracted features.

Notebook ``03_classify.ipynb`` calls ``load_features`` → ``fit_all`` → ``evaluate`` → ``save``.
Reads the ``features`` run of the same backbone (train and val); never the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mame import results
from mame.metrics import classification_result

# The default linear SVM is trained by SGD on the hinge loss: on the demo's VGG16 features
# (1,160 x 4,096, standardised) liblinear's LinearSVC took 153-300 s to reach val 0.43-0.47, SGD 8 s
# for 0.52. `linear_svc` (liblinear) stays available for variants.
CLASSIFIERS = ("logistic_regression", "linear_svm", "knn")
KNOWN = ("logistic_regression", "linear_svm", "linear_svc", "knn")
# Below this many feature values, multi-threaded BLAS only thrashes: on a busy 2-core machine a
# 116x1280 logistic regression took 47 s with 2 OpenBLAS threads and 1.5 s with one.
SINGLE_THREAD_BELOW = 5_000_000


@dataclass
class FeatureSet:
    source: Path
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


def load_features(features_run_dir: str | Path, splits=("train", "val")) -> FeatureSet:
    """The arrays a ``features`` run wrote, checked for the expected keys."""
    source = Path(features_run_dir)
    x, y = {}, {}
    for split in splits:
        path = source / f"features_{split}.npz"
        if not path.is_file():
            raise ValueError(f"{path}: missing; the features run did not extract the {split!r} split")
        with np.load(path) as arrays:
            if "features" not in arrays or "labels" not in arrays:
                raise ValueError(f"{path}: expected arrays 'features' and 'labels', found {sorted(arrays.files)}")
            x[split], y[split] = arrays["features"], arrays["labels"]
    return FeatureSet(source, x, y)


def make_classifier(name: str, *, C: float = 1.0, max_iter: int = 1000, n_neighbors: int = 5,
                    standardize: bool = True, seed: int = 0, n_samples: int = 1000):
    """A scikit-learn pipeline. ``C`` is the inverse regularisation strength of every linear model
    (for the SGD-trained SVM, alpha = 1 / (C * n_samples), the same objective as LinearSVC's)."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    builders = {
        "logistic_regression": lambda: LogisticRegression(C=C, max_iter=max_iter, random_state=seed),
        "linear_svm": lambda: SGDClassifier(loss="hinge", alpha=1.0 / (C * n_samples), max_iter=max_iter,
                                            tol=1e-4, random_state=seed),
        "linear_svc": lambda: LinearSVC(C=C, max_iter=max_iter, random_state=seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=n_neighbors),
    }
    if name not in builders:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(KNOWN)}")
    steps = [StandardScaler()] if standardize else []
    return make_pipeline(*steps, builders[name]())


def fit_all(features: FeatureSet, *, classifiers=CLASSIFIERS, seed: int = 0, **options) -> dict[str, dict]:
    """Fit each classifier on the train features; returns name -> {model, fit_seconds}."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    x, y = features.x["train"], features.y["train"]
    threads = 1 if x.size < SINGLE_THREAD_BELOW else None
    fitted = {}
    for name in classifiers:
        model = make_classifier(name, seed=seed, n_samples=len(y), **options)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=threads, user_api="blas"):
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, y)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        fitted[name] = {"model": model, "fit_seconds": time.perf_counter() - start, "converged": converged}
    return fitted


def evaluate(fitted: dict[str, dict], features: FeatureSet, *, split: str = "val") -> dict[str, dict]:
    """Per classifier: train and ``split`` accuracy, and the predictions on ``split``."""
    table = {}
    for name, item in fitted.items():
        model = item["model"]
        train_acc = float(np.mean(model.predict(features.x["train"]) == features.y["train"]))
        y_pred = model.predict(features.x[split])
        table[name] = {"train_accuracy": train_acc, "fit_seconds": round(item["fit_seconds"], 3),
                       "converged": item["converged"],
                       "y_true": features.y[split], "y_pred": y_pred, "split": split,
                       f"{split}_accuracy": float(np.mean(y_pred == features.y[split]))}
    return table


def summary(table: dict[str, dict]) -> list[dict]:
    """The scalar columns of ``evaluate``'s table, one row per classifier (for display)."""
    return [{"classifier": name, **{k: v for k, v in row.items() if not k.startswith("y_") and k != "split"}}
            for name, row in table.items()]


def save(run_dir: str | Path, table: dict[str, dict]) -> Path:
    run_dir = Path(run_dir)
    classification, artifacts = {}, {}
    for name, row in table.items():
        pred_file = f"predictions_{name}.npz"
        np.savez_compressed(run_dir / pred_file, y_true=row["y_true"], y_pred=row["y_pred"])
        artifacts[f"predictions_{name}"] = pred_file
        classification[f"{name}/{row['split']}"] = classification_result(row["y_true"], row["y_pred"],
                                                                         predictions=pred_file)
    best = max(table, key=lambda n: table[n][f"{table[n]['split']}_accuracy"])
    split = table[best]["split"]
    result = {
        "headline": {"name": f"best_{split}_accuracy", "value": table[best][f"{split}_accuracy"], "split": split},
        "metrics": {"best_classifier": best, "classifiers": summary(table)},
        "classification": classification,
        "artifacts": artifacts,
    }
    return results.save_result(run_dir, result)
