"""A kernel that dies at start-up because another kernel took the port jupyter picked for it is started again;
any other start-up death is not (a broken kernel must fail the run, not loop)."""

from __future__ import annotations

from mame.engine.execute import lost_port_race

DIED = RuntimeError("Kernel died before replying to kernel_info")
RACE = "zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:57497')\n"


def test_only_a_lost_port_at_start_up_counts(tmp_path):
    log = tmp_path / "kernel.log"
    log.write_text("earlier attempt: " + RACE)
    offset = log.stat().st_size
    assert not lost_port_race(DIED, log, offset)  # the race of an earlier attempt does not count again
    with open(log, "a") as handle:
        handle.write("Traceback ...\n" + RACE)
    assert lost_port_race(DIED, log, offset)
    assert not lost_port_race(RuntimeError("Kernel didn't respond in 60 seconds"), log, offset)
    log.write_text("ModuleNotFoundError: No module named 'ipykernel'\n")
    assert not lost_port_race(DIED, log)
    assert not lost_port_race(DIED, tmp_path / "missing.log")
