"""Several seeds of one stage/backbone/variant as one deck entry: what is averaged, what is kept, how it prints
and draws (the end-to-end case, real runs to HTML, is in test_build)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from mame.deck.render.templating import num, pct, points, thousands
from mame.deck.sections import seed_groups as seeds
from mame.deck.sections.seed_groups import Spread
from mame.engine.plan.load import PlannedRun
from mame.engine.run.status import Entry
from mame.plots import draw_accuracy_bars


def metrics(seed: int, val: float = 0.5, epochs: int = 2) -> dict:
    report = {"Bronze": {"precision": val, "recall": 0.5, "f1-score": 0.4, "support": 2.0}, "accuracy": val,
              "macro avg": {"precision": val, "recall": 0.5, "f1-score": 0.4, "support": 2.0}}
    return {"run": {"seed": seed, "cache_key": f"k{seed}", "duration_s": 10.0 + seed},
            "headline": {"name": "val_accuracy", "value": val},
            "metrics": {"n_params": 1234, "params": {"C": 0.1 * (seed + 1)}, "rate": 0.25},
            "classification": {"val": {"report": report}},
            "history": {"val_accuracy": [val] * epochs}, "artifacts": {"model": "model.keras"}, "notes": [f"s{seed}"]}


def entry(stage: str, variant: str, seed: int, run_seeds: tuple, state: str = "done", **kw) -> Entry:
    run = PlannedRun(stage, "vgg16", variant, Path("nb.ipynb"), {}, seed=seed, seeded=len(run_seeds) > 1,
                     seeds=run_seeds)
    return Entry(run, state, "", "", "", Path(f"/runs/{stage}/{run.name}"),
                 metrics(seed, **kw) if state == "done" else None)


def test_a_spread_is_the_mean_with_the_sample_std_and_n():
    s = Spread([0.5, 0.6, 0.7])
    assert float(s) == pytest.approx(0.6) and s.n == 3 and s.std == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    assert f"{s:.2f}" == "0.60" and s + 0.1 == pytest.approx(0.7)  # a float wherever a float is expected


def test_measured_numbers_are_averaged_settings_counts_and_provenance_kept():
    combined = seeds.combine_metrics([metrics(0, 0.5), metrics(1, 0.7)])
    head = combined["headline"]["value"]
    assert isinstance(head, Spread) and head.values == (0.5, 0.7)
    report = combined["classification"]["val"]["report"]
    assert isinstance(report["Bronze"]["precision"], Spread) and report["Bronze"]["support"] == 2.0
    assert not isinstance(report["Bronze"]["support"], Spread)  # a count every seed shares stays a count
    assert isinstance(report["Bronze"]["recall"], Spread) and report["Bronze"]["recall"].std == 0  # agreeing seeds: n still said
    assert combined["metrics"]["n_params"] == 1234 and not isinstance(combined["metrics"]["n_params"], Spread)
    assert combined["metrics"]["params"] == {"C": 0.1}  # a setting: the first seed's
    assert combined["run"] == metrics(0, 0.5)["run"] and combined["notes"] == ["s0"]
    assert isinstance(combined["history"]["val_accuracy"][1], Spread)
    ragged = seeds.combine_metrics([metrics(0, 0.5, epochs=2), metrics(1, 0.7, epochs=3)])
    assert ragged["history"]["val_accuracy"] == [0.5, 0.5]  # runs stopped at other epochs: the first seed's curve


def test_seeded_runs_fold_into_one_entry_in_place_and_others_pass_through():
    plain = entry("classify", "default", 0, ())
    one = entry("finetune", "step1", 3, (3,))  # one declared seed other than the profile's: nothing to fold
    one.run.seeded = True
    pair = [entry("finetune", "step2", 0, (0, 1), val=0.5), entry("finetune", "step2", 1, (0, 1), val=0.7)]
    shown = seeds.combine([plain, pair[0], one, pair[1]])
    assert [e.run.id for e in shown] == ["classify/vgg16", "finetune/vgg16-step2", "finetune/vgg16-step1-s3"]
    folded = shown[1]
    assert shown[0] is plain and shown[2] is one
    assert folded.combined.seeds == [0, 1] and folded.combined.shown == 0 and folded.state == "done"
    assert float(folded.metrics["headline"]["value"]) == pytest.approx(0.6)
    assert seeds.figures_of(shown, {"finetune/vgg16-step2-s0": {"curves": "a.png"}})["finetune/vgg16-step2"] == {
        "curves": "a.png"}
    assert seeds.seeds_said(shown) == [{"seeds": "0, 1", "runs": "finetune/vgg16-step2", "shown": "0", "missing": ""}]


def test_a_failed_seed_is_left_out_of_the_mean_and_named():
    runs = [entry("finetune", "step2", s, (0, 1, 2), val=v) for s, v in ((0, 0.5), (1, 0.7))]
    runs.append(entry("finetune", "step2", 2, (0, 1, 2), state="failed"))
    runs[-1].metrics = metrics(2, 0.99)  # a failed run writes its metrics.json too
    (folded,) = seeds.combine(runs)
    assert folded.combined.seeds == [0, 1] and folded.metrics["headline"]["value"].n == 2
    assert seeds.seeds_said([folded])[0]["missing"] == "finetune/vgg16-step2-s2"
    (none_ran,) = seeds.combine([entry("finetune", "step2", s, (0, 1), state="missing") for s in (0, 1)])
    assert none_ran.state == "missing" and none_ran.run.id == "finetune/vgg16-step2"


def test_the_number_filters_say_mean_std_and_n_and_plain_numbers_stay_as_they_were():
    s = Spread([0.5, 0.6])
    assert pct(s) == "55.0 ± 7.1% (n=2)" and num(s) == "0.55 ± 0.07 (n=2)"
    assert num(s, 2, "std") == "0.55 ± 0.07" and num(s, 2, "mean") == "0.55"
    assert points(Spread([0.02, -0.01])) == "+0.5 ± 2.1 points (n=2)" and thousands(Spread([10, 13])) == "12 ± 2 (n=2)"
    assert (pct(0.5), num(0.5), thousands(1234), points(0.04), num(None)) == ("50.0%", "0.50", "1,234", "+4.0 points", "—")
    with pytest.raises(ValueError, match="seeds='sd': expected one of n, std, mean"):
        num(s, 2, "sd")


def test_bars_of_means_over_seeds_get_error_bars_of_their_std():
    rows = [{"backbone": "VGG16", "val": Spread([0.4, 0.6])}, {"backbone": "B0", "val": 0.3}]
    ax = draw_accuracy_bars(rows, x="backbone", y="val").axes[0]
    (bars,) = ax.containers[-1:]
    segments = bars.errorbar.lines[2][0].get_segments()
    assert np.allclose(segments[0][:, 1], [0.5 - Spread([0.4, 0.6]).std, 0.5 + Spread([0.4, 0.6]).std])
    assert np.isnan(segments[1]).all()  # one run: no error bar
    plain = draw_accuracy_bars([{"backbone": "B0", "val": 0.3}], x="backbone", y="val").axes[0]
    assert plain.containers[0].errorbar is None


def test_the_final_models_seed_is_found_for_a_run_and_for_a_pipeline_on_it():
    from mame.deck.sections.evaluate import chosen_seed

    pair = [entry("finetune", "step2", s, (0, 1), val=v) for s, v in ((0, 0.5), (1, 0.7))]
    grouped = {"finetune": seeds.combine(pair), "classify": [entry("classify", "default", 0, ())]}
    said = {"seed": 1, "run": "finetune/vgg16-step2", "seeds": "0, 1"}
    assert chosen_seed("finetune/vgg16-step2-s1", grouped) == said
    assert chosen_seed("finetune/vgg16-step2-s1/mlp", grouped) == said
    assert chosen_seed("finetune/vgg16-step2-s10", grouped) is None and chosen_seed("classify/vgg16/mlp", grouped) is None
