"""int8 tools: the loss report instead of a refusal, the export gate, per-layer SQNR naming a planted
unit, --keep-float (TFLite and ONNX), calibration choices, QAT.

One planted model is shared by the session (the digits-trained V2 0.5x at 32x32 with an outlier channel in
stage3.2: `shufflenet_edge.outliers`), and every export is made once (session fixtures); conversions cost 10-60 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from digits_fixtures import *  # noqa: F403
from digits_fixtures import INPUT_SIZE, _shared_dir

from shufflenet_edge.cli import main
from shufflenet_edge.errors import UsageError

MODEL = "shufflenet_v2_x0_5"
PLANTED = "stage3.2"


# ------------------------------------------------------------------------------------------ no conversion


def test_keep_float_names_and_globs():
    from shufflenet_edge.export.int8_options import resolve_keep_float

    from shufflenet_edge.models.weights import load_model

    m = load_model(MODEL, None, num_classes=10, warn=False)
    assert resolve_keep_float(m, ["stage3.1", "fc"]) == ["stage3.1", "fc"]
    assert resolve_keep_float(m, ["stage4.*"]) == ["stage4.0", "stage4.1", "stage4.2", "stage4.3"]
    assert resolve_keep_float(m, ["conv1,conv5"]) == ["conv1", "conv5"]
    with pytest.raises(UsageError) as e:
        resolve_keep_float(m, ["stage9.1"])
    msg = str(e.value)
    assert "\n" not in msg and "stage9.1" in msg and "stage3.7" in msg and "conv1" in msg and "fc" in msg


def test_bad_unit_name_cli_is_one_line(tmp_path, capsys):
    rc = main(["export", "--model", MODEL, "--input-size", "32", "--int8", "--keep-float", "stage3.99",
               "--out", str(tmp_path / "m.tflite"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "stage3.99" in err and "valid names" in err and "stage2.0" in err
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("flags", [["--keep-float", "fc"], ["--calib-method", "minmax"], ["--calib-images", "8"],
                                   ["--int8-weights", "per-tensor"], ["--min-psnr", "30"]])
def test_int8_flags_need_int8(tmp_path, capsys, flags):
    rc = main(["export", "--model", MODEL, "--input-size", "32", "--out", str(tmp_path / "m.tflite"), "--quiet", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--int8" in err and len(err.splitlines()) == 1


def test_calib_method_choices_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--model", MODEL, "--int8", "--calib-method", "kl", "--out", str(tmp_path / "m.onnx")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "minmax" in err[-1] and "percentile" in err[-1]


def test_quantization_configs():
    from shufflenet_edge.export.tflite_quantize import quantization_config
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    def ctr(cfg):
        c = cfg.input_activation.observer_or_fake_quant_ctr
        return c.p.func if hasattr(c, "p") else c

    assert ctr(quantization_config("histogram")) is HistogramObserver  # the default is litert-torch's own
    assert ctr(quantization_config("minmax")) is MinMaxObserver
    assert ctr(quantization_config("percentile")).__name__ == "PercentileObserver"
    assert quantization_config(per_channel=False).weight.qscheme == torch.per_tensor_symmetric
    assert quantization_config(per_channel=True).weight.qscheme == torch.per_channel_symmetric
    with pytest.raises(ValueError, match="minmax, histogram, percentile"):
        quantization_config("kl")


def test_percentile_observer_clips_outliers():
    from shufflenet_edge.export.tflite_quantize import _percentile_observer

    obs = _percentile_observer()(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine,
                                 percentile=99.0)
    x = torch.linspace(0, 1, 10000)
    x[-1] = 1000.0  # one outlier
    obs(x)
    assert float(obs.max_val) < 1.5 and float(obs.min_val) >= 0.0


def test_gate_refuses_with_remedies():
    from shufflenet_edge.export import int8_report
    from shufflenet_edge.parity import ParityError, Thresholds

    rng = np.random.default_rng(0)
    want = rng.normal(size=(16, 10))
    got = want + rng.normal(scale=0.5, size=want.shape)
    rep = int8_report.loss_report(got, want, want, "16 test inputs", {"first_weak_point": "stage3.2", "rows": []})
    assert rep["below_default_gate"]
    from shufflenet_edge.export.int8_search import Budget

    assert Budget().record(Budget().judge((), [got], [want])) is None  # no gate asked: report only
    b = Budget(Thresholds(min_psnr=30.0))
    rep["gate"] = b.record(b.judge((), [got], [want]))
    e = int8_report.refusal(rep)
    assert isinstance(e, ParityError)
    msg = str(e)
    assert "PSNR" in msg and "--keep-float stage3.2" in msg and "QAT" in msg and "--calib-method" in msg


def test_plant_outlier_keeps_float_function(digits_data, trained_v2):
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.outliers import plant_outlier

    m = load_model(MODEL, str(trained_v2[0]), num_classes=10, warn=False)
    x = torch.from_numpy(digits_data[1].x[:32])
    with torch.no_grad():
        before = m(x)
        plant_outlier(m, PLANTED, 0, 512.0)
        after = m(x)
    assert torch.allclose(before, after, atol=1e-3 * float(before.abs().max()))
    with pytest.raises(ValueError, match="positive"):
        plant_outlier(m, PLANTED, 0, -1.0)


# ------------------------------------------------------------------------------------------ shared exports


@pytest.fixture(scope="session")
def planted(trained_v2, digits_data, tmp_path_factory):
    """(weights path, calibration folder) of the planted model."""
    from shufflenet_edge import digits
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.outliers import plant_outlier

    d = _shared_dir(tmp_path_factory)
    w = d / "v2_digits_outlier.pth"
    if not w.exists():
        m = load_model(MODEL, str(trained_v2[0]), num_classes=10, warn=False)
        torch.save(plant_outlier(m, PLANTED, 0, 512.0).state_dict(), w)
    calib = d / "calib_train64"
    if not calib.exists():
        digits.write_calibration_folder(digits_data[0], calib, 64)
    return w, calib


@pytest.fixture(scope="session")
def planted_exports(planted, tmp_path_factory):
    """Lazily made exports of the planted model, each once per session."""
    d = _shared_dir(tmp_path_factory)
    w, calib = planted
    made: dict[str, Path] = {}

    def get(key: str) -> Path:
        if key in made:
            return made[key]
        from shufflenet_edge.api import export as se_export

        target, _, variant = key.partition(":")
        kw = {"keep_float": [PLANTED]} if variant == "keep" else {"calib_method": "percentile", "int8_weights": "per-tensor",
                                                                   "calib_images": 32} if variant == "choices" else {}
        path = d / f"planted_{target}_{variant or 'default'}.{target}"
        if target == "onnx":
            se_export(MODEL, path, target="onnx", weights=str(w), input_size=INPUT_SIZE, form="gather", int8=True, calib=str(calib),
                        show_progress=False, **kw)
        else:
            se_export(MODEL, path, target="tflite", weights=str(w), input_size=INPUT_SIZE, form="delegate", precision="int8",
                          calib=str(calib), show_progress=False, **kw)
        made[key] = path
        return path

    return get


def _sidecar(p: Path) -> dict:
    return json.loads(Path(str(p) + ".json").read_text())


def _accuracy(path: Path, digits_data) -> float:
    from shufflenet_edge.export.artifact import Artifact

    x, y = digits_data[1].x[:200], digits_data[1].y[:200]
    out = Artifact.open(path).run(x)[0]
    return float((out.argmax(1) == y).mean())


def test_onnx_int8_reports_loss_and_names_planted_unit(planted_exports, planted, digits_data):
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.per_layer import diagnose

    p = planted_exports("onnx")
    assert p.exists()  # reported, not refused
    loss = _sidecar(p)["checks"]["int8_loss"]
    assert loss["below_default_gate"] and loss["first_weak_point"] == PLANTED
    m = load_model(MODEL, str(planted[0]), num_classes=10, warn=False)
    rep = diagnose(str(p), m, digits_data[1].x[:4], layout="nchw", sidecar={"precision": "int8"})
    assert rep.first_weak_point == PLANTED
    row = {r.point: r for r in rep.rows}
    assert row["stage3.1"].sqnr_db > 20 > row[PLANTED].sqnr_db


def test_onnx_keep_float(planted_exports, digits_data):
    p = planted_exports("onnx:keep")
    side = _sidecar(p)
    assert side["keep_float"] == [PLANTED] and side["float_nodes"]
    loss = side["checks"]["int8_loss"]
    assert loss["artifact_vs_float"]["psnr_db"] > _sidecar(planted_exports("onnx"))["checks"]["int8_loss"]["artifact_vs_float"]["psnr_db"] + 5
    assert _accuracy(p, digits_data) > _accuracy(planted_exports("onnx"), digits_data) + 0.1


def test_onnx_calibration_choices(planted_exports):
    side = _sidecar(planted_exports("onnx:choices"))
    assert side["calibration_method"] == "percentile" and side["int8_weights"] == "per-tensor"
    assert "32 images" in side["calibration"]


def test_tflite_int8_reports_instead_of_refusing(planted_exports, capsys):
    p = planted_exports("tflite")
    side = _sidecar(p)
    loss = side["checks"]["int8_loss"]
    assert loss["below_default_gate"] and loss["first_weak_point"] == PLANTED
    assert loss["simulation_vs_float"]["psnr_db"] < 30 and loss["artifact_vs_float"]["psnr_db"] < 30
    assert side["keep_float"] == [] and side["calibration_method"] == "histogram"


def test_tflite_keep_float_restores_and_inspect_shows_island(planted_exports, digits_data):
    from shufflenet_edge.export.inspect import inspect_tflite

    p = planted_exports("tflite:keep")
    side = _sidecar(p)
    assert side["keep_float"] == [PLANTED]
    loss = side["checks"]["int8_loss"]
    assert not loss["below_default_gate"], loss
    acc_keep, acc_default = _accuracy(p, digits_data), _accuracy(planted_exports("tflite"), digits_data)
    assert acc_keep > acc_default + 0.1
    info = inspect_tflite(p, analyze_gpu=False)
    assert info["float_islands"] and info["float_islands"][0]["float_ops"] >= 2


def test_parity_per_layer_int8_cli(planted_exports, digits_folder, capsys):
    p = planted_exports("onnx")
    rc = main(["parity", str(p), "--images", str(digits_folder), "--limit", "20", "--per-layer", "--report-only"])
    out = capsys.readouterr().out
    assert rc == 0 and "SQNR dB" in out and f"int8 loses the signal at {PLANTED}" in out


def test_qat_prepare_train_convert(trained_v2, digits_data):
    from shufflenet_edge import qat
    from shufflenet_edge.models.weights import load_model

    m = load_model(MODEL, str(trained_v2[0]), num_classes=10, warn=False)
    tr, te = digits_data
    q = qat.prepare(m, torch.from_numpy(tr.x[:1]))
    assert qat.is_qat_model(q)
    opt = torch.optim.SGD(q.parameters(), lr=1e-3, momentum=0.9)
    for s in range(0, 128, 32):
        loss = torch.nn.functional.cross_entropy(q(torch.from_numpy(tr.x[s : s + 32])), torch.from_numpy(tr.y[s : s + 32]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sim = qat.convert(q)
    acc = float((qat.evaluate(sim, te.x[:100]).argmax(1) == te.y[:100]).mean())
    assert acc > 0.9
