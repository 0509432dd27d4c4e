"""What the kernel launcher (``mame.engine.kernel_launcher``), the kernel server (``mame.engine.kernel_server``)
and the runner share: the socket's messages, the marks a launcher writes to a run's kernel.log, which
environment variables may differ between a kernel and the server. Standard library only."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct

SERVER_ENV = "MAME_KERNEL_SERVER"
FOLDER_PREFIX = "mame-kernels-"  # the server's temporary folder (socket, log): it removes it when it ends
# set per kernel by jupyter_client or the executor (read by no library at import): may differ from the server's
# (MAME_TEST_LEDGER: the run's own journal of test-split reads, mame.data.ledger.JOURNAL_ENV, read when a read happens)
PER_KERNEL_ENV = frozenset({"JPY_PARENT_PID", "JPY_SESSION_NAME", "CUDA_VISIBLE_DEVICES", SERVER_ENV,
                            "PYDEVD_DISABLE_FILE_VALIDATION", "PWD", "OLDPWD", "_", "MAME_TEST_LEDGER"})
FORKED_MARK = "[kernel] forked from the kernel server"
FRESH_MARK = "[kernel] fresh kernel"
ENDED_MARK = "[kernel] ended"
ENDED_RE = re.compile(r"\[kernel\] ended \(status -?\d+\); peak resident memory ([0-9.]+) MB")
HEADER = struct.Struct("!I")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a request holds an environment and sys.path: kilobytes, never this
# what a launcher's request holds (``mame.engine.kernel_launcher.forked``): field -> (type, type of its items)
REQUEST_FIELDS = {"options": (list, str), "module": (str, None), "args": (list, str), "argv0": (str, None),
                  "cwd": (str, None), "env": (dict, str), "path": (list, str)}
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent ends (a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def env_difference(server_env: dict, kernel_env: dict) -> list[str]:
    """Names of the variables (other than the per-kernel ones) whose value differs between the two."""
    names = (set(server_env) | set(kernel_env)) - PER_KERNEL_ENV
    return sorted(n for n in names if server_env.get(n) != kernel_env.get(n))


def request_problem(request: object, fds: int) -> str | None:
    """Why ``request`` (with ``fds`` descriptors) is not a launcher's request (None: it is one)."""
    if request is None:
        return "malformed request: nothing came, or null"
    if not isinstance(request, dict):
        return f"malformed request: a {type(request).__name__}, not an object"
    if fds != 3:
        return f"malformed request: {fds} descriptors passed, not 3 (stdin, stdout, stderr)"
    for name, (kind, item) in REQUEST_FIELDS.items():
        value = request.get(name)
        if not isinstance(value, kind):
            return f"malformed request: {name!r} is {type(value).__name__}, not {kind.__name__}"
        parts = [x for pair in value.items() for x in pair] if isinstance(value, dict) else value
        if item is not None and not all(isinstance(x, item) for x in parts):
            return f"malformed request: {name!r} holds something other than {item.__name__}"
    return None


def split_command(args: list[str]) -> tuple[list[str], str | None, list[str]]:
    """``[options..., "-m", module, args...]`` (a kernel command after the interpreter) -> its three parts."""
    if "-m" not in args or args.index("-m") + 1 >= len(args):
        return args, None, []
    at = args.index("-m")
    return args[:at], args[at + 1], args[at + 2:]


def send_message(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    payload = json.dumps(message).encode()
    header = HEADER.pack(len(payload))
    if fds:
        socket.send_fds(sock, [header], fds)
    else:
        sock.sendall(header)
    sock.sendall(payload)


def receive_message(sock: socket.socket, maxfds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None when the peer closed first) and the descriptors that came with it. A message that is
    not JSON, or too long, raises ``ValueError``, the descriptors that came with it closed."""
    if maxfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, maxfds)
    else:
        data, fds = sock.recv(HEADER.size), []
    try:
        data = _read_exact(sock, data, HEADER.size)
        if data is None:
            return None, fds
        size = HEADER.unpack(data)[0]
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message of {size} bytes (at most {MAX_MESSAGE_BYTES})")
        payload = _read_exact(sock, b"", size)
        return (json.loads(payload) if payload is not None else None), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _read_exact(sock: socket.socket, data: bytes, size: int) -> bytes | None:
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
