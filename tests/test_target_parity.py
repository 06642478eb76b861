"""Parity on the target: the same inputs, metrics and default gate as local parity, computed by the
target's runtime. SSH against an ARM board you can reach (sshd on 127.0.0.1 whose python3 is aarch64 CPython
under qemu-user with the aarch64 wheels: real ARM kernels, numbers not speed); adb with the real adb client
and no device (a clean one-line error). The runner's inference mode is also checked locally."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.arm_board import start_arm_board
from fixtures.bench_artifacts import small_artifacts

pytestmark = pytest.mark.qemu
RUNNER = Path(__file__).resolve().parents[1] / "runtimes" / "runner.py"


def cli(*args: str, timeout: float = 1500, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    return small_artifacts(tmp_path_factory, "fp32.tflite", "int8.tflite", "fp32.onnx")


@pytest.fixture(scope="module")
def arm_board(tmp_path_factory):
    yield from start_arm_board(tmp_path_factory.mktemp("arm_board"))


def test_runner_inference_mode_locally(arts, tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 64, 64, 3)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    r = subprocess.run([sys.executable, str(RUNNER), str(arts["fp32.tflite"]), "--infer-npz", str(tmp_path / "in.npz"),
                        "--out-npz", str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "ok" and res["samples"] == 3, res
    y = np.load(tmp_path / "out.npz")["y"]
    from shufflenet_edge.runtimes.runner import open_artifact

    want = open_artifact(str(arts["fp32.tflite"]))(x)
    assert y.shape == (3, 1000) and np.array_equal(y, want.reshape(3, -1))
    assert not list(tmp_path.glob("*.partial*"))


def test_board_python_is_aarch64(arm_board):
    r = subprocess.run(["ssh", "-p", str(arm_board.port), "-i", str(arm_board.key), "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        arm_board.target[len("ssh://"):].rsplit(":", 1)[0],
                        "python3 -c 'import platform, ai_edge_litert, onnxruntime; print(platform.machine())'"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout.strip() == "aarch64", r.stderr


def test_parity_on_the_arm_board_matches_local(arm_board, arts, tmp_path):
    out = tmp_path / "parity.json"
    r = cli("parity", str(arts["fp32.tflite"]), str(arts["int8.tflite"]), str(arts["fp32.onnx"]),
            "--synthetic", "3", "--target", "local", "--target", arm_board.target, *arm_board.client_args(),
            "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())["artifacts"]
    assert len(rows) == 6 and {row["target"] for row in rows} == {"local", arm_board.target}
    by = {(Path(row["artifact"]).name, row["target"]): row for row in rows}
    for name in {Path(row["artifact"]).name for row in rows}:
        here, there = by[(name, "local")], by[(name, arm_board.target)]
        assert "aarch64" in there["runtime"], there["runtime"]
        assert there["passed"] and there["gate"] == here["gate"]
        if there["precision"] == "fp32":
            # x86 and ARM kernels round differently, but both are within float error of PyTorch
            assert there["metrics"]["max_abs_error"] <= 1e-4
        else:
            assert there["metrics"]["top1_agreement"] == here["metrics"]["top1_agreement"]
    assert f"@{arm_board.target}"[:20] in r.stdout or "@ssh://" in r.stdout


def test_bench_on_the_arm_board(arm_board, arts, tmp_path):
    out = tmp_path / "bench.json"
    r = cli("bench", str(arts["fp32.tflite"]), "--target", arm_board.target, *arm_board.client_args(),
            "--runs", "3", "--warmup", "1", "--json", str(out), "--no-plot")
    assert r.returncode == 0, r.stdout + r.stderr
    recs = [x for x in json.loads(out.read_text())["results"] if x["target"] == arm_board.target]
    assert recs and all(x["status"] == "ok" for x in recs), recs
    assert recs[0]["environment"]["machine"] == "aarch64"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def adb_env(tmp_path):
    """The real adb client with no phone: its own server port and HOME, the server stopped afterwards."""
    if shutil.which("adb") is None:
        pytest.skip("adb not installed (apt-get install -y adb)")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(_free_port())}
    env.pop("ANDROID_SERIAL", None)
    yield env
    subprocess.run(["adb", "kill-server"], env=env, capture_output=True, timeout=30)


def test_parity_over_adb_without_a_device_is_one_line(arts, adb_env):
    for target, words in (("adb", "no Android device attached"), ("adb:nosuch-0042", "not found")):
        r = cli("parity", str(arts["int8.tflite"]), "--synthetic", "2", "--target", target, env=adb_env, timeout=300)
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.count("\n") == 1 and words in r.stderr, r.stderr


def test_export_tunes_on_the_arm_board(arm_board, tmp_path):
    """--tune-on: every candidate timed on the board through the bench machinery,
    interleaved; the sidecar records the target, the board's environment, every round, the rule and the verdict.
    (Emulated timings: this proves the plumbing, not which form is fastest on a real ARM core.)"""
    out = tmp_path / "tuned.tflite"
    r = cli("export", "--model", "shufflenet_v2_x0_5", "--input-size", "64", "--target", "tflite", "--out", str(out),
            "--tune-on", arm_board.target, "--tune-rounds", "2", "--tune-runs", "3",
            *arm_board.client_args())
    assert r.returncode == 0, r.stdout + r.stderr
    t = json.loads(Path(str(out) + ".json").read_text())["form_timings"]
    assert t["target"] == arm_board.target and t["environment"]["machine"] == "aarch64"
    assert set(t["round_medians_ms"]) == {"delegate", "cpu", "reference3"}
    assert all(len(v) == 2 for v in t["round_medians_ms"].values())
    assert t["chosen"] in t["round_medians_ms"] and "band" in t["rule"] and t["verdict"]
    assert t["preferred"] == "cpu"


def test_tune_on_adb_without_a_device_fails_before_converting(adb_env, tmp_path):
    """The real adb client, no phone: one line, exit 1, nothing written, and no conversion spent first."""
    out = tmp_path / "x.tflite"
    r = cli("export", "--model", "shufflenet_v2_x0_5", "--target", "tflite", "--out", str(out), "--tune-on", "adb",
            "--quiet", env=adb_env, timeout=300)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no Android device attached" in r.stderr, r.stderr
    assert not out.exists() and "wrote" not in r.stdout and "fold:" not in r.stdout  # nothing exported first
    for args, words in ((["--tune-on", "usb"], "adb[:SERIAL]"), (["--tune-delegate", "gpu"], "--tune-on adb"),
                        (["--tune-on", "adb", "--form", "cpu"], "--form auto")):
        r = cli("export", "--model", "shufflenet_v2_x0_5", "--target", "tflite", "--out", str(out), *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
