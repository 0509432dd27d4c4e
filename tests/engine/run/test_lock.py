"""The runner lock: one runner per runs folder (no notebook runs here while the lock works)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mame.engine.run.scheduler import RunnerError, run_plan, runner_lock
from tests.helpers import write_smoke_plan

STAGES = """
stages:
  features:
    notebook: 02_features.ipynb
    backbones: [efficientnetb0]
"""


def test_a_second_runner_is_refused_while_one_holds_the_lock(tmp_path, isolated_runs):
    plan = write_smoke_plan(tmp_path / "plan.yaml", STAGES)
    isolated_runs.mkdir(parents=True)
    holder = subprocess.Popen(  # another process that holds the runner lock, as a running `make run` would
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"handle = open({str(isolated_runs / '.lock')!r}, 'w')\n"
         "fcntl.flock(handle, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunnerError, match="another runner is working here"):
            run_plan("smoke", plan_file=plan)
        assert not [p for p in isolated_runs.rglob("*") if p.name != ".lock"]  # nothing started
    finally:
        holder.kill()
        holder.wait()
    with runner_lock(isolated_runs):  # released with its holder
        with pytest.raises(RunnerError, match="another runner"), runner_lock(isolated_runs):
            pass
