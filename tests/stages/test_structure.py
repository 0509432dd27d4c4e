"""Structure in features on constructed data: groups of classes, their linear separability, nearest
classes and outliers are the ones built in."""

from __future__ import annotations

import numpy as np
import pytest

from mame.classes import CLASS_NAMES
from mame.stages.support import structure

N = len(CLASS_NAMES)


def constructed(seed: int = 0, per_class: int = 12, dim: int = 40):
    """Three well-separated families of classes (0-9, 10-19, 20-28); inside a family the classes sit close.
    Class 5's centre lies next to class 6's, and one validation image of class 3 is pushed far away."""
    rng = np.random.default_rng(seed)
    family = np.arange(N) // 10
    anchors = rng.normal(0, 10, (3, dim))
    centres = anchors[family] + rng.normal(0, 2.0, (N, dim))
    centres[5] = centres[6] + rng.normal(0, 0.3, dim)

    def split(n):
        y = np.repeat(np.arange(N), n)
        return centres[y] + rng.normal(0, 0.8, (len(y), dim)), y

    train_x, train_y = split(per_class)
    val_x, val_y = split(per_class // 2)
    far = np.flatnonzero(val_y == 3)[0]
    val_x[far] = -centres[3] * 3
    files = np.array([f"val{i}.jpg" for i in range(len(val_y))])
    return train_x, train_y, val_x, val_y, files, far


def test_groups_nearest_classes_and_outliers_are_the_constructed_ones():
    train_x, train_y, val_x, val_y, files, far = constructed()
    out = structure.analyse(train_x, train_y, val_x, val_y, files, CLASS_NAMES, n_groups=3)
    families = [set(CLASS_NAMES[c] for c in range(lo, min(lo + 10, N))) for lo in (0, 10, 20)]
    assert sorted(map(set, (g["classes"] for g in out["groups"])), key=len) == sorted(families, key=len)
    assert all(g["separability"] > 0.95 for g in out["groups"])  # each family is linearly separable from the rest
    assert out["nearest"][CLASS_NAMES[5]][0]["class"] == CLASS_NAMES[6]
    assert set(out["nearest"]) == set(CLASS_NAMES) and all(len(v) == 2 for v in out["nearest"].values())
    assert out["outliers"][CLASS_NAMES[3]][0]["file"] == files[far]


def test_random_features_give_near_chance_separability_and_bad_input_is_refused():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(N), 6)
    out = structure.analyse(rng.normal(size=(len(y), 30)), y, rng.normal(size=(len(y), 30)), y,
                            np.array([f"{i}.jpg" for i in range(len(y))]), CLASS_NAMES, n_groups=4)
    scores = [g["separability"] for g in out["groups"] if g["separability"] is not None]
    assert len(out["groups"]) <= 4 and np.mean(scores) < 0.75
    with pytest.raises(ValueError, match="one row per image"):
        structure.analyse(np.zeros((4, 3)), np.zeros(4), np.zeros((2, 3)), np.zeros(2), ["a.jpg"], CLASS_NAMES)
