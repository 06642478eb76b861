"""The `--form auto` decision rule (export/timing.py): never follow a difference inside the measured spread."""

from __future__ import annotations

import pytest
from shufflenet_edge.export.timing import decide, interleaved_medians, ratio_stats
from shufflenet_edge.runtimes.targets import AdbOptions


def test_difference_inside_the_spread_keeps_the_preferred_form():
    rounds = {"cpu": [5.0, 5.1, 4.9, 5.0, 5.2], "reference3": [4.9, 5.2, 4.8, 5.1, 5.0],
              "delegate": [5.5, 5.6, 5.4, 5.5, 5.6], "reference": [4.95, 5.05, 4.9, 5.0, 5.1]}
    d = decide(rounds, "cpu")
    assert d["chosen"] == "cpu" and "no folded form" in d["verdict"]
    assert d["ratio_to_preferred"]["delegate"]["median"] == pytest.approx(1.1, abs=0.01)


def test_clearly_faster_folded_form_wins_and_reference_only_when_it_beats_all():
    rounds = {"cpu": [5.0, 5.1, 4.9, 5.0], "reference3": [4.5, 4.6, 4.4, 4.5], "reference": [4.8, 4.9, 4.7, 4.8]}
    d = decide(rounds, "cpu")
    assert d["chosen"] == "reference3"  # the reference beats cpu but not reference3: not shipped
    rounds["reference"] = [4.0, 4.1, 4.0, 4.0]
    d = decide(rounds, "cpu")
    assert d["chosen"] == "reference" and "beats every folded form" in d["verdict"]


def test_a_tie_ships_the_fewest_data_movement_ops():
    dm = {"cpu": 66, "reference3": 60, "delegate": 27, "reference": 76}
    tie = {"cpu": [5.0, 5.1, 4.9, 5.0], "reference3": [5.1, 5.0, 5.0, 4.9], "delegate": [5.05, 5.0, 5.1, 4.95],
           "reference": [5.0, 5.0, 5.0, 5.0]}
    d = decide(tie, "cpu", data_movement=dm)
    assert d["chosen"] == "delegate" and "27 data-movement ops against 66" in d["verdict"]
    slower = dict(tie, delegate=[5.6, 5.7, 5.6, 5.65])  # delegate slower than cpu beyond the spread: not shipped
    d = decide(slower, "cpu", data_movement=dm)
    assert d["chosen"] == "reference3" and "60 data-movement ops" in d["verdict"]
    assert decide(tie, "cpu")["chosen"] == "cpu"  # without counts the preferred form stays


def test_ratio_stats_and_bad_preferred():
    s = ratio_stats([2.0, 4.0], [2.0, 2.0])
    assert s == {"median": 1.5, "min": 1.0, "max": 2.0, "spread": 0.5}
    with pytest.raises(ValueError, match="preferred form"):
        decide({"a": [1.0]}, "b")


def test_interleaved_medians_rotates_and_records_every_round():
    order = []
    t = interleaved_medians({k: (lambda k=k: order.append(k)) for k in "abc"}, "none", 1, rounds=3, runs=1, warmup=0)
    assert order == list("abcbcacab")
    assert all(len(v) == 3 for v in t["round_medians_ms"].values())


def test_adb_tuning_interleaves_candidates_round_by_round(monkeypatch):
    """time_on_target('adb'): one benchmark_model run per candidate per round, order rotated, each record
    assigned back to its candidate (the phone itself is replaced here: no device on this machine)."""
    import shufflenet_edge.runtimes.adb as adb
    from shufflenet_edge.export.timing import time_on_target

    seen: list[list[str]] = []
    speed = {"a.tflite": 2.0, "b.tflite": 3.0, "c.tflite": 5.0}

    def fake(target, artifacts, *, runtime, threads, runs, warmup, options):  # type: ignore[no-untyped-def]
        seen.append(list(artifacts))
        assert target == "adb:SER1" and runtime == "auto" and options["benchmark_binary"] == ["bm"]
        return [{"status": "ok", "runtime": "litert", "latency_ms": {"median": speed[a]},
                 "environment": {"model": "Pixel"}} for a in artifacts]

    monkeypatch.setattr(adb, "run_adb_target", fake)
    t = time_on_target({"x": "a.tflite", "y": "b.tflite", "z": "c.tflite"}, "adb:SER1", 1, rounds=3, runs=5,
                       options=AdbOptions(benchmark_binary=("bm",)))
    assert seen == [["a.tflite", "b.tflite", "c.tflite", "b.tflite", "c.tflite", "a.tflite",
                     "c.tflite", "a.tflite", "b.tflite"]]
    assert t["round_medians_ms"] == {"x": [2.0] * 3, "y": [3.0] * 3, "z": [5.0] * 3}
    assert t["environment"] == {"model": "Pixel"} and t["target"] == "adb:SER1"
