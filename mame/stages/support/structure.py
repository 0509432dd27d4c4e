"""Structure in a backbone's features, computed by the ``features`` stage on train and val (never test):

- groups of classes: the class centroids (train, standardised features) clustered by average-linkage on
  cosine distance (scipy), and for each group how linearly separable it is from the other classes: a
  one-vs-rest linear model (ridge, balanced classes) fitted on train, its balanced accuracy on val;
- each class's nearest classes (cosine similarity of the centroids);
- each class's outliers: the validation images farthest (cosine) from their class centroid.
"""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (x - mean) / std
    return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)


def class_centroids(z: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length mean of each class's rows (``(n_classes, d)``) and the classes present."""
    present = np.unique(labels)
    centroids = np.zeros((n_classes, z.shape[1]))
    for label in present:
        mean = z[labels == label].mean(axis=0)
        centroids[label] = mean / (np.linalg.norm(mean) + 1e-12)
    return centroids, present


def class_groups(centroids: np.ndarray, present: np.ndarray, n_groups: int) -> list[list[int]]:
    """The present classes in at most ``n_groups`` clusters of their centroids (average linkage, cosine),
    each group sorted, groups by size (largest first) then first class."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(present) < 2:
        return [list(map(int, present))]
    tree = linkage(centroids[present], method="average", metric="cosine")
    ids = fcluster(tree, t=min(n_groups, len(present)), criterion="maxclust")
    groups = [sorted(int(present[i]) for i in np.flatnonzero(ids == g)) for g in np.unique(ids)]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def group_separability(ztrain, ytrain, zval, yval, group: list[int]) -> float | None:
    """Balanced validation accuracy of a linear one-vs-rest model (group vs the other classes) fitted on train;
    None when either side is missing from a split."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import balanced_accuracy_score

    t, v = np.isin(ytrain, group), np.isin(yval, group)
    if t.all() or not t.any() or v.all() or not v.any():
        return None
    model = RidgeClassifier(alpha=10.0, class_weight="balanced").fit(ztrain, t)
    return float(balanced_accuracy_score(v, model.predict(zval)))


def nearest_classes(centroids: np.ndarray, present: np.ndarray, classes, k: int = 2) -> dict[str, list[dict]]:
    """Each present class's ``k`` nearest other classes by centroid cosine similarity."""
    sims = centroids[present] @ centroids[present].T
    np.fill_diagonal(sims, -np.inf)
    out = {}
    for row, label in enumerate(present):
        order = np.argsort(-sims[row], kind="stable")[:k]
        out[classes[label]] = [{"class": classes[present[j]], "similarity": round(float(sims[row, j]), 3)}
                                   for j in order if np.isfinite(sims[row, j])]
    return out


def class_outliers(zval, yval, files, centroids, classes, per_class: int = 1) -> dict[str, list[dict]]:
    """Each class's ``per_class`` validation images farthest (cosine distance) from its class centroid."""
    out = {}
    for label in np.unique(yval):
        rows = np.flatnonzero(yval == label)
        distance = 1.0 - zval[rows] @ centroids[label]
        order = np.argsort(-distance, kind="stable")[:per_class]
        out[classes[label]] = [{"file": str(files[rows[i]]), "distance": round(float(distance[i]), 3)}
                                   for i in order]
    return out


def analyse(train_x, train_y, val_x, val_y, val_files, classes, *, n_groups: int = 6, neighbours: int = 2,
            outliers_per_class: int = 1) -> dict:
    """The structure summary the features run stores (``metrics["structure"]``); ``classes``: the class names."""
    train_x, val_x = np.asarray(train_x, dtype=np.float64), np.asarray(val_x, dtype=np.float64)
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)
    if len(train_x) != len(train_y) or len(val_x) != len(val_y) or len(val_files) != len(val_y):
        raise ValueError("structure: features, labels and files must have one row per image")
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    ztrain, zval = _unit(train_x, mean, std), _unit(val_x, mean, std)
    centroids, present = class_centroids(ztrain, train_y, len(classes))
    groups = [{"classes": [classes[c] for c in group],
               "separability": group_separability(ztrain, train_y, zval, val_y, group) if len(group) < len(present) else None}
              for group in class_groups(centroids, present, n_groups)]
    return {"groups": groups, "nearest": nearest_classes(centroids, present, classes, neighbours),
            "outliers": class_outliers(zval, val_y, val_files, centroids, classes, outliers_per_class),
            "method": "class centroids of standardised train features; average linkage on cosine distance; "
                      "ridge one-vs-rest (balanced) fitted on train, balanced accuracy on val"}
