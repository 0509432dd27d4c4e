"""The kernel server's reaper: a small process forked from the server (``mame.engine.kernel_server``) before it
imports anything, which ends the server and removes its socket's folder when the server has not done so itself
``REAPER_GRACE_S`` after its runner ended.

The server ends on its runner's death signal by itself; the reaper covers a server that cannot: stopped,
or stuck in a library's import or code that swallowed the signal. It dies with the server (its own death
signal), so in the normal case it goes when the server goes. Standard library only.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import time

from mame.engine.kernel_protocol import FOLDER_PREFIX, die_with_parent

REAPER_GRACE_S = 5.0  # how long a server whose runner ended has to end by itself before it is killed


def own_folder(path: str) -> str | None:
    """The server's own temporary folder (the socket's, when the runner made it for the server), else None."""
    folder = os.path.dirname(path)
    return folder if os.path.basename(folder).startswith(FOLDER_PREFIX) else None


def remove_socket(path: str) -> None:
    """Remove the socket, and the server's temporary folder with it when it has one."""
    folder = own_folder(path)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def start_reaper(runner: int, path: str) -> None:
    """Fork the process that ends this server and removes its socket when the server has not done so itself
    ``REAPER_GRACE_S`` after its runner ``runner`` ended (the server was stopped, or is stuck in a library's
    import or code that swallowed its death signal). It dies with the server: in the normal case the server
    ends first, and it with it. Called before anything is imported or any thread started."""
    server = os.getpid()
    try:
        watch = os.pidfd_open(runner)  # readable when the runner has ended (Linux 5.3 and later)
    except (AttributeError, OSError):
        watch = None
    if os.fork():
        if watch is not None:
            os.close(watch)
        return
    try:
        die_with_parent()
        if os.getppid() == server:
            _reap_when_gone(runner, watch, server, path)
    finally:
        os._exit(0)


def _reap_when_gone(runner: int, watch: int | None, server: int, path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's business: a Ctrl-C it gets is not for this one
    if watch is not None:
        select.select([watch], [], [])
    else:
        while _alive(runner):
            time.sleep(0.5)
    time.sleep(REAPER_GRACE_S)  # the server ends by itself, and this process with it
    remove_socket(path)
    if os.getppid() == server:
        os.kill(server, signal.SIGKILL)  # its kernels die with it (their death signal)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True
