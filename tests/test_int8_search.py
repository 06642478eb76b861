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
