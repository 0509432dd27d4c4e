"""One run in a process of its own: ``python -m mame.engine.worker`` (what ``--jobs N`` starts, one per run).

It reads the pickled job (run, context, run folder) on stdin, executes it exactly as the runner does in
its own process (``mame.engine.execute.execute``: private ``.partial-<pid>`` folder, swapped into place
at the end), and writes one JSON line per epoch (``{"progress": {...}}``) on stdout. Its exit status is
0 when a metrics.json (done or failed) was written. It dies with the runner that started it (Linux: the
parent-death signal), and its kernel dies with it (ipykernel polls its parent), so a killed runner leaves
no run going on behind the next one's back.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import signal
import sys

PR_SET_PDEATHSIG = 1
PARENT_ENV = "MAME_RUNNER_PID"


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the runner that started it ends; if it already ended
    between the fork and now, end here."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's own clean-up is all there is
        pass
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        os._exit(3)


def main() -> int:
    die_with_parent()
    # a stop asked by the runner (Ctrl-C there): unwind, so papermill shuts the kernel down
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    job = pickle.load(sys.stdin.buffer)
    out = sys.stdout

    def progress(line: dict) -> None:
        out.write(json.dumps({"progress": line}) + "\n")
        out.flush()

    from mame.engine import execute

    execute.execute(job["run"], job["ctx"], job["final_dir"], progress=progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
