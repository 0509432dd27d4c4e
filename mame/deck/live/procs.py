"""The processes the live deck starts (renders, PDFs, the runs), and stopping each with everything it started.

A child runs in a session of its own, so a Ctrl-C in the terminal reaches the server alone, which then stops its
children in order. Stopping takes the whole process tree: pandoc and decktape start in sessions of their own, and
Puppeteer's Chromium in a process group of its own, so a signal to the child's group would miss them.
"""

from __future__ import annotations

import asyncio
import signal
import time

import psutil

INTERRUPT_GRACE_S = 15   # a run interrupted like Ctrl-C ends its kernels and workers itself
TERM_GRACE_S = 5


class Children:
    def __init__(self):
        self.running: dict[int, tuple[asyncio.subprocess.Process, bool]] = {}

    async def run(self, cmd: list[str], *, interrupt_first: bool = False) -> int:
        """Run ``cmd`` (stdout and stderr go to ours) and return its exit code. ``interrupt_first``: at a stop it
        gets SIGINT and ``INTERRUPT_GRACE_S`` before the whole tree is terminated."""
        proc = await asyncio.create_subprocess_exec(*cmd, start_new_session=True)
        self.running[proc.pid] = (proc, interrupt_first)
        try:
            return await proc.wait()
        finally:  # a wait cancelled (the server stopping) leaves the process to kill_all
            if proc.returncode is not None:
                self.running.pop(proc.pid, None)

    def kill_all(self) -> None:
        """Stop every running child with its descendants; returns when none of them is left."""
        for pid, (_, interrupt_first) in list(self.running.items()):
            stop_tree(pid, interrupt_first=interrupt_first)
        self.running.clear()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(pid: int, *, interrupt_first: bool = False) -> None:
    """SIGINT (if asked, waiting for the tree to end by itself), then SIGTERM, then SIGKILL to the process ``pid``
    and all its descendants (looked up before each signal: a dying parent leaves its children to init)."""
    rounds = ([(signal.SIGINT, INTERRUPT_GRACE_S)] if interrupt_first else []) + [(signal.SIGTERM, TERM_GRACE_S),
                                                                                (signal.SIGKILL, TERM_GRACE_S)]
    seen: dict[int, psutil.Process] = {}
    for sig, grace in rounds:
        for proc in _tree(pid):  # those seen before stay: a parent gone leaves its children to init
            seen.setdefault(proc.pid, proc)
        alive = [p for p in seen.values() if _alive(p)]
        if not alive:
            return
        targets = alive[:1] if sig == signal.SIGINT else alive
        for proc in targets:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _wait_gone(targets, grace)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Poll until none of ``procs`` runs (a zombie counts as gone: it is left for asyncio to reap, which a
    ``psutil.wait_procs`` would do first, and asyncio would then report a lost child)."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
