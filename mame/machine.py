"""The CPU this code runs on, as Linux describes it in ``/proc/cpuinfo``: read here and nowhere else.

Every function takes the file to read (default ``CPUINFO``, looked up at each call, so a test can point it
elsewhere) and answers emptily where it cannot be read (not Linux, a sandbox without ``/proc``): the callers
fall back (a platform name, float32, no flags listed).
"""

from __future__ import annotations

import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_info(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The first processor's ``key: value`` fields (``model name``, ``flags``, ...); ``{}`` when unreadable.

    Every processor is listed alike, so the reading stops at the end of the first block."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO if path is None else path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    return fields


def cpu_flags(path: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """The instruction-set flags of the CPU (``avx2``, ``avx512_bf16``, ``amx_bf16``, ...); empty when unknown."""
    return frozenset(cpu_info(path).get("flags", "").split())


def cpu_bf16(path: str | os.PathLike[str] | None = None) -> str | None:
    """``amx`` or ``avx512_bf16`` when the CPU computes bfloat16 natively, else None (bf16 is emulated there,
    slower than float32)."""
    flags = cpu_flags(path)
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None
