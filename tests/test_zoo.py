"""Models from the wild (tests/zoo.py): the graph fold finds every shuffle of each and is exact; every model exports
to ONNX fp32, TFLite fp32 and TFLite int8 through the Python API and to ONNX int8 through the CLI's --model-file; every
output within 1e-4 (relative) of PyTorch in fp32, rank 4 and one XNNPACK partition where the model's own outputs allow,
an int8 loss report for every output, and parity's default gates pass on every artifact.

The first tests are the root causes the zoo found, each on a tiny module (seconds); the exports are shared through
module fixtures (each conversion costs 30-230 s here) and marked slow: tens of seconds each, as the marker says."""

from __future__ import annotations

import json
import operator
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from shufflenet_edge.graph_fold import fold_graph, report_lines

sys.path.insert(0, str(Path(__file__).parent))
import zoo  # noqa: E402

NAMES = sorted(zoo.ZOO)

# Channel shuffles each model has (the fold must find and rewrite all of them), and the regions that move channels
# without being a shuffle (YOLOv5's Detect: view(bs, na, no, ny, nx).permute(...) to rank-5 outputs, left as written
# with the reason "not a channel selection").
SHUFFLES = {"nanodet_plus": 7, "mmpretrain_v1": 7, "mmpretrain_v2": 7, "yolov5_lite": 8, "shufflenetv2_plus": 4,
            "lite_hrnet": 11, "megvii_v2": 13}
LAYOUT_REGIONS = {"yolov5_lite": 3}
FP32_TOL = 1e-4  # relative to each output's largest magnitude (at least 1)


def _outs(y: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


def _made(name: str) -> tuple[nn.Module, torch.Tensor]:
    m, shp = zoo.ZOO[name]()
    m.eval()  # never its value: OpenMMLab's train() returns None
    return m, torch.randn(*shp, generator=torch.Generator().manual_seed(0))


def _inputs(shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    return torch.randn(n, *shape[1:], generator=torch.Generator().manual_seed(11))


# -------------------------------------------------------------------------------------- the zoo as written


def test_zoo_factories_are_model_files():
    """Every factory returns (eval-mode module, input shape); OpenMMLab's models keep their train() returning None."""
    assert set(NAMES) == {"nanodet_plus", "mmpretrain_v1", "mmpretrain_v2", "yolov5_lite", "shufflenetv2_plus",
                          "lite_hrnet", "megvii_v2"}
    m, shp = zoo.make_mmpretrain_v2()
    assert not m.training and len(shp) == 4
    assert m.eval() is None and m.train(False) is None  # what users' code meets: never use .eval()'s value
    with torch.no_grad():
        outs = m(torch.randn(*shp))
    assert isinstance(outs, tuple) and len(outs) == 3  # a multi-output backbone
    bn = next(b for b in m.modules() if isinstance(b, nn.BatchNorm2d))
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # non-identity statistics


def test_zoo_output_kinds():
    shapes = {}
    for name in ("nanodet_plus", "yolov5_lite", "lite_hrnet"):
        m, x = _made(name)
        with torch.no_grad():
            shapes[name] = [tuple(t.shape) for t in _outs(m(x))]
    assert len(shapes["nanodet_plus"]) == 1 and len(shapes["nanodet_plus"][0]) == 3  # (1, N, C)
    assert [len(s) for s in shapes["yolov5_lite"]] == [5, 5, 5]  # raw (bs, na, ny, nx, no)
    assert shapes["lite_hrnet"] == [(1, 5, 16, 12)]  # heatmaps at 1/4 of a portrait input


# ------------------------------------------------------------------------------------------------ the fold


@pytest.fixture(scope="module")
def folded():  # type: ignore[no-untyped-def]
    cache: dict[tuple[str, bool], Any] = {}

    def get(name: str, tflite: bool):  # type: ignore[no-untyped-def]
        if (name, tflite) not in cache:
            m, x = _made(name)
            kw = {"split": "slice", "int8_friendly": True} if tflite else {}  # as the TFLite / ONNX exporters fold
            gm, rep = fold_graph(m, (x,), form="transpose", **kw)
            cache[name, tflite] = (m, gm, rep, x)
        return cache[name, tflite]

    return get


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("tflite", [False, True], ids=["onnx_fold", "tflite_fold"])
def test_fold_finds_every_shuffle_and_is_exact(folded, name, tflite):
    m, gm, rep, _ = folded(name, tflite)
    c = rep.counts()
    lines = report_lines(rep.to_dict())
    layout = LAYOUT_REGIONS.get(name, 0)
    assert c["folded_into_weights"] + c["data_path"] == SHUFFLES[name], lines
    assert c["left_alone"] == layout, lines
    for mm in rep.matches:
        if mm.action == "left alone":
            assert "not a channel selection" in (mm.reason or ""), lines
    xs = _inputs(tuple(folded(name, tflite)[3].shape))
    with torch.no_grad():  # the folded graph is traced at batch 1: one input at a time
        want = [torch.cat(v) for v in zip(*[_outs(m(xs[i : i + 1])) for i in range(len(xs))])]
        got = [torch.cat(v) for v in zip(*[_outs(gm(xs[i : i + 1])) for i in range(len(xs))])]
    assert len(want) == len(got)
    exact = not any("weights" in mm.action for mm in rep.matches) and not rep.rewrites
    for a, b in zip(want, got):
        assert a.shape == b.shape
        if exact:  # data movement only: the very same numbers
            assert torch.equal(a, b), float((a - b).abs().max())
        else:  # weights permuted (a conv's input channels reordered) or pools as convs: float rounding only
            assert float((a - b).abs().max()) <= 1e-5 * max(1.0, float(a.abs().max()))
    # No shuffle is left as the user wrote it: every transpose is gone, reshapes are rank <= 4 except the layout
    # regions left alone on purpose.
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count("aten.transpose.int") == 0 and "aten.channel_shuffle.default" not in targets
    if not layout:
        for n in gm.graph.nodes:
            v = n.meta.get("val")
            assert not isinstance(v, torch.Tensor) or v.dim() <= 4, (n.name, tuple(v.shape))


# ------------------------------------------------------------------------- int8 root causes, on tiny modules


def _quantize(model: nn.Module, shape: tuple[int, ...], n: int = 4) -> torch.fx.GraphModule:
    from shufflenet_edge.export.tflite_quantize import pt2e_quantize

    calib = np.random.default_rng(0).standard_normal((n, *shape[1:])).astype(np.float32)
    sim, _ = pt2e_quantize(model, torch.from_numpy(calib[:1]), calib)
    return sim


def _q_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]


class _HSwishSE(nn.Module):
    """megvii's h-swish and SE hard-sigmoid with Python int constants: ``clamp(x + 3, 0, 6) / 6``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.hs = zoo.HS()
        self.se = zoo.SELayer(8)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.se(self.hs(self.conv(x))))


def _int8_in_and_out(sim: torch.fx.GraphModule, targets: set[Any]) -> list[str]:
    """Names of nodes of `targets` that do not read a DEQUANTIZE and feed a QUANTIZE (ops left float)."""
    dq = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    q = torch.ops.quantized_decomposed.quantize_per_tensor.default
    return [n.name for n in sim.graph.nodes if n.target in targets
            and not (isinstance(n.args[0], torch.fx.Node) and n.args[0].target == dq and any(u.target == q for u in n.users))]


def test_int8_integer_constants_get_no_histogram():
    """ShuffleNetV2+: litert-torch's transform turned the int 3 of ``x + 3`` into an int64 constant and the add
    annotation put a histogram observer on it ("histogram_cpu" not implemented for 'Long'). Scalars stay scalars now,
    and h-swish / hard-sigmoid are int8 ops (add, clamp, div, mul), not float islands."""
    from shufflenet_edge.export.tflite_quantize import make_quantizer

    m = zoo.randomize(_HSwishSE(), 1)
    gm = make_quantizer().transform_for_annotation(torch.export.export(m, (torch.randn(1, 3, 8, 8),)).module())
    assert not [n for n in gm.graph.nodes if n.op == "get_attr" and str(n.target).startswith("_tensor_constant")]
    sim = _quantize(m, (1, 3, 8, 8))
    a = torch.ops.aten
    assert not _int8_in_and_out(sim, {a.add.Tensor, a.clamp.default, a.div.Tensor, a.mul.Tensor})
    with torch.no_grad():  # the simulation stays near the float model (int8 steps, not a broken graph)
        x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        cos = torch.nn.functional.cosine_similarity(sim(x).flatten(), m(x).flatten(), dim=0)
    assert float(cos) > 0.98


def test_int8_silu_is_two_int8_ops():
    """YOLOv5's SiLU: as one op it had no annotation and every one ran float between DEQUANTIZE and QUANTIZE; as
    ``x * sigmoid(x)`` (what TFLite runs anyway) both are int8."""
    m = zoo.randomize(nn.Sequential(zoo.YoloConv(3, 8, 3), zoo.YoloConv(8, 4, 1)), 4)
    sim = _quantize(m, (1, 3, 8, 8))
    a = torch.ops.aten
    targets = {n.target for n in sim.graph.nodes}
    assert a.silu.default not in targets and a.silu_.default not in targets
    assert not _int8_in_and_out(sim, {a.sigmoid.default})
    muls = [n for n in sim.graph.nodes if n.target == a.mul.Tensor]
    assert len(muls) == 2 and not _int8_in_and_out(sim, {a.mul.Tensor})


class _LateAnchor(nn.Module):
    """Lite-HRNet's stem order: ``cat((branch1(x1), x2))`` with x2 computed first."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(inplace=True))
        self.b2 = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU(inplace=True))
        self.b1 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.Conv2d(8, 8, 1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.b2(x2)
        y = torch.cat((self.b1(x1), x2), dim=1)
        return self.out(zoo.channel_shuffle(y, 2))


def test_int8_concat_anchor_is_the_first_computed_input():
    """The concat's shared scale is anchored on the input computed first; anchored on the first *argument* (computed
    later), prepare_pt2e failed: "only refer to edge or node that has observer/fake_quant inserted: 'relu__3'"."""
    sim = _quantize(zoo.randomize(_LateAnchor(), 2), (1, 3, 16, 16))
    cat = next(n for n in sim.graph.nodes if n.target == torch.ops.aten.cat.default)
    ins = cat.args[0]
    scales = {float(i.args[1]) for i in ins}  # every input read in the one shared scale
    assert all(i.target == torch.ops.quantized_decomposed.dequantize_per_tensor.default for i in ins) and len(scales) == 1


def test_int8_chunk_parts_keep_the_producer_scale():
    """chunk / split parts are data movement: each part keeps its producer's scale (Lite-HRNet: unannotated parts got
    their readers' observers and litert's converter failed on a TRANSPOSE between two scales)."""
    sim = _quantize(zoo.randomize(_LateAnchor(), 2), (1, 3, 16, 16))
    chunk = next(n for n in sim.graph.nodes if n.target == torch.ops.aten.chunk.default)
    producer_dq = chunk.args[0]
    assert producer_dq.target == torch.ops.quantized_decomposed.dequantize_per_tensor.default
    scale = float(producer_dq.args[1])
    for part in chunk.users:
        assert part.target is operator.getitem
        qs = [u for u in part.users if u.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]
        assert qs and all(float(q.args[1]) == scale for q in qs)


def test_int8_leaky_relu_is_quantized():
    """NanoDet: LeakyReLU had no annotation, so the concat it feeds and the shuffle's data path after it stayed float
    between QUANTIZE ops, and litert's converter failed ("'tfl.pad' op quantization parameters violate the same scale
    constraint"). LeakyReLU now has an int8 observer of its own and every concat is int8."""
    m = zoo.randomize(zoo.NanoShuffleNetV2((8, 16, 32, 64), (2, 1, 1)), 3)
    x = torch.randn(1, 3, 32, 32)
    gm, _ = fold_graph(m, (x,), form="transpose", split="slice", int8_friendly=True)
    sim = _quantize(gm, (1, 3, 32, 32))
    dq = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    for n in sim.graph.nodes:
        if n.target == torch.ops.aten.cat.default:
            assert all(i.target == dq for i in n.args[0]), n.name
        if n.target in (torch.ops.aten.leaky_relu.default, torch.ops.aten.leaky_relu_.default):
            assert n.args[0].target == dq and any(u in _q_nodes(sim) for u in n.users), n.name


@pytest.mark.slow
def test_int8_leaky_relu_backbone_converts():
    """The converter's side of the test above: NanoDet's LeakyReLU backbone converts to int8 TFLite."""
    from shufflenet_edge.export.tflite_export import _nhwc, convert
    from shufflenet_edge.export.tflite_quantize import pt2e_quantize

    m = zoo.randomize(zoo.NanoShuffleNetV2((8, 16, 32, 64), (2, 1, 1)), 3)
    x = torch.randn(1, 3, 32, 32)
    gm, _ = fold_graph(m, (x,), form="transpose", split="slice", int8_friendly=True)
    wrapped = _nhwc(gm, [0, 1, 2])
    calib = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    xl = torch.from_numpy(calib[:1])
    sim, q = pt2e_quantize(wrapped, xl, calib)
    assert len(convert(sim, xl, q)) > 0


# ------------------------------------------------------------------------- exports through the API and the CLI

ZOO_FILE = Path(zoo.__file__)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import shufflenet_edge.api as api

    folder = tmp_path_factory.mktemp("zoo")
    cache: dict[tuple[str, str], Any] = {}

    def get(name: str, kind: str):  # type: ignore[no-untyped-def]
        if (name, kind) not in cache:
            m, x = _made(name)
            out = folder / f"{name}_{kind}.{'onnx' if kind.startswith('onnx') else 'tflite'}"
            try:
                if kind == "onnx_int8":  # the CLI, as a user with the model's own file runs it
                    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "export", "--model-file",
                                        f"{ZOO_FILE}:make_{name}", "--target", "onnx", "--int8", "--form", "transpose",
                                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=900)
                    if r.returncode != 0:
                        raise AssertionError(f"exit {r.returncode}: {r.stderr[-600:]}")
                    side = json.loads(Path(str(out) + ".json").read_text())
                else:
                    # An explicit form: --form auto times every candidate, which tests/test_pipeline.py covers;
                    # here each path once, on the folded graph.
                    kw = {"onnx": {"form": "transpose"}, "tflite": {"form": "delegate"},
                          "tflite_int8": {"form": "delegate", "int8": True}}[kind]
                    side = api.export(m, out, example_input=x, **kw)
            except Exception as e:  # noqa: BLE001  (recorded: the test of this (model, kind) fails with it)
                side = e
            cache[name, kind] = (m, x, out, side)
        return cache[name, kind]

    return get


def _side(got: Any) -> Any:
    if isinstance(got, BaseException):
        raise AssertionError(f"export failed: {type(got).__name__}: {str(got)[:600]}") from got
    return got


def _run_onnx(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """onnxruntime directly (not the project's Artifact.run), so the check does not share code with what it checks."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    per = [sess.run(None, {name: x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate(v) for v in zip(*per)]


def _run_tflite(path: Path, x_nchw: np.ndarray, want: list[torch.Tensor]) -> list[np.ndarray]:
    """Every output in signature order (output_0, output_1, ...); rank-4 outputs NHWC in the artifact, compared in
    PyTorch's NCHW. LiteRT directly, for the same reason as above."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    key = next(iter(it.get_signature_list()))
    runner = it.get_signature_runner(key)
    in_name = next(iter(runner.get_input_details()))
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    per = []
    for i in range(len(x)):
        res = runner(**{in_name: x[i : i + 1]})
        per.append([res[k] for k in sorted(res, key=lambda s: int(s.rsplit("_", 1)[-1]))])
    outs = [np.concatenate(v) for v in zip(*per)]
    fixed = []
    for o, w in zip(outs, want):
        if o.ndim == 4 and tuple(o.shape) != tuple(w.shape) and tuple(o.shape) == tuple(w.permute(0, 2, 3, 1).shape):
            o = np.ascontiguousarray(o.transpose(0, 3, 1, 2))
        fixed.append(o)
    return fixed


def _assert_close(got: list[np.ndarray], want: list[torch.Tensor], what: str) -> list[float]:
    assert len(got) == len(want), f"{what}: {len(got)} outputs, PyTorch {len(want)}"
    errs = []
    for k, (g, w) in enumerate(zip(got, want)):
        w = w.numpy()
        assert g.shape == w.shape, f"{what} output {k}: shape {g.shape}, PyTorch {w.shape}"
        err = float(np.abs(g - w).max())
        scale = max(1.0, float(np.abs(w).max()))
        assert err <= FP32_TOL * scale, f"{what} output {k}: max abs error {err:.3g} > {FP32_TOL * scale:.3g}"
        errs.append(err / scale)
    return errs


def _want(m: nn.Module, xs: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [torch.cat(v) for v in zip(*[_outs(m(xs[i : i + 1])) for i in range(len(xs))])]


def _max_model_rank(m: nn.Module, x: torch.Tensor) -> int:
    """Rank 4, or the rank of the model's own outputs where they are higher (YOLOv5's raw detect outputs: 5)."""
    with torch.no_grad():
        return max(4, *(t.dim() for t in _outs(m(x))))


def _tflite_graph(out: Path, m: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """The artifact's graph (`inspect`), checked for rank 4 where the model's own outputs allow."""
    from shufflenet_edge.export.inspect import inspect_tflite

    g = inspect_tflite(out, analyze_gpu=False)
    assert g["max_rank"] <= _max_model_rank(m, x), g["max_rank"]
    return g


def _parity_passes(out: Path, m: nn.Module | None) -> None:
    import shufflenet_edge as se

    rep = se.parity(out, m, 8)  # parity's default gate for the artifact's precision
    assert rep["passed"], [r["summary"] for r in rep["outputs"]]


def _int8_as_simulated_one_verdict(out: Path, m: nn.Module, side: Any) -> None:
    """Whether int8 meets the default gate is the model's and the quantizer's matter (a random-weight pose net's
    heatmaps can lose 15 dB); ours is that every output matches its quantization simulation and that parity, with
    its defaults, gives the export's verdict."""
    import shufflenet_edge as se

    loss = side["checks"]["int8_loss"]
    for o in loss.get("per_output") or [loss]:
        assert o["artifact_vs_float"]["psnr_db"] >= o["simulation_vs_float"]["psnr_db"] - 1.0, o
    rep = se.parity(out, m)
    assert rep["passed"] == (not loss["below_default_gate"]), ([r["summary"] for r in rep["outputs"]], loss["inputs"])


def _loss_for_every_output(side: Any, n_outputs: int) -> None:
    loss = side["checks"]["int8_loss"]
    assert loss["artifact_vs_float"]["psnr_db"] is not None
    if n_outputs > 1:
        assert [p["output"] for p in loss["per_output"]] == list(range(n_outputs))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_onnx_fp32(exported, name):
    from shufflenet_edge.export.inspect import inspect_onnx

    m, x, out, got = exported(name, "onnx")
    side = _side(got)
    xs = _inputs(tuple(x.shape))
    _assert_close(_run_onnx(out, xs.numpy()), _want(m, xs), f"{name} ONNX fp32")
    assert side["fold"]["counts"]["shuffles"] >= SHUFFLES[name]
    assert inspect_onnx(out)["max_rank"] <= _max_model_rank(m, x)
    _parity_passes(out, m)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tflite_fp32(exported, name):
    m, x, out, got = exported(name, "tflite")
    side = _side(got)
    xs = _inputs(tuple(x.shape))
    want = _want(m, xs)
    _assert_close(_run_tflite(out, xs.numpy(), want), want, f"{name} TFLite fp32")
    shuffle_pass = next(p for p in side["passes"] if p["pass"] == "shuffle_path")
    # Every region the pass leaves alone says why (rank-3 heads, rank-5 detect outputs, NCHW islands).
    assert all("region at tensor" in s and ": " in s for s in shuffle_pass["skipped"])
    assert shuffle_pass["rewritten"] >= 1
    g = _tflite_graph(out, m, x)
    assert g["xnnpack_partitions"] == 1, g["xnnpack_partitions"]
    _parity_passes(out, m)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tflite_int8(exported, name):
    m, x, out, got = exported(name, "tflite_int8")
    side = _side(got)
    assert out.is_file() and side["precision"] == "int8"
    assert side["checks"].get("passes_max_int8_change") == 0  # the graph passes moved no int8 value
    _loss_for_every_output(side, len(_outs(m(x))))
    _tflite_graph(out, m, x)
    _int8_as_simulated_one_verdict(out, m, side)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_onnx_int8_through_the_cli(exported, name):
    m, x, out, got = exported(name, "onnx_int8")
    side = _side(got)
    assert side["precision"] == "int8" and side["source"]["kind"] == "model_file"
    _loss_for_every_output(side, len(_outs(m(x))))
    _parity_passes(out, None)  # the reference rebuilt from the sidecar's record of the model file
