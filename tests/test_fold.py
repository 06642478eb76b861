"""docs/design.md (the fold)'s index math, pinned on what the graph-level fold (shufflenet_edge.graph_fold) builds,
and the benchmarks' `noshuffle` lower bound."""

from __future__ import annotations

import pytest
import torch

from shufflenet_edge.graph_fold import fold_graph
from shufflenet_edge.models import build_model
from shufflenet_edge.models.common import channel_shuffle, randomize_batchnorm

aten = torch.ops.aten


def design_half_indices(m: int) -> tuple[list[int], list[int]]:
    """docs/design.md, the fold: concat channel k*m + i lands at shuffled position 2i + k; half h holds positions
    h*m .. h*m + m - 1, i.e. concat channels [h*m/2 + j, m + h*m/2 + j] for j < m/2, interleaved."""
    half = m // 2
    return ([c for j in range(half) for c in (j, m + j)], [c for j in range(half) for c in (half + j, m + half + j)])


def test_design_indices_are_shuffle_then_chunk():
    i0, i1 = design_half_indices(116)
    assert i0[:6] == [0, 116, 1, 117, 2, 118] and i0[-2:] == [57, 173]
    assert i1[:4] == [58, 174, 59, 175] and i1[-2:] == [115, 231]
    for m in (24, 58, 116, 122):
        c = torch.randn(1, 2 * m, 3, 3)
        want0, want1 = channel_shuffle(c, 2).chunk(2, dim=1)
        i0, i1 = design_half_indices(m)
        assert torch.equal(c[:, i0], want0) and torch.equal(c[:, i1], want1)


def test_gather_form_uses_design_indices_and_batches():
    ref = randomize_batchnorm(build_model("shufflenet_v2_x0_5")).eval()
    gm, rep = fold_graph(ref, (torch.randn(1, 3, 64, 64),), form="gather")
    idx = [n for n in gm.graph.nodes if n.target == aten.index_select.default]
    assert len(idx) == 26  # two halves for each of the 13 stride-1 units' inputs
    tensors = {tuple(getattr(gm, str(n.args[2].target)).tolist()) for n in idx}
    for m in (24, 48, 96):  # branch channels of V2 0.5x's three stages
        i0, i1 = design_half_indices(m)
        assert tuple(i0) in tensors and tuple(i1) in tensors
    assert rep.counts()["folded_into_weights"] == 3  # the stage-end shuffles, into the next convolutions
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(gm(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "shufflenet_v1_x0_5_g3"])
def test_noshuffle_bound_is_wrong_numbers_right_shapes_no_data_movement(name):
    ref = randomize_batchnorm(build_model(name)).eval()
    x = torch.randn(1, 3, 64, 64)
    gm, rep = fold_graph(ref, (x,), form="noshuffle")
    moves = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in
             (aten.permute.default, aten.transpose.int, aten.index_select.default)]
    assert not moves and rep.counts()["shuffles"] > 0 and rep.check_max_abs_error is None
    with torch.no_grad():
        y, want = gm(x), ref(x)
    assert y.shape == want.shape and not torch.allclose(y, want, atol=1e-3)


def test_reference_weights_untouched_by_fold():
    ref = build_model("shufflenet_v2_x0_5").eval()
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    fold_graph(ref, (torch.randn(1, 3, 64, 64),), form="transpose")
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())


def test_unknown_form():
    with pytest.raises(ValueError, match="unknown form"):
        fold_graph(build_model("shufflenet_v2_x0_5").eval(), (torch.randn(1, 3, 64, 64),), form="zigzag")
