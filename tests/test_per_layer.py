"""Per-layer parity on real exported artifacts, and planted defects it must localize."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from digits_fixtures import digits_artifacts, digits_data, trained_v2  # noqa: F401  (fixtures)

from shufflenet_edge import per_layer
from shufflenet_edge.cli import main
from shufflenet_edge.models.weights import load_model
from shufflenet_edge.parity import read_sidecar

DEFECT_UNIT = "stage3.2"  # V2 0.5x: stage2 has 4 units, so stage3.2 is the 7th unit (index 6)
DEFECT_INDEX = 6


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def model(trained_v2):  # noqa: F811
    return load_model("shufflenet_v2_x0_5", str(trained_v2[0]))


@pytest.fixture(scope="module")
def x(digits_data):  # noqa: F811
    return digits_data[1].x[:3]


def test_reference_points_cover_stem_units_and_head(model):
    names = [n for n, _ in per_layer.reference_points(model)]
    assert names[:3] == ["conv1", "maxpool", "stage2.0"] and names[-2:] == ["conv5", "fc"]
    assert len(names) == 2 + 16 + 2


def test_unshuffle_index_inverts_channel_shuffle():
    import torch

    from shufflenet_edge.models.common import channel_shuffle

    z = torch.arange(2 * 12 * 2 * 2, dtype=torch.float32).reshape(2, 12, 2, 2)
    for g in (2, 3):
        assert torch.equal(channel_shuffle(z, g), z[:, torch.from_numpy(per_layer._unshuffle_index(12, g))])


@pytest.mark.parametrize("key", ["onnx_fp32", "tflite_fp32"])
def test_clean_artifacts_match_everywhere(digits_artifacts, model, x, key):  # noqa: F811
    path = str(digits_artifacts[key])
    sc = read_sidecar(path)
    rep = per_layer.diagnose(path, model, x, layout=sc["input"]["layout"], sidecar=sc)
    assert rep.first_divergence is None, per_layer.format_per_layer(rep.to_dict())
    assert all(r.matched_by == "value" and r.ok for r in rep.rows)
    assert max(r.rel_rms_error for r in rep.rows) < 1e-5
    # points come out in execution order
    pos = [r.position for r in rep.rows]
    assert pos == sorted(pos) and len(set(pos)) == len(pos)


def _perturb_onnx(src: str, dst: str) -> str:
    """Scale the largest weight of the first 1x1 conv in the 7th unit by -3; returns the initializer's name.

    The unit is found from the exporter's initializer names (`stage3.2.branch2.0.weight` from torch, or
    `units.6.branch2.0.weight` after the fold): the 7th distinct unit prefix in node order.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load(src)
    inits = {i.name: i for i in m.graph.initializer}
    prefixes: list[str] = []
    for n in m.graph.node:
        if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits and ".branch" in n.input[1]:
            p = n.input[1].split(".branch")[0]
            if p not in prefixes:
                prefixes.append(p)
    assert len(prefixes) == 16, prefixes
    name = f"{prefixes[DEFECT_INDEX]}.branch2.0.weight"
    w = numpy_helper.to_array(inits[name]).copy()
    w.flat[int(np.argmax(np.abs(w)))] *= -3.0
    inits[name].CopyFrom(numpy_helper.from_array(w, name))
    onnx.save(m, dst)
    return name


def test_planted_onnx_defect_fails_and_is_localized(digits_artifacts, digits_data, tmp_path):  # noqa: F811
    src = str(digits_artifacts["onnx_fp32"])
    bad = tmp_path / "planted.onnx"
    name = _perturb_onnx(src, str(bad))
    shutil.copy(src + ".json", str(bad) + ".json")
    np.save(tmp_path / "x.npy", digits_data[1].x[:32])
    r = run("parity", str(bad), "--npy", str(tmp_path / "x.npy"), "--max-abs-error", "1e-4", "--per-layer")
    assert r.returncode == 1, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("shufflenet-edge:")]
    assert len(err) == 1 and "Traceback" not in r.stderr
    assert "max abs error" in err[0] and "> 0.0001" in err[0]
    assert f"error first grows at {DEFECT_UNIT}" in err[0], (name, r.stdout)
    assert f"error first grows at {DEFECT_UNIT}" in r.stdout
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.startswith(("stage", "conv1", "maxpool"))}
    assert " ok " in rows["stage3.1"] and "GROWS" in rows[DEFECT_UNIT]


def _swap_tflite_channels(src: str, dst: str, lo: int, hi: int) -> int:
    """Swap output channels 0 and 1 (weights and bias) of the first CONV_2D among operators lo < i <= hi."""
    from ai_edge_litert import schema_py_generated as s

    buf = open(src, "rb").read()
    model = s.ModelT.InitFromPackedBuf(buf, 0)
    sg = model.subgraphs[0]
    conv = s.BuiltinOperator.CONV_2D
    for i, op in enumerate(sg.operators):
        oc = model.operatorCodes[op.opcodeIndex]
        if lo < i <= hi and max(oc.builtinCode, oc.deprecatedBuiltinCode) == conv:
            for t in op.inputs[1:3]:  # OHWI weights, then bias
                tensor = sg.tensors[t]
                b = model.buffers[tensor.buffer]
                arr = np.frombuffer(bytes(bytearray(b.data)), np.float32).reshape(tensor.shape).copy()
                arr[[0, 1]] = arr[[1, 0]]
                b.data = np.frombuffer(arr.tobytes(), np.uint8)
            fb = __import__("flatbuffers").Builder(len(buf) + 1024)
            fb.Finish(model.Pack(fb), file_identifier=b"TFL3")
            open(dst, "wb").write(fb.Output())
            return i
    raise AssertionError(f"no CONV_2D between operators {lo} and {hi}")


def test_planted_tflite_defect_fails_and_is_localized(capfd, digits_artifacts, model, x, tmp_path):  # noqa: F811
    """Swap two output channels of a conv inside stage3.2 (operator range from the clean run's matching)."""
    src = str(digits_artifacts["tflite_fp32"])
    sc = read_sidecar(src)
    clean = {r.point: r for r in per_layer.diagnose(src, model, x, layout="nhwc", sidecar=sc).rows}
    bad = tmp_path / "planted.tflite"
    op = _swap_tflite_channels(src, str(bad), clean["stage3.1"].position, clean[DEFECT_UNIT].position)
    shutil.copy(src + ".json", str(bad) + ".json")
    capfd.readouterr()
    rc = main(["parity", str(bad), "--synthetic", "8", "--min-psnr", "60", "--per-layer"])
    out, stderr = capfd.readouterr()
    assert rc == 1, out + stderr
    err = [ln for ln in stderr.splitlines() if ln.startswith("shufflenet-edge:")]
    assert len(err) == 1 and "PSNR" in err[0] and "< 60 dB" in err[0]
    assert f"error first grows at {DEFECT_UNIT}" in err[0], (op, out)


def test_missing_points_are_reported_not_invented(model, x):
    """A report on a graph with no unit tensors says what is missing instead of inventing a match."""
    ref = per_layer.reference_tensors(model, x)
    tensors = [per_layer.ArtifactTensor(0, "logits", ref[-1][1])]
    rows = per_layer.match(ref, tensors, [2])
    assert [r.point for r in rows if r.matched_by == "value"] == ["fc"]
    assert all(r.tensor is None for r in rows[:-1])


def test_reference_tensors_take_a_reused_module_first_call():
    """A neck that calls one upsample module twice (YOLOv5-Lite's) gives each point one tensor per sample: the first
    call's (was a crash: arrays of two shapes stacked)."""
    import torch
    from torch import nn

    from shufflenet_edge.per_layer import reference_tensors

    class Neck(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, 2, 1)
            self.up = nn.Upsample(scale_factor=2.0)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.stem(x)
            return self.up(y), self.up(self.up(y))

    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    got = dict(reference_tensors(Neck().eval(), x))
    assert got["stem"].shape == (3, 1, 4, 4, 4) and got["up"].shape == (3, 1, 4, 8, 8)
