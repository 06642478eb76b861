"""The TFLite path: folded forms, one XNNPACK partition, rank <= 4, int8, exact passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from shufflenet_edge.export.inspect import inspect_tflite
from shufflenet_edge.runtimes.runner import TFLiteRunner

from shufflenet_edge.api import export as se_export
from shufflenet_edge.models.weights import load_model


def _torch_logits(name: str, x_nhwc: np.ndarray, size: int = 224) -> np.ndarray:
    with torch.no_grad():
        return load_model(name, warn=False)(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()


@pytest.fixture(scope="session")
def v2_fp32(session_tmp: Path) -> dict[str, Path]:
    """ShuffleNetV2 1.0x fp32 at 224: auto export keeping every candidate, plus the reference conversion."""
    cand = session_tmp / "cand_fp32"
    out = session_tmp / "v2_fp32.tflite"
    se_export("shufflenet_v2_x1_0", out, target="tflite", form="auto", show_progress=False, keep_candidates=cand)
    ref = session_tmp / "v2_fp32_reference.tflite"
    se_export("shufflenet_v2_x1_0", ref, target="tflite", form="reference", show_progress=False)
    return {"auto": out, "delegate": cand / "v2_fp32.delegate.tflite", "cpu": cand / "v2_fp32.cpu.tflite",
            "reference3": cand / "v2_fp32.reference3.tflite", "reference": ref}


@pytest.fixture(scope="session")
def v2_int8(session_tmp: Path) -> dict[str, Path]:
    """The design card's command with no other argument (default model, synthetic calibration)."""
    cand = session_tmp / "cand_int8"
    out = session_tmp / "out" / "shufflenet_v2_x1_0_int8.tflite"
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "export", "--target", "tflite", "--int8",
                        "--out", str(out), "--keep-candidates", str(cand), "--quiet"],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "report:" in r.stdout and "synthetic" in r.stdout and "random weights" in r.stdout
    return {"auto": out, "delegate": cand / f"{out.stem}.delegate.tflite", "cpu": cand / f"{out.stem}.cpu.tflite"}


@pytest.mark.parametrize("form", ["delegate", "cpu", "reference3"])
def test_fp32_folded_graph_goals(v2_fp32, form):
    info = inspect_tflite(v2_fp32[form], analyze_gpu=False)
    assert info["max_rank"] <= 4
    assert info["xnnpack_partitions"] == 1
    assert "PADV2" not in info["op_histogram"]
    if form == "delegate":
        assert info["data_movement_ops"] <= 32, info["data_movement_histogram"]


def test_reference_conversion_is_what_we_improve_on(v2_fp32):
    info = inspect_tflite(v2_fp32["reference"], analyze_gpu=False)
    assert info["max_rank"] == 5 and info["xnnpack_partitions"] == 2
    assert info["data_movement_ops"] >= 70


@pytest.mark.parametrize("form", ["delegate", "cpu", "reference3", "reference"])
def test_fp32_logits_match_pytorch(v2_fp32, form):
    x = np.random.default_rng(0).standard_normal((16, 224, 224, 3)).astype(np.float32)
    got = TFLiteRunner(str(v2_fp32[form]))(x)
    want = _torch_logits("shufflenet_v2_x1_0", x)
    assert np.abs(got - want).max() <= 1e-4, f"max abs logit error {np.abs(got - want).max():.3g}"


def test_fp32_sidecar(v2_fp32):
    side = json.loads(Path(str(v2_fp32["auto"]) + ".json").read_text())
    assert side["format"] == "tflite" and side["input"]["layout"] == "nhwc"
    assert side["input"]["shape"] == [1, 224, 224, 3]
    t = side["form_timings"]
    # every recipe from one conversion of the fold; the graph as written is not timed (it converts only when the
    # fold fails, or asked for: the fixture's reference export), nor the planned order (its own conversion)
    assert set(t["median_ms"]) == {"delegate", "cpu", "reference3"}
    assert t["preferred"] == "cpu" and t["chosen"] == side["recipe"] and t["verdict"]
    assert side["checks"]["vs_torch_max_abs_error"] <= 1e-4
    assert side["graph"]["xnnpack_partitions"] == 1
    if side["form"] in ("cpu", "delegate"):
        assert any(p["pass"] == "shuffle_path" and p["rewritten"] == 13 for p in side["passes"])


@pytest.mark.parametrize("form", ["delegate", "cpu"])
def test_int8_graph_goals(v2_int8, form):
    info = inspect_tflite(v2_int8[form], analyze_gpu=False)
    assert info["max_rank"] <= 4 and info["xnnpack_partitions"] == 1
    assert info["inputs"][0]["dtype"] == "int8" and info["outputs"][0]["dtype"] == "int8"
    assert info["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert info["quantize_ops"] == 0, "requantize ops around the shuffle should be gone"
    # as lean as the float graph: int8 end to end, no data move that rescales
    assert info["dequantize_ops"] == 0 and info["requantizing_moves"] == 0
    if form == "delegate":
        assert info["data_movement_ops"] <= 32


def test_int8_checks_recorded(v2_int8):
    side = json.loads(Path(str(v2_int8["auto"]) + ".json").read_text())
    c = side["checks"]
    assert c["passes_max_int8_change"] == 0  # the passes move data only: bit-identical outputs
    # Conversion vs the PT2E float simulation: the converter's fixed-point requantization rounds
    # differently; nearly all logits are within 2 output steps, the worst case a step more.
    assert c["within_2_steps_fraction"] >= 0.999
    assert c["vs_pt2e_simulation_max_steps"] <= 4
    assert "synthetic" in side["calibration"] and side["precision"] == "int8"


@pytest.fixture(scope="session")
def v1_fp32(session_tmp: Path) -> Path:
    out = session_tmp / "v1.tflite"
    se_export("shufflenet_v1_x1_0_g3", out, target="tflite", form="delegate", show_progress=False)
    return out


def test_v1_graph_goals(v1_fp32):
    info = inspect_tflite(v1_fp32, analyze_gpu=False)
    assert info["max_rank"] <= 4 and info["xnnpack_partitions"] == 1
    x = np.random.default_rng(1).standard_normal((2, 224, 224, 3)).astype(np.float32)
    got = TFLiteRunner(str(v1_fp32))(x)
    want = _torch_logits("shufflenet_v1_x1_0_g3", x)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_inspect_tflite_cli(v2_fp32):
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "inspect", str(v2_fp32["delegate"])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    assert "XNNPACK partitions: 1" in r.stdout and "GPU delegate (model analyzer)" in r.stdout


def test_truncated_tflite_is_one_line_error(tmp_path, v2_fp32):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(v2_fp32["delegate"].read_bytes()[:3000])
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "inspect", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot read TFLite model" in r.stderr


def test_v1_int8_one_partition(session_tmp):
    """V1 int8: residual adds, ReLUs and the average-pool shortcut all int8, one XNNPACK partition."""
    out = session_tmp / "v1_int8.tflite"
    side = se_export("shufflenet_v1_x0_5_g3", out, target="tflite", precision="int8", form="delegate", input_size=64, show_progress=False)
    g = side["graph"]
    assert g["xnnpack_partitions"] == 1 and g["max_rank"] <= 4 and g["quantize_ops"] == 0
    assert "DEQUANTIZE" not in g["op_histogram"] and "AVERAGE_POOL_2D" not in g["op_histogram"]
    assert side["checks"]["passes_max_int8_change"] == 0
    assert side["checks"]["top1_agreement_vs_simulation"] >= 0.9
