"""What a run inherits from the runner: quiet TensorFlow logs, but oneDNN left on (bf16 needs it)."""

from __future__ import annotations

import os

from mame.engine.run import execute


def test_runs_keep_onednn_and_get_quiet_logs(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    before = dict(os.environ)
    with execute.run_process_state(tmp_path / "kernel.log", {"MAME_TEST_LEDGER": "x"}):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and os.environ["MAME_TEST_LEDGER"] == "x"
        # with oneDNN off, mixed_bfloat16 training ran 30x slower (see environment.QUIET_ENV)
        assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"
        os.write(2, b"from the C++ side\n")
    assert dict(os.environ) == before
    assert (tmp_path / "kernel.log").read_text() == "from the C++ side\n"
