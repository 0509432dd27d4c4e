"""``--executor ray`` on a local Ray instance (loopback only, 2 CPUs, no dashboard, no usage reporting):
the same runs, metrics and cache as the serial runner; a killed Ray worker retried or failed with its reason."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import ray

from mame.engine import runs
from mame.engine.runner import run_plan
from tests.engine.test_executors import run_with_the_worker_killed, states
from tests.engine.test_runner import write_plan
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
    from mame.engine.ray_executor import RayExecutor

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
        a, b = (runs.read_metrics(d / outcome.run.stage / outcome.run.name) for d in (serial_dir, ray_dir))
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
