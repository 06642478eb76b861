from __future__ import annotations

import pytest
import torch

from shufflenet_edge.fold import fold, half_indices, shuffle_permutation
from shufflenet_edge.models import build_model, list_models
from shufflenet_edge.models.common import channel_shuffle, randomize_batchnorm

SHUFFLENETS = list_models("shufflenet_v2") + list_models("shufflenet_v1")


def test_half_indices_match_design():
    i0, i1 = half_indices(116)
    assert i0[:6].tolist() == [0, 116, 1, 117, 2, 118]
    assert i0[-2:].tolist() == [57, 173]
    assert i1[:4].tolist() == [58, 174, 59, 175]
    assert i1[-2:].tolist() == [115, 231]


@pytest.mark.parametrize("m", [24, 58, 116, 122])
def test_half_indices_equal_shuffle_then_chunk(m: int):
    a, b = torch.randn(1, m, 3, 3), torch.randn(1, m, 3, 3)
    c = torch.cat((a, b), 1)
    want0, want1 = channel_shuffle(c, 2).chunk(2, dim=1)
    i0, i1 = half_indices(m)
    assert torch.equal(c[:, i0], want0) and torch.equal(c[:, i1], want1)
    assert torch.equal(c[:, shuffle_permutation(2 * m, 2)], channel_shuffle(c, 2))


@pytest.mark.parametrize("name", SHUFFLENETS)
def test_folded_equals_reference(name: str):
    ref = randomize_batchnorm(build_model(name, seed=1), seed=2)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = ref(x)
        for form in ("transpose", "gather"):
            got = fold(ref, form)(x)
            tol = 1e-5 * max(1.0, want.abs().max().item())
            err = (got - want).abs().max().item()
            assert err <= tol, f"{name} {form}: max abs logit error {err:.3g} > {tol:.3g}"
            assert torch.equal(got.argmax(1), want.argmax(1))


def test_reference_weights_untouched_by_fold():
    ref = build_model("shufflenet_v2_x0_5")
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    fold(ref, "transpose")
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())


def test_gather_form_takes_batches_transpose_refuses():
    ref = randomize_batchnorm(build_model("shufflenet_v2_x0_5"))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fold(ref, "gather")(x), ref(x), atol=1e-5)
        with pytest.raises(ValueError, match="batch 1"):
            fold(ref, "transpose")(x)


def test_noshuffle_bound_is_wrong_numbers_right_shapes():
    ref = randomize_batchnorm(build_model("shufflenet_v2_x0_5"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = fold(ref, "noshuffle")(x)
        assert y.shape == ref(x).shape
        assert not torch.allclose(y, ref(x), atol=1e-3)


def test_unknown_form():
    with pytest.raises(ValueError, match="unknown form"):
        fold(build_model("shufflenet_v2_x0_5"), "zigzag")
