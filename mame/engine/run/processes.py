"""The processes a runner starts for its runs, and how they end. Standard library and psutil only.

Each run executes in a process of its own, forked from Python's multiprocessing forkserver: a server process
started at the runner's first run that imports TensorFlow, Keras and the rest of a run's heavy libraries once
(``mame.engine.run.preload``), then forks a child per run. A child starts from that state, untouched by any run
before it (one fork per run, never reused), and takes the runner's environment as it was when the run was
submitted; TensorFlow's runtime (threads, devices: ``CUDA_VISIBLE_DEVICES``) is created in the child, never in
the server, which touches no GPU.

How they end, whatever happens to the runner:
- the runner stops one (Ctrl-C at the runner, which the child does not get: it has a session of its own) with
  :func:`stop_tree`, SIGTERM then SIGKILL, its own children (a fresh Jupyter kernel) included;
- the runner is killed: the child's parent-death sentinel (multiprocessing's, ``parent_process().sentinel``)
  becomes readable; the child stops its own children and exits. The forkserver exits on its own when the
  runner's end of its pipe closes.
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
    os.setsid()  # Ctrl-C typed at the runner reaches the runner, which stops its runs itself
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
    """End the process ``pid`` and every process under it: SIGINT to ``pid`` alone first where ``interrupt_first``
    gives it that many seconds to end by itself (as Ctrl-C would), then SIGTERM, then SIGKILL to those still there
    ``grace`` seconds later (``children_only``: the processes under ``pid``, not itself). The tree is looked up
    before each signal and those seen before stay (a parent gone leaves its children to init); a zombie counts as
    ended and is left to its parent to reap."""
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
