"""What the kernel manager starts for a run's kernel: ``python -m mame.engine.kernel_launcher -m ipykernel_launcher
-f <connection file> ...`` (the command of a fresh kernel, behind this module's name).

With a kernel server (``MAME_KERNEL_SERVER``, see ``mame.engine.kernel_server``) it asks the server for a
forked kernel, hands it this process's stdin/stdout/stderr, forwards the signals it gets and exits with the
kernel's status. Without one, or when the server refuses or cannot be reached, it becomes that fresh kernel
(``exec``). Imports the standard library only: it starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from mame.engine.kernel_protocol import (
    ENDED_MARK,
    FRESH_MARK,
    SERVER_ENV,
    die_with_parent,
    receive_message,
    send_message,
    split_command,
)

CONNECT_TIMEOUT_S = 5
# the first kernels wait while the server imports TensorFlow (seconds; more on a loaded machine)
READY_TIMEOUT_S = 300
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class Unavailable(Exception):
    """No forked kernel: the reason is logged and a fresh kernel starts instead."""


def forked(path: str, args: list[str]) -> int:
    """Ask the server at ``path`` for a kernel running ``args``; wait for it to end; its exit status."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(path)
        sock.settimeout(READY_TIMEOUT_S)
        options, module, rest = split_command(args)
        request = {"options": options, "module": module, "args": rest, "argv0": sys.executable, "cwd": os.getcwd(),
                   "env": dict(os.environ), "path": sys.path}
        send_message(sock, request, fds=[0, 1, 2])
        reply, _ = receive_message(sock)
    except OSError as exc:
        raise Unavailable(f"the kernel server at {path} did not answer ({exc})") from exc
    if reply is None:
        raise Unavailable(f"the kernel server at {path} closed the connection")
    if "refused" in reply:
        raise Unavailable(f"the kernel server refused: {reply['refused']}")
    pid = reply["pid"]
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
    sock.settimeout(None)
    while True:
        try:
            message, _ = receive_message(sock)
        except InterruptedError:
            continue
        except OSError:
            message = None
        if message is None:  # the server ended (its kernels end with it)
            return 1
        if "exit" in message:
            print(f"{ENDED_MARK} (status {message['exit']}); peak resident memory {message['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
            return message["exit"]


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(args: list[str]) -> int:
    die_with_parent()  # the process that started the kernel is gone: so is this one, and the server ends its kernel
    path = os.environ.get(SERVER_ENV)
    if path:
        try:
            return forked(path, args)
        except Unavailable as exc:
            print(f"{FRESH_MARK}: {exc}", file=sys.stderr, flush=True)
    else:
        print(f"{FRESH_MARK}: no kernel server", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, *args])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
