"""The papermill engine that executes a notebook's cells in this process (``engine_name="mame-in-process"``).

A run's process is forked from a server that has already imported TensorFlow and Keras
(``mame.engine.run.processes``), so a kernel of its own would only start the interpreter and import them again.
Instead papermill hands the parameterized notebook to this engine, which runs each cell in an IPython shell of
this process and records what the cell printed, displayed and returned, or the error that stopped it, in the
cell's outputs as a kernel's messages would have been recorded: papermill then saves the executed notebook and
raises ``PapermillExecutionError`` for a failed cell, as with any engine.

A cell that runs longer than ``execution_timeout`` seconds is interrupted and the run fails with nbclient's
``CellTimeoutError``, as with a kernel.
"""

from __future__ import annotations

import _thread
import io
import signal
import sys
import threading

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from nbformat.v4 import output_from_msg
from papermill.engines import Engine, papermill_engines
from traitlets.config import Config

ENGINE_NAME = "mame-in-process"


class _Outputs:
    """The outputs of the cell being executed (None between cells: what is written then is dropped)."""

    cell = None

    @classmethod
    def add(cls, msg_type: str, content: dict) -> None:
        if cls.cell is None:
            return
        outputs = cls.cell.outputs
        if msg_type == "stream" and outputs and outputs[-1].output_type == "stream" \
                and outputs[-1].name == content["name"]:
            outputs[-1].text += content["text"]  # consecutive writes to one stream: one output, as nbclient keeps them
            return
        outputs.append(output_from_msg({"header": {"msg_type": msg_type}, "content": content}))


class _Stream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` while a cell runs: what it writes becomes the cell's stream output."""

    def __init__(self, name: str):
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            _Outputs.add("stream", {"name": self.name, "text": text})
        return len(text)


class _Publisher(DisplayPublisher):
    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:
        _Outputs.add("display_data", {"data": data, "metadata": metadata or {}})

    def clear_output(self, wait=False) -> None:
        if _Outputs.cell is not None:
            _Outputs.cell.outputs = []


class _ResultHook(DisplayHook):
    """The value of a cell's last expression, recorded as its ``execute_result`` (no ``Out[n]`` printed)."""

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict, md_dict=None) -> None:
        _Outputs.add("execute_result", {"data": format_dict, "metadata": md_dict or {},
                                        "execution_count": self.prompt_count})


class _Shell(InteractiveShell):
    """An IPython shell whose errors are recorded as the cell's ``error`` output instead of printed."""

    def _showtraceback(self, etype, evalue, stb) -> None:
        _Outputs.add("error", {"ename": etype.__name__, "evalue": str(evalue), "traceback": list(stb)})


def _shell() -> InteractiveShell:
    config = Config()
    config.HistoryManager.enabled = False  # no history database shared by runs side by side
    config.InteractiveShell.colors = "nocolor"
    return _Shell.instance(config=config, displayhook_class=_ResultHook, display_pub_class=_Publisher)


class InProcessEngine(Engine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, execution_timeout=None, **kwargs):
        shell = _shell()
        saved = sys.stdout, sys.stderr
        try:
            for index, cell in enumerate(nb_man.nb.cells):
                if cell.cell_type != "code":
                    continue
                nb_man.cell_start(cell, index)
                cell.outputs = []
                timed_out = _run_cell(shell, cell, execution_timeout)
                failed = any(out.output_type == "error" for out in cell.outputs)
                if failed:
                    nb_man.cell_exception(cell, index)
                nb_man.cell_complete(cell, index)
                if timed_out:
                    from nbclient.exceptions import CellTimeoutError

                    raise CellTimeoutError(f"A cell timed out while it was being executed, after "
                                           f"{execution_timeout} seconds.")
                if failed:
                    return  # papermill raises PapermillExecutionError for the cell's error output
        finally:
            sys.stdout, sys.stderr = saved


def _run_cell(shell: InteractiveShell, cell, timeout: float | None) -> bool:
    """Run one cell, its outputs into ``cell.outputs``; whether it was stopped for running past ``timeout``."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(timeout, interrupt) if timeout else None
    # the interrupt is delivered as SIGINT: where this process ignores it (a pytest-xdist worker), the timer could
    # not stop the cell, so the cell runs with Python's own handler
    saved = signal.signal(signal.SIGINT, signal.default_int_handler) if timer else None
    _Outputs.cell = cell
    sys.stdout, sys.stderr = _Stream("stdout"), _Stream("stderr")
    cell.execution_count = shell.execution_count
    try:
        if timer:
            timer.start()
        shell.run_cell(cell.source, store_history=True)
    finally:
        if timer:
            timer.cancel()
            signal.signal(signal.SIGINT, saved)
        sys.stdout.flush()
        _Outputs.cell = None
    return fired.is_set()


def register() -> str:
    """Make the engine known to papermill; its name."""
    papermill_engines.register(ENGINE_NAME, InProcessEngine)
    return ENGINE_NAME
