"""Each graph pass: op counts before and after, and proof on random inputs that outputs are unchanged."""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from shufflenet_edge.export.passes import fp16_weights, io_types, maxpool_pad, resize_nearest, shuffle_path
from shufflenet_edge.export.passes.graph import Graph
from shufflenet_edge.export.tflite_export import _nhwc, convert
from shufflenet_edge.export.tflite_quantize import pt2e_quantize
from shufflenet_edge.runtimes.runner import TFLiteRunner

from shufflenet_edge.graph_fold import fold_graph
from shufflenet_edge.models import build_model
from shufflenet_edge.models.common import randomize_batchnorm

sys.path.insert(0, str(Path(__file__).parent))
import user_models as um  # noqa: E402

SIZE = 64


def _ops(buf: bytes) -> collections.Counter[str]:
    g = Graph(buf)
    return collections.Counter(g.op_name(o) for o in g.ops)


def _run(buf: bytes, x: np.ndarray, raw: bool = False) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(buf)
        f.flush()
        r = TFLiteRunner(f.name)
        out = []
        for i in range(len(x)):
            r.invoke(r.prepare(x[i : i + 1]))
            out.append(r.raw_output() if raw else r.output().copy())
        return np.concatenate(out)


@pytest.fixture(scope="session")
def small_bases() -> dict[str, bytes]:
    torch.manual_seed(0)
    x = torch.randn(1, SIZE, SIZE, 3)
    xn = torch.randn(1, 3, SIZE, SIZE)

    def folded(name: str) -> torch.nn.Module:  # as the TFLite exporter folds
        gm, _ = fold_graph(randomize_batchnorm(build_model(name)).eval(), (xn,), form="transpose", split="slice",
                           int8_friendly=True)
        return _nhwc(gm)

    v2, v1 = folded("shufflenet_v2_x0_5"), folded("shufflenet_v1_x0_5_g3")
    v2_ref = _nhwc(randomize_batchnorm(build_model("shufflenet_v2_x0_5")).eval())  # as written: no torch-level fold
    calib = np.random.default_rng(0).standard_normal((4, SIZE, SIZE, 3)).astype(np.float32)
    sim, q = pt2e_quantize(v2, x, calib)
    sim_ref, q_ref = pt2e_quantize(v2_ref, x, calib)
    return {"v2": convert(v2, x), "v1": convert(v1, x), "v2_int8": convert(sim, x, q),
            "v2_ref_int8": convert(sim_ref, x, q_ref)}


X = np.random.default_rng(5).standard_normal((8, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("recipe", shuffle_path.RECIPES)
@pytest.mark.parametrize("base", ["v2", "v2_int8"])
def test_shuffle_path_counts_and_exactness(small_bases, recipe, base):
    buf = small_bases[base]
    before = _ops(buf)
    g = Graph(buf)
    rep = shuffle_path.run(g, recipe)
    after_buf = g.finish()
    after = _ops(after_buf)
    assert rep["rewritten"] == 13 and before["SLICE"] == 26 and after["SLICE"] == 0
    assert after["SPLIT"] == 13
    expected_transposes = {"delegate": 13, "cpu": 13 * 4, "reference3": 13 * 3}[recipe]
    assert after["TRANSPOSE"] - (before["TRANSPOSE"] - 3 * 13) == expected_transposes
    raw = base.endswith("int8")
    assert np.array_equal(_run(buf, X, raw), _run(after_buf, X, raw)), "the pass changed outputs"


@pytest.mark.parametrize("recipe", shuffle_path.RECIPES)
def test_shuffle_path_on_the_graph_as_written_reaches_the_folded_graph(small_bases, recipe):
    """On the converter's int8 graph of the module as written, the pass rewrites every shuffle and takes the three
    stage ends' permutations into the next convolutions' weights (a depthwise conv's channels, per-channel scales
    and bias included): the same data movement as on the torch-level fold, every stored value unchanged (int8
    sums exactly in any order; the float graph goes through the same code, its sums only reordered)."""
    ref, folded = small_bases["v2_ref_int8"], small_bases["v2_int8"]
    g = Graph(ref)
    rep = shuffle_path.run(g, recipe)
    out = g.finish()
    assert rep["rewritten"] == 16 and rep["absorbed_in_weights"] == 3
    assert len(rep["skipped"]) == 1 and "not a channel selection" in rep["skipped"][0]  # the head's NCHW transpose
    g_fold = Graph(folded)
    shuffle_path.run(g_fold, recipe)
    moves = ("TRANSPOSE", "RESHAPE", "SLICE", "SPLIT", "CONCATENATION")
    assert {k: _ops(out)[k] for k in moves} == {k: _ops(g_fold.finish())[k] for k in moves}
    assert np.array_equal(_run(ref, X, raw=True), _run(out, X, raw=True)), "the pass changed a stored value"


def test_shuffle_path_v1_group_shuffle(small_bases):
    buf = small_bases["v1"]
    g = Graph(buf)
    rep = shuffle_path.run(g, "delegate")
    out = g.finish()
    assert rep["rewritten"] == 16  # every V1 unit's shuffle (g=3)
    assert np.array_equal(_run(buf, X), _run(out, X))
    assert max(len(Graph(out).shape(i)) for i in range(len(Graph(out).sg.tensors))) <= 4


@pytest.mark.parametrize("base", ["v2", "v2_int8"])
def test_maxpool_pad(small_bases, base):
    buf = small_bases[base]
    g = Graph(buf)
    rep = maxpool_pad.run(g)
    out = g.finish()
    assert rep["rewritten"] == 1
    before, after = _ops(buf), _ops(out)
    assert before["PADV2"] == 1 and after["PADV2"] == 0 and after["PAD"] == before["PAD"]
    # Width then height, before only: a 3x3 stride-2 pool over an even side never reads the bottom/right pad.
    assert after["CONCATENATION"] == before["CONCATENATION"] + 2
    g2 = Graph(out)
    pool = next(op for op in g2.ops if g2.op_name(op) == "MAX_POOL_2D")
    h, w = g2.shape(int(pool.inputs[0]))[1:3]
    assert h % 2 == 1 and w % 2 == 1, "the unread bottom/right padding was kept"
    raw = base.endswith("int8")
    assert np.array_equal(_run(buf, X, raw), _run(out, X, raw))
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "after.tflite"
        path.write_bytes(out)
        from shufflenet_edge.export.inspect import xnnpack_partitions

        assert xnnpack_partitions(path) == 1


@pytest.mark.parametrize("io", ["float", "uint8"])
def test_io_types(small_bases, io):
    buf = small_bases["v2_int8"]
    g = Graph(buf)
    io_types.run(g, io)
    out = g.finish()
    ops = _ops(out)
    assert ops["QUANTIZE"] == (1 if io == "float" else 2) and ops["DEQUANTIZE"] == (1 if io == "float" else 0)
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(out)
        f.flush()
        r = TFLiteRunner(f.name)
        assert r.input_dtype == ("float32" if io == "float" else "uint8")
    got = _run(out, X)
    want = _run(buf, X)
    # The input quantization is done by the graph's QUANTIZE op instead of numpy: same rounding rule
    # except exact ties, so outputs agree to within one output step.
    g2 = Graph(buf)
    oscale = g2.quant(int(g2.sg.outputs[0]))[0]
    assert np.abs(got - want).max() <= oscale + 1e-6


def test_fp16_weights(small_bases):
    buf = small_bases["v2"]
    g = Graph(buf)
    rep = fp16_weights.run(g)
    out = g.finish()
    assert rep["weights_converted"] == _ops(buf)["CONV_2D"] + _ops(buf)["DEPTHWISE_CONV_2D"] + _ops(buf)["FULLY_CONNECTED"]
    assert _ops(out)["DEQUANTIZE"] == rep["weights_converted"]
    assert len(out) < 0.6 * len(buf)
    a, b = _run(buf, X), _run(out, X)
    assert np.abs(a - b).max() <= 0.02 * max(1.0, float(np.abs(a).max()))


def test_metadata_round_trip(small_bases):
    from shufflenet_edge.export.passes import metadata

    buf = small_bases["v2"]
    g = Graph(buf)
    rep = metadata.run(g, {"preprocess": {"mean": [0.485, 0.456, 0.406]}, "labels": ["a", "b"]})
    out = g.finish()
    assert rep["bytes"] > 0
    assert metadata.read(out)["labels"] == ["a", "b"]
    assert metadata.read(buf) is None
    assert np.array_equal(_run(buf, X), _run(out, X))


class _Rank3Head(torch.nn.Module):
    """NanoDet-Plus's output in small: two V2 units (one shuffle left as a data path), then per-level 1x1 convs
    flattened, concatenated and permuted to one (1, N, C) tensor: rank-3 regions in the converted graph."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = um._cbr(3, 16, 3, 2)
        self.blocks = torch.nn.Sequential(um.HandBlock(16, 16, 1), um.HandBlock(16, 16, 1))
        self.cls = torch.nn.ModuleList([torch.nn.Conv2d(16, 6, 1), torch.nn.Conv2d(16, 6, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(self.stem(x))
        levels = [y, torch.nn.functional.max_pool2d(y, 2)]
        outs = [conv(f).flatten(start_dim=2) for conv, f in zip(self.cls, levels)]
        return torch.cat(outs, dim=2).permute(0, 2, 1)


@pytest.fixture(scope="module")
def rank3_base() -> bytes:
    m = um.randomize(_Rank3Head())
    gm, rep = fold_graph(m, (torch.randn(1, 3, 32, 32),), form="transpose", split="slice", int8_friendly=True)
    assert rep.counts()["data_path"] == 1
    return convert(_nhwc(gm), torch.randn(1, 32, 32, 3))


@pytest.mark.parametrize("recipe", shuffle_path.RECIPES)
def test_shuffle_path_leaves_rank3_regions_alone(rank3_base, recipe):
    """Regions that are not a rank-4 NHWC channel selection (a detector head's flatten/concat/permute to (1, N, C))
    are left as converted, each with its reason; the shuffle beside them is still rewritten. Was: "not enough values
    to unpack (expected 4, got 3)"."""
    g = Graph(rank3_base)
    assert any(len(g.shape(i)) == 3 for i in range(len(g.sg.tensors)))
    rep = shuffle_path.run(g, recipe)
    out = g.finish()
    assert rep["rewritten"] == 1, rep
    assert any("rank-3" in s for s in rep["skipped"]), rep["skipped"]
    assert any("not NHWC channels of the start" in s for s in rep["skipped"]), rep["skipped"]
    x = np.random.default_rng(2).standard_normal((4, 32, 32, 3)).astype(np.float32)
    assert np.array_equal(_run(rank3_base, x), _run(out, x)), "the pass changed outputs"


class _OutputAndReader(torch.nn.Module):
    """mmpretrain's multi-output backbone in small: a unit's shuffled output is a graph output and a conv's input;
    the conv takes the permutation into its weights, so the converted region ends in the shuffle and in a copy of
    the start (TRANSPOSE NHWC -> NCHW -> NHWC)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = um._cbr(3, 16, 3, 2)
        self.unit = um.HandBlock(16, 16, 1)
        self.head = um._cbr(16, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.unit(self.stem(x))
        return y, self.head(y)


@pytest.fixture(scope="module")
def identity_base() -> bytes:
    m = um.randomize(_OutputAndReader())
    gm, _ = fold_graph(m, (torch.randn(1, 3, 32, 32),), form="transpose", split="slice", int8_friendly=True)
    return convert(_nhwc(gm, [0, 1]), torch.randn(1, 32, 32, 3))


@pytest.mark.parametrize("recipe", shuffle_path.RECIPES)
def test_shuffle_path_identity_endpoint_reads_the_start(identity_base, recipe):
    """An endpoint equal to the start is read from the start (its transpose pair goes), the shuffle beside it gets
    the recipe; a chunk of a tensor never shuffled is listed as plain slices."""
    from shufflenet_edge.export.tflite_export import run_tflite_all

    before = _ops(identity_base)
    g = Graph(identity_base)
    rep = shuffle_path.run(g, recipe)
    out = g.finish()
    assert rep["rewritten"] == 1, rep
    assert rep["skipped"] and all("plain slices" in s for s in rep["skipped"]), rep["skipped"]
    if recipe == "delegate":
        assert before["TRANSPOSE"] == 4 and _ops(out)["TRANSPOSE"] == 1
    x = np.random.default_rng(3).standard_normal((3, 32, 32, 3)).astype(np.float32)
    for a, b in zip(run_tflite_all(identity_base, x), run_tflite_all(out, x)):
        assert np.array_equal(a, b), "the pass changed outputs"


class _Neck(torch.nn.Module):
    """What detector necks and NanoDet's stem add: a LeakyReLU stem before a padded max-pool (the -inf padding
    cannot become zeros), nearest upsampling by 2 and by (2, 3), and a bilinear one left as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.pool = torch.nn.MaxPool2d(3, 2, 1)
        self.mid = torch.nn.Conv2d(8, 8, 1)
        self.out = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mid(self.pool(torch.nn.functional.leaky_relu(self.stem(x), 0.1)))
        up = torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        up = up + torch.nn.functional.interpolate(y, scale_factor=2, mode="bilinear")
        wide = torch.nn.functional.interpolate(up, scale_factor=(2, 3), mode="nearest")
        return self.out(wide)


@pytest.fixture(scope="module")
def neck_bases() -> dict[str, bytes]:
    m = um.randomize(_Neck())
    x = torch.randn(1, 30, 32, 3)  # odd and even sides
    wrapped = _nhwc(m)
    calib = np.random.default_rng(0).standard_normal((4, 30, 32, 3)).astype(np.float32)
    sim, q = pt2e_quantize(wrapped, x, calib)
    return {"fp32": convert(wrapped, x), "int8": convert(sim, x, q)}


@pytest.mark.parametrize("base", ["fp32", "int8"])
def test_resize_nearest_and_maxpool_padding_of_negative_inputs_are_exact_and_one_partition(neck_bases, base):
    from shufflenet_edge.export.inspect import xnnpack_partitions

    buf = neck_bases[base]
    g = Graph(buf)
    pool = maxpool_pad.run(g)
    resize = resize_nearest.run(g)
    out = g.finish()
    assert pool["rewritten"] == 1 and resize["rewritten"] == 2, (pool, resize)
    before, after = _ops(buf), _ops(out)
    assert before["RESIZE_NEAREST_NEIGHBOR"] == 2 and after["RESIZE_NEAREST_NEIGHBOR"] == 0
    assert before["PADV2"] == 1 and after["PADV2"] == 0 and after["RESIZE_BILINEAR"] == before["RESIZE_BILINEAR"]
    x = np.random.default_rng(3).standard_normal((4, 30, 32, 3)).astype(np.float32)
    raw = base == "int8"
    assert np.array_equal(_run(buf, x, raw), _run(out, x, raw)), "the passes changed outputs"
    with tempfile.TemporaryDirectory() as td:
        paths = [Path(td) / "before.tflite", Path(td) / "after.tflite"]
        paths[0].write_bytes(buf)
        paths[1].write_bytes(out)
        assert xnnpack_partitions(paths[0]) > 1 and xnnpack_partitions(paths[1]) == 1
    assert max(len(Graph(out).shape(i)) for i in range(len(Graph(out).sg.tensors))) <= 4


def test_adaptive_average_pool_with_whole_factors_becomes_a_depthwise_conv():
    class Pooled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.nn.functional.adaptive_avg_pool2d(x, (4, 3))  # whole factors: rewritten
            b = torch.nn.functional.adaptive_avg_pool2d(x, 1)  # global: MEAN, left
            c = torch.nn.functional.adaptive_avg_pool2d(x, (5, 5))  # not whole factors: left
            return a.sum() + b.sum() + c.sum()

    x = torch.randn(1, 8, 16, 12)
    gm, rep = fold_graph(Pooled(), (x,), form="transpose", int8_friendly=True)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.adaptive_avg_pool2d.default) == 2
    assert targets.count(torch.ops.aten.conv2d.default) == 1
    assert any("average pool(s) as depthwise conv" in r for r in rep.rewrites)
    assert torch.allclose(gm(x), Pooled()(x), rtol=1e-5, atol=1e-5)


def test_pt2e_calibrates_a_graph_exported_at_batch_two():
    """A graph exported at batch 2 guards its batch: calibration feeds pairs (the odd image out paired with the first).
    Was: "Guard failed: args_0.size()[0] == 2", reported as litert-torch's refusal of the module."""
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    calib = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    calib[2] *= 10  # the widest image is the odd one out: it must be seen
    sim, _ = pt2e_quantize(m, torch.randn(2, 3, 8, 8), calib, shared_data_path=False)
    wide = torch.from_numpy(calib[[2, 2]])
    with torch.no_grad():
        assert torch.allclose(sim(wide), m(wide), atol=0.1 * float(m(wide).abs().max()))


def test_inspect_counts_requantizing_data_moves():
    """A CONCATENATION whose inputs share the output's scale copies bytes (PT2E's quantizers give a concatenation one
    scale); one input given another scale makes it rescale every value of that input: counted."""
    from shufflenet_edge.export.inspect import _requantizing_moves, tflite_op_names

    class Cat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.a(x), self.b(x)], 1)

    x = torch.randn(1, 8, 8, 3)
    calib = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype(np.float32)
    sim, q = pt2e_quantize(_nhwc(Cat().eval()), x, calib)
    g = Graph(convert(sim, x, q))
    counts = []
    for rescale in (False, True):
        if rescale:
            cat = next(op for op in g.sg.operators if g.op_name(op) == "CONCATENATION")
            g.tensor(int(cat.inputs[0])).quantization.scale = np.asarray([2 * g.quant(int(cat.inputs[0]))[0]],
                                                                          dtype=np.float32)
        counts.append(_requantizing_moves(g.sg, tflite_op_names(g.model)))  # (XNNPACK refuses to prepare the second)
    assert counts == [0, 1]
