"""The graph-level fold: shuffles found however they are written, proven exact, each one reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from shufflenet_edge.graph_fold import factorize, fold_graph, report_lines
from shufflenet_edge.models import build_model
from shufflenet_edge.models.common import randomize_batchnorm

sys.path.insert(0, str(Path(__file__).parent))
import user_models as um  # noqa: E402
import zoo  # noqa: E402

SHUFFLE_OPS = {"aten.permute.default", "aten.transpose.int", "aten.channel_shuffle.default", "aten.native_channel_shuffle.default",
               "aten.index_select.default"}


def _max_rank(gm: torch.fx.GraphModule) -> int:
    r = 0
    for n in gm.graph.nodes:
        v = n.meta.get("val")
        if isinstance(v, torch.Tensor):
            r = max(r, v.dim())
        elif n.op == "call_function" and n.target in (torch.ops.aten.reshape.default, torch.ops.aten.view.default):
            r = max(r, len(n.args[1]))
    return r


def _outs(y):  # type: ignore[no-untyped-def]
    return [t for t in torch.utils._pytree.tree_leaves(y) if isinstance(t, torch.Tensor)]


# One model per family of the registry (each written differently), and the user-style models.
REGISTRY = ["shufflenet_v2_x0_5", "shufflenet_v1_x0_5_g3", "shufflenet_v1_x0_5_g8", "megvii_shufflenet_v1_x0_5_g3",
            "megvii_shufflenet_v2_x0_5"]


def _model(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if name in REGISTRY:
        return randomize_batchnorm(build_model(name)).eval(), (1, 3, 64, 64)
    made = getattr(um, name)()
    return made if isinstance(made, tuple) else (made, (1, 3, 64, 64))


@pytest.fixture(scope="module")
def folded() -> dict:  # type: ignore[type-arg]
    cache: dict = {}  # type: ignore[type-arg]

    def get(name: str, form: str):  # type: ignore[no-untyped-def]
        if (name, form) not in cache:
            m, shp = _model(name)
            x = torch.randn(*shp, generator=torch.Generator().manual_seed(3))
            gm, rep = fold_graph(m, (x,), form=form, split="slice")
            cache[name, form] = (m, gm, rep, x)
        return cache[name, form]

    return get  # type: ignore[return-value]


@pytest.mark.parametrize("name", REGISTRY + ["hand_chunk", "channel_shuffle_split", "nanodet_backbone"])
@pytest.mark.parametrize("form", ["transpose", "gather"])
def test_every_shuffle_folded_exactly_rank4(folded, name, form):
    m, gm, rep, x = folded(name, form)
    with torch.no_grad():
        want, got = _outs(m(x)), _outs(gm(x))
    assert len(want) == len(got)
    for a, b in zip(want, got):
        tol = 1e-4 * max(1.0, float(a.abs().max()))
        assert float((a - b).abs().max()) <= tol
    c = rep.counts()
    if name.endswith("_g1"):  # one group: the shuffle is the identity, the model has none to find
        assert c["shuffles"] == 0, report_lines(rep.to_dict())
    else:
        assert c["shuffles"] > 0 and c["left_alone"] == 0, report_lines(rep.to_dict())
    assert _max_rank(gm) <= 4
    # No shuffle spelled the user's way is left: only our reshape/permute/slice or index_select remain.
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert "aten.transpose.int" not in targets and "aten.channel_shuffle.default" not in targets
    assert "aten.select.int" not in targets  # megvii V2's x[0], x[1]
    if form == "gather":
        assert "aten.permute.default" not in targets


def test_whole_tensor_shuffles_go_into_weights(folded):
    # torchvision V2: the last shuffle of each stage feeds a stride-2 unit / conv5 only: folded into weights.
    _, gm, rep, _ = folded("shufflenet_v2_x0_5", "transpose")
    assert rep.counts()["folded_into_weights"] == 3
    assert rep.counts()["data_path"] == 13


def test_graph_output_keeps_its_order(folded):
    """NanoDet: a stage output is both a graph output and the next stage's input; the readers fold, the output
    stays a rank-4 data path, and the report says why."""
    m, gm, rep, x = folded("nanodet_backbone", "transpose")
    lines = report_lines(rep.to_dict())
    assert any("graph output" in ln for ln in lines), lines
    assert any(mm.action.startswith("data path + weights") for mm in rep.matches)


def test_megvii_patterns_recognised(folded):
    _, _, rep, _ = folded("megvii_shufflenet_v2_x0_5", "transpose")
    assert all("permute (1, 0)" in mm.action for mm in rep.matches)  # (C/2, 2) -> (2, C/2): even/odd
    _, _, rep1, _ = folded("megvii_shufflenet_v1_x0_5_g3", "transpose")
    assert all(mm.action.startswith("data path") for mm in rep1.matches)
    assert any("grouped conv" in (mm.reason or "") for mm in rep1.matches)  # why not into weights


def test_factorize_finds_design_index_math():
    m = 58  # docs/design.md, the fold: (k, h, j) -> (h, j, k) for the halves of torchvision V2
    k, h, j = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(m // 2), indexing="ij")
    perm = (k * m + h * (m // 2) + j).permute(1, 2, 0).reshape(-1)
    dims, axes = factorize(perm)
    assert torch.equal(torch.arange(2 * m).reshape(dims).permute(axes).reshape(-1), perm)
    assert factorize(torch.tensor([0, 3, 1, 4, 2, 5])) == ((2, 3), (1, 0))
    assert factorize(torch.tensor([0, 2, 1, 5, 4, 3])) is None


class _Odd(nn.Module):
    """A permutation no reshape/permute reproduces, and a shuffle whose reader does not commute with it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 6, 1)
        self.register_buffer("idx", torch.tensor([0, 2, 1, 5, 4, 3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = y.view(1, 2, 3, 4, 4).transpose(1, 2).reshape(1, 6, 4, 4)
        return z + y  # read by an add with another tensor: not foldable into weights


def test_not_folded_reasons_are_reported():
    m = _Odd().eval()
    gm, rep = fold_graph(m, (torch.randn(1, 6, 4, 4),), form="transpose")
    assert rep.counts()["shuffles"] == 1
    mm = rep.matches[0]
    assert mm.action.startswith("data path") and "add" in (mm.reason or "")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in __import__("shufflenet_edge.models", fromlist=["list_models"]).list_models()
                                  if not n.startswith("mobilenet")])
def test_whole_registry_folds(name):
    """Every registered ShuffleNet: every shuffle matched and rewritten, exact (fold_graph verifies), rank 4."""
    m = randomize_batchnorm(build_model(name)).eval()
    gm, rep = fold_graph(m, (torch.randn(1, 3, 64, 64),), form="transpose", split="slice", int8_friendly=True)
    c = rep.counts()
    if name.endswith("_g1"):  # one group: the shuffle is the identity, the model has none to find
        assert c["shuffles"] == 0, report_lines(rep.to_dict())
    else:
        assert c["shuffles"] > 0 and c["left_alone"] == 0, report_lines(rep.to_dict())
    assert _max_rank(gm) <= 4


def test_fold_mixed_readers():
    """A shuffled tensor read both by a conv and by a chunk (Lite-HRNet's stem output feeds the new branch's
    transition conv and the first block's split): the conv reader folds into weights, the chunk halves become one
    rank-4 data path; nothing is left alone."""

    class StemAndReaders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = zoo.HRStem(3, 16, 16)
            self.conv = nn.Conv2d(16, 16, 3, 2, 1, groups=16)
            self.pw = nn.Conv2d(16, 8, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            y = self.stem(x)
            a, b = y.chunk(2, dim=1)
            return self.pw(self.conv(y)), a * 2, b + 1

    mod = zoo.randomize(StemAndReaders(), 9)
    x = torch.randn(1, 3, 32, 24)
    gm, rep = fold_graph(mod, (x,), form="transpose")
    c = rep.counts()
    assert c["shuffles"] == 1 and c["left_alone"] == 0, report_lines(rep.to_dict())
    assert rep.matches[0].action.startswith("data path + weights"), report_lines(rep.to_dict())
    with torch.no_grad():
        for a, b in zip(_outs(mod(x)), _outs(gm(x))):
            assert float((a - b).abs().max()) <= 1e-5 * max(1.0, float(a.abs().max()))
    assert "aten.transpose.int" not in [str(n.target) for n in gm.graph.nodes]
