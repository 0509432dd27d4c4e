"""``--executor ray`` on a local Ray instance (loopback only, 2 CPUs, no dashboard, no usage reporting):
the same runs, metrics and cache as the serial runner; a killed Ray worker retried or failed with its reason."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from mame.engine.run import records
from mame.engine.run.executors import Job
from mame.engine.run.scheduler import run_plan
from tests.engine.run.test_executors import run_with_the_worker_killed, states
from tests.engine.run.test_run_processes import _tiny_run
from tests.engine.run.test_scheduler import write_plan
from tests.helpers import TEST_DATA_HOME

pytestmark = pytest.mark.slow


@pytest.fixture
def runs_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MAME_DATA_HOME", str(TEST_DATA_HOME))
    return tmp_path / "serial", tmp_path / "ray"


def listening() -> set[str]:
    """The local addresses of every listening TCP socket on this machine (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found.add(fields[1])
    return found


def is_loopback(hex_address: str) -> bool:
    ip = hex_address.split(":")[0]
    if len(ip) == 32 and ip.startswith("0000000000000000FFFF0000"):  # ::ffff:a.b.c.d, an IPv4 address
        ip = ip[24:]
    if len(ip) == 8:  # IPv4, little-endian: 0100007F is 127.0.0.1
        return ip.endswith("7F")
    return ip == "00000000000000000000000001000000"  # ::1


def test_a_local_ray_instance_listens_on_loopback_only_without_a_dashboard():
    from mame.engine.run.ray_executor import RayExecutor

    before = listening()
    environment = dict(os.environ)
    pool = RayExecutor(2, lambda *_: None)
    try:
        opened = listening() - before
        assert opened and not [a for a in opened if not is_loopback(a)], sorted(opened)  # Ray's own sockets: loopback only
        nodes = ray.nodes()
        assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
        assert ray.cluster_resources()["CPU"] == max(2, len(os.sched_getaffinity(0)))  # a slot per job at least
        context = ray.get_runtime_context()
        assert context.gcs_address.startswith("127.0.0.1:")
        assert not ray._private.worker.global_worker.node.address_info.get("webui_url")  # no dashboard
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"  # no usage reporting
    finally:
        pool.close()
    assert not ray.is_initialized()
    assert dict(os.environ) == environment  # nothing of the instance's settings left in this process


def test_a_smoke_plan_through_ray_gives_the_serial_runners_metrics_and_a_second_pass_is_cached(tmp_path, runs_dirs, monkeypatch):
    plan = write_plan(tmp_path / "plan.yaml")
    serial_dir, ray_dir = runs_dirs
    monkeypatch.setenv("MAME_RUNS_DIR", str(serial_dir))
    only = "=features/efficientnetb0,=classify/efficientnetb0"  # a Keras stage and the scikit-learn one on it
    serial = run_plan("smoke", plan_file=plan, only=only, out=io.StringIO())
    monkeypatch.setenv("MAME_RUNS_DIR", str(ray_dir))
    out = io.StringIO()
    through_ray = run_plan("smoke", plan_file=plan, only=only, executor="ray", jobs=2, out=out)
    assert states(through_ray) == states(serial) == dict.fromkeys(states(serial), "done"), out.getvalue()
    for outcome in serial:
        a, b = (records.read_metrics(d / outcome.run.stage / outcome.run.name) for d in (serial_dir, ray_dir))
        assert b["run"]["cache_key"] == a["run"]["cache_key"]
        assert b["run"]["executor"]["name"] == "ray" and b["run"]["executor"]["host"]
        cores = len(os.sched_getaffinity(0))  # as a run alone gets: the numbers stay those of one at a time
        assert b["run"]["executor"]["threads"] == {"intra_op": cores, "inter_op": min(2, cores), "blas": cores}
        if outcome.run.stage == "features":  # Keras: the same features to float tolerance
            for split in ("train", "val"):
                with np.load(serial_dir / outcome.run.id / f"features_{split}.npz") as fa, \
                        np.load(ray_dir / outcome.run.id / f"features_{split}.npz") as fb:
                    np.testing.assert_allclose(fb["features"], fa["features"], rtol=1e-4, atol=1e-5)
        else:  # sklearn on those features: the same reports
            assert b["classification"] == a["classification"], outcome.run.id
        assert b["headline"]["value"] == pytest.approx(a["headline"]["value"], abs=1e-9)
    again = run_plan("smoke", plan_file=plan, only=only, executor="ray", jobs=2, out=io.StringIO())
    assert set(states(again).values()) == {"cached"}


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_ray_worker_is_retried_or_fails_with_the_reason(tmp_path, isolated_runs, retries):
    outcomes, printed, metrics = run_with_the_worker_killed(tmp_path, isolated_runs, retries, executor="ray")
    if not retries:
        assert "the Ray worker running it died" in metrics["run"]["error"]["message"], metrics["run"]["error"]
    assert not ray.is_initialized()


def ended_one(pool, job, timeout: float = 180):
    """Submit ``job`` to ``pool`` and wait for how it ended."""
    pool.submit(job)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = pool.wait(timeout=1.0)
        if ended:
            return ended[0]
    raise AssertionError(f"{job.run.id} did not end in {timeout} s")


def test_a_ray_task_lost_after_its_swap_is_taken_from_the_disk_and_one_lost_before_is_not(tmp_path):
    """The task runs the run, swaps it into place, then its worker dies before returning: the run is on disk with
    its key, so it is taken, not run again (as the local executor does). A task whose worker dies before it runs
    anything is lost, although the folder holds a run of the same key from before (it is not this attempt's)."""
    from mame.engine.run.ray_executor import RayExecutor, run_task

    def runs_then_dies(job, threads):
        run_task(job, threads)
        os._exit(1)  # lost after the swap, before the metrics reach the runner

    def dies_at_once(job, threads):
        os._exit(1)

    run, ctx = _tiny_run(tmp_path, "tiny")
    final_dir = tmp_path / "runs" / "tiny" / "tiny"
    pool = RayExecutor(1, lambda *_: None)
    try:
        pool._task = ray.remote(runs_then_dies)
        taken = ended_one(pool, Job(run, ctx, final_dir))
        assert taken.metrics is not None and not taken.lost, taken.lost
        assert taken.metrics == records.read_metrics(final_dir) and taken.metrics["run"]["status"] == "done"
        pool._task = ray.remote(dies_at_once)
        lost = ended_one(pool, Job(run, ctx, final_dir, attempt=2))
    finally:
        pool.close()
    assert lost.metrics is None and "the Ray worker running it died" in lost.lost, lost
    assert records.read_metrics(final_dir) == taken.metrics  # the run before it is left as it was


def test_a_runs_folder_the_ray_workers_do_not_share_is_named(tmp_path, monkeypatch):
    """A Ray worker on another machine writes the run into its own runs folder: the runner does not find it where
    it expects it, and fails the run saying the runs folder is not shared (not "needs ..., which is not done")."""
    from dataclasses import replace

    from mame.engine.run import ray_executor
    from mame.engine.run.ray_executor import RayExecutor, run_task

    monkeypatch.setattr(ray_executor, "SHARED_GRACE_S", 2.0)  # not the minute a shared file system may lag

    def on_its_own_disk(job, threads):
        return run_task(replace(job, final_dir=Path(str(job.final_dir).replace("/runs/", "/worker-disk/"))), threads)

    run, ctx = _tiny_run(tmp_path, "tiny")
    final_dir = tmp_path / "runs" / "tiny" / "tiny"
    pool = RayExecutor(1, lambda *_: None)
    try:
        pool._task = ray.remote(on_its_own_disk)
        ended = ended_one(pool, Job(run, ctx, final_dir))
    finally:
        pool.close()
    assert (tmp_path / "worker-disk" / "tiny" / "tiny" / records.METRICS_FILE).is_file()  # done, elsewhere
    error = ended.metrics["run"]["error"]
    assert ended.metrics["run"]["status"] == "failed" and error["type"] == "RunsFolderNotShared", error
    assert str(final_dir) in error["message"] and "not shared with the Ray workers" in error["message"]
    assert "MAME_RUNS_DIR" in error["message"]
    assert not final_dir.exists()
