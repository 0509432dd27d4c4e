"""What a kernel inherits from the runner: quiet TensorFlow logs, but oneDNN left on (bf16 needs it)."""

from __future__ import annotations

import os

from mame.engine import execute


def test_kernels_keep_onednn_and_get_quiet_logs(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    before = dict(os.environ)
    with execute.kernel_process_state(tmp_path / "kernel.log"):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        # with oneDNN off, mixed_bfloat16 training ran 30x slower (see kernels.QUIET_ENV)
        assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"
    assert dict(os.environ) == before
