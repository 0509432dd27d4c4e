"""Uncertainty of results: bootstrap intervals of an accuracy or a mean, McNemar's test between two
classifiers scored on the same images (statsmodels), the Wilcoxon signed-rank test between two paired
per-image measures (scipy), in the shape the deck shows ("+1.3 pp, p=0.02")."""

from __future__ import annotations

import numpy as np

EXACT_BELOW = 25  # discordant pairs: below this, McNemar's exact binomial test; else the chi-square one
CONFIDENCE = 0.95


def _check(y_true, *predictions) -> list[np.ndarray]:
    arrays = [np.asarray(a).ravel() for a in (y_true, *predictions)]
    if arrays[0].size == 0 or any(a.size != arrays[0].size for a in arrays):
        raise ValueError(f"y_true and predictions: expected the same non-zero length, got {[a.size for a in arrays]}")
    return arrays


def bootstrap_interval(y_true, y_pred, *, resamples: int = 1000, seed: int = 0,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (scipy.stats.bootstrap over the per-image hits)."""
    from scipy.stats import bootstrap

    y_true, y_pred = _check(y_true, y_pred)
    hits = (y_true == y_pred).astype(float)
    if hits.min() == hits.max():  # all right or all wrong: no spread to resample
        return float(hits[0]), float(hits[0])
    res = bootstrap((hits,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def accuracy_summary(y_true, y_pred, *, resamples: int = 1000, seed: int = 0) -> dict:
    """Accuracy, macro F1 and the bootstrap interval of the accuracy."""
    from sklearn.metrics import f1_score

    y_true, y_pred = _check(y_true, y_pred)
    low, high = bootstrap_interval(y_true, y_pred, resamples=resamples, seed=seed)
    return {"accuracy": float((y_true == y_pred).mean()), "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "ci_low": low, "ci_high": high, "n_images": int(y_true.size)}


def mcnemar_test(y_true, pred_a, pred_b) -> dict:
    """McNemar's test of ``pred_b`` against ``pred_a`` on the same images (statsmodels): the 2x2 table of
    right/wrong, exact when the discordant pairs are fewer than ``EXACT_BELOW``. ``delta_pp`` is b - a."""
    from statsmodels.stats.contingency_tables import mcnemar

    y_true, pred_a, pred_b = _check(y_true, pred_a, pred_b)
    a, b = pred_a == y_true, pred_b == y_true
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    discordant = int(table[0, 1] + table[1, 0])
    exact = discordant < EXACT_BELOW
    result = mcnemar(table, exact=exact, correction=True)
    return {"delta_pp": float(100 * (b.mean() - a.mean())), "p_value": float(result.pvalue),
            "statistic": float(result.statistic), "exact": exact, "discordant": discordant,
            "table": table.astype(int).tolist()}


def mean_interval(values, *, resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped; NaN bounds when none is left)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.min() == values.max():
        return float(values[0]), float(values[0])
    res = bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_test(a, b) -> dict:
    """Wilcoxon signed-rank test of ``b`` against ``a`` measured on the same items (scipy; pairs with a NaN
    dropped, zero differences handled by Pratt's method). ``delta_pp`` is 100 * mean(b - a); ``mean_a`` and
    ``mean_b`` are the means over the pairs kept."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"a and b: expected the same length, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = b[keep] - a[keep]
    out = {"delta_pp": float(100 * diff.mean()) if diff.size else float("nan"), "n": int(diff.size),
           "mean_a": float(a[keep].mean()) if diff.size else float("nan"),
           "mean_b": float(b[keep].mean()) if diff.size else float("nan"), "test": "Wilcoxon signed-rank"}
    if diff.size == 0 or np.all(diff == 0):
        return {**out, "p_value": 1.0, "statistic": 0.0}
    result = wilcoxon(diff, zero_method="pratt")
    return {**out, "p_value": float(result.pvalue), "statistic": float(result.statistic)}
