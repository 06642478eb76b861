"""The float-unit search of an int8 export (export/int8_search.py): its ranking and its greedy search on a made-up
sensitivity table (no conversion), and on the planted digits model through the export (one conversion per export:
the fully-int8 one, then the chosen set's)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from digits_fixtures import *  # noqa: F403
from digits_fixtures import INPUT_SIZE, _shared_dir
from shufflenet_edge.export.int8_search import Trial, rank_units, search, summary

UNITS = ["conv1", "u1", "u2", "u3", "u4", "fc"]


def _table(noise_db: dict[str, float], need: float):
    """A model whose output noise is the sum of each int8 unit's noise power: PSNR = -10 log10(sum); `need` dB."""
    calls: list[tuple[str, ...]] = []

    def evaluate(units: tuple[str, ...]) -> Trial:
        calls.append(units)
        total = sum(10 ** (-db / 10) for u, db in noise_db.items() if u not in units)
        psnr = -10 * math.log10(total) if total > 0 else math.inf
        return Trial(units, psnr, () if psnr >= need else (f"PSNR {psnr:.1f} dB < {need} dB",))

    return evaluate, calls


def test_rank_by_added_noise():
    # noise-to-signal rises 0.001 -> 0.002 at u1 (adds 0.001), -> 0.1 at u2 (adds 0.098), -> 0.11 at u3
    sq = {"conv1": 30.0, "u1": 10 * math.log10(1 / 0.002), "u2": 10.0, "u3": 10 * math.log10(1 / 0.11), "u4": None}
    order, why = rank_units(UNITS, sq)
    assert order[0] == "u2" and order[1] == "u3" and "SQNR" in why
    assert order[-2:] == ["fc", "u4"]  # unmeasured: from the output backwards
    order, why = rank_units(UNITS, {})
    assert order == list(reversed(UNITS)) and "backwards" in why


def test_one_unit_found_without_greedy():
    ev, calls = _table({"conv1": 50, "u1": 45, "u2": 20, "u3": 40, "u4": 45, "fc": 50}, need=30)
    res = search(ev, ["u3", "u2", "u1", "u4", "conv1", "fc"], forward=UNITS, max_tries=8)
    assert res.chosen is not None and res.chosen.units == ("u2",) and res.chosen.meets
    assert len(calls) <= 3  # the refinement alone found it


def test_greedy_then_pruned_to_the_fewest():
    # two bad units, ranked badly: u4 looks worst by the ranking but barely matters
    ev, calls = _table({"conv1": 60, "u1": 60, "u2": 25, "u3": 26, "u4": 40, "fc": 60}, need=30)
    res = search(ev, ["u4", "u1", "fc", "u2", "u3", "conv1"], forward=UNITS, max_tries=12)
    assert res.chosen is not None and set(res.chosen.units) == {"u2", "u3"}
    assert len(res.trials) <= 12 and all(t.units == tuple(sorted(t.units, key=UNITS.index)) for t in res.trials)


def test_budget_spent_is_no_choice_and_user_units_stay():
    ev, calls = _table({"conv1": 20, "u1": 20, "u2": 20, "u3": 20, "u4": 20, "fc": 20}, need=40)
    res = search(ev, list(UNITS), forward=UNITS, max_tries=4)
    assert res.chosen is None and len(calls) == 4
    ev, calls = _table({"conv1": 60, "u1": 60, "u2": 25, "u3": 60, "u4": 60, "fc": 22}, need=30)
    res = search(ev, ["u2", "u1"], base=["fc"], forward=UNITS, max_tries=4)
    assert res.chosen is not None and res.chosen.units == ("u2", "fc") and all("fc" in c for c in calls)
    rec = res.to_dict()
    assert rec["chosen"] == ["u2", "fc"] and "kept in float: u2 fc" in summary(rec)


def test_budget_judges_every_output_labels_and_the_users_function():
    import numpy as np

    from shufflenet_edge import AccuracyBudget, Thresholds
    from shufflenet_edge.errors import EdgeError
    from shufflenet_edge.export.int8_search import Budget

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 5))
    y = logits.argmax(1)
    heat = rng.normal(size=(40, 2, 4, 4))
    noisy = logits + rng.normal(scale=2.0, size=logits.shape)  # many top-1 flips
    b = Budget(Thresholds(min_psnr=20.0, max_accuracy_drop=5.0), labels=y,
               validation=AccuracyBudget(lambda predict: float(predict(None)), max_drop=0.1, name="mAP"),
               float_score=0.5)
    t = b.judge(("u1",), [noisy, heat + 0.5], [logits, heat], predict=lambda x: 0.35)
    f = " | ".join(t.failures)
    assert "output 0: " in f and "top-1 accuracy drop" in f and "output 1: PSNR" in f
    assert "mAP drop 0.15 > 0.1 (float 0.5, int8 0.35)" in f and t.score == 0.35 and t.top1_accuracy < 1.0
    rec = b.record(t)
    assert rec["validation"] == {"name": "mAP", "max_drop": 0.1, "float": 0.5, "int8": 0.35}
    assert b.judge((), [logits, heat], [logits, heat], predict=lambda x: 0.45).meets
    assert Budget().record(t) is None and not Budget().any()

    def broken(predict):
        raise KeyError("boxes")

    with pytest.raises(EdgeError) as e:
        Budget.of(type("Q", (), {"gate": None, "budget": AccuracyBudget(broken, 0.01)})(), None, lambda x: [x])
    assert "validation function failed on the float model: KeyError" in str(e.value) and "\n" not in str(e.value)


def test_head_ends_are_candidates_before_their_unit_and_keep_float_takes_them():
    import torch
    import zoo

    from shufflenet_edge.errors import UsageError
    from shufflenet_edge.export.int8_options import head_ends, resolve_keep_float
    from shufflenet_edge.export.int8_search import with_head_ends

    m, shape = zoo.make_yolov5_lite()
    assert head_ends(m, torch.randn(shape)) == ["detect.m.0", "detect.m.1", "detect.m.2"]  # one per output
    m2, shape2 = zoo.make_nanodet_plus()
    assert head_ends(m2, torch.randn(shape2)) == ["head.gfl_cls"]  # one output fed by one conv per level
    assert with_head_ends(["p3", "detect", "stem"], ["detect.m.1"]) == ["p3", "detect.m.1", "detect", "stem"]
    assert resolve_keep_float(m, ["detect.m.1", "p3"]) == ["p3", "detect.m.1"]
    assert resolve_keep_float(m, ["detect.m.1", "detect"]) == ["detect"]  # the unit holds the layer
    with pytest.raises(UsageError, match="module path of a layer inside one"):
        resolve_keep_float(m, ["detect.nothing"])


def test_failing_outputs_rank_what_they_depend_on_first():
    import torch
    import zoo

    from shufflenet_edge.export.int8_options import head_ends, output_paths, unit_names
    from shufflenet_edge.export.int8_search import by_failing_outputs, failing_outputs

    m, shape = zoo.make_yolov5_lite()
    x = torch.randn(shape)
    units, ends = unit_names(m), head_ends(m, x)
    paths = output_paths(m, x, [*units, *ends])
    assert len(paths) == 3 and all(p[:2] == ["detect", f"detect.m.{k}"] for k, p in enumerate(paths))
    assert paths[2][2] == "c3_23" and paths[0][2] == "c3_17" and "c3_23" not in paths[0]  # P5's block feeds P5 only
    assert failing_outputs({"failures": ["output 0: PSNR 43.1 dB < 45 dB", "output 2: PSNR 41.8 dB < 45 dB"]}) == [0, 2]
    order = by_failing_outputs([*reversed(units), *ends], paths, [0, 2])
    assert order[:5] == ["detect", "detect.m.0", "detect.m.2", "c3_17", "c3_23"] and set(units) <= set(order)


def test_greedy_keeps_only_units_that_help_and_skips_layers_of_float_units():
    # u1 and fc do nothing; u3.conv sits inside u3: with u3 float it is never tried
    ev, calls = _table({"conv1": 60, "u1": 70, "u2": 28, "u3": 29, "u4": 60, "fc": 70, "u3.conv": 90}, need=30)
    res = search(ev, ["u1", "fc", "conv1", "u3", "u3.conv", "u2", "u4"], forward=[*UNITS, "u3.conv"], max_tries=12)
    assert res.chosen is not None and set(res.chosen.units) == {"u2", "u3"}
    assert not any("u3" in c and "u3.conv" in c for c in calls)
    assert not any("fc" in c and "u3" in c for c in calls)  # fc brought nothing: tried once, then left out


def test_budget_options_are_checked_before_any_conversion(tmp_path):
    from shufflenet_edge import AccuracyBudget, Int8Config, Thresholds
    from shufflenet_edge.errors import UsageError

    with pytest.raises(UsageError, match="--max-accuracy-drop needs labelled images"):
        Int8Config(gate=Thresholds(max_accuracy_drop=1.0))
    with pytest.raises(UsageError, match="give --images too"):
        Int8Config(labels="synsets.txt")
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(UsageError, match="no class sub-folders"):
        Int8Config(check_images=str(flat))
    with pytest.raises(UsageError, match="max_drop must be 0 or more"):
        AccuracyBudget(lambda p: 1.0, max_drop=-1)
    from shufflenet_edge import ExportConfig

    whole = Int8Config(budget=AccuracyBudget(lambda p: 1.0, 0.01), search_tries=3)
    cfg = ExportConfig.from_options("tflite", int8=whole)  # se.export(..., int8=Int8Config(budget=...))
    assert cfg.precision == "int8" and cfg.int8 is whole
    with pytest.raises(UsageError, match="pass calib inside it"):
        ExportConfig.from_options("tflite", int8=whole, calib="calib/")


# ------------------------------------------------------------------------------------------ through the export

PLANTED = "stage3.2"


@pytest.fixture(scope="session")
def budget_export(trained_v2, digits_data, tmp_path_factory):
    """The planted digits V2 0.5x (an outlier channel in stage3.2, made by test_int8_tools' recipe) exported with a
    30 dB budget and no --keep-float: the search must find the unit by itself."""
    import torch

    from shufflenet_edge import digits
    from shufflenet_edge.api import export as se_export
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.outliers import plant_outlier

    d = _shared_dir(tmp_path_factory)
    w = d / "v2_digits_outlier_search.pth"
    if not w.exists():
        m = load_model("shufflenet_v2_x0_5", str(trained_v2[0]), num_classes=10, warn=False)
        torch.save(plant_outlier(m, PLANTED, 0, 512.0).state_dict(), w)
    calib = d / "calib_train64_search"
    if not calib.exists():
        digits.write_calibration_folder(digits_data[0], calib, 64)

    def run(out: Path, target: str = "tflite", form: str = "delegate", **kw):
        return se_export("shufflenet_v2_x0_5", out, target=target, weights=str(w), input_size=INPUT_SIZE,
                         form=form, precision="int8", calib=str(calib), show_progress=False, **kw)

    return run, d


def test_search_finds_the_planted_unit(budget_export):
    from shufflenet_edge.parity import Thresholds

    run, d = budget_export
    out = d / "budget.tflite"
    run(out, gate=Thresholds(min_psnr=30.0))
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["keep_float"] == [PLANTED]
    loss = side["checks"]["int8_loss"]
    assert loss["gate"]["failures"] == [] and loss["artifact_vs_float"]["psnr_db"] >= 30
    s = loss["search"]
    assert s["chosen"] == [PLANTED] and s["ranking"][0] == PLANTED and 1 <= s["quantizations"] <= 8
    assert s["trials"][0]["float_units"] == [PLANTED] and s["trials"][0]["meets_budget"]
    lat = s["latency"]
    assert lat["rounds"] == 5 and lat["fully_int8_ms"] > 0 and lat["ratio_min"] <= lat["ratio"] <= lat["ratio_max"]
    ends = {c["point"]: c for c in s["curve"]}  # fully int8 -> chosen -> float, each converted, judged and timed
    assert not ends["fully_int8"]["meets_budget"] and ends["chosen"]["meets_budget"] and ends["float"]["meets_budget"]
    assert ends["float"]["worst_psnr_db"] is None or ends["float"]["worst_psnr_db"] > 60
    assert ends["float"]["bytes"] > 2 * ends["fully_int8"]["bytes"] and ends["float"]["latency_ratio"] > 0


def test_search_that_cannot_meet_refuses_and_writes_nothing(budget_export):
    from shufflenet_edge.parity import ParityError, Thresholds

    run, d = budget_export
    out = d / "impossible.onnx"  # ONNX: the same refusal as TFLite's (int8_search.find), at a third of the cost
    with pytest.raises(ParityError) as e:
        run(out, target="onnx", form="gather", gate=Thresholds(min_psnr=200.0), search_tries=2)
    msg = str(e.value)
    assert "\n" not in msg and "no set of float units the search tried meets it (2 simulated" in msg
    assert "nothing was written" in msg and not out.exists() and not Path(str(out) + ".json").exists()


def test_onnx_search_finds_the_planted_unit(budget_export):
    from shufflenet_edge.parity import Thresholds

    run, d = budget_export
    out = d / "budget.onnx"
    run(out, target="onnx", form="gather", gate=Thresholds(min_psnr=30.0))
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["keep_float"] == [PLANTED] and side["float_nodes"]
    s = side["checks"]["int8_loss"]["search"]
    assert s["chosen"] == [PLANTED] and s["fully_int8"]["failures"] and s["latency"]["runtime"] == "onnxruntime"
    assert side["checks"]["int8_loss"]["gate"]["failures"] == []


def test_onnx_search_meets_an_accuracy_drop_and_a_validation_function(budget_export, digits_folder, digits_data):
    """The budget as the user thinks of it: top-1 accuracy on labelled images (a folder per class) and their own
    validation function, judged together on every try; then parity's default run on the artifact uses the same
    images and the same budget, and agrees."""
    from shufflenet_edge import AccuracyBudget, Thresholds
    from shufflenet_edge.api import parity as se_parity

    run, d = budget_export
    test = digits_data[1]
    xs, ys = test.x[:120], test.y[:120]
    scores = []

    def accuracy(predict):
        scores.append(float((predict(xs)[0].argmax(1) == ys).mean()))
        return scores[-1]

    out = d / "budget_accuracy.onnx"
    run(out, target="onnx", form="gather", gate=Thresholds(max_accuracy_drop=3.0), images=str(digits_folder),
        budget=AccuracyBudget(accuracy, max_drop=0.03, name="digits accuracy"))
    side = json.loads(Path(str(out) + ".json").read_text())
    loss = side["checks"]["int8_loss"]
    assert side["keep_float"] == [PLANTED] and loss["gate"]["failures"] == []
    v = loss["gate"]["validation"]
    assert v["name"] == "digits accuracy" and v["float"] - v["int8"] <= 0.03 and v["float"] > 0.9
    assert loss["search"]["fully_int8"]["failures"] and any("digits accuracy drop" in f
                                                            for f in loss["search"]["fully_int8"]["failures"])
    assert loss["inputs_spec"] == {"kind": "images", "folder": str(digits_folder), "labels": None}
    assert loss["gate"]["top1_accuracy"] > 0.9 and len(scores) >= 3  # float once, the fully-int8 graph, each try
    curve = loss["search"]["curve"]
    assert [c["point"] for c in curve] == ["fully_int8", "chosen", "float"] and curve[-1]["meets_budget"]
    assert all(t["weight_bytes_estimate"] > 0 for t in loss["search"]["trials"])  # each set tried: its size
    assert all(c["latency_ratio"] > 0 and c["bytes"] > 0 for c in curve)
    row = se_parity(out)  # parity's default: the images and the budget the export judged it by
    assert row["gate"]["source"].startswith("the int8 budget its export met") and row["passed"]
    assert row["gate"]["thresholds"] == {"max_accuracy_drop": 3.0} and str(digits_folder) in row["inputs"]
    from shufflenet_edge.cli import main

    plot = d / "bench_budget.png"  # bench --plot draws the export's curve beside its own bars
    assert main(["bench", str(out), "--runs", "3", "--warmup", "1", "--plot", str(plot), "--json",
                 str(d / "bench_budget.json"), "--quiet"]) == 0
    assert plot.exists() and (d / "bench_budget_int8_curve.png").stat().st_size > 1000
