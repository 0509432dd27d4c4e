"""What the deck's renderer, PDF printer and browser check share: slide size, the Chromium
executable and its flags, the npm folder, error types, and running an external tool under a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from mame import config

SLIDE_WIDTH = 1280
SLIDE_HEIGHT = 720
SETUP_HINT = "run `make setup`"
TOOL_TIMEOUT_S = 180
# In the deck's address (``deck.html?static-figures``): interactive figures show their static view instead.
# The PDF printer asks for it: WebGL is unreliable in a headless print (report/figures3d.js reads it).
STATIC_QUERY = "static-figures"

# Flags for headless Chromium on a root, offline machine (a fresh --user-data-dir is added per run).
# WebGL (the deck's interactive 3-D figures) runs in software: Chromium's automatic fallback to SwiftShader
# is deprecated and now asks for --enable-unsafe-swiftshader (the content is our own deck).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)

class RenderError(RuntimeError):
    """A rendering tool is missing or failed; the message says which and how to fix it."""


class DeckInputError(RenderError, ValueError):
    """The deck source or rendered file given to the toolchain is unusable."""


def node_modules_dir() -> Path:
    return config.REPORT_DIR / "node_modules"


def find_chromium(chromium: str | None = None) -> str:
    """Path of a Chromium executable: the argument, $CHROMIUM, /usr/bin/chromium or PATH."""
    candidates = [chromium, os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium",
                  "chromium-browser", "google-chrome"]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    raise RenderError("chromium not found (set CHROMIUM or install it: `apt-get install -y chromium`)")


def run_tool(cmd: list[str], what: str, *, cwd: Path | None = None,
             timeout_s: float = TOOL_TIMEOUT_S, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` and return its stderr; RenderError with the first error line on failure.

    The tool runs in its own process group, killed whole on timeout (browsers included).
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RenderError(f"{what} timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (stderr + stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "rror" in ln), lines[-1] if lines else "no output")
        raise RenderError(f"{what} failed (exit {proc.returncode}): {detail}")
    return stderr


def kill_processes_with(argument: str) -> int:
    """SIGKILL every process whose command line contains ``argument`` (e.g. a browser's temporary
    ``--user-data-dir``): Puppeteer starts Chromium in a process group of its own, which a timeout's
    ``killpg`` of the tool does not reach. Returns how many were signalled (Linux ``/proc``; 0 elsewhere)."""
    killed = 0
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument.encode() in entry.read_bytes():
                os.kill(int(entry.parent.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed
