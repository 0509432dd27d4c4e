"""The stage -> runner hand-off and the atomic writes every layer uses."""

import json
import signal
import subprocess
import sys

import pytest

from mame import config, results


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    """A writer killed once its bytes are written but before they are in place leaves the previous
    complete file. Writing the target directly (even with a flush and fsync) fails this test."""
    target = tmp_path / "metrics.json"
    results.atomic_write_json(target, {"complete": True})
    script = (
        "import sys, os, signal; sys.path.insert(0, %r)\n"
        "from mame import results\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "results.atomic_write_json(%r, {'complete': False, 'big': list(range(100000))})\n"
    ) % (str(config.ROOT), str(target))
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"complete": True}


def test_save_result_refuses_unknown_keys_and_writes_json(tmp_path):
    with pytest.raises(results.MetricsError, match="acuracy"):
        results.save_result(tmp_path, {"headline": None, "acuracy": 1})
    assert not (tmp_path / results.RESULT_FILE).exists()
    results.save_result(tmp_path, {"headline": {"name": "a", "value": 1.0}})
    assert json.loads((tmp_path / results.RESULT_FILE).read_text())["headline"]["value"] == 1.0

