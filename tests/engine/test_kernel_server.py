"""Kernels forked from the runner's kernel server (TensorFlow already imported): a run gives the metrics a fresh
kernel gives, sees nothing a run before it left behind, and a kernel the server cannot give starts fresh.

Real papermill, real kernels, real Keras (the smoke profile's runs).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from mame import config
from mame.engine import execute, runs
from mame.engine.kernel_protocol import FOLDER_PREFIX, FORKED_MARK, FRESH_MARK, SERVER_ENV
from mame.engine.kernel_reaper import REAPER_GRACE_S, wait_for_end
from mame.engine.kernels import SOCKET_PATH_MAX, Kernels, kernel_environment, kernel_options
from mame.engine.plan import PlannedRun
from mame.engine.profiles import Profile
from mame.engine.runner import run_plan
from tests.helpers import wait_for, write_smoke_plan

PARAMS = 'run_dir = "."\ndata_dir = "."\ninputs = {}\nprofile = "smoke"\nbackbone = None\nseed = 0'
# what a run finds when it starts, then the state it leaves behind (a global, the environment, a Keras policy,
# every random seed, a module), then what it draws once seeded
LEAKY = """import builtins, os, random, sys, types
import numpy as np, keras, tensorflow as tf
from mame import results

def draws():
    return {"np": int(np.random.randint(2**31)), "py": random.random(), "tf": float(tf.random.uniform(()))}

seen = {"global": getattr(builtins, "LEFT_BEHIND", None), "env": os.environ.get("MAME_LEFT_BEHIND"),
        "policy": keras.mixed_precision.global_policy().name, "module": "left_behind" in sys.modules,
        "draws": draws()}
builtins.LEFT_BEHIND = backbone
os.environ["MAME_LEFT_BEHIND"] = backbone
keras.mixed_precision.set_global_policy("mixed_bfloat16")
sys.modules["left_behind"] = types.ModuleType("left_behind")
keras.utils.set_random_seed(123)
results.save_result(run_dir, {"metrics": {"seen": seen, "seeded": draws(), "pid": os.getpid()}})"""
STAGES = """
stages:
  features:
    notebook: {notebook}
    backbones: [vgg16, resnet50]
    variants:
      default: {{}}
"""
TIMES = ("started", "ended", "duration_s", "executor", "peak_rss_mb", "fit_seconds", "predict_seconds", "seconds", "per_s")


def leaky_plan(tmp_path: Path) -> Path:
    notebook = tmp_path / "leaky.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(LEAKY)]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    return write_smoke_plan(tmp_path / "plan.yaml", STAGES.format(notebook=notebook))


def test_a_run_in_a_forked_kernel_sees_nothing_the_run_before_it_left(tmp_path, isolated_runs):
    plan = leaky_plan(tmp_path)
    outcomes = run_plan("smoke", plan_file=plan, jobs=1, out=io.StringIO())  # one after the other, one server
    assert [o.state for o in outcomes] == ["done", "done"]
    first, second = (runs.read_metrics(isolated_runs / "features" / b) for b in ("vgg16", "resnet50"))
    assert first["run"]["executor"]["kernel"] == second["run"]["executor"]["kernel"] == "forked"
    assert FORKED_MARK in (isolated_runs / "features" / "resnet50" / execute.KERNEL_LOG).read_text()
    assert first["metrics"]["pid"] != second["metrics"]["pid"]
    assert first["run"]["peak_rss_mb"] > 200  # TensorFlow and Keras imported: hundreds of MB, as the server reaped it
    for metrics in (first, second):
        seen = metrics["metrics"]["seen"]
        assert (seen["global"], seen["env"], seen["policy"], seen["module"]) == (None, None, "float32", False)
    # the seeds the first run set are not the second's: its first draws are not the seeded ones...
    seeded, drawn = first["metrics"]["seeded"], second["metrics"]["seen"]["draws"]
    assert all(seeded[k] != drawn[k] for k in ("np", "py", "tf")), (seeded, drawn)
    # ...nor are they the first run's own first draws: each kernel's generators are seeded afresh
    assert first["metrics"]["seen"]["draws"]["np"] != drawn["np"]


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not any(t in k for t in TIMES)}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_a_forked_kernel_gives_the_metrics_a_fresh_kernel_gives(tmp_path, monkeypatch):
    """A training run and a prediction run with random (seeded) weights, each once in a forked kernel and once
    in a fresh one: the same metrics.json, but for times and how the kernel started."""
    only = "scratch/r1-plain,similarity/vgg16"
    got = {}
    for how, fresh in (("forked", False), ("fresh", True)):
        runs_dir = tmp_path / how
        monkeypatch.setenv("MAME_RUNS_DIR", str(runs_dir))
        outcomes = run_plan("smoke", only=only, jobs=1, fresh_kernels=fresh, out=io.StringIO())
        assert [o.state for o in outcomes] == ["done", "done"], [o.detail for o in outcomes]
        got[how] = {run: runs.read_metrics(runs_dir / run) for run in only.split(",")}
        assert {m["run"]["executor"]["kernel"] for m in got[how].values()} == {how}
        assert all(("peak_rss_mb" in m["run"]) == (how == "forked") for m in got[how].values())
    for run in only.split(","):
        forked, fresh = (_without_times(got[how][run]) for how in ("forked", "fresh"))
        assert json.dumps(forked, sort_keys=True) == json.dumps(fresh, sort_keys=True), run


def _tiny_run(tmp_path: Path, name: str) -> tuple[PlannedRun, execute.RunContext]:
    notebook = tmp_path / "tiny.ipynb"
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("from mame import results\nresults.save_result(run_dir, {'metrics': {'x': 1}})")]
    kernel = {"kernelspec": {"display_name": "Python (mame)", "language": "python", "name": "mame"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), notebook)
    profile = Profile("smoke", {}, {}, {}, None, 0, 120, 300)
    ctx = execute.RunContext(profile, {"source": "synthetic", "path": str(tmp_path), "fingerprint": "b" * 16},
                             "a" * 16, {}, executor={"name": "serial", "jobs": 1, "attempt": 1, "threads": {}, "gpu": None})
    return PlannedRun("tiny", None, name, notebook, {}), ctx


def test_a_kernel_whose_environment_is_not_the_servers_starts_fresh_and_says_why(tmp_path, monkeypatch):
    kernels = Kernels()
    monkeypatch.setenv(SERVER_ENV, kernels.path(kernel_environment(dict(os.environ)), kernel_options()))
    try:
        run, ctx = _tiny_run(tmp_path, "same")
        same = execute.execute(run, ctx, tmp_path / "runs" / "same")
        monkeypatch.setenv("OMP_NUM_THREADS", "7")  # read when numpy is imported: the server's numpy has another
        run, ctx = _tiny_run(tmp_path, "other")
        other = execute.execute(run, ctx, tmp_path / "runs" / "other")
        server = kernels.server.proc
    finally:
        kernels.stop()
    assert same["run"]["status"] == other["run"]["status"] == "done"
    assert (same["run"]["executor"]["kernel"], other["run"]["executor"]["kernel"]) == ("forked", "fresh")
    log = (tmp_path / "runs" / "other" / execute.KERNEL_LOG).read_text()
    assert f"{FRESH_MARK}: the kernel server refused: its environment differs from the server's in OMP_NUM_THREADS" in log
    assert server.poll() is not None  # stopped with its executor


def test_with_fresh_kernels_no_server_starts(tmp_path):
    kernels = Kernels(fresh=True)
    assert kernels.path(dict(os.environ), []) is None and kernels.server is None


def test_a_temp_folder_too_deep_for_a_socket_still_gets_forked_kernels(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # the socket's path would pass the 107 bytes a Unix socket holds
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    kernels = Kernels()
    monkeypatch.setenv(SERVER_ENV, kernels.path(kernel_environment(dict(os.environ)), kernel_options()))
    try:
        run, ctx = _tiny_run(tmp_path, "deep")
        metrics = execute.execute(run, ctx, tmp_path / "runs" / "deep")
        folder = kernels.server.folder
    finally:
        kernels.stop()
    log = tmp_path / "runs" / "deep" / execute.KERNEL_LOG
    assert metrics["run"]["executor"]["kernel"] == "forked", log.read_text()[-3000:] if log.is_file() else "no kernel.log"
    assert len(os.fsencode(folder / "server.sock")) <= SOCKET_PATH_MAX and not folder.exists()


def test_a_server_whose_runner_is_gone_stops_serving_and_removes_its_folder(tmp_path):
    from mame.engine.kernel_protocol import FOLDER_PREFIX
    from mame.engine.kernel_server import Server

    folder = tmp_path / f"{FOLDER_PREFIX}x"
    folder.mkdir()
    server = Server(str(folder / "s.sock"), [], parent=os.getppid() + 1)  # not its parent: as if reparented
    server.preload()
    assert server.preloaded == []  # nothing imported for a runner that has ended
    done = threading.Thread(target=server.serve, daemon=True)
    done.start()
    done.join(timeout=10)
    assert not done.is_alive()  # it stopped serving by itself
    server.close()
    assert not folder.exists()


# a library whose import catches everything, the SystemExit of a stop that comes during it too
SWALLOWS = """import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except BaseException:
    pass
"""


def test_a_stop_that_an_import_swallows_still_stops_the_preload_and_the_serving(tmp_path, monkeypatch):
    from mame.engine import kernel_server

    (tmp_path / "swallows_the_stop.py").write_text(SWALLOWS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(kernel_server, "PRELOAD", ("swallows_the_stop", "this_is_never_imported"))
    folder = tmp_path / f"{FOLDER_PREFIX}x"
    folder.mkdir()
    server = kernel_server.Server(str(folder / "s.sock"), [], parent=os.getppid())
    previous = signal.signal(signal.SIGTERM, server.stop)
    try:
        server.preload()  # the stop comes during the first import, which swallows its SystemExit
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert server.preloaded == ["swallows_the_stop"] and not server.failed  # nothing imported after it
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    serving.join(timeout=10)
    assert not serving.is_alive()  # it serves no one
    server.close()
    assert not folder.exists()


def test_a_forked_kernel_that_cannot_bind_its_port_says_so_in_its_log_and_the_runner_starts_it_again(tmp_path):
    import subprocess
    import sys

    from mame.engine.execute import lost_port_race

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # another process holds the port jupyter picked for the kernel
    taken.listen()
    free = []
    for _ in range(4):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free.append(probe.getsockname()[1])
    ports = dict(zip(("control_port", "hb_port", "iopub_port", "stdin_port"), free), shell_port=taken.getsockname()[1])
    connection = tmp_path / "kernel.json"
    connection.write_text(json.dumps({**ports, "ip": "127.0.0.1", "transport": "tcp", "key": "k",
                                      "signature_scheme": "hmac-sha256", "kernel_name": "mame"}))
    kernels = Kernels()
    env = kernel_environment(dict(os.environ))
    try:
        env[SERVER_ENV] = kernels.path(env, kernel_options())
        with open(tmp_path / "kernel.log", "wb") as log:
            # as the kernel manager starts it: the launcher in front of the kernel's own command
            ended = subprocess.run([sys.executable, "-m", "mame.engine.kernel_launcher", *kernel_options(), "-m",
                                    "ipykernel_launcher", "-f", str(connection)], env=env, stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, timeout=120)
    finally:
        kernels.stop()
        taken.close()
    text = (tmp_path / "kernel.log").read_text()
    assert ended.returncode != 0 and FORKED_MARK in text and "Address already in use" in text, text[-2000:]
    assert lost_port_race(RuntimeError("Kernel died before replying to kernel_info"), tmp_path / "kernel.log")


# a runner in miniature: starts the kernel server on the socket given, prints its pid, waits to be killed
RUNNER = """import subprocess, sys, time
server = subprocess.Popen([sys.executable, "-m", "mame.engine.kernel_server", sys.argv[1]], start_new_session=True)
print(server.pid, flush=True)
time.sleep(600)"""


@pytest.fixture
def runner_and_server(tmp_path):
    """A runner process and its kernel server, listening: (runner, server, the server's reaper, its folder)."""
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=tmp_path))
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(folder / "server.sock")], cwd=config.ROOT,
                              stdout=subprocess.PIPE, text=True)
    server = psutil.Process(int(runner.stdout.readline()))
    try:
        wait_for(lambda: (folder / "server.sock").exists(), 30, "the server to listen")
        reapers = server.children()
        assert len(reapers) == 1, reapers  # forked before the imports, before any kernel
        yield runner, server, reapers[0], folder
    finally:
        runner.kill()
        runner.wait()
        if not gone(server):
            server.kill()


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_server_stopped_by_its_runner_takes_its_reaper_with_it(runner_and_server):
    runner, server, reaper, folder = runner_and_server
    server.terminate()  # as the runner stops it at its end
    wait_for(lambda: gone(server) and gone(reaper), 30, "the server and its reaper to end")
    assert not folder.exists()


def test_a_server_killed_outright_has_its_folder_removed_by_its_reaper(runner_and_server):
    runner, server, reaper, folder = runner_and_server
    server.kill()  # as the out-of-memory killer would: no chance to clean up
    wait_for(lambda: not folder.exists(), 15, "the killed server's folder to go")
    wait_for(lambda: gone(reaper), 10, "the reaper to end")
    assert runner.poll() is None  # the runner is not the reaper's business


def test_a_server_that_cannot_listen_leaves_no_folder(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=tmp_path))
    (folder / "server.sock").mkdir()  # the socket's name is taken: binding fails
    ended = subprocess.run([sys.executable, "-m", "mame.engine.kernel_server", str(folder / "server.sock")],
                           cwd=config.ROOT, capture_output=True, text=True, timeout=60)
    assert ended.returncode != 0 and "Address already in use" in ended.stderr, ended.stderr[-2000:]
    wait_for(lambda: not folder.exists(), 10, "its reaper to remove the folder")


def test_a_stuck_server_whose_runner_is_killed_is_ended_and_its_folder_removed(runner_and_server):
    runner, server, reaper, folder = runner_and_server
    server.send_signal(signal.SIGSTOP)  # stuck: its death signal cannot be handled
    runner.kill()
    runner.wait()
    wait_for(lambda: gone(server), REAPER_GRACE_S + 20, "the stuck server to be ended")
    assert not folder.exists()
    wait_for(lambda: gone(reaper), 10, "the reaper to end with it")


def test_the_reaper_sees_a_process_end_with_or_without_pidfds(monkeypatch):
    for pidfds in (True, False):
        if not pidfds:
            monkeypatch.delattr(os, "pidfd_open")  # Linux before 5.3: it polls
        short, long = subprocess.Popen(["sleep", "0.3"]), subprocess.Popen(["sleep", "60"])
        try:
            assert wait_for_end([long.pid], timeout=0.2) == set()
            started = time.monotonic()
            assert wait_for_end([long.pid, short.pid], timeout=20) == {short.pid}  # ended, not yet reaped
            assert time.monotonic() - started < 5
        finally:
            long.kill()
            long.wait()
            short.wait()
        assert wait_for_end([short.pid], timeout=5) == {short.pid}  # ended and reaped before the call


def _launch_kernel(tmp_path: Path, name: str, env: dict) -> tuple[subprocess.Popen, Path]:
    """A launcher in front of a real ipykernel, as the kernel manager starts it; its log."""
    connection = tmp_path / f"{name}.json"
    ports = {}
    for port in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports[port] = probe.getsockname()[1]
    connection.write_text(json.dumps({**ports, "ip": "127.0.0.1", "transport": "tcp", "key": "k",
                                      "signature_scheme": "hmac-sha256", "kernel_name": "mame"}))
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as handle:
        launcher = subprocess.Popen([sys.executable, "-m", "mame.engine.kernel_launcher", *kernel_options(), "-m",
                                     "ipykernel_launcher", "-f", str(connection)], env=env, stdout=handle,
                                    stderr=handle, stdin=subprocess.DEVNULL)
    return launcher, log


def _ask(path: str, payload: bytes | None = None, message=None, fds: int = 3, size: int | None = None) -> dict | None:
    """Send one raw request (``payload`` after the header, or a JSON ``message``; the header says ``size`` bytes
    where given) with ``fds`` descriptors; the server's reply."""
    from mame.engine.kernel_protocol import HEADER, receive_message

    body = payload if payload is not None else json.dumps(message).encode()
    header = HEADER.pack(len(body) if size is None else size)
    null = [os.open(os.devnull, os.O_RDWR) for _ in range(fds)]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(path)
            if null:
                socket.send_fds(sock, [header], null)
            else:
                sock.sendall(header)
            try:
                sock.sendall(body)
            except BrokenPipeError:  # refused at the header (too long): the reply came before the close
                pass
            return receive_message(sock)[0]
    finally:
        for fd in null:
            os.close(fd)


MALFORMED = {
    "not JSON": dict(payload=b"{not json"),
    "not UTF-8": dict(payload=b"\xfe\xfe{}"),
    "too long": dict(payload=b"{}", size=2**31),  # a header saying 2 GiB
    "a list": dict(message=[1, 2, 3]),
    "null": dict(message=None),
    "no env": dict(message={"options": [], "module": "ipykernel_launcher", "args": [], "argv0": "python",
                            "cwd": "/", "path": []}),
    "env of another type": dict(message={"options": [], "module": "ipykernel_launcher", "args": [], "argv0": "python",
                                         "cwd": "/", "path": [], "env": "PATH=/bin"}),
    "env values of another type": dict(message={"options": [], "module": "ipykernel_launcher", "args": [], "argv0": "x",
                                                "cwd": "/", "path": [], "env": {"A": 1}}),
    "args of another type": dict(message={"options": [], "module": "ipykernel_launcher", "args": "-f x", "argv0": "x",
                                          "cwd": "/", "path": [], "env": {}}),
    "no descriptors": dict(message={"env": {}}, fds=0),
}


def test_a_malformed_request_is_refused_to_its_client_only_and_the_running_kernel_goes_on(tmp_path):
    """A kernel forked and running; then requests that are not a launcher's, each on a connection of its own: each
    gets a refusal saying why, no kernel is forked or killed for them, and the server still forks the next kernel."""
    kernels = Kernels()
    env = kernel_environment(dict(os.environ))
    launchers = []
    try:
        env[SERVER_ENV] = path = kernels.path(env, kernel_options())
        server = psutil.Process(kernels.server.proc.pid)
        wait_for(lambda: len(server.children()) == 1, 30, "the server's reaper")
        reaper = server.children()[0]
        launchers.append(_launch_kernel(tmp_path, "first", env))
        wait_for(lambda: FORKED_MARK in launchers[0][1].read_text(), 120, "the first kernel to be forked")
        (kernel,) = [p for p in server.children() if p.pid != reaper.pid]
        for what, request in MALFORMED.items():
            reply = _ask(path, **request)
            assert reply and reply["refused"].startswith("malformed request"), (what, reply)
            assert kernel.is_running() and not gone(kernel), what
            assert {p.pid for p in server.children()} == {reaper.pid, kernel.pid}, what  # nothing forked for it
        launchers.append(_launch_kernel(tmp_path, "second", env))
        wait_for(lambda: FORKED_MARK in launchers[1][1].read_text(), 120, "the second kernel to be forked")
        assert kernel.is_running() and not gone(kernel) and launchers[0][0].poll() is None
        assert kernels.server.proc.poll() is None
    finally:
        for launcher, _ in launchers:
            launcher.kill()
            launcher.wait()
        kernels.stop()
