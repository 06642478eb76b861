"""Megvii ShuffleNet-Series models: their state-dict layout, their forward, their checkpoints.

The second opinion here is a functional rewrite of megvii's forward (megvii-model/ShuffleNet-Series,
ShuffleNetV1/ and ShuffleNetV2/ network.py + blocks.py) that reads nothing but a state dict: it never
touches our modules, infers group counts from the weight shapes, and does megvii's shuffles, shortcuts
and AvgPool2d(7) head literally. Our models must give the same numbers (fp32, eval mode, random weights
and random BatchNorm statistics).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shufflenet_edge.cli import main
from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.models import build_model, get_info, list_models
from shufflenet_edge.models.common import channel_shuffle, randomize_batchnorm
from shufflenet_edge.models.weights import load_model

V1 = list_models("megvii_v1")
V2 = list_models("megvii_v2")

# megvii's network.py tables: (stem, stage2, stage3, stage4) for V1 per (g, width); (+ conv_last) for V2.
V1_TABLE = {
    (3, "0_5"): (12, 120, 240, 480), (3, "1_0"): (24, 240, 480, 960),
    (3, "1_5"): (24, 360, 720, 1440), (3, "2_0"): (48, 480, 960, 1920),
    (8, "0_5"): (16, 192, 384, 768), (8, "1_0"): (24, 384, 768, 1536),
    (8, "1_5"): (24, 576, 1152, 2304), (8, "2_0"): (48, 768, 1536, 3072),
}
V2_TABLE = {
    "0_5": (24, 48, 96, 192, 1024), "1_0": (24, 116, 232, 464, 1024),
    "1_5": (24, 176, 352, 704, 1024), "2_0": (24, 244, 488, 976, 2048),
}
# #Params (millions, one decimal) and FLOPs (M) as megvii's READMEs publish them.
README_V1 = {
    (3, "0_5"): (0.7, 38), (3, "1_0"): (1.9, 138), (3, "1_5"): (3.4, 292), (3, "2_0"): (5.4, 524),
    (8, "0_5"): (1.0, 40), (8, "1_0"): (2.4, 138), (8, "1_5"): (4.3, 290), (8, "2_0"): (6.5, 522),
}
README_V2 = {"0_5": (1.4, 41), "1_0": (2.3, 146), "1_5": (3.5, 299), "2_0": (7.4, 591)}


def _v1_key(name: str) -> tuple[int, str]:
    # megvii_shufflenet_v1_x1_0_g3 -> (3, "1_0")
    parts = name.split("_")
    return int(parts[-1][1:]), f"{parts[-3][1:]}_{parts[-2]}"


def _v2_key(name: str) -> str:
    parts = name.split("_")
    return f"{parts[-2][1:]}_{parts[-1]}"


# ---------------------------------------------------------------------------------------------------------
# What megvii's constructors create: every state-dict key and shape (without the DataParallel prefix).


def _bn_keys(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def megvii_v1_keys(g: int, width: str, n_class: int = 1000) -> dict[str, tuple[int, ...]]:
    stem, *stages = V1_TABLE[(g, width)]
    keys = {"first_conv.0.weight": (stem, 3, 3, 3), **_bn_keys("first_conv.1", stem)}
    inp, idx = stem, 0
    for stage, (repeats, oup) in enumerate(zip((4, 8, 4), stages)):
        for i in range(repeats):
            stride = 2 if i == 0 else 1
            first_group = stage == 0 and i == 0
            mid = oup // 4
            outputs = oup - inp if stride == 2 else oup
            p = f"features.{idx}"
            keys[f"{p}.branch_main_1.0.weight"] = (mid, inp // (1 if first_group else g), 1, 1)
            keys.update(_bn_keys(f"{p}.branch_main_1.1", mid))
            keys[f"{p}.branch_main_1.3.weight"] = (mid, 1, 3, 3)
            keys.update(_bn_keys(f"{p}.branch_main_1.4", mid))
            keys[f"{p}.branch_main_2.0.weight"] = (outputs, mid // g, 1, 1)
            keys.update(_bn_keys(f"{p}.branch_main_2.1", outputs))
            inp, idx = oup, idx + 1
    keys["classifier.0.weight"] = (n_class, stages[-1])
    return keys


def megvii_v2_keys(width: str, n_class: int = 1000) -> dict[str, tuple[int, ...]]:
    stem, *stages, last = V2_TABLE[width]
    keys = {"first_conv.0.weight": (stem, 3, 3, 3), **_bn_keys("first_conv.1", stem)}
    channels, idx = stem, 0
    for repeats, oup in zip((4, 8, 4), stages):
        for i in range(repeats):
            inp = channels if i == 0 else channels // 2  # megvii passes input_channel // 2 for stride 1
            mid, outputs = oup // 2, oup - inp
            p = f"features.{idx}"
            keys[f"{p}.branch_main.0.weight"] = (mid, inp, 1, 1)
            keys.update(_bn_keys(f"{p}.branch_main.1", mid))
            keys[f"{p}.branch_main.3.weight"] = (mid, 1, 3, 3)
            keys.update(_bn_keys(f"{p}.branch_main.4", mid))
            keys[f"{p}.branch_main.5.weight"] = (outputs, mid, 1, 1)
            keys.update(_bn_keys(f"{p}.branch_main.6", outputs))
            if i == 0:
                keys[f"{p}.branch_proj.0.weight"] = (inp, 1, 3, 3)
                keys.update(_bn_keys(f"{p}.branch_proj.1", inp))
                keys[f"{p}.branch_proj.2.weight"] = (inp, inp, 1, 1)
                keys.update(_bn_keys(f"{p}.branch_proj.3", inp))
            channels, idx = oup, idx + 1
    keys["conv_last.0.weight"] = (last, stages[-1], 1, 1)
    keys.update(_bn_keys("conv_last.1", last))
    keys["classifier.0.weight"] = (n_class, last)
    return keys


# ---------------------------------------------------------------------------------------------------------
# megvii's forward, functional, from a state dict.


def _conv(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    w = sd[f"{p}.weight"]
    return F.conv2d(x, w, None, stride, w.shape[-1] // 2, 1, x.shape[1] // w.shape[1])


def _bn(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.1, 1e-5)


def _head(sd: dict[str, torch.Tensor], x: torch.Tensor, pool: str) -> torch.Tensor:
    c = x.shape[1]
    x = F.avg_pool2d(x, 7) if pool == "megvii" else x.mean((2, 3), keepdim=True)
    return F.linear(x.contiguous().view(-1, c), sd["classifier.0.weight"])


def megvii_v1_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, group: int, pool: str = "megvii") -> torch.Tensor:
    x = F.relu(_bn(sd, "first_conv.1", _conv(sd, "first_conv.0", x, 2)))
    x = F.max_pool2d(x, 3, 2, 1)
    i = 0
    while f"features.{i}.branch_main_1.0.weight" in sd:
        p = f"features.{i}"
        stride = 2 if i in (0, 4, 12) else 1
        old = x
        y = F.relu(_bn(sd, f"{p}.branch_main_1.1", _conv(sd, f"{p}.branch_main_1.0", old)))
        y = _bn(sd, f"{p}.branch_main_1.4", _conv(sd, f"{p}.branch_main_1.3", y, stride))
        if group > 1:
            b, c, h, w = y.shape
            y = y.reshape(b, c // group, group, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, h, w)
        y = _bn(sd, f"{p}.branch_main_2.1", _conv(sd, f"{p}.branch_main_2.0", y))
        x = F.relu(y + old) if stride == 1 else torch.cat((F.avg_pool2d(old, 3, 2, 1), F.relu(y)), 1)
        i += 1
    return _head(sd, x, pool)


def megvii_v2_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, pool: str = "megvii") -> torch.Tensor:
    def main(p: str, t: torch.Tensor, stride: int) -> torch.Tensor:
        t = F.relu(_bn(sd, f"{p}.branch_main.1", _conv(sd, f"{p}.branch_main.0", t)))
        t = _bn(sd, f"{p}.branch_main.4", _conv(sd, f"{p}.branch_main.3", t, stride))
        return F.relu(_bn(sd, f"{p}.branch_main.6", _conv(sd, f"{p}.branch_main.5", t)))

    x = F.relu(_bn(sd, "first_conv.1", _conv(sd, "first_conv.0", x, 2)))
    x = F.max_pool2d(x, 3, 2, 1)
    i = 0
    while f"features.{i}.branch_main.0.weight" in sd:
        p = f"features.{i}"
        if f"{p}.branch_proj.0.weight" in sd:  # stride 2, no shuffle
            proj = _bn(sd, f"{p}.branch_proj.1", _conv(sd, f"{p}.branch_proj.0", x, 2))
            proj = F.relu(_bn(sd, f"{p}.branch_proj.3", _conv(sd, f"{p}.branch_proj.2", proj)))
            x = torch.cat((proj, main(p, x, 2)), 1)
        else:  # stride 1: megvii's channel_shuffle, then x[0] passes and x[1] goes through the branch
            b, c, h, w = x.shape
            t = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
            x = torch.cat((t[0], main(p, t[1], 1)), 1)
        i += 1
    x = F.relu(_bn(sd, "conv_last.1", _conv(sd, "conv_last.0", x)))
    return _head(sd, x, pool)  # Dropout(0.2) of 2.0x: identity in eval mode


def _random_model(name: str, num_classes: int = 1000, seed: int = 1) -> nn.Module:
    return randomize_batchnorm(build_model(name, num_classes=num_classes, seed=seed), seed=seed + 1).eval()


def _reference(name: str, sd: dict[str, torch.Tensor], x: torch.Tensor, pool: str = "megvii") -> torch.Tensor:
    if name in V1:
        return megvii_v1_forward(sd, x, get_info(name).groups or 1, pool)
    return megvii_v2_forward(sd, x, pool)


def _assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    err = (got - want).abs().max().item()
    assert err <= 1e-6, f"{what}: max abs error {err:.3g}, mean {(got - want).abs().mean().item():.3g}"


# ---------------------------------------------------------------------------------------------------------


def test_registry_entries():
    assert V1 == [f"megvii_shufflenet_v1_x{w}_g{g}" for w in ("0_5", "1_0", "1_5", "2_0") for g in (3, 8)]
    assert V2 == [f"megvii_shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
    for n in V1 + V2:
        info = get_info(n)
        # the graph-level fold takes megvii's shuffles (V1's inverse order, V2's even/odd split)
        assert info.foldable and info.family in ("megvii_v1", "megvii_v2")
    assert get_info("shufflenet_v2_x1_0").foldable


@pytest.mark.parametrize("name", V1)
def test_v1_state_dict_is_megvii_layout(name: str):
    got = {k: tuple(v.shape) for k, v in build_model(name, num_classes=10).state_dict().items()}
    assert got == megvii_v1_keys(*_v1_key(name), n_class=10)


@pytest.mark.parametrize("name", V2)
def test_v2_state_dict_is_megvii_layout(name: str):
    got = {k: tuple(v.shape) for k, v in build_model(name, num_classes=10).state_dict().items()}
    assert got == megvii_v2_keys(_v2_key(name), n_class=10)


@pytest.mark.parametrize("name", V1 + V2)
def test_forward_equals_megvii_at_224(name: str):
    """224: megvii's AvgPool2d(7) is the head; batch 2 also checks their shuffles' batch handling."""
    model = _random_model(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _assert_same(model(x), _reference(name, model.state_dict(), x), name)


@pytest.mark.parametrize("name", ["megvii_shufflenet_v1_x0_5_g3", "megvii_shufflenet_v1_x1_0_g8", "megvii_shufflenet_v2_x0_5",
                                  "megvii_shufflenet_v2_x2_0"])
@pytest.mark.parametrize("size", [64, 256])
def test_other_sizes_take_the_global_mean(name: str, size: int):
    """Documented behaviour off 224: megvii's body, then the global mean instead of AvgPool2d(7)."""
    model = _random_model(name, num_classes=10)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        _assert_same(model(x), _reference(name, model.state_dict(), x, pool="mean"), f"{name} at {size}")


@pytest.mark.parametrize("name", V1 + V2)
def test_parameter_counts_and_flops_match_readme(name: str):
    from shufflenet_edge.complexity import analyze

    params_m, flops_m = README_V1[_v1_key(name)] if name in V1 else README_V2[_v2_key(name)]
    res = analyze(build_model(name), 224)["total"]
    assert round(res["params"] / 1e6, 1) == params_m, f"{name}: {res['params']:,} params vs README {params_m}M"
    assert abs(res["madds"] / 1e6 - flops_m) < 1.0, f"{name}: {res['madds'] / 1e6:.1f}M multiply-adds vs README {flops_m}M"
    assert get_info(name).paper_mflops == flops_m


def test_v1_shuffle_is_torchvisions_inverse():
    from shufflenet_edge.models.megvii import megvii_v1_shuffle

    x = torch.arange(24.0).reshape(1, 24, 1, 1)
    y = megvii_v1_shuffle(x, 3)
    assert y.flatten()[:6].tolist() == [0, 3, 6, 9, 12, 15]  # channel j*(C/g)+i <- i*g+j
    assert torch.equal(channel_shuffle(y, 3), x) and torch.equal(megvii_v1_shuffle(channel_shuffle(x, 3), 3), x)
    assert not torch.equal(y, channel_shuffle(x, 3))


def test_v2_split_is_even_odd():
    from shufflenet_edge.models.megvii import megvii_v2_split

    x = torch.randn(3, 8, 2, 2)
    a, b = megvii_v2_split(x)
    assert torch.equal(a, x[:, 0::2]) and torch.equal(b, x[:, 1::2])


def test_dropout_only_in_v2_2x():
    for n in V2:
        d = build_model(n).dropout
        assert (d is not None and d.p == 0.2) if n.endswith("x2_0") else d is None


# ---------------------------------------------------------------------------------------------------------
# Checkpoints in megvii's file layout.


def _save_megvii(model: nn.Module, path: Path, prefix: str = "module.", wrap: bool = True, drop: str | None = None) -> Path:
    sd = {prefix + k: v for k, v in model.state_dict().items() if drop is None or not k.endswith(drop)}
    torch.save({"state_dict": sd} if wrap else sd, path)
    return path


@pytest.mark.parametrize("name", ["megvii_shufflenet_v1_x0_5_g8", "megvii_shufflenet_v2_x0_5"])
def test_megvii_checkpoint_loads_unchanged(tmp_path: Path, name: str):
    src = _random_model(name, num_classes=10)
    path = _save_megvii(src, tmp_path / "checkpoint-300000.pth.tar")
    loaded = load_model(name, path)  # num_classes follows the file's classifier.0.weight
    want = src.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), src(x))


def test_other_megvii_file_variants_load(tmp_path: Path):
    src = _random_model("megvii_shufflenet_v2_x0_5", num_classes=5)
    want = src.state_dict()
    for path in (_save_megvii(src, tmp_path / "plain.pth", prefix="", wrap=False),  # their model.mdl
                 _save_megvii(src, tmp_path / "old.pth", drop="num_batches_tracked")):  # pre-0.4.1 BatchNorm
        got = load_model("megvii_shufflenet_v2_x0_5", path).state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want if not k.endswith("num_batches_tracked")), path


@pytest.mark.parametrize(("megvii", "asked"), [
    ("megvii_shufflenet_v2_x0_5", "shufflenet_v2_x1_0"),
    ("megvii_shufflenet_v1_x1_0_g8", "shufflenet_v1_x1_0_g3"),
    ("megvii_shufflenet_v1_x0_5_g3", "shufflenet_v2_x0_5"),
    ("megvii_shufflenet_v1_x2_0_g3", "megvii_shufflenet_v2_x2_0"),
])
def test_megvii_checkpoint_with_wrong_family_names_the_entry(tmp_path: Path, megvii: str, asked: str):
    path = _save_megvii(build_model(megvii), tmp_path / "m.pth")
    with pytest.raises(UsageError) as e:
        load_model(asked, path)
    msg = str(e.value)
    assert "\n" not in msg and f"--model {megvii}" in msg and "megvii" in msg and asked in msg


def test_torchvision_file_with_megvii_name_names_the_entry(tmp_path: Path):
    path = tmp_path / "tv.pth"
    torch.save(build_model("shufflenet_v2_x1_5").state_dict(), path)
    with pytest.raises(UsageError, match=r"torchvision-layout .* use --model shufflenet_v2_x1_5$"):
        load_model("megvii_shufflenet_v2_x1_5", path)


def test_megvii_width_mismatch_names_shapes_and_fit(tmp_path: Path):
    path = _save_megvii(build_model("megvii_shufflenet_v2_x0_5"), tmp_path / "m.pth")
    with pytest.raises(EdgeError, match=r"shape mismatch: .*\(its tensor shapes fit megvii_shufflenet_v2_x0_5\)$"):
        load_model("megvii_shufflenet_v2_x1_0", path)


def test_cli_wrong_family_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _save_megvii(build_model("megvii_shufflenet_v2_x1_0"), tmp_path / "m.pth")
    out = tmp_path / "o.onnx"
    rc = main(["export", "--target", "onnx", "--model", "shufflenet_v2_x1_0", "--weights", str(path),
               "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "megvii_shufflenet_v2_x1_0" in err and "Traceback" not in err
    assert not out.exists()


# test_folded_forms_are_refused was removed: the graph-level fold folds megvii's models (ONNX and TFLite
# folded forms of megvii V2 are tested in tests/test_api.py and tests/test_graph_fold.py).


def test_info_and_models(capsys: pytest.CaptureFixture[str]):
    assert main(["info", "megvii_shufflenet_v2_x1_0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["total"]["params"] == sum(p.numel() for p in build_model("megvii_shufflenet_v2_x1_0").parameters())
    rows = {r["name"]: r for r in res["rows"]}
    assert {"first_conv", "features.0", "features.15", "conv_last", "globalpool", "classifier"} <= set(rows)
    # The in-unit shuffle is memory traffic, as torchvision's is: same MAC per stride-1 unit.
    assert main(["info", "shufflenet_v2_x1_0", "--json"]) == 0
    tv = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["features.1"]["mac"] == tv["stage2.1"]["mac"]
    assert main(["info", "megvii_shufflenet_v1_x0_5_g3", "--input-size", "64"]) == 0
    assert "megvii README: 38M" not in capsys.readouterr().out  # the published figure is for 224 only
    assert main(["models", "--family", "megvii_v1"]) == 0
    assert capsys.readouterr().out.count("megvii_shufflenet_v1_") == 8


# ---------------------------------------------------------------------------------------------------------
# Export in reference form, through the CLI with a megvii-layout --weights file.


@pytest.fixture(scope="session")
def megvii_onnx(session_tmp: Path) -> dict[str, tuple[Path, Path]]:
    """V2 0.5x (--form reference) and V1 0.5x g3 (--form auto: the graph-level fold) at 64, 10 classes."""
    out: dict[str, tuple[Path, Path]] = {}
    for name, form in (("megvii_shufflenet_v2_x0_5", "reference"), ("megvii_shufflenet_v1_x0_5_g3", "auto")):
        weights = _save_megvii(_random_model(name, num_classes=10), session_tmp / f"{name}.pth.tar")
        onnx_path = session_tmp / f"{name}.onnx"
        rc = main(["export", "--target", "onnx", "--model", name, "--weights", str(weights), "--form", form,
                   "--input-size", "64", "--out", str(onnx_path), "--quiet"])
        assert rc == 0
        out[name] = (onnx_path, weights)
    return out


@pytest.mark.parametrize("name", ["megvii_shufflenet_v2_x0_5", "megvii_shufflenet_v1_x0_5_g3"])
def test_onnx_reference_form_matches_torch(megvii_onnx: dict[str, tuple[Path, Path]], name: str):
    from shufflenet_edge.runtimes.runner import OnnxRunner

    onnx_path, weights = megvii_onnx[name]
    side = json.loads(Path(str(onnx_path) + ".json").read_text())
    # V1 went through --form auto: the graph-level fold folds it (it fell back to reference before)
    assert side["form"] == ("reference" if "v2" in name else side["form_timings"]["chosen"])
    assert side["num_classes"] == 10 and not side["random_weights"]
    model = load_model(name, weights)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = model(x).numpy()
    runner = OnnxRunner(str(onnx_path), threads=1)
    got = np.concatenate([runner(x[i : i + 1].numpy()) for i in range(len(x))])
    err = float(np.abs(got - want).max())
    assert err <= 1e-4 * max(1.0, float(np.abs(want).max())), f"{name}: ONNX vs torch max abs error {err:.3g}"
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.slow
def test_tflite_reference_form_matches_torch(session_tmp: Path):
    """litert-torch's conversion of megvii V2's in-unit shuffle (rank-5 reshape, select) is exact in fp32."""
    from shufflenet_edge.runtimes.runner import TFLiteRunner

    from shufflenet_edge.api import export as se_export

    name = "megvii_shufflenet_v2_x0_5"
    weights = _save_megvii(_random_model(name, num_classes=10), session_tmp / "tfl.pth.tar")
    out = session_tmp / "megvii_v2.tflite"
    side = se_export(name, out, target="tflite", weights=str(weights), form="reference", input_size=64, show_progress=False)
    assert side["form"] == "reference" and side["checks"]["vs_torch_max_abs_error"] <= side["checks"]["tolerance"]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want = load_model(name, weights)(x).numpy()
    r = TFLiteRunner(str(out), threads=1)
    r.invoke(r.prepare(np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1))))
    got = r.output()
    assert float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_megvii_models_carry_megvii_preprocessing():
    """megvii trained on BGR images in 0..255 without normalization (their ToBGRTensor): the registry says so,
    so sidecars, calibration and parity feed those models what they were trained on."""
    import numpy as np

    from shufflenet_edge.data import Preprocess

    p = Preprocess.for_model("megvii_shufflenet_v2_x0_5", 224)
    assert p.channel_order == "bgr" and p.mean == (0.0, 0.0, 0.0)
    img = np.zeros((224, 224, 3), np.uint8)
    img[..., 0], img[..., 2] = 200, 10  # R = 200, B = 10
    x = p.normalize(img)
    assert np.allclose(x[:, 0, 0], [10.0, 0.0, 200.0], atol=1e-3)  # B, G, R in 0..255
    assert Preprocess.from_dict(p.to_dict()) == p
    assert Preprocess.for_model("shufflenet_v2_x0_5", 224) == Preprocess.for_size(224)
