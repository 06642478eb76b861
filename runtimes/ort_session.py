"""onnxruntime session options for every session shufflenet-edge opens, and the int8 kernel choice on x86-64.

On x86-64 without VNNI (AVX2, AVX-512 without VNNI), onnxruntime's u8s8 int8 kernels add neighbouring
uint8 x int8 products in saturating 16-bit arithmetic (VPMADDUBSW): 255 * 127 * 2 = 64770 is clamped to
32767, so an optimized QDQ graph can drift from its own QDQ simulation by tens of output steps (measured:
47 steps on shufflenet_v2_x0_5 int8, AVX2 host, onnxruntime 1.32.0). The session config entry
`session.x64quantprecision` = "1" (onnxruntime's kOrtSessionOptionsAvx2PrecisionMode) makes the
optimizer rewrite constant int8 weights to uint8 (w + 128, zero point moved with it: the same products)
so the exact, slower u8u8 kernels run. VNNI (avx512_vnni, avx_vnni) and AMX sum in 32 bits and need it not.

Sessions that check numbers use `session_options(threads, check_numbers=True)`; timing sessions keep the
default (fast) kernels. This file imports only the standard library (onnxruntime lazily inside functions):
it is copied onto boards next to runner.py.
"""

from __future__ import annotations

import platform
from typing import Any

CPUINFO = "/proc/cpuinfo"
# Instructions that sum int8 products in 32 bits: no u8s8 saturation where any of them is present.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
ISA_FLAGS = (*INT8_DOT_FLAGS, "avx2")
X64_QUANT_PRECISION = "session.x64quantprecision"
_X86_64 = ("x86_64", "amd64", "x64")


def cpu_isa(cpuinfo_path: str = CPUINFO, machine: str | None = None) -> dict[str, Any]:
    """{"arch": platform.machine(), "flags": those of ISA_FLAGS the CPU has, "cpuinfo": the path read}.

    The flags come from the first "flags" line of `cpuinfo_path`; where it cannot be read (Windows, macOS,
    a sandbox) "flags" is None (unknown) and "cpuinfo" None. `machine` overrides platform.machine() (tests)."""
    arch = machine if machine is not None else platform.machine()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {"arch": arch, "flags": None, "cpuinfo": None}
    have: set[str] = set()
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if sep and key.strip().lower() == "flags":  # x86 ("flags"); ARM has "Features", no such line
            have = set(val.split())
            break
    return {"arch": arch, "flags": [f for f in ISA_FLAGS if f in have], "cpuinfo": cpuinfo_path}


def int8_needs_precise_mode(cpuinfo_path: str = CPUINFO, machine: str | None = None) -> bool:
    """True on x86-64 without avx512_vnni, avx_vnni and amx_int8 (also when the flags cannot be read there:
    the precise kernels are exact everywhere, only slower). False on every other architecture."""
    isa = cpu_isa(cpuinfo_path, machine)
    if str(isa["arch"]).lower() not in _X86_64:
        return False
    return isa["flags"] is None or not any(f in isa["flags"] for f in INT8_DOT_FLAGS)


def session_options(threads: int = 1, *, check_numbers: bool = False, spinning: bool = False) -> Any:
    """onnxruntime.SessionOptions: `threads` intra-op threads, spinning off unless `spinning` (spinning threads
    starve other runtimes timed in the same process), and with `check_numbers` on an x86-64 CPU without VNNI
    the exact u8u8 int8 kernels (`session.x64quantprecision` = "1"). The graph optimization level stays
    onnxruntime's default (all); callers set their own."""
    import onnxruntime as ort  # type: ignore[import-not-found]

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if check_numbers and int8_needs_precise_mode():
        so.add_session_config_entry(X64_QUANT_PRECISION, "1")
    return so


def describe_int8_mode(check_numbers: bool, cpuinfo_path: str = CPUINFO, machine: str | None = None) -> str:
    """The int8 kernels `session_options(check_numbers=...)` gives here, as a short phrase for tables."""
    isa = cpu_isa(cpuinfo_path, machine)
    if str(isa["arch"]).lower() not in _X86_64:
        return f"default kernels ({isa['arch'] or 'unknown arch'})"
    why = "VNNI unknown" if isa["flags"] is None else "no VNNI"
    if int8_needs_precise_mode(cpuinfo_path, machine):
        if check_numbers:
            return f"x64quantprecision=1 ({why})"
        return f"default kernels ({why}: u8s8 may saturate)"
    return "default kernels (VNNI)"
