"""The processes the live deck starts (renders, PDFs, the runs), and stopping each with everything it started.

A child runs in a session of its own, so a Ctrl-C in the terminal reaches the server alone, which then stops its
children in order. Stopping takes the whole process tree: pandoc and decktape start in sessions of their own, and
Puppeteer's Chromium in a process group of its own, so a signal to the child's group would miss them.
"""

from __future__ import annotations

import asyncio

from mame.engine.run.processes import stop_tree

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
            stop_tree(pid, grace=TERM_GRACE_S, interrupt_first=INTERRUPT_GRACE_S if interrupt_first else 0.0)
        self.running.clear()
