"""runtimes/ort_session.py: the CPU's int8 instructions from /proc/cpuinfo and the session options they imply."""

from __future__ import annotations

from pathlib import Path

import pytest
from shufflenet_edge.runtimes import ort_session
from shufflenet_edge.runtimes.ort_session import (
    X64_QUANT_PRECISION,
    cpu_isa,
    describe_int8_mode,
    int8_needs_precise_mode,
    session_options,
)

_X86 = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 {extra}
bugs\t\t: spectre_v1

processor\t: 1
vendor_id\t: {vendor}
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 {extra}
"""
AVX2_ONLY = _X86.format(vendor="AuthenticAMD", model="AMD EPYC 7763 64-Core Processor", extra="avx fma avx2 bmi2")
AVX512_NO_VNNI = _X86.format(vendor="GenuineIntel", model="Intel(R) Xeon(R) Gold 6148", extra="avx2 avx512f avx512bw")
AVX512_VNNI = _X86.format(vendor="GenuineIntel", model="Intel(R) Xeon(R) Platinum 8375C",
                          extra="avx2 avx512f avx512bw avx512_vnni avx512_bf16")
AVX_VNNI = _X86.format(vendor="GenuineIntel", model="12th Gen Intel(R) Core(TM) i7-12700", extra="avx2 avx_vnni")
AMX = _X86.format(vendor="GenuineIntel", model="Intel(R) Xeon(R) Platinum 8480+",
                  extra="avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8")
NO_AVX2 = _X86.format(vendor="GenuineIntel", model="Intel(R) Atom(TM)", extra="")
ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b
"""


def _cpuinfo(tmp_path: Path, text: str) -> str:
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(("text", "flags", "precise"), [
    (AVX2_ONLY, ["avx2"], True),
    (AVX512_NO_VNNI, ["avx2"], True),
    (NO_AVX2, [], True),
    (AVX512_VNNI, ["avx512_vnni", "avx2"], False),
    (AVX_VNNI, ["avx_vnni", "avx2"], False),
    (AMX, ["avx512_vnni", "amx_int8", "avx2"], False),
], ids=["avx2", "avx512-no-vnni", "sse-only", "avx512_vnni", "avx_vnni", "amx"])
def test_x86_flags_and_precise_mode(tmp_path, text, flags, precise):
    path = _cpuinfo(tmp_path, text)
    assert cpu_isa(path, machine="x86_64") == {"arch": "x86_64", "flags": flags, "cpuinfo": path}
    assert int8_needs_precise_mode(path, machine="x86_64") is precise
    assert int8_needs_precise_mode(path, machine="AMD64") is precise  # Windows spells it so
    if precise:
        assert describe_int8_mode(True, path, machine="x86_64") == "x64quantprecision=1 (no VNNI)"
        assert describe_int8_mode(False, path, machine="x86_64") == "default kernels (no VNNI: u8s8 may saturate)"
    else:
        assert describe_int8_mode(True, path, machine="x86_64") == "default kernels (VNNI)"
        assert describe_int8_mode(False, path, machine="x86_64") == "default kernels (VNNI)"


def test_flag_names_match_whole_words(tmp_path):
    # "avx512_vnni" must not be read out of a longer name, nor "avx2" out of "avx2_foo"
    path = _cpuinfo(tmp_path, _X86.format(vendor="v", model="m", extra="avx2_foo avx512_vnnix"))
    assert cpu_isa(path, machine="x86_64")["flags"] == []
    assert int8_needs_precise_mode(path, machine="x86_64")


def test_arm_never_needs_precise_mode(tmp_path):
    path = _cpuinfo(tmp_path, ARM)
    assert cpu_isa(path, machine="aarch64") == {"arch": "aarch64", "flags": [], "cpuinfo": path}
    assert not int8_needs_precise_mode(path, machine="aarch64")
    assert describe_int8_mode(True, path, machine="aarch64") == "default kernels (aarch64)"
    # an x86 cpuinfo text does not make an ARM machine x86
    assert not int8_needs_precise_mode(_cpuinfo(tmp_path, AVX2_ONLY), machine="arm64")


def test_unreadable_cpuinfo(tmp_path):
    missing = str(tmp_path / "nope")
    assert cpu_isa(missing, machine="x86_64") == {"arch": "x86_64", "flags": None, "cpuinfo": None}
    assert int8_needs_precise_mode(missing, machine="x86_64")  # unknown: the exact kernels (only slower)
    assert describe_int8_mode(True, missing, machine="x86_64") == "x64quantprecision=1 (VNNI unknown)"
    assert not int8_needs_precise_mode(missing, machine="aarch64")


def test_this_machine_is_described():
    isa = cpu_isa()
    assert isa["arch"] and (isa["flags"] is None or set(isa["flags"]) <= set(ort_session.ISA_FLAGS))
    assert describe_int8_mode(True) and describe_int8_mode(False)


def _entry(so, key: str) -> str:
    try:
        return so.get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key that was never set
        return ""


@pytest.mark.parametrize("needs", [True, False])
def test_session_options(monkeypatch, needs):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort_session, "int8_needs_precise_mode", lambda *a, **k: needs)
    so = session_options(3, check_numbers=True)
    assert so.intra_op_num_threads == 3
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert _entry(so, X64_QUANT_PRECISION) == ("1" if needs else "")
    timing = session_options(2, spinning=True)  # timing sessions keep the default kernels
    assert timing.intra_op_num_threads == 2
    assert timing.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert _entry(timing, X64_QUANT_PRECISION) == ""


def test_standard_library_only():
    """The file is copied onto boards beside runner.py: nothing but the standard library at import time."""
    import ast

    tree = ast.parse(Path(ort_session.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "platform", "typing"}, names
