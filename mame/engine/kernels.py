"""The runner's side of a run's kernel: the Jupyter kernel ``mame`` (installed for this interpreter), the
environment a kernel gets, and the kernel server that forks kernels with TensorFlow already imported
(``mame.engine.kernel_server``): started for an executor at its first run, stopped with it; papermill's
kernel manager starts ``mame.engine.kernel_launcher`` in front of each kernel's command to use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from mame import config
from mame.engine.kernel_protocol import ENDED_RE, FOLDER_PREFIX, FORKED_MARK, FRESH_MARK, PER_KERNEL_ENV

KERNEL_NAME = "mame"
# oneDNN stays on: with TF_ENABLE_ONEDNN_OPTS=0, mixed_bfloat16 training fell back to kernels 30x slower
# (a 3-block CNN at 48 px: 12.5 instead of 373 images/s on 2 cores); its start-up line goes to kernel.log.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore", "KERAS_BACKEND": "tensorflow",
             "MPLBACKEND": "Agg"}
# TensorFlow's C++ runtime writes to fd 2 before any log setting applies; with fd capture off, that
# goes to kernel.log in the run folder instead of the notebook and the terminal.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR", "--IPKernelApp.capture_fd_output=False"]


def ensure_kernel() -> str:
    """Make sure the Jupyter kernel ``mame`` runs this interpreter (installed into sys.prefix if absent)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (mame)", prefix=sys.prefix)
    return KERNEL_NAME


def kernel_environment(base: dict) -> dict:
    """The environment a kernel started from a process with environment ``base`` gets (as the runner's kernel
    server must have it too): quiet TensorFlow settings and this checkout first on PYTHONPATH."""
    env = dict(base, **QUIET_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config.ROOT), base.get("PYTHONPATH")]))
    return env


def kernel_options() -> list[str]:
    """The interpreter options of the ``mame`` kernel's command (between the interpreter and ``-m``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(ensure_kernel()).argv
    return argv[1:argv.index("-m")] if "-m" in argv else []


@lru_cache(maxsize=1)
def forking_kernel_manager() -> type:
    """papermill's kernel manager, but starting ``mame.engine.kernel_launcher`` in front of the kernel's own
    command: a kernel forked from the runner's kernel server when there is one, else that fresh kernel."""
    from jupyter_client.manager import AsyncKernelManager

    class ForkingKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return [cmd[0], "-m", "mame.engine.kernel_launcher", *cmd[1:]]

    return ForkingKernelManager


SOCKET_PATH_MAX = 100  # bytes: a Unix socket's path holds at most 107 on Linux (108 with its NUL)


def server_folder() -> Path:
    """A new temporary folder for the server's socket and log: under TMPDIR, or under /tmp where TMPDIR's path
    is too long for a socket (binding would fail: "AF_UNIX path too long")."""
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    if len(os.fsencode(folder / "server.sock")) <= SOCKET_PATH_MAX or not os.path.isdir("/tmp"):
        return folder
    folder.rmdir()
    return Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir="/tmp"))


class KernelServer:
    """The server process, started for one runner (:func:`start`) and stopped when it ends (:meth:`stop`)."""

    def __init__(self, env: dict, options: list[str]):
        self.folder = server_folder()
        self.path = str(self.folder / "server.sock")
        self.log = self.folder / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, *options, "-m", "mame.engine.kernel_server",
                                          self.path, *options],
                                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.path) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Kernels:
    """The kernel server of one executor, started at its first run (none when ``fresh``, or when every run
    is cached) and stopped with it; ``path`` is None when there is none (or it died): fresh kernels."""

    def __init__(self, fresh: bool = False):
        self.fresh = fresh
        self.server: KernelServer | None = None

    def path(self, env: dict, options: list[str]) -> str | None:
        """The server's socket, started at the first call with the kernels' environment ``env`` and interpreter
        ``options`` (``mame.engine.execute.kernel_options``)."""
        if self.fresh:
            return None
        if self.server is None:
            self.server = KernelServer({k: v for k, v in env.items() if k not in PER_KERNEL_ENV}, options)
        return self.server.path if self.server.proc.poll() is None else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def peak_memory_mb(kernel_log: Path) -> float | None:
    """The forked kernel's peak resident memory as its launcher logged it (None for a fresh kernel)."""
    try:
        found = ENDED_RE.findall(kernel_log.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return round(float(found[-1]), 1) if found else None


def how_started(kernel_log: Path) -> str | None:
    """``forked`` or ``fresh``, as the launcher wrote it to the run's kernel.log (None: no launcher ran)."""
    try:
        text = kernel_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    forked, fresh = text.rfind(FORKED_MARK), text.rfind(FRESH_MARK)
    if forked < 0 and fresh < 0:
        return None
    return "forked" if forked > fresh else "fresh"
