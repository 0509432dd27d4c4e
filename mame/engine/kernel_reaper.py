"""The kernel server's reaper: a small process forked from the server (``mame.engine.kernel_server``) before it
imports anything, which ends the server and removes its socket's folder when the server has not done so itself
``REAPER_GRACE_S`` after its runner ended, and removes the folder of a server that was killed.

The server ends on its runner's death signal by itself; the reaper covers a server that cannot: stopped,
or hung in a long call, and a server killed outright (which cannot remove its folder). It ends when the
server ends. Standard library only.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import time

from mame.engine.kernel_protocol import FOLDER_PREFIX

REAPER_GRACE_S = 5.0  # how long a server whose runner ended has to end by itself before it is killed


def remove_socket(path: str) -> None:
    """Remove the socket, and with it the server's own temporary folder when the runner made one for it."""
    folder = os.path.dirname(path)
    if os.path.basename(folder).startswith(FOLDER_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def start_reaper(runner: int, path: str) -> None:
    """Fork the process that watches this server and its runner ``runner``: when the server ends it removes
    the socket (a server killed outright cannot); when the runner ends first it gives the server
    ``REAPER_GRACE_S`` to end by itself (its death signal), then removes the socket and kills it (stopped, or
    hung in a long call). Called before anything is imported or any thread started."""
    server = os.getpid()
    if os.fork():
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's business: a Ctrl-C it gets is not for this one
        if server not in wait_for_end([runner, server]):
            wait_for_end([server], REAPER_GRACE_S)
        remove_socket(path)
        if os.getppid() == server:  # still there: its kernels die with it (their death signal)
            os.kill(server, signal.SIGKILL)
    finally:
        os._exit(0)


def wait_for_end(pids: list[int], timeout: float | None = None) -> set[int]:
    """Wait until one of ``pids`` has ended (or ``timeout`` seconds): those that have."""
    watches: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                watches[os.pidfd_open(pid)] = pid  # readable once the process has ended (Linux 5.3 and later)
            except ProcessLookupError:  # already ended
                return {pid}
        readable, _, _ = select.select(list(watches), [], [], timeout)
        return {watches[fd] for fd in readable}
    except (AttributeError, OSError):  # no pidfd here: poll
        pass
    finally:
        for fd in watches:
            os.close(fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        ended = {pid for pid in pids if not _alive(pid)}
        if ended:
            return ended
        time.sleep(0.2)
    return set()


def _alive(pid: int) -> bool:
    """Running (not ended, nor ended and waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True
