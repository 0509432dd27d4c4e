"""Kernels forked from a server that has already imported TensorFlow, Keras and the other heavy libraries.

A fresh Jupyter kernel spends most of a short run's time before the notebook's own work: interpreter start,
then ``import tensorflow, keras, sklearn, matplotlib`` (about 4 s of a 5 s run on an AVX-512 machine, 9 s on
an AVX2 one). The runner starts one server per ``python -m mame run`` (``python -m mame.engine.kernel_server``)
that imports those libraries once and then waits. Each run's kernel is a ``fork`` of it:

- the kernel manager papermill uses (:class:`ForkingKernelManager`) launches ``mame.engine.kernel_launcher``
  instead of ``ipykernel_launcher``, with the same arguments;
- the launcher passes its stdin/stdout/stderr, working folder, environment and ``sys.path`` to the server,
  which forks; the child takes them over and becomes an ordinary ``ipykernel`` with that connection file,
  and papermill executes the notebook in it cell by cell, as in any kernel;
- one fork per run, never reused: the child starts from the server's state after the imports, untouched by
  any run (a global, a Keras policy, a seed set by one run is gone with its process). Nothing of TensorFlow's
  runtime exists yet at the fork (no eager context, no thread pool): the child creates it with its own
  environment (threads, ``CUDA_VISIBLE_DEVICES``), as a fresh process would. numpy's global generator is
  seeded again from the OS in the child, as in a fresh process;
- the launcher stays as the process the kernel manager watches: it forwards signals (interrupt, terminate)
  to the kernel and exits with its exit status; when it is killed, the server kills the kernel.

When the runner is killed the server ends on its death signal and removes its temporary folder. A small
process forked before the imports (``mame.engine.kernel_reaper``) makes sure of it: a server still there
a few seconds after its runner ended (stopped, or hung in an import) is killed, its kernels with it, and
its folder removed.

The server forks only for a kernel whose environment is the one it imported the libraries under (thread
counts and the like are read at import); any other, or no server at all (``--fresh-kernels``, the Ray
executor, a notebook opened in Jupyter), gets a fresh kernel exactly as before. The run's ``kernel.log``
says which, and its metrics record it (``run.executor.kernel``: ``forked`` or ``fresh``).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import traceback

from mame.engine.kernel_protocol import FORKED_MARK, die_with_parent, env_difference, receive_message, request_problem, send_message
from mame.engine.kernel_reaper import remove_socket, start_reaper

# what a run's notebook imports that costs seconds (imported in this order; one that fails is skipped)
PRELOAD = ("numpy", "scipy", "pandas", "sklearn", "sklearn.metrics", "sklearn.linear_model", "PIL.Image",
           "matplotlib.pyplot", "tensorflow", "keras", "IPython", "ipykernel.kernelapp")
POLL_S = 0.05


class Server:
    """The process that imports once and forks a kernel per request (``python -m mame.engine.kernel_server``)."""

    def __init__(self, path: str, options: list[str], parent: int):
        self.path, self.parent = path, parent
        self.options = options  # the interpreter options it was started with (``-X frozen_modules=off``...)
        self.env = dict(os.environ)  # before anything is imported: what the libraries see at import
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)  # clients that come while the imports run wait in the backlog
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.preloaded: list[str] = []
        self.failed: dict[str, str] = {}
        self.stop_asked = False

    def preload(self) -> None:
        import importlib

        for name in PRELOAD:
            if self.done():
                return
            try:
                importlib.import_module(name)
                self.preloaded.append(name)
            except Exception as exc:  # noqa: BLE001 - the kernel will import it again and show the error there
                self.failed[name] = f"{type(exc).__name__}: {exc}"

    def serve(self) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        while not self.done():
            for key, _ in self.selector.select(timeout=POLL_S):
                if key.data is None:
                    conn, _ = self.listener.accept()
                    self._serve_one(conn)
                else:  # the launcher of a running kernel closed its end (it was killed): end its kernel
                    if not key.fileobj.recv(1):
                        self._kill(key.data)
            self._reap()

    def _serve_one(self, conn: socket.socket) -> None:
        """One request; whatever goes wrong with it ends that connection only, never the kernels of others."""
        try:
            self._request(conn)
        except Exception:  # noqa: BLE001 - into the server's log; the other kernels go on
            traceback.print_exc()
            sys.stderr.flush()
            conn.close()

    def stop(self, *_) -> None:
        """SIGTERM's handler (the runner stopping it, or the runner's death signal): unwind now. The flag stays
        where the exception does not get through: the libraries imported while it came may swallow it (3 of 15
        stops sent at the start of the preload were lost so, the server serving on)."""
        self.stop_asked = True
        raise SystemExit(0)

    def done(self) -> bool:
        """Asked to stop, or the runner that started it has ended (its death signal may have come before the
        handler was set): time to go."""
        return self.stop_asked or os.getppid() != self.parent

    def _request(self, conn: socket.socket) -> None:
        """Fork a kernel for the launcher on ``conn``, or refuse it with a reason; a request that is not a launcher's
        (not JSON, not an object, a field missing or of another type) is refused too, and touches nothing else."""
        conn.settimeout(10)
        try:
            request, fds = receive_message(conn, maxfds=3)
        except (OSError, ValueError) as exc:
            self._refuse(conn, [], f"malformed request: {exc}")
            return
        reason = request_problem(request, len(fds)) or self._refusal(request)
        if reason:
            self._refuse(conn, fds, reason)
            return
        pid = os.fork()
        if pid == 0:
            try:
                self._become_kernel(request, fds, conn)
            except BaseException:  # into the kernel's stderr (its run's kernel.log): e.g. a port lost at start-up,
                traceback.print_exc()  # which the runner recognises there and starts the kernel again
                sys.stderr.flush()
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        self._reply(conn, {"pid": pid, "server": os.getpid(), "preloaded": self.preloaded})
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _refusal(self, request: dict) -> str | None:
        """Why this server cannot give the kernel asked for (None: it can)."""
        if request.get("module") != "ipykernel_launcher":
            return f"it starts {request.get('module')!r}, not ipykernel_launcher"
        if request.get("options") != self.options:
            return f"its interpreter options {request.get('options')} are not the server's {self.options}"
        differ = env_difference(self.env, request["env"])
        if differ:
            return "its environment differs from the server's in " + ", ".join(differ[:8])
        return None

    def _refuse(self, conn: socket.socket, fds: list[int], reason: str) -> None:
        """Close what came with a request the server will not serve, and say why (to a client still there)."""
        for fd in fds:
            os.close(fd)
        self._reply(conn, {"refused": reason})
        conn.close()

    def _reply(self, conn: socket.socket, message: dict) -> None:
        try:
            send_message(conn, message)
        except OSError:
            pass

    def _kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                self.selector.unregister(conn)
                # ru_maxrss (kB on Linux) counts the pages shared with the server too, as a fresh kernel's would
                self._reply(conn, {"exit": os.waitstatus_to_exitcode(status), "peak_rss_mb": usage.ru_maxrss / 1024})
                conn.close()

    def _become_kernel(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        """In the forked child: take over the launcher's descriptors, folder and environment; run ipykernel."""
        server = os.getppid()
        die_with_parent()
        if os.getppid() != server:
            os._exit(1)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        self.selector.close()
        self.listener.close()
        for other in self.children.values():
            other.close()
        conn.close()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv = [request["argv0"], *request["args"]]
        if "numpy" in sys.modules:  # a fresh process seeds numpy's global generator from the OS: so does a fork
            sys.modules["numpy"].random.seed()
        print(f"{FORKED_MARK} (pid {server}), with {', '.join(self.preloaded)} already imported",
              file=sys.stderr, flush=True)
        from ipykernel import kernelapp

        if sys.path and sys.path[0] == "":  # as ipykernel_launcher does
            del sys.path[0]
        # read from the environment when ipykernel is imported (here: in the server, without it); as a fresh
        # kernel has it, so no banner is printed and the parent is polled
        parent = int(os.environ.get("JPY_PARENT_PID") or 0)
        kernelapp.IPKernelApp.launch_instance(argv=request["args"], parent_handle=parent)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def close(self) -> None:
        """End the kernels still running and remove the socket, and the server's own temporary folder with it (a
        runner that was killed cannot)."""
        for pid in list(self.children):
            self._kill(pid)
        remove_socket(self.path)


def main(argv: list[str]) -> int:
    parent = os.getppid()
    start_reaper(parent, argv[0])
    die_with_parent(signal.SIGTERM)  # before the handler: the default action ends it, and its reaper cleans up
    server = Server(argv[0], argv[1:], parent)  # one that cannot listen ends here (its reaper cleans up)
    signal.signal(signal.SIGTERM, server.stop)
    try:
        server.preload()
        server.serve()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
