"""``make mutation``'s sample and summary (tests/mutation_rates.py) on made-up mutmut output."""

from __future__ import annotations

from collections import Counter

from tests import mutation_rates


def test_the_sample_is_the_same_every_time_and_about_the_share_asked_for():
    names = [f"mame.stages.evaluate.x_ensembles__mutmut_{i}" for i in range(4000)]
    picked = [n for n in names if mutation_rates.in_sample(n, 5)]
    assert picked == [n for n in names if mutation_rates.in_sample(n, 5)]
    assert 150 <= len(picked) <= 250  # 5 % of 4000 = 200
    assert set(picked) <= {n for n in names if mutation_rates.in_sample(n, 10)}  # a larger sample contains it
    assert all(mutation_rates.in_sample(n, 100) for n in names)


def test_verdicts_are_counted_per_package_and_mutants_not_run_are_left_out():
    lines = ["    mame.engine.run.cache.x_key__mutmut_1: killed", "    mame.engine.run.cache.x_key__mutmut_2: survived",
             "    mame.models.training.xǁ_EpochStateǁon_epoch_end__mutmut_3: timeout",
             "    mame.stages.evaluate.x_save__mutmut_4: not checked", "    mame.stages.evaluate.x_save__mutmut_5: no tests"]
    found = mutation_rates.verdicts(lines)
    assert found == {"mame.engine": Counter(killed=1, survived=1), "mame.models": Counter(timeout=1),
                     "mame.stages": Counter({"no tests": 1})}
    line = mutation_rates.summary("mame.engine", Counter(killed=30, survived=10, timeout=0, **{"no tests": 10}), 1000, True)
    assert line.startswith("mame/engine: 50 of its 1000 mutants (a fixed sample), 30 killed, 10 survived")
    assert "kill rate 60.0% of all, 75.0% of those reached (95 % CI 60-86%)" in line
