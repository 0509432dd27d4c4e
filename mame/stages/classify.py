"""Stage ``classify``: classical classifiers trained on a backbone's extracted features.

Notebook ``04_classify.ipynb`` calls ``load_features`` → ``fit_all`` → ``evaluate`` → ``save``.
Reads the ``features`` run of the same backbone (train and val); never the test split. Each classifier is
a standardising pipeline whose hyper-parameters are chosen on validation from ``GRIDS`` (so its validation
accuracy is an optimistic estimate; the test split stays for the evaluate stage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mame import results
from mame.metrics import classification_result
from mame.stages.support.parameters import IDENTITY, Notebook, StageConfig, param

# The default linear SVM is trained by SGD on the hinge loss: on the demo's VGG16 features
# (1,160 x 4,096, standardised) liblinear's LinearSVC took 153-300 s to reach val 0.43-0.47, SGD 8 s
# for 0.52. `linear_svc` (liblinear) stays available for variants.
CLASSIFIERS = ("logistic_regression", "linear_svm", "knn", "rbf_svc", "random_forest", "mlp")
KNOWN = ("logistic_regression", "linear_svm", "linear_svc", "knn", "rbf_svc", "random_forest", "mlp")
# The hyper-parameters tried for each classifier; the one with the best validation accuracy is kept
# (ties: the first listed). ``search="none"`` fits the first setting only.
GRIDS: dict[str, dict[str, list]] = {
    "logistic_regression": {"C": [0.1, 1.0]},
    "linear_svm": {"C": [0.1, 1.0]},
    "linear_svc": {"C": [0.1, 1.0]},
    "knn": {"n_neighbors": [5, 15]},
    "rbf_svc": {"C": [1.0, 10.0]},
    "random_forest": {"max_features": ["sqrt", 0.05], "n_estimators": [200]},
    "mlp": {"alpha": [1e-3, 1e-1]},
}
# Below this many feature values, multi-threaded BLAS only thrashes: on a busy 2-core machine a
# 116x1280 logistic regression took 47 s with 2 OpenBLAS threads and 1.5 s with one.
SINGLE_THREAD_BELOW = 5_000_000
SGD_SAMPLE_PASSES = 2_000_000  # the linear SVM's images seen per fit, at most (sgd_epochs)
MIN_SGD_EPOCHS = 20


@dataclass
class ClassifyConfig(StageConfig):
    """The stage parameters of ``04_classify.ipynb`` (its ``parameters`` cell is generated from these fields)."""
    classifiers: list[str] = param(list(CLASSIFIERS), "also: linear_svc")
    grids: dict = param({}, "per classifier, e.g. {\"knn\": {\"n_neighbors\": [1, 5, 15]}}; mame.stages.classify.GRIDS by default")
    search: str = param("grid", "grid: every setting, the best on validation kept | none: the first setting only")
    max_iter: int = param(1000)
    feature_layer: str | None = param(None, "None: the features run's own layer; or one it saved beside it (VGG16: fc2)")
    standardize: bool = param(True)
    rbf_svc_max_train: int | None = param(
        5000, "the RBF SVM is fitted on a seeded, class-balanced sample of at most this many training images: its fit "
              "grows with about the square of their number (133 s for 8,671 on 2 cores; about 16 min for MAMe's 20,300); "
              "None: every image")


NOTEBOOK = Notebook("04_classify.ipynb", ClassifyConfig, backbone="vgg16",
                    inputs={"features": {"folder": "runs/features/vgg16"}}, inputs_doc="{stage: identity}: " + IDENTITY)


@dataclass
class FeatureSet:
    source: Path
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    layer: str | None = None  # the feature layer read (as the features run recorded it)
    files: dict[str, np.ndarray] = field(default_factory=dict)  # the image file of each row, per split
    classes: tuple[str, ...] = ()  # the dataset's class names, in label order


def load_features(features_run_dir: str | Path, splits=("train", "val"), *, layer: str | None = None) -> FeatureSet:
    """The arrays a ``features`` run wrote, checked for the expected keys (never the test split).
    ``layer``: one of the run's extra layers (``features_<layer>_<split>.npz``, e.g. VGG16 fc2 beside fc1)
    or its own feature layer; None: its own."""
    if "test" in splits:
        raise ValueError("the classify stage does not read the test split; only the evaluate stage does")
    source = Path(features_run_dir)
    x, y, files, classes = {}, {}, {}, ()
    for split in splits:
        path = _feature_file(source, split, layer)
        with np.load(path) as arrays:
            if "features" not in arrays or "labels" not in arrays:
                raise ValueError(f"{path}: expected arrays 'features' and 'labels', found {sorted(arrays.files)}")
            x[split], y[split] = arrays["features"], arrays["labels"]
            if "files" in arrays:
                files[split] = arrays["files"]
            if "class_names" not in arrays:
                raise ValueError(f"{path}: no class names saved with the features (a features run of an older version: "
                                 "run it again)")
            classes = tuple(str(c) for c in arrays["class_names"])
            found = str(arrays["layer"]) if "layer" in arrays else None
        if layer is not None and found != layer:
            raise ValueError(f"{source}: the features run saved no {layer!r} layer (its features come from {found!r})")
    return FeatureSet(source, x, y, layer or found, files, classes)


def _feature_file(source: Path, split: str, layer: str | None) -> Path:
    own = source / f"features_{split}.npz"
    extra = source / f"features_{layer}_{split}.npz"
    path = extra if layer is not None and extra.is_file() else own
    if not path.is_file():
        raise ValueError(f"{path}: missing; the features run did not extract the {split!r} split")
    return path


def make_classifier(name: str, params: dict | None = None, *, max_iter: int = ClassifyConfig.max_iter,
                    standardize: bool = ClassifyConfig.standardize,
                    seed: int = 0, n_samples: int = 1000):
    """A scikit-learn pipeline (standardisation, then the classifier) with ``params`` (a grid point).
    ``C`` is the inverse regularisation strength of every linear model (for the SGD-trained SVM,
    alpha = 1 / (C * n_samples), the same objective as LinearSVC's)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    p = {**{k: v[0] for k, v in GRIDS.get(name, {}).items()}, **(params or {})}
    builders = {
        "logistic_regression": lambda: LogisticRegression(C=p["C"], max_iter=max_iter, random_state=seed),
        "linear_svm": lambda: SGDClassifier(loss="hinge", alpha=1.0 / (p["C"] * n_samples),
                                            max_iter=sgd_epochs(max_iter, n_samples), tol=1e-4, random_state=seed),
        "linear_svc": lambda: LinearSVC(C=p["C"], max_iter=max_iter, random_state=seed),
        "knn": lambda: KNeighborsClassifier(n_neighbors=p["n_neighbors"]),
        "rbf_svc": lambda: SVC(kernel="rbf", C=p["C"], gamma="scale", random_state=seed),
        "random_forest": lambda: RandomForestClassifier(n_estimators=p["n_estimators"], max_features=p["max_features"],
                                                        n_jobs=-1, random_state=seed),
        "mlp": lambda: MLPClassifier(hidden_layer_sizes=(256,), alpha=p["alpha"], early_stopping=True,
                                     max_iter=max(200, max_iter // 5), random_state=seed),
    }
    if name not in builders:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(KNOWN)}")
    steps = [StandardScaler()] if standardize else []
    return make_pipeline(*steps, builders[name]())


def sgd_epochs(max_iter: int, n_samples: int) -> int:
    """The linear SVM's epochs: ``max_iter``, but at most ``SGD_SAMPLE_PASSES`` images seen in all (and at least
    ``MIN_SGD_EPOCHS`` epochs). Its regularisation shrinks as 1/n and each epoch fits 29 one-vs-rest problems over every
    image, so its time grew faster than the training set: 129 s at 8,671 images on 2 cores, about 10 min extrapolated
    at MAMe's 20,300. Up to 2,000 images it keeps every ``max_iter`` epoch (the demo and sized studies as before);
    scikit-learn's user guide suggests about 10^6 / n epochs. An SGD stopped short of converging is marked † on the
    slides."""
    return int(min(max_iter, max(MIN_SGD_EPOCHS, np.ceil(SGD_SAMPLE_PASSES / max(1, n_samples)))))


def candidates(name: str, grids: dict | None = None, *, search: str = ClassifyConfig.search) -> list[dict]:
    """The settings to try for ``name``: its grid (``grids`` overrides ``GRIDS`` per classifier), every
    combination in order; ``search="none"``: the first only."""
    from sklearn.model_selection import ParameterGrid

    if search not in ("grid", "none"):
        raise ValueError(f"search must be 'grid' or 'none', got {search!r}")
    grid = {**GRIDS.get(name, {}), **((grids or {}).get(name) or {})}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid of {name}: {key} must be a non-empty list, got {values!r}")
    points = list(ParameterGrid(grid)) if grid else [{}]
    order = {key: grid[key] for key in grid}  # ParameterGrid sorts keys; keep each list's own order first
    points.sort(key=lambda pt: tuple(order[k].index(pt[k]) for k in order))
    return points[:1] if search == "none" else points


def fit_all(features: FeatureSet, *, classifiers=CLASSIFIERS, grids: dict | None = None, search: str = ClassifyConfig.search,
            seed: int = 0, rbf_svc_max_train: int | None = ClassifyConfig.rbf_svc_max_train, **options) -> dict[str, dict]:
    """For each classifier, fit every setting of its grid on train and keep the best on validation (the
    test split is never loaded here); the RBF SVM on at most ``rbf_svc_max_train`` training images. Returns name ->
    {model, params, fit_seconds, converged, val_accuracy, val_pred, predict_seconds, tried, train_images}."""
    if "val" not in features.x:
        raise ValueError(f"{features.source}: the validation split is needed to choose hyper-parameters")
    fitted = {}
    for name in classifiers:
        tried, best = [], None
        max_train = rbf_svc_max_train if name == "rbf_svc" else None
        for params in candidates(name, grids, search=search):
            model, seconds, converged = fit_one(features, name, params, seed=seed, max_train=max_train, **options)
            start = time.perf_counter()
            val_pred = model.predict(features.x["val"])
            predict_seconds = time.perf_counter() - start
            val_accuracy = float(np.mean(val_pred == features.y["val"]))
            tried.append({"params": params, "val_accuracy": val_accuracy, "fit_seconds": round(seconds, 3),
                          "converged": converged})
            if best is None or val_accuracy > best["val_accuracy"]:
                best = {"model": model, "params": params, "fit_seconds": seconds, "converged": converged,
                        "val_accuracy": val_accuracy, "val_pred": val_pred, "predict_seconds": predict_seconds}
        used = len(train_rows(features.y["train"], max_train, seed))
        fitted[name] = {**best, "tried": tried, "train_images": [used, len(features.y["train"])]}
    return fitted


def train_rows(y: np.ndarray, max_train: int | None, seed: int) -> np.ndarray:
    """The training rows a classifier capped at ``max_train`` images is fitted on: all of them, or a seeded sample
    with each class's share of the training images (at least one of each), in row order."""
    if max_train is None or len(y) <= max_train:
        return np.arange(len(y))
    rng = np.random.default_rng([seed, max_train])
    kept = [rng.choice(rows, max(1, round(max_train * len(rows) / len(y))), replace=False)
            for rows in (np.flatnonzero(y == label) for label in np.unique(y))]
    return np.sort(np.concatenate(kept))


def fit_one(features: FeatureSet, name: str, params: dict, *, seed: int = 0, max_train: int | None = None,
            **options) -> tuple[object, float, bool]:
    """Classifier ``name`` with setting ``params`` fitted on the train features (at most ``max_train`` of them,
    ``train_rows``), as ``fit_all`` fits every setting (so the evaluate stage refits a recorded choice identically):
    (model, seconds, converged)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    rows = train_rows(features.y["train"], max_train, seed)
    x, y = features.x["train"][rows], features.y["train"][rows]
    threads = 1 if x.size < SINGLE_THREAD_BELOW else None
    model = make_classifier(name, params, seed=seed, n_samples=len(y), **options)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=threads, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, time.perf_counter() - start, converged


def evaluate(fitted: dict[str, dict], features: FeatureSet, *, split: str = "val") -> dict[str, dict]:
    """Per classifier: train and ``split`` accuracy, the predictions on ``split`` and the time to predict it."""
    table = {}
    for name, item in fitted.items():
        model = item["model"]
        train_acc = float(np.mean(model.predict(features.x["train"]) == features.y["train"]))
        if split == "val" and "val_pred" in item:  # predicted (and timed) once, when the setting was chosen
            y_pred, predict_seconds = item["val_pred"], item["predict_seconds"]
        else:
            start = time.perf_counter()
            y_pred = model.predict(features.x[split])
            predict_seconds = time.perf_counter() - start
        table[name] = {"train_accuracy": train_acc, "fit_seconds": round(item["fit_seconds"], 3),
                       "predict_seconds": round(predict_seconds, 4), "converged": item["converged"],
                       "params": item.get("params", {}), "tried": item.get("tried", []),
                       "train_images": item.get("train_images", [len(features.y["train"])] * 2),
                       "y_true": features.y[split], "y_pred": y_pred, "split": split,
                       f"{split}_accuracy": float(np.mean(y_pred == features.y[split]))}
    return table


def summary(table: dict[str, dict]) -> list[dict]:
    """The scalar columns of ``evaluate``'s table, one row per classifier (for display)."""
    return [{"classifier": name, **{k: v for k, v in row.items() if not k.startswith("y_") and k != "split"}}
            for name, row in table.items()]


def save(run_dir: str | Path, table: dict[str, dict], features: FeatureSet, *,
         standardize: bool = ClassifyConfig.standardize) -> Path:
    """Predictions and the result; ``features`` and ``standardize`` are recorded (which layer was classified,
    and whether the features were standardised: without, logistic regression is a softmax layer on them)."""
    run_dir = Path(run_dir)
    classification, artifacts = {}, {}
    for name, row in table.items():
        pred_file = f"predictions_{name}.npz"
        np.savez_compressed(run_dir / pred_file, y_true=row["y_true"], y_pred=row["y_pred"])
        artifacts[f"predictions_{name}"] = pred_file
        classification[f"{name}/{row['split']}"] = classification_result(row["y_true"], row["y_pred"],
                                                                         class_names=features.classes, predictions=pred_file)
    best = max(table, key=lambda n: table[n][f"{table[n]['split']}_accuracy"])
    split = table[best]["split"]
    result = {
        "headline": {"name": f"best_{split}_accuracy", "value": table[best][f"{split}_accuracy"], "split": split},
        "metrics": {"best_classifier": best, "classifiers": summary(table), "selection": "validation accuracy",
                    "feature_layer": features.layer, "standardize": standardize},
        "classification": classification,
        "artifacts": artifacts,
        "notes": ["hyper-parameters chosen on validation: " + "; ".join(
            f"{name} {_params_text(row['params'])}" for name, row in table.items() if row.get("params"))],
    }
    return results.save_result(run_dir, result)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
