"""The environment a run gets: quiet TensorFlow logs, this checkout first on PYTHONPATH, its CPU thread counts;
and the Jupyter kernel ``mame`` for runs that ask for a fresh kernel (``--fresh-kernels``, Ray)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mame import config
from mame.engine.run.provenance import cpu_count, gpu_count

KERNEL_NAME = "mame"
# oneDNN stays on: with TF_ENABLE_ONEDNN_OPTS=0, mixed_bfloat16 training fell back to kernels 30x slower
# (a 3-block CNN at 48 px: 12.5 instead of 373 images/s on 2 cores); its start-up line goes to the run's log.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore", "KERAS_BACKEND": "tensorflow",
             "MPLBACKEND": "Agg"}
# TensorFlow's C++ runtime writes to fd 2 before any log setting applies; with fd capture off, that goes to the
# run's log instead of the notebook (fresh kernels)
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR", "--IPKernelApp.capture_fd_output=False"]
RAY_IN_FLIGHT = 256  # runs handed to Ray at once by default: Ray starts each when its resources are free
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_environment(base: dict, threads: int | None = None) -> dict[str, str]:
    """The environment of a run started from a process with environment ``base``: quiet TensorFlow settings,
    this checkout first on PYTHONPATH (the package whose code the cache key hashed), ``threads`` CPU threads."""
    env = dict(base, **QUIET_ENV, **(thread_env(threads) if threads else {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config.ROOT), base.get("PYTHONPATH")]))
    return env


def thread_env(threads: int) -> dict[str, str]:
    """What caps a run's CPU threads: TensorFlow's intra-op pool, OpenMP and the BLAS libraries; two
    inter-op threads (TensorFlow overlaps a few ops at once; more only oversubscribe the cores)."""
    env = dict.fromkeys(THREAD_VARS, str(threads))
    env["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
    return env


def threads_of(env: dict) -> dict:
    """The thread settings in ``env`` as provenance records them (None: the libraries' own default)."""
    def value(name: str):
        return int(env[name]) if env.get(name, "").isdigit() else None
    return {"intra_op": value("TF_NUM_INTRAOP_THREADS"), "inter_op": value("TF_NUM_INTEROP_THREADS"),
            "blas": value("OMP_NUM_THREADS")}


def fresh_kernel_options(start_timeout: float) -> dict:
    """What papermill's own engine gets to run a notebook in a fresh ``mame`` kernel: the kernel's arguments, and
    ZeroMQ over IPC files (named after the kernel's connection file) instead of TCP ports, so that kernels starting
    side by side never race for a free port."""
    from traitlets.config import Config

    return {"kernel_name": ensure_kernel(), "start_timeout": start_timeout, "extra_arguments": KERNEL_ARGS,
            "config": Config({"KernelManager": {"transport": "ipc"}})}


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


def default_jobs(kind: str = "local") -> int:
    """Runs at once when --jobs is not given: one per GPU where GPUs exist; on CPUs two (one on a single
    core): two runs overlap one's single-threaded work (imports, graph tracing, data loading) with the other's
    compute; a third only oversubscribes the cores (docs/running.md)."""
    if kind == "ray":
        return RAY_IN_FLIGHT
    gpus = gpu_count()
    if gpus:
        return gpus
    return min(2, cpu_count())
