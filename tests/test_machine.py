"""The one reader of /proc/cpuinfo (``mame.machine``) and the places that ask it."""

from pathlib import Path

import pytest

from mame import bench, machine
from mame.bench import models as bench_models
from mame.engine.run import provenance

FAKE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Another CPU listed second
flags\t\t: fpu sse2

"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(FAKE)
    monkeypatch.setattr(machine, "CPUINFO", path)
    return path


def test_the_first_processor_is_read(fake):
    info = machine.cpu_info()
    assert info["model name"] == "Intel(R) Xeon(R) Platinum 8480C" and info["processor"] == "0"
    assert machine.cpu_flags() == {"fpu", "sse2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert machine.cpu_bf16() == "amx"


@pytest.mark.parametrize("flags, bf16", [("avx2 avx512_bf16", "avx512_bf16"), ("avx2 fma", None), ("", None)])
def test_native_bf16(tmp_path, flags, bf16):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert machine.cpu_bf16(path) == bf16


def test_an_unreadable_or_flagless_file_answers_emptily(tmp_path):
    missing = tmp_path / "none"
    assert machine.cpu_info(missing) == {} and machine.cpu_flags(missing) == frozenset()
    assert machine.cpu_bf16(missing) is None
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd0c\n")
    assert machine.cpu_flags(arm) == frozenset() and machine.cpu_bf16(arm) is None


def test_the_real_cpuinfo():
    real = Path("/proc/cpuinfo")
    if not real.is_file():
        pytest.skip("no /proc/cpuinfo here")
    lines = real.read_text().splitlines()
    flags_line = next((line for line in lines if line.startswith("flags")), None)
    expected = frozenset(flags_line.split(":", 1)[1].split()) if flags_line else frozenset()
    assert machine.cpu_flags() == expected
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    assert machine.cpu_info().get("model name") == (names[0] if names else None)
    assert machine.cpu_bf16() in (None, "amx", "avx512_bf16")


def test_the_callers_read_through_it(fake, monkeypatch):
    assert provenance._cpu_name() == "Intel(R) Xeon(R) Platinum 8480C"
    assert bench.cpu_flags() == ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "fma"]
    monkeypatch.setattr(provenance, "gpu_names", lambda: ())
    assert bench_models.cpu_has_bf16() is True
    fake.write_text("processor\t: 0\nflags\t\t: avx2\n")
    assert bench_models.cpu_has_bf16() is False
