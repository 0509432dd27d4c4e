"""Reading a legacy (non-zip) PyTorch checkpoint with numpy alone: no torch, and no code run from the file.

The legacy ``torch.save`` layout is five things back to back: three small pickles (a magic number, the
protocol 1001, a dict of system information), the pickle of the object (here a state dict of tensors,
whose storages are persistent ids), the pickled list of storage keys, then per key an 8-byte
little-endian element count and the storage's raw bytes.

A pickle can call any importable function while it loads. The unpickler here resolves only the four
globals a plain state dict needs, mapped to local stand-ins, and refuses any other with an error naming
the file and the global. Any damage (bad magic number, a storage shorter than its count, trailing bytes,
a tensor reaching past its storage) is one ``CheckpointError`` line naming the file: never a partial dict.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: damaged, of another format, or asking for other code."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global outside the allowed few."""


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` / ``torch.LongStorage``: just the element type."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` would build: a strided view of a storage."""

    key: str
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> _TensorRef:
    if not isinstance(storage, str):
        raise TypeError(f"tensor storage is {type(storage).__name__}, not a storage reference")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "FloatStorage"): _StorageType("FloatStorage", np.dtype("<f4")),
    ("torch", "LongStorage"): _StorageType("LongStorage", np.dtype("<i8")),
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle, path: Path):
        super().__init__(handle)
        self.path = path
        self.storages: dict[str, tuple[np.dtype, int]] = {}  # key -> (dtype, element count)

    def find_class(self, module, name):
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise UnsafeCheckpointError(f"{self.path}: refuses to unpickle global {module}.{name} (only {allowed} "
                                        "are allowed; a .pth is a pickle and a pickle can run code)")
        return dataclasses.replace(found) if isinstance(found, _StorageType) else found  # a copy: BUILD can't alter ours

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {str(pid)[:80]}")
        _, kind, key, _location, numel, view = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise ValueError(f"malformed storage reference {str(pid)[:80]}")
        if view is not None:
            raise ValueError(f"storage {key} is a view, which this reader does not take")
        if self.storages.setdefault(key, (kind.dtype, numel)) != (kind.dtype, numel):
            raise ValueError(f"storage {key} is referenced with two different types or sizes")
        return key


def _one_line(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _load(unpickler: _Unpickler, what: str):
    try:
        return unpickler.load()
    except CheckpointError:
        raise
    except Exception as err:  # any damage in the pickle stream, whatever the pickle module raises for it
        raise CheckpointError(f"{unpickler.path}: corrupt {what} ({_one_line(err)})") from None


def _header(handle, path: Path) -> None:
    if handle.getbuffer()[:2] == b"PK":
        raise CheckpointError(f"{path}: a zip-format torch checkpoint, not the legacy format this reader takes")
    if _load(_Unpickler(handle, path), "header (magic number)") != MAGIC_NUMBER:
        raise CheckpointError(f"{path}: not a legacy torch checkpoint (bad magic number)")
    if _load(_Unpickler(handle, path), "header (protocol)") != PROTOCOL_VERSION:
        raise CheckpointError(f"{path}: unsupported torch serialization protocol (expected {PROTOCOL_VERSION})")
    info = _load(_Unpickler(handle, path), "header (system information)")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError(f"{path}: not a little-endian checkpoint ({str(info)[:80]})")


def _storage_bytes(handle, path: Path, storages: dict[str, tuple[np.dtype, int]],
                   keys: list) -> dict[str, np.ndarray]:
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise CheckpointError(f"{path}: the storage key list does not match the tensors' storages")
    arrays = {}
    for key in keys:
        dtype, numel = storages[key]
        count = handle.read(8)
        if len(count) < 8:
            raise CheckpointError(f"{path}: truncated before storage {key} ({len(arrays)} of {len(keys)} read)")
        if struct.unpack("<q", count)[0] != numel:
            raise CheckpointError(f"{path}: storage {key} holds {struct.unpack('<q', count)[0]} elements, "
                                  f"its tensors expect {numel}")
        raw = handle.read(numel * dtype.itemsize)
        if len(raw) < numel * dtype.itemsize:
            raise CheckpointError(f"{path}: truncated in storage {key} ({len(raw)} of {numel * dtype.itemsize} bytes)")
        arrays[key] = np.frombuffer(raw, dtype=dtype)
    rest = len(handle.read())
    if rest:
        raise CheckpointError(f"{path}: {rest} unexpected bytes after the last storage")
    return arrays


def _tensor(name: str, ref: _TensorRef, storages: dict[str, np.ndarray], path: Path) -> np.ndarray:
    ints = (ref.offset, *ref.size, *ref.stride)
    data = storages[ref.key]
    if (len(ref.size) != len(ref.stride) or any(type(v) is not int or v < 0 for v in ints)
            or math.prod(ref.size) > len(data)):
        raise CheckpointError(f"{path}: tensor {name} has a malformed shape {ref.size} or stride {ref.stride}")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) if all(ref.size) else -1
    if last >= len(data):
        raise CheckpointError(f"{path}: tensor {name} reaches past its storage {ref.key} ({len(data)} elements)")
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(data[ref.offset:], shape=ref.size, strides=strides, writeable=False)
    return np.array(view, dtype=data.dtype.newbyteorder("="))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy torch checkpoint whose object is a state dict, as numpy arrays by name."""
    path = Path(path)
    try:
        handle = io.BytesIO(path.read_bytes())
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
    _header(handle, path)
    unpickler = _Unpickler(handle, path)
    state = _load(unpickler, "state dict pickle")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef) for k, v in state.items()):
        raise CheckpointError(f"{path}: the checkpoint is not a state dict of tensors")
    keys = _load(_Unpickler(handle, path), "storage key list")
    storages = _storage_bytes(handle, path, unpickler.storages, keys)
    return {name: _tensor(name, ref, storages, path) for name, ref in state.items()}
