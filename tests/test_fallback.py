"""The fold never costs the artifact: a candidate our fold or passes could not build, that the converter refused, or
that failed its own check is left out with its reason; the export ships the best one left (the graph as written
last), exits 0 and warns with the bug to report. Checks that tell our error from float rounding are relative to each
output's magnitude and the model's own float noise.

The three models that lost their artifact before: a V2 net returning an intermediate unit's output (TFLite fp32),
YOLOv5-Lite's concat head with boxes in pixels (ONNX fp32), Lite-HRNet's four-branch fuse loop (TFLite int8)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import shufflenet_edge as se
from shufflenet_edge.errors import InternalError
from shufflenet_edge.export import verify
from shufflenet_edge.export.pipeline import FoldFallbackWarning

sys.path.insert(0, str(Path(__file__).parent))
import user_models  # noqa: E402
import zoo  # noqa: E402


def _small() -> tuple[torch.nn.Module, torch.Tensor]:
    m = user_models.randomize(user_models.HandShuffleNet(widths=(8, 16, 32)))
    return m, torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _export(m: torch.nn.Module, x: torch.Tensor, out: Path, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FoldFallbackWarning)
        art = se.export(m, out, example_input=x, show_progress=False, **kw)
    return dict(art), [str(w.message) for w in caught if issubclass(w.category, FoldFallbackWarning)]


def _outputs_close(path: Path, m: torch.nn.Module, x: torch.Tensor, rel: float = 1e-4) -> None:
    rep = se.parity(str(path), m, x.numpy())
    for o in rep["outputs"]:
        assert o["passed"], o["summary"]


# ------------------------------------------------------------------------------------ tolerances that scale


def test_conversion_tolerance_is_relative_to_the_output_and_its_noise():
    assert verify.conversion_tolerance(384.0, None) == pytest.approx(384.0 * verify.CONVERSION_TOLERANCE)
    assert verify.conversion_tolerance(1e-3, None) == pytest.approx(1e-8)  # not max(1, peak): small outputs stay strict
    assert verify.conversion_tolerance(1e-3, 1e-6) == pytest.approx(verify.NOISE_FACTOR * 1e-6)


@pytest.mark.parametrize("scale", [300.0, 1e-3])
def test_float_check_tells_rounding_from_a_moved_value(scale: float):
    """Outputs in the hundreds (boxes in pixels) and near 1e-3: float reassociation passes at both, a moved value
    (two channels swapped) is our bug at both."""
    rng = np.random.default_rng(0)
    want = (rng.standard_normal((4, 6, 8)) * scale).astype(np.float32)
    rounding = want * (1 + rng.standard_normal(want.shape).astype(np.float32) * 3e-7)  # ~ fp32 reassociation
    noise = [float(np.abs(want).max()) * 1e-7]
    out = verify.check_float([rounding], [want], "fp32", "t", noise, conversion=[want])
    assert out["per_output"][0]["vs_unfolded_conversion_max_abs_error"] <= out["per_output"][0][
        "vs_unfolded_conversion_tolerance"]
    moved = want.copy()
    moved[:, [0, 1]] = moved[:, [1, 0]]
    with pytest.raises(InternalError, match="changed a value"):
        verify.check_float([moved], [want], "fp32", "t", noise, conversion=[want])


# --------------------------------------------------------------------------- the three models from the issue


def test_unit_output_returned_as_a_graph_output_folds_in_tflite(tmp_path: Path):
    m, shp = user_models.tapped_units()
    x = torch.randn(*shp, generator=torch.Generator().manual_seed(0))
    side, warned = _export(m, x, tmp_path / "tapped.tflite", form="cpu")
    assert not warned and side["fallback"] is None
    assert side["graph"]["max_rank"] <= 4
    actions = [mt["action"] for mt in side["fold"]["matches"]]
    assert any("channel ranges of it" in a for a in actions), actions  # shuffled once, the halves sliced from it
    _outputs_close(tmp_path / "tapped.tflite", m, x)


@pytest.mark.slow
def test_yolov5_concat_head_exports_to_onnx(tmp_path: Path):
    """Boxes in pixels (values in the hundreds): the folded graph equals torch.onnx's own export of the module within
    float rounding relative to the output, so --form auto keeps a folded form and writes the artifact."""
    m, shp = zoo.yolov5_lite_concat()
    x = torch.randn(*shp, generator=torch.Generator().manual_seed(0))
    side, warned = _export(m, x, tmp_path / "yolo.onnx")
    assert not warned and side["fallback"] is None
    row = side["checks"]["per_output"][0]
    if side["form"] != "reference":
        assert row["vs_unfolded_conversion_max_abs_error"] <= row["vs_unfolded_conversion_tolerance"]
    with torch.no_grad():
        assert float(m(x).abs().max()) > 100  # the scale that an absolute 1e-5 refused
    _outputs_close(tmp_path / "yolo.onnx", m, x)


def test_self_add_is_a_multiply_for_pt2e():
    """mmpose's fuse loop adds the first branch to itself; with four branches litert-torch refused the int8 graph
    ('tfl.reshape' op quantization parameters violate the same scale constraint) until x + x became x * 2 (the zoo's
    Lite-HRNet, tests/test_zoo.py, converts the fuse loop to int8 through the exporter). The rewrite itself: in-place
    ``y += y`` of a computed tensor becomes out-of-place, then ``x * 2``; a mutated half of a chunk whose whole is read
    later stays in place."""
    from shufflenet_edge.export.tflite_quantize import _double_as_mul
    from shufflenet_edge.graph_fold import functionalize_inplace

    class SelfAdd(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 3
            y += y
            return y + 1

    class AliasedHalf(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = x * 2
            a, b = x.chunk(2, 1)
            a += 1
            return x + 0, b

    x = torch.randn(1, 4, 2, 2)
    gm = torch.export.export(SelfAdd(), (x,)).module()
    assert functionalize_inplace(gm) == 1 and _double_as_mul(gm) == 1
    assert torch.equal(gm(x), SelfAdd()(x))
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.add_.Tensor not in targets and targets.count(torch.ops.aten.mul.Tensor) == 2
    g2 = torch.export.export(AliasedHalf(), (x,)).module()
    assert functionalize_inplace(g2) == 0  # the whole is read after its half changed: left as written
    assert all(torch.equal(p, q) for p, q in zip(g2(x), AliasedHalf()(x)))


# ------------------------------------------------------------------------------ failures that are ours, faked


def _corrupt(buf: bytes) -> bytes:
    """A pass that moves a value: the first float constant with more than 4 elements negated."""
    from shufflenet_edge.export.passes.graph import Graph

    g = Graph(buf)
    for i, t in enumerate(g.sg.tensors):
        c = g.const(i)
        if c is not None and c.dtype == np.float32 and c.size > 4:
            g.model.buffers[t.buffer].data = np.frombuffer((-c).astype(np.float32).tobytes(), dtype=np.uint8).copy()
            break
    return g.finish()


@pytest.fixture
def corrupting_delegate(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from shufflenet_edge.export import tflite_export as te

    real = te.apply_passes

    def passes(buf: bytes, recipe: str | None, io_type: str, fp16: bool):  # type: ignore[no-untyped-def]
        out, reps = real(buf, recipe, io_type, fp16)
        return (_corrupt(out) if recipe == "delegate" else out), reps

    monkeypatch.setattr(te, "apply_passes", passes)


@pytest.mark.slow
def test_a_candidate_that_moved_a_value_is_left_out(tmp_path: Path, corrupting_delegate: None):
    m, x = _small()
    side, warned = _export(m, x, tmp_path / "a.tflite")
    assert side["recipe"] != "delegate" and "delegate" in side["fallback"]["dropped"]
    assert "changed a value" in side["fallback"]["dropped"]["delegate"]
    assert warned and "bug in shufflenet-edge" in warned[0] and "please report" in warned[0]
    _outputs_close(tmp_path / "a.tflite", m, x)


@pytest.mark.slow
def test_an_explicit_form_that_cannot_be_honoured_ships_the_graph_as_written(tmp_path: Path,
                                                                          corrupting_delegate: None):
    m, x = _small()
    side, warned = _export(m, x, tmp_path / "d.tflite", form="delegate")
    assert side["recipe"] == "reference" and side["fallback"]["form_asked"] == "delegate"
    assert "not the --form delegate you asked for" in warned[0]
    _outputs_close(tmp_path / "d.tflite", m, x)


@pytest.mark.slow
def test_a_failing_fold_leaves_the_passes_on_the_graph_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from shufflenet_edge.export import tflite_export as te

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("fold exploded")

    monkeypatch.setattr(te, "fold_graph", broken)
    m, x = _small()
    side, warned = _export(m, x, tmp_path / "f.tflite", form="cpu")
    assert side["recipe"] in ("cpu", "reference3") and "fold exploded" in side["fallback"]["dropped"]["fold"]
    assert side["fold"]["error"] and "fold exploded" in warned[0]
    _outputs_close(tmp_path / "f.tflite", m, x)


def test_an_onnx_form_that_fails_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from shufflenet_edge.export import onnx_export as oe

    real = oe.fold_graph

    def fold(model: Any, xs: Any, **kw: Any) -> Any:
        if kw.get("form") == "gather":
            raise RuntimeError("gather fold exploded")
        return real(model, xs, **kw)

    monkeypatch.setattr(oe, "fold_graph", fold)
    m, x = _small()
    side, warned = _export(m, x, tmp_path / "o.onnx", target="onnx")
    assert side["form"] in ("transpose", "reference") and "gather fold exploded" in side["fallback"]["dropped"]["gather"]
    assert warned
    _outputs_close(tmp_path / "o.onnx", m, x)
