"""Bring your own ShuffleNet: the Python API, --model-file, every output, ONNX and TFLite, fp32 and int8.

Exports are shared through session fixtures (each conversion costs 30-240 s here); inputs are small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from shufflenet_edge.export.inspect import inspect_onnx, inspect_tflite

import shufflenet_edge as se
from shufflenet_edge.errors import EdgeError

sys.path.insert(0, str(Path(__file__).parent))
import user_models as um  # noqa: E402

# A registry model (megvii's V2) through the same API is in tests/test_zoo.py.
USER = {"hand_chunk": um.hand_chunk, "channel_shuffle_split": um.channel_shuffle_split,
        "nanodet_backbone": um.nanodet_backbone}


def _made(name: str):  # type: ignore[no-untyped-def]
    made = USER[name]()
    return made if isinstance(made, tuple) else (made, (1, 3, 64, 64))


@pytest.fixture(scope="session")
def exports(session_tmp: Path):  # type: ignore[no-untyped-def]
    cache: dict = {}  # type: ignore[type-arg]

    def get(name: str, kind: str):  # type: ignore[no-untyped-def]
        if (name, kind) not in cache:
            m, shp = _made(name)
            x = torch.randn(*shp, generator=torch.Generator().manual_seed(0))
            ext = "onnx" if kind.startswith("onnx") else "tflite"
            out = session_tmp / f"{name}_{kind}.{ext}"
            kw = {"onnx": {"form": "auto"}, "onnx_int8": {"form": "gather", "int8": True},
                  "tflite": {"form": "delegate"}, "tflite_ref": {"form": "reference"},
                  "tflite_int8": {"form": "delegate", "int8": True}}[kind]
            side = se.export(m, out, example_input=x, name=name, **kw)
            cache[name, kind] = (m, out, side)
        return cache[name, kind]

    return get


ALL = list(USER)


@pytest.mark.parametrize("name", ALL)
def test_onnx_fp32_every_output(exports, name):
    m, out, side = exports(name, "onnx")
    info = inspect_onnx(out)
    assert info["max_rank"] <= 4 and info["shape_ops"] == 0 and "Shape" not in info["op_histogram"]
    rep = se.parity(out, m, 4)
    assert rep["passed"], rep
    for row in rep["outputs"]:
        assert row["metrics"]["max_abs_error"] <= 1e-4 * max(1.0, row["metrics"]["max_abs_ref"])
    assert side["fold"]["counts"]["shuffles"] > 0 and side["fold"]["counts"]["left_alone"] == 0
    assert len(side["outputs"]) == (3 if name == "nanodet_backbone" else 1)


@pytest.mark.parametrize("name", ALL)
def test_tflite_fp32_every_output_one_partition(exports, name):
    m, out, side = exports(name, "tflite")
    g = inspect_tflite(out, analyze_gpu=False)
    assert g["max_rank"] <= 4 and g["xnnpack_partitions"] == 1
    rep = se.parity(out, m, 4)
    assert rep["passed"], rep
    for row in rep["outputs"]:
        assert row["metrics"]["max_abs_error"] <= 1e-4 * max(1.0, row["metrics"]["max_abs_ref"])
    # fewer data-movement ops than litert-torch's own conversion of the same module
    _, ref_out, _ = exports(name, "tflite_ref")
    r = inspect_tflite(ref_out, analyze_gpu=False)
    assert g["data_movement_ops"] < r["data_movement_ops"], (g["data_movement_histogram"], r["data_movement_histogram"])


def test_tflite_outputs_nhwc_and_sidecar_says_so(exports):
    _, out, side = exports("nanodet_backbone", "tflite")
    assert [o["layout"] for o in side["outputs"]] == ["nhwc"] * 3
    assert [o["shape"] for o in side["outputs"]] == [[1, 32, 40, 48], [1, 16, 20, 96], [1, 8, 10, 192]]
    assert side["input"]["shape"] == [1, 256, 320, 3]
    assert side["num_classes"] is None and side["source"]["kind"] == "python"
    assert [p["output"] for p in side["checks"]["per_output"]] == [0, 1, 2]


@pytest.mark.parametrize("name", ["hand_chunk", "nanodet_backbone"])
@pytest.mark.parametrize("kind", ["tflite_int8", "onnx_int8"])
def test_int8_passes_default_gate(exports, name, kind):
    m, out, side = exports(name, kind)
    assert side["precision"] == "int8"
    rep = se.parity(out, m, 8)
    assert rep["passed"], [r["summary"] for r in rep["outputs"]]


@pytest.mark.parametrize("kind", ["tflite_int8", "onnx_int8"])
def test_export_and_parity_give_one_verdict(exports, kind):
    """export's int8 check runs on the inputs parity uses by default (not the calibration images), so the same
    artifact gets the same numbers and the same default-gate verdict from both."""
    m, out, side = exports("nanodet_backbone", kind)
    loss = side["checks"]["int8_loss"]
    rep = se.parity(out, m)  # parity's defaults
    ours = [r["artifact_vs_float"]["psnr_db"] for r in loss["per_output"]]
    theirs = [r["metrics"]["psnr_db"] for r in rep["outputs"]]
    assert ours == pytest.approx(theirs, abs=0.05), (ours, theirs)
    assert loss["below_default_gate"] == (not rep["passed"])
    assert "parity's default inputs for this artifact" in loss["inputs"] and "32 images" in loss["inputs"]


def test_model_file_cli_and_parity_rebuild(tmp_path):
    """--model-file FILE.py:FACTORY with --weights; the sidecar records how to rebuild the reference."""
    m = um.channel_shuffle_split()
    w = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in m.state_dict().items()}}, w)  # megvii-style wrapper
    out = tmp_path / "cs.tflite"
    spec = f"{Path(um.__file__)}:channel_shuffle_split"
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "export", "--model-file", spec, "--weights", str(w),
                        "--input-size", "64", "--form", "delegate", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "fold: 9 channel shuffle(s): 3 folded into weights, 6 rank-4 data path(s), 0 left alone" in r.stdout
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["source"]["kind"] == "model_file" and side["source"]["weights"]["sha256"]
    assert side["fold"]["matches"] and all("action" in mm for mm in side["fold"]["matches"])
    rep = se.parity(out, None, 4)  # rebuilt from the sidecar
    assert rep["passed"]
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "parity", str(out), "--synthetic", "4"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "cs.tflite" in r.stdout and " ok" in r.stdout, (r.stdout, r.stderr)


def test_broken_model_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef make():\n    raise RuntimeError('no GPU here')\n")
    for spec, msg in [(f"{tmp_path}/missing.py:make", "model file not found"), (f"{bad}:nope", "has no callable 'nope'"),
                      (f"{bad}:make", "the factory raised RuntimeError: no GPU here"), ("nocolon", "FILE.py:FACTORY")]:
        r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "export", "--model-file", spec, "--out",
                            str(tmp_path / "x.tflite")], capture_output=True, text=True, timeout=300)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
        assert not (tmp_path / "x.tflite").exists()


def test_api_checks_its_arguments(tmp_path):
    m = um.hand_chunk()
    with pytest.raises(Exception, match="target must be onnx or tflite"):
        se.export(m, tmp_path / "x.bin")
    with pytest.raises(Exception, match="training mode"):
        se.export(m.train(), tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="example_input"):
        se.export(m.eval(), tmp_path / "x.onnx", example_input=[1, 2])
    with pytest.raises(EdgeError):
        se.parity(tmp_path / "missing.onnx", m, 2)
