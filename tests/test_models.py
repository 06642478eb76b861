from __future__ import annotations

import pytest
import torch

from shufflenet_edge.complexity import analyze, count_params
from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.models import build_model, get_info, list_models
from shufflenet_edge.models.weights import load_model

ALL = list_models()
V2 = list_models("shufflenet_v2")
V1 = list_models("shufflenet_v1")


def test_registry_contents():
    assert V2 == ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
    assert len(V1) == 20
    assert {get_info(n).groups for n in V1} == {1, 2, 3, 4, 8}
    assert {get_info(n).width for n in V1} == {0.5, 1.0, 1.5, 2.0}


def test_register_twice_is_an_error():
    from shufflenet_edge.models.registry import register

    with pytest.raises(ValueError, match="registered twice"):
        register(get_info("shufflenet_v2_x1_0"))


def test_unknown_model_lists_valid_names():
    with pytest.raises(UsageError, match="unknown model 'shufflenet_v3'.*shufflenet_v2_x1_0"):
        get_info("shufflenet_v3")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [64, 224])
def test_forward(name: str, size: int):
    model = build_model(name, num_classes=7)
    with torch.no_grad():
        y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 7)
    assert torch.isfinite(y).all()


def test_seeded_init_is_deterministic():
    a = build_model("shufflenet_v2_x0_5", seed=3).state_dict()
    b = build_model("shufflenet_v2_x0_5", seed=3).state_dict()
    c = build_model("shufflenet_v2_x0_5", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.0.weight"], c["conv1.0.weight"])


def test_smallest_input_size():
    model = build_model("shufflenet_v1_x0_5_g3")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


@pytest.mark.parametrize("name", V2 + ["mobilenet_v2_x1_0"])
def test_param_counts_exact(name: str):
    assert count_params(build_model(name)) == get_info(name).torchvision_params


@pytest.mark.parametrize("name", [n for n in ALL if get_info(n).paper_mflops])
def test_multiply_adds_match_papers(name: str):
    madds = analyze(build_model(name), 224)["total"]["madds"] / 1e6
    paper = get_info(name).paper_mflops
    assert abs(madds / paper - 1) <= 0.03, f"{name}: {madds:.1f}M vs paper {paper}M"


def test_v2_1x_is_about_146m():
    assert 141e6 <= analyze(build_model("shufflenet_v2_x1_0"))["total"]["madds"] <= 151e6


def _torchvision_v2_keys(stage_repeats=(4, 8, 4)) -> list[str]:
    """The state-dict keys torchvision's ShuffleNetV2 produces, spelled out from its module tree:
    conv1 = Sequential(Conv2d, BatchNorm2d, ReLU); stageN = Sequential(InvertedResidual...) whose
    branch1 = Sequential(dwConv, BN, Conv1x1, BN, ReLU) (stride 2 only) and
    branch2 = Sequential(Conv1x1, BN, ReLU, dwConv, BN, Conv1x1, BN, ReLU); conv5 = Sequential(Conv, BN, ReLU); fc."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.0.weight"] + [f"conv1.1.{s}" for s in bn]
    for stage, reps in zip((2, 3, 4), stage_repeats):
        for u in range(reps):
            p = f"stage{stage}.{u}"
            if u == 0:
                keys += [f"{p}.branch1.0.weight"] + [f"{p}.branch1.1.{s}" for s in bn]
                keys += [f"{p}.branch1.2.weight"] + [f"{p}.branch1.3.{s}" for s in bn]
            for conv, norm in ((0, 1), (3, 4), (5, 6)):
                keys += [f"{p}.branch2.{conv}.weight"] + [f"{p}.branch2.{norm}.{s}" for s in bn]
    keys += ["conv5.0.weight"] + [f"conv5.1.{s}" for s in bn]
    keys += ["fc.weight", "fc.bias"]
    return keys


@pytest.mark.parametrize("name", V2)
def test_v2_state_dict_keys_are_torchvision(name: str):
    assert list(build_model(name).state_dict().keys()) == _torchvision_v2_keys()


def test_v2_shapes_x1_0():
    sd = build_model("shufflenet_v2_x1_0").state_dict()
    assert tuple(sd["stage2.0.branch1.0.weight"].shape) == (24, 1, 3, 3)
    assert tuple(sd["stage2.0.branch2.0.weight"].shape) == (58, 24, 1, 1)
    assert tuple(sd["stage3.1.branch2.0.weight"].shape) == (116, 116, 1, 1)
    assert tuple(sd["conv5.0.weight"].shape) == (1024, 464, 1, 1)
    assert tuple(sd["fc.weight"].shape) == (1000, 1024)


def test_weights_round_trip_and_num_classes_follow_file(tmp_path):
    m = build_model("shufflenet_v2_x0_5", num_classes=10, seed=5)
    path = tmp_path / "w.pth"
    torch.save(m.state_dict(), path)
    loaded = load_model("shufflenet_v2_x0_5", path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_missing_and_extra_keys_are_named(tmp_path):
    sd = build_model("shufflenet_v2_x0_5").state_dict()
    del sd["stage3.2.branch2.3.weight"]
    sd["stage9.bogus"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(EdgeError) as e:
        load_model("shufflenet_v2_x0_5", path)
    msg = str(e.value)
    assert "missing keys: stage3.2.branch2.3.weight" in msg
    assert "unexpected keys: stage9.bogus" in msg
    assert "\n" not in msg


def test_wrong_shape_is_named(tmp_path):
    sd = build_model("shufflenet_v2_x1_0").state_dict()
    path = tmp_path / "x1.pth"
    torch.save(sd, path)
    with pytest.raises(EdgeError, match=r"shape mismatch: stage2.0.branch1.2.weight \(file \(58, 24, 1, 1\), model \(24, 24, 1, 1\)\)"):
        load_model("shufflenet_v2_x0_5", path)


def test_corrupt_weights_file(tmp_path):
    m = build_model("shufflenet_v2_x0_5")
    path = tmp_path / "w.pth"
    torch.save(m.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeError, match="cannot read weights file"):
        load_model("shufflenet_v2_x0_5", path)
    with pytest.raises(EdgeError, match="weights file not found"):
        load_model("shufflenet_v2_x0_5", tmp_path / "nope.pth")


def test_random_weights_warn():
    with pytest.warns(UserWarning, match="seeded random initialisation"):
        load_model("shufflenet_v2_x0_5")
