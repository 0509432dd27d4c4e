"""One plan load and one cache-key pass per command: ``run``, ``status`` and ``report`` build one ``Study`` and hand it
to the runner and the deck (real commands on a one-run plan)."""

from __future__ import annotations

import pytest

from mame import cli
from mame.engine.plan import load as plan
from mame.engine.run import cache
from tests.helpers import ONE_EPOCH_SCRATCH, write_smoke_plan


@pytest.fixture
def counted(monkeypatch):
    """How often the plan is loaded (its schema checked: every load does it) and a cache key computed."""
    calls = {"loads": 0, "keys": 0}

    def counting(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(plan, "schema_errors", counting("loads", plan.schema_errors))
    monkeypatch.setattr(cache, "cache_key", counting("keys", cache.cache_key))
    return calls


@pytest.mark.slow
def test_each_command_loads_the_plan_once_and_computes_each_key_once(tmp_path, isolated_runs, monkeypatch, counted):
    monkeypatch.setenv("MAME_REPORT_BUILD", str(tmp_path / "report"))
    path = write_smoke_plan(tmp_path / "plan.yaml", ONE_EPOCH_SCRATCH)
    for argv in (["run"], ["status"], ["report", "--no-pdf", "--rerender"], ["report", "--no-pdf"]):
        counted.update(loads=0, keys=0)
        assert cli.main([*argv, "--profile", "smoke", "--plan", str(path)]) == 0, argv
        assert counted == {"loads": 1, "keys": 1}, argv  # one run in the plan: one key
