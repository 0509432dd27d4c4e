"""The processes a runner starts for its runs, and how they end (standard library and psutil only).

Each run is a child forked from multiprocessing's forkserver, which imports a run's heavy libraries once
(``mame.engine.run.preload``) and touches no GPU; one fork per run, never reused, with the environment the run
was submitted with. They end with the runner: it stops a child's tree with :func:`stop_tree` (Ctrl-C reaches
only the runner: each child has a session of its own); a child whose runner is killed sees the parent sentinel
close, stops its own children and exits; the forkserver exits when the runner's end of its pipe closes.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable

import psutil

PRELOAD = "mame.engine.run.preload"
STOP_GRACE_S = 5.0


def context():
    """The multiprocessing context runs start from: the forkserver, preloading ``mame.engine.run.preload``."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    return ctx


def start(target: Callable, args: tuple, *, env: dict[str, str], threads: int | None):
    """A started process running ``target(*args)`` with environment ``env``, its BLAS/OpenMP pools capped at
    ``threads`` (what it prints outside a notebook, a crash's traceback, goes to the runner's stderr)."""
    proc = context().Process(target=_child, args=(target, args, env, threads), daemon=False)
    proc.start()
    return proc


def _child(target: Callable, args: tuple, env: dict[str, str], threads: int | None) -> None:
    os.setsid()  # Ctrl-C at the runner reaches the runner only; it stops its runs itself
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(env)
    import sys

    if "numpy" in sys.modules:  # a fresh process seeds numpy's global generator from the OS: so does a fork
        sys.modules["numpy"].random.seed()
    if threads:  # the BLAS and OpenMP pools were sized at import, in the server: sized for this run now
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    threading.Thread(target=_end_with_runner, name="end-with-runner", daemon=True).start()
    target(*args)


def _end_with_runner() -> None:
    """In a run's process: when the runner that started it ends, stop this process's children and exit."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    multiprocessing.connection.wait([parent.sentinel])
    stop_tree(os.getpid(), grace=1.0, children_only=True)
    os._exit(1)


def stop_tree(pid: int, *, grace: float = STOP_GRACE_S, interrupt_first: float = 0.0,
              children_only: bool = False) -> None:
    """End ``pid`` and every process under it (``children_only``: not ``pid`` itself): SIGINT to ``pid`` alone
    first where ``interrupt_first`` gives it that many seconds, then SIGTERM, then SIGKILL ``grace`` s later. Every
    process seen in any round is signalled (an orphan stays a target); a zombie counts as ended."""
    rounds = ([(signal.SIGINT, interrupt_first)] if interrupt_first else []) + [(signal.SIGTERM, grace),
                                                                              (signal.SIGKILL, grace)]
    seen: dict[int, psutil.Process] = {}
    for sig, wait in rounds:
        for proc in _tree(pid, children_only):
            seen.setdefault(proc.pid, proc)
        alive = [p for p in seen.values() if _alive(p)]
        if not alive:
            return
        targets = [p for p in alive if p.pid == pid] if sig == signal.SIGINT else alive
        for proc in targets:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait
        while any(_alive(p) for p in targets) and time.monotonic() < deadline:
            time.sleep(0.05)


def _tree(pid: int, children_only: bool) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return root.children(recursive=True) + ([] if children_only else [root])
    except psutil.Error:
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_any(procs: list, timeout: float) -> list:
    """The processes of ``procs`` that have ended, waiting up to ``timeout`` seconds for one."""
    if not procs:
        return []
    ready = set(multiprocessing.connection.wait([p.sentinel for p in procs], timeout=timeout))
    ended = [p for p in procs if p.sentinel in ready]
    for proc in ended:
        proc.join()
    return ended


def describe_exit(exitcode: int | None) -> str:
    """Why a run's process that wrote no metrics.json ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the process running it was killed ({name}) before it wrote its metrics.json"
    return f"the process running it exited with status {exitcode} without writing its metrics.json"
