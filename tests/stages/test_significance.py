"""McNemar's test and bootstrap intervals against statsmodels and worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from mame.metrics import describe_comparison
from mame.stages.support import significance


def predictions(table, n_classes: int = 3):
    """y_true and two prediction vectors whose right/wrong pattern is the 2x2 ``table`` [[both, a only], [b only, neither]]."""
    (both, a_only), (b_only, neither) = table
    n = both + a_only + b_only + neither
    y = np.arange(n) % n_classes
    wrong = (y + 1) % n_classes
    a = np.concatenate([y[:both], y[both:both + a_only], wrong[both + a_only:both + a_only + b_only], wrong[n - neither:]])
    b = np.concatenate([y[:both], wrong[both:both + a_only], y[both + a_only:both + a_only + b_only], wrong[n - neither:]])
    return y, a, b


@pytest.mark.parametrize("table, exact", [([[50, 3], [9, 38]], True), ([[400, 20], [40, 140]], False)])
def test_mcnemar_equals_statsmodels_on_a_worked_table(table, exact):
    y, a, b = predictions(table)
    result = significance.mcnemar_test(y, a, b)
    reference = mcnemar(np.array(table), exact=exact, correction=True)
    assert result["table"] == table and result["exact"] is exact
    assert result["p_value"] == pytest.approx(reference.pvalue) and result["statistic"] == pytest.approx(reference.statistic)
    assert result["discordant"] == table[0][1] + table[1][0]
    n = sum(map(sum, table))
    assert result["delta_pp"] == pytest.approx(100 * (table[1][0] - table[0][1]) / n)


def test_the_exact_small_sample_p_value_is_the_binomial_one():
    y, a, b = predictions([[10, 1], [7, 2]])  # 8 discordant pairs, 7 in b's favour: 2 * P(X <= 1 | n=8, p=.5)
    assert significance.mcnemar_test(y, a, b)["p_value"] == pytest.approx(2 * (1 + 8) / 2 ** 8)


def test_bootstrap_intervals_contain_the_point_estimate_and_shrink_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 29, n)
        pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 29)
        summary = significance.accuracy_summary(y, pred, resamples=500, seed=0)
        assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
        widths.append(summary["ci_high"] - summary["ci_low"])
        assert summary == significance.accuracy_summary(y, pred, resamples=500, seed=0)  # seeded
    assert widths[1] < widths[0] / 2
    y = np.arange(10)
    assert significance.bootstrap_interval(y, y) == (1.0, 1.0)


def test_describe_and_bad_input():
    assert describe_comparison({"delta_pp": 1.26, "p_value": 0.0213}) == "+1.3 pp, p=0.02"
    assert describe_comparison({"delta_pp": -4.0, "p_value": 0.0004}) == "-4.0 pp, p<0.001"
    with pytest.raises(ValueError, match="same non-zero length"):
        significance.mcnemar_test([0, 1], [0, 1], [0])


def test_paired_test_equals_scipy_and_drops_pairs_with_a_missing_value():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    a = rng.random(40)
    b = a + 0.1 + rng.normal(0, 0.05, 40)
    a_nan, b_nan = np.append(a, np.nan), np.append(b, 0.5)
    result = significance.paired_test(a_nan, b_nan)
    reference = wilcoxon(b - a, zero_method="pratt")
    assert result["n"] == 40 and result["p_value"] == pytest.approx(reference.pvalue)
    assert result["delta_pp"] == pytest.approx(100 * np.mean(b - a))
    assert (result["mean_a"], result["mean_b"]) == pytest.approx((a.mean(), b.mean()))
    assert significance.paired_test(a, a)["p_value"] == 1.0  # no difference at all
    with pytest.raises(ValueError, match="same length"):
        significance.paired_test(a, b[:-1])


def test_mean_interval_contains_the_mean_and_ignores_missing_values():
    values = np.random.default_rng(1).random(60)
    low, high = significance.mean_interval(np.append(values, np.nan), resamples=500)
    assert low < values.mean() < high
    assert np.isnan(significance.mean_interval([np.nan])[0])
    assert significance.mean_interval([0.3, 0.3]) == (0.3, 0.3)


@pytest.mark.parametrize("a_only, b_only, exact", [(5, 19, True), (5, 20, False), (3, 21, True), (3, 22, False)])
def test_the_exact_test_is_used_below_25_discordant_pairs_and_chi_square_from_25(a_only, b_only, exact):
    """The README's promise: McNemar's test is exact below 25 discordant pairs, the chi-square one from 25 on."""
    table = [[30, a_only], [b_only, 5]]
    result = significance.mcnemar_test(*predictions(table))
    assert result["discordant"] == a_only + b_only and result["exact"] is exact
    reference = mcnemar(np.array(table), exact=exact, correction=True)
    assert result["p_value"] == pytest.approx(reference.pvalue)
    other = mcnemar(np.array(table), exact=not exact, correction=True)
    assert result["p_value"] != pytest.approx(other.pvalue)  # the boundary decides which number is shown


def coverage(interval, draw, truth: float, trials: int) -> float:
    """Share of ``trials`` intervals (each from a fresh sample ``draw(rng)``) that contain ``truth``."""
    rng = np.random.default_rng(7)
    hits = 0
    for seed in range(trials):
        low, high = interval(draw(rng), seed)
        hits += low <= truth <= high
    return hits / trials


def test_the_bootstrap_intervals_cover_the_truth_95_percent_of_the_time():
    """Intervals labelled 95 % on the slides: on a known distribution they contain the true value in about
    95 % of samples (a 90 % interval would cover about 89 %; the percentile bootstrap runs a little under
    its level at this size). 1000 samples: a standard error of 0.7 pp."""
    n, p = 300, 0.7
    y = np.arange(n) % 29

    def accuracy_interval(hits, seed):
        return significance.bootstrap_interval(y, np.where(hits, y, (y + 1) % 29), resamples=600, seed=seed)

    def mean_interval(values, seed):
        return significance.mean_interval(values, resamples=600, seed=seed)

    accuracy = coverage(accuracy_interval, lambda rng: rng.random(n) < p, p, trials=1000)
    mean = coverage(mean_interval, lambda rng: rng.beta(2, 5, 300), 2 / 7, trials=1000)
    assert 0.925 <= accuracy <= 0.975 and 0.925 <= mean <= 0.975, (accuracy, mean)


def test_the_bootstrap_interval_of_a_large_sample_is_the_normal_one():
    """At n = 4000 the percentile interval of an accuracy is close to p ± 1.96 · sqrt(p(1-p)/n)."""
    rng = np.random.default_rng(3)
    n = 4000
    y = rng.integers(0, 29, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 29)
    p = float((pred == y).mean())
    low, high = significance.bootstrap_interval(y, pred, resamples=2000, seed=0)
    half = 1.959964 * np.sqrt(p * (1 - p) / n)
    assert (high - low) / 2 == pytest.approx(half, rel=0.06)  # 90 %: 1.645 / 1.96 = 16 % narrower
    assert (low + high) / 2 == pytest.approx(p, abs=0.002)
