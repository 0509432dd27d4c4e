"""The design ``make bench`` measures beside the kept one: the runner executes the notebook with papermill's own
engine against a real Jupyter kernel, whose process a jupyter_client ``KernelProvisioner`` forks from the same
preloading forkserver (``mame.engine.run.processes``) instead of starting an interpreter. Bench only: runs use the
in-process engine in a forked process of their own (``mame.engine.run.notebook_engine``)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

from mame.engine.run import processes


class _ForkedKernel:
    """The forked kernel as ``LocalProvisioner`` handles a ``Popen``."""

    stdin = stdout = stderr = None

    def __init__(self, proc):
        self.proc, self.pid = proc, proc.pid

    def poll(self):
        return self.proc.exitcode

    def wait(self, timeout=None):
        self.proc.join(timeout)
        return self.proc.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.proc.kill()

    def terminate(self) -> None:
        self.proc.terminate()


def _kernel(args: list[str], env: dict, cwd: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    from ipykernel import kernelapp

    kernelapp.IPKernelApp.launch_instance(argv=args)


class ForkProvisioner(LocalProvisioner):
    async def launch_kernel(self, cmd: list[str], **kwargs):
        args = cmd[cmd.index("ipykernel_launcher") + 1:]
        cwd = str(kwargs.get("cwd") or os.getcwd())
        proc = processes.context().Process(target=_kernel, args=(args, dict(kwargs.get("env") or os.environ), cwd))
        proc.start()
        self.process, self.pid, self.pgid, self.cwd = _ForkedKernel(proc), proc.pid, None, cwd
        return self.connection_info


class ForkedKernelManager(AsyncKernelManager):
    async def _async_launch_kernel(self, kernel_cmd, **kw):
        self.provisioner.__class__ = ForkProvisioner  # the local provisioner, launching by a fork (no new traits)
        return await super()._async_launch_kernel(kernel_cmd, **kw)


@contextmanager
def forked_kernels():
    """While inside, papermill runs fresh-kernel notebooks in kernels the provisioner forks."""
    import papermill

    saved = papermill.execute_notebook
    papermill.execute_notebook = partial(saved, kernel_manager_class=ForkedKernelManager)
    try:
        yield
    finally:
        papermill.execute_notebook = saved
