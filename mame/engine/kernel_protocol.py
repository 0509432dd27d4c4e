"""What the kernel launcher (``mame.engine.kernel_launcher``), the kernel server (``mame.engine.kernel_server``)
and the runner share: the socket's messages, the marks a launcher writes to a run's kernel.log, which
environment variables may differ between a kernel and the server. Standard library only."""

from __future__ import annotations

import json
import re
import signal
import socket
import struct

SERVER_ENV = "MAME_KERNEL_SERVER"
FOLDER_PREFIX = "mame-kernels-"  # the server's temporary folder (socket, log): it removes it when it ends
# set per kernel by jupyter_client or the executor (read by no library at import): may differ from the server's
PER_KERNEL_ENV = frozenset({"JPY_PARENT_PID", "JPY_SESSION_NAME", "CUDA_VISIBLE_DEVICES", SERVER_ENV,
                            "PYDEVD_DISABLE_FILE_VALIDATION", "PWD", "OLDPWD", "_"})
FORKED_MARK = "[kernel] forked from the kernel server"
FRESH_MARK = "[kernel] fresh kernel"
ENDED_MARK = "[kernel] ended"
ENDED_RE = re.compile(r"\[kernel\] ended \(status -?\d+\); peak resident memory ([0-9.]+) MB")
HEADER = struct.Struct("!I")
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
    """One message (None when the peer closed first) and the descriptors that came with it."""
    if maxfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, maxfds)
    else:
        data, fds = sock.recv(HEADER.size), []
    data = _read_exact(sock, data, HEADER.size)
    if data is None:
        return None, fds
    payload = _read_exact(sock, b"", HEADER.unpack(data)[0])
    return (json.loads(payload) if payload is not None else None), fds


def _read_exact(sock: socket.socket, data: bytes, size: int) -> bytes | None:
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
