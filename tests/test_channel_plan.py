"""The planned channel order (shufflenet_edge.channel_plan) and the TFLite `blocks` form built on it: exact for every
V2 width, no transpose, every concatenation within XNNPACK's 5 inputs, one partition, fp32 and int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shufflenet_edge.channel_plan import END, blocks_per_unit, channel_class, plan_stage, plan_v2, plannable
from shufflenet_edge.models.common import randomize_batchnorm
from shufflenet_edge.models.weights import load_model


@pytest.mark.parametrize("width", ["0_5", "1_0", "1_5", "2_0"])
def test_plan_gives_the_models_numbers(width):
    m = randomize_batchnorm(load_model(f"shufflenet_v2_x{width}", None, warn=False), seed=1).eval()
    planned = plan_v2(m)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = m(x), planned(x)
    assert float((want - got).abs().max()) <= 1e-5 * float(want.abs().max())  # summation order only
    # a stage of n units: the second unit takes 2 blocks, then one more per unit (0: a stage's first unit)
    assert blocks_per_unit(planned)[:4] == [0, 2, 3, 4] and len(blocks_per_unit(planned)) == 16
    assert [n for n, _ in planned.named_modules()].count("stage3.7.branch2.0") == 1  # unit names kept


@pytest.mark.parametrize("channels,units", [(116, 4), (232, 8), (96, 8), (488, 8)])
def test_stage_plan_takes_each_half_once_and_ends_on_a_permutation(channels, units):
    p = plan_stage(channels, units)
    m = channels // 2
    assert all(sorted(b) == list(range(m)) for b in p.branch_in[1:])  # each branch takes exactly the second half
    assert sorted(p.out_order) == list(range(channels))
    for u, emitted in enumerate(p.emits):  # a branch output is cut into at most one block per class left
        assert all(len(sizes) <= units - u for _, sizes in emitted)


def test_channel_class_counts_down_while_passing():
    assert channel_class(60, 58, 3) == 1 and channel_class(40, 58, 3) == 2 and channel_class(20, 58, 3) == 3
    assert channel_class(10, 58, 3) == END and channel_class(57, 58, 0) == END  # 10 -> 20 -> 40 -> 80: one unit short


def test_other_structures_are_said_not_plannable():
    assert "ShuffleNetV2" in plannable(load_model("shufflenet_v1_x0_5_g3", None, warn=False))
    assert plannable(load_model("shufflenet_v2_x0_5", None, warn=False)) is None


def _convert(module: torch.nn.Module, x: torch.Tensor) -> bytes:
    from shufflenet_edge.export.tflite_export import _nhwc, convert

    return convert(_nhwc(module.eval()), x)


def test_concat_fanin_and_mean_layout_are_exact_and_keep_one_partition(tmp_path):
    from shufflenet_edge.export.inspect import inspect_tflite
    from shufflenet_edge.export.passes import concat_fanin, mean_layout
    from shufflenet_edge.export.passes.graph import Graph
    from shufflenet_edge.export.tflite_export import run_tflite_all

    class Blocks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(64, 64, 1), torch.nn.Conv2d(64, 64, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            parts = torch.split(self.a(x), 8, dim=1)
            return self.b(torch.cat(parts[::-1], dim=1)).mean([2, 3])

    x = torch.randn(1, 8, 8, 64)
    buf = _convert(Blocks(), x)
    g = Graph(buf)
    assert concat_fanin.run(g)["rewritten"] == 1 and mean_layout.run(g)["rewritten"] == 1
    out = g.finish()
    paths = {}
    for k, b in (("before", buf), ("after", out)):
        paths[k] = tmp_path / f"{k}.tflite"
        paths[k].write_bytes(b)
    before, after = inspect_tflite(paths["before"], analyze_gpu=False), inspect_tflite(paths["after"], analyze_gpu=False)
    assert before["xnnpack_partitions"] == 2 and after["xnnpack_partitions"] == 1  # 8 inputs: not XNNPACK's
    assert "TRANSPOSE" in before["op_histogram"] and "TRANSPOSE" not in after["op_histogram"]
    xs = np.random.default_rng(0).standard_normal((2, 8, 8, 64)).astype(np.float32)
    # the same concatenation; the mean sums the same values in another order (float rounding only)
    np.testing.assert_allclose(run_tflite_all(out, xs)[0], run_tflite_all(buf, xs)[0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def blocks_exports(tmp_path_factory):
    from shufflenet_edge.api import export as se_export

    d = tmp_path_factory.mktemp("blocks")
    made = {}
    for prec in ("fp32", "int8"):
        out = d / f"v2_{prec}.tflite"
        se_export("shufflenet_v2_x0_5", out, target="tflite", form="blocks", input_size=64, precision=prec,
                  show_progress=False)
        made[prec] = out
    return made


@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_blocks_form_exports_without_transposes(blocks_exports, prec):
    from shufflenet_edge.api import parity as se_parity

    side = json.loads(Path(str(blocks_exports[prec]) + ".json").read_text())
    assert side["form"] == "blocks" and side["fallback"] is None
    g = side["graph"]
    assert "TRANSPOSE" not in g["op_histogram"] and "GATHER" not in g["op_histogram"]
    assert g["xnnpack_partitions"] == 1 and g["max_rank"] == 4
    assert set(g["op_histogram"]) <= {"SLICE", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "MAX_POOL_2D",
                                      "MEAN", "FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE"}
    assert side["fold"]["blocks_per_unit"][:4] == [0, 2, 3, 4]
    if prec == "int8":
        assert side["checks"]["passes_max_int8_change"] == 0  # the passes moved no int8 value
    else:
        assert se_parity(blocks_exports[prec], inputs=8)["passed"]


def test_blocks_form_on_another_structure_is_a_usage_error(tmp_path):
    from shufflenet_edge.api import export as se_export
    from shufflenet_edge.errors import UsageError

    with pytest.raises(UsageError, match="--form blocks: the planned channel order is built for ShuffleNetV2"):
        se_export("shufflenet_v1_x0_5_g3", tmp_path / "v1.tflite", form="blocks", input_size=64, show_progress=False)
    assert not (tmp_path / "v1.tflite").exists()
