"""aarch64 for real: runner.py and fp32/int8 .onnx/.tflite artifacts under qemu-user, against the x86 run.

Runs benchmarks/arm_qemu.py end to end (about 1-2 minutes here once the artifacts exist; the first run
also builds the arm64 sysroot and wheel cache, ~30 s and ~64 MB). By hand:

    python benchmarks/arm_qemu.py                       # exports small artifacts itself
    python benchmarks/arm_qemu.py out/*.tflite out/*.onnx
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.bench_artifacts import small_artifacts

from shufflenet_edge.paths import cache_dir

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "arm_qemu.py"
HOWTO = "then run: python benchmarks/arm_qemu.py"


def _can_enable_arm64() -> str | None:
    if not (shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")):
        return f"qemu-user-static is not installed: apt-get install -y qemu-user-static; {HOWTO}"
    if not shutil.which("dpkg") or not shutil.which("apt-get"):
        return f"needs Debian's dpkg and apt-get to build the arm64 sysroot; {HOWTO} on Debian"
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout
    cache = cache_dir("arm64", "sysroot")
    if os.geteuid() != 0 and "arm64" not in foreign.split() and not cache.is_dir():
        return f"arm64 packages are not enabled and this is not root: sudo python {SCRIPT.relative_to(REPO)} once"
    return None


def test_arm64_parity_under_qemu(tmp_path_factory, tmp_path):
    why = _can_enable_arm64()
    if why:
        pytest.skip(why)
    arts = small_artifacts(tmp_path_factory, "fp32.onnx", "int8.onnx", "fp32.tflite", "int8.tflite")
    out = tmp_path / "arm.json"
    r = subprocess.run([sys.executable, str(SCRIPT), *map(str, arts.values()), "--inputs", "3", "--json", str(out)],
                       capture_output=True, text=True, timeout=1200)
    print(r.stdout)  # the parity numbers, visible with pytest -s
    if r.returncode == 2:
        pytest.skip(f"the aarch64 emulation cannot be set up here: {r.stderr.strip().splitlines()[-1:]}; {HOWTO}")
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["passed"] and len(summary["results"]) == 4
    for row in summary["results"]:
        assert row["status"] == "pass", row
        if row["precision"] == "fp32":
            assert row["max_abs_diff"] <= 1e-4
        else:
            assert row["top1_agree"] == row["inputs"] == 3
        assert row["arm_bench"]["status"] == "ok" and row["arm_bench"]["machine"] == "aarch64"
        assert row["arm_bench"]["cpu_model"] == "Neoverse-N1"  # read from the sysroot's ARM /proc/cpuinfo
    assert {row["runtime"] for row in summary["results"]} == {"onnxruntime", "litert"}
