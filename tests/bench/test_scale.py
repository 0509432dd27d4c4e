"""The scale bench (``make bench SCALE=1``) at its smallest: every step on a few dozen images of a synthetic MAMe,
and the orchestration (fresh processes, growth exponents, extrapolation past the cap, table and plot) on two sizes.
Figures are printed, never asserted."""

from __future__ import annotations

import json

import pytest

from mame.bench import scale, scale_steps
from mame.data.synthetic.like_mame import generate_like_mame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def like_mame(tmp_path_factory):
    folder = tmp_path_factory.mktemp("like-mame") / "MAMe"
    generate_like_mame(folder, images=120, jobs=2, say=lambda _: None)
    return folder


def test_every_step_runs_on_the_smallest_subset_and_says_what_it_handled(like_mame, tmp_path, monkeypatch):
    images, folder = scale.subset(like_mame, 10, tmp_path)
    assert images == 87 and len(list((folder / "data_256").iterdir())) == 87
    for name in ("MAME_DIR", "MAME_RUNS_DIR", "MAME_REPORT_BUILD", "MAME_IMAGE_CACHE", "MAME_DATA_HOME"):
        monkeypatch.setenv(name, "")  # the deck study's steps set these for their process: undone after the test
    handled, found = {}, {}
    for step in scale.STEPS:
        if step in ("cache", "pipeline"):
            monkeypatch.setenv("MAME_IMAGE_CACHE", str(tmp_path / f"cache-{step}"))
        found[step] = scale_steps.run_step(step, folder)
        handled[step] = found[step]["images"]
    monkeypatch.chdir(like_mame.parent)  # a dataset named by a relative path: links that hold from anywhere
    relative = scale.subset(type(like_mame)(like_mame.name), 10, tmp_path / "relative")[1]
    assert all(p.resolve().is_file() for p in (relative / "data_256").iterdir())
    assert handled["check"] == 87 and handled["evaluate"] == 29  # every image; the test split's size
    assert handled["features"] == handled["cache"] == handled["pipeline"] == 58  # train and val
    assert all(handled[s] == 29 for s in scale.STEPS if s.startswith("classify-"))  # the training split
    assert all(handled[s] == 87 for s in scale.STEPS if s.startswith("projection-"))
    # the deck and the bundle of a study run through the runner on the folder, its runs made once for both
    assert handled["deck"] == handled["share"] == 87 and found["deck"]["pages"] > 10 and found["share"]["files"] > 5
    assert found["deck"]["runs_seconds"] > found["share"]["runs_seconds"]  # the share step found them done
    study = folder.parent / f"{folder.name}-study"
    assert sorted(p.parent.name for p in study.glob("runs/*/*/metrics.json")) == ["default", "efficientnetlite0",
                                                                                   "efficientnetlite0"]


def test_two_sizes_in_fresh_processes_give_a_table_a_plot_and_an_extrapolated_size_past_the_cap(like_mame, tmp_path):
    said = []
    found = scale.main((10, 120), ("check", "evaluate"), full=like_mame, cap_s=60, out=tmp_path, say=said.append)
    check, evaluate = found["steps"]
    assert [r["size"] for r in check["rows"]] == [87, 135] and not any(r["extrapolated"] for r in check["rows"])
    assert all(r["peak_mb"] >= r["start_mb"] > 0 for r in check["rows"]) and check["time_exponent"] is not None
    text = (tmp_path / "scale.md").read_text()
    assert "| check | " in text and "| evaluate | " in text and (tmp_path / "scale.png").stat().st_size > 1000
    assert json.loads(next(tmp_path.glob("scale-*.json")).read_text())["steps"][0]["step"] == "check"
    # past the cap, a size is predicted from those measured (at least linearly), labelled so, and not run
    capped = scale.main((10, 120), ("check",), full=like_mame, cap_s=0.0, out=tmp_path, say=said.append)
    first, second = capped["steps"][0]["rows"]
    assert not first["extrapolated"] and second["extrapolated"]
    assert second["seconds"] >= round(first["seconds"] * 135 / 87, 1) - 0.1
    assert "(extrapolated)" in (tmp_path / "scale.md").read_text()
    assert any("135 images: about" in line and "(extrapolated)" in line for line in said)


def test_growth_is_the_log_log_slope_without_the_smallest_size_once_three_are_measured():
    assert scale.growth([(1_000, 2.0), (4_000, 8.0)]) == 1.0
    assert scale.growth([(1_000, 1.0), (4_000, 16.0)]) == 2.0
    assert scale.growth([(100, 50.0), (1_000, 10.0), (10_000, 100.0)]) == 1.0  # the fixed start-up left out
    assert scale.growth([(1_000, 2.0)]) is None
    assert scale.predict([(1_000, 2.0), (2_000, 3.0)], 4_000) == pytest.approx(6.0)  # never below linear
