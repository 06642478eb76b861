"""The `--form auto` decision rule (export/timing.py): never follow a difference inside the measured spread."""

from __future__ import annotations

import time

import numpy as np
import pytest
from shufflenet_edge.export.timing import (
    MAX_ROUNDS,
    MIN_ROUNDS,
    decide,
    out_of_the_running,
    ratio_ci,
    ratio_stats,
    round_medians,
    sequential_rounds,
)
from shufflenet_edge.runtimes.targets import AdbOptions


def _rounds(ratio: float, noise: float, n: int, seed: int = 0, base: float = 5.0) -> tuple[list[float], list[float]]:
    """Recorded-like rounds: a preferred form at `base` ms and a candidate at `ratio` times it, each round's two
    medians moved by the machine's drift (common) and `noise` (relative, independent)."""
    rng = np.random.default_rng(seed)
    drift = base * (1 + 0.05 * rng.standard_normal(n))  # both forms slow down together in a busy round
    pref = drift * (1 + noise * rng.standard_normal(n))
    cand = drift * ratio * (1 + noise * rng.standard_normal(n))
    return list(cand), list(pref)


def test_a_3_percent_difference_with_1_percent_round_noise_is_found():
    """Faster by 3% with 1% round-to-round noise: decided within the rounds the sequential rule allows, both ways."""
    for seed in range(10):
        for ratio, verdict, chosen in ((0.97, "faster", "delegate"), (1.03, "slower", "cpu")):
            cand, pref = _rounds(ratio, 0.01, MAX_ROUNDS, seed)
            n = next(n for n in range(MIN_ROUNDS, MAX_ROUNDS) if ratio_ci(cand[:n], pref[:n])["verdict"] != "undecided")
            d = decide({"cpu": pref[:n], "delegate": cand[:n]}, "cpu", reference=None)
            assert d["ratio_to_preferred"]["delegate"]["verdict"] == verdict and d["chosen"] == chosen, (seed, n, d)
            assert n <= 40, (seed, n)


def test_a_difference_inside_the_band_is_a_tie_and_keeps_the_preferred_form():
    cand, pref = _rounds(1.004, 0.003, 40, 1)
    d = decide({"cpu": pref, "delegate": cand}, "cpu", reference=None)
    assert d["ratio_to_preferred"]["delegate"]["verdict"] == "tie" and d["chosen"] == "cpu" and not d["undecided"]
    assert "no folded form is faster" in d["verdict"]


def test_noise_larger_than_the_difference_is_said_to_be_too_noisy():
    """A 5% loss inside 12% round noise (what the 2-core VMs showed) is not called a tie: it is undecided, and the
    verdict says the machine was too noisy and which form shipped for which reason."""
    cand, pref = _rounds(1.05, 0.12, 7, 2)
    d = decide({"cpu": pref, "delegate": cand}, "cpu", reference=None, why_preferred="the preferred form for a CPU")
    assert d["undecided"] == ["delegate"] and d["chosen"] == "cpu"
    assert "too noisy to tell delegate from cpu" in d["verdict"] and "the preferred form for a CPU" in d["verdict"]
    assert "when the timing stopped (the time budget ran out)" in d["verdict"]
    # the round cap says so (it was reported as the time budget)
    capped = decide({"cpu": pref, "delegate": cand}, "cpu", reference=None, stopped="the round limit (400) was reached")
    assert "when the timing stopped (the round limit (400) was reached)" in capped["verdict"]


def test_the_reference_ships_only_when_faster_than_the_best_folded_form():
    cpu, ref = _rounds(1.0, 0.005, 12, 3)
    fast, _ = _rounds(0.90, 0.005, 12, 4)
    slow_ref, _ = _rounds(0.95, 0.005, 12, 5)
    d = decide({"cpu": cpu, "reference3": fast, "reference": slow_ref}, "cpu")
    assert d["chosen"] == "reference3"  # the reference beats cpu but not reference3: not shipped
    quick_ref, _ = _rounds(0.80, 0.005, 12, 6)
    d = decide({"cpu": cpu, "reference3": fast, "reference": quick_ref}, "cpu")
    assert d["chosen"] == "reference" and "shipping the reference form" in d["verdict"]


def test_ratio_ci_and_bad_preferred():
    c = ratio_ci([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert c["ratio"] == pytest.approx(2.0) and c["low"] == pytest.approx(2.0) and c["verdict"] == "slower"
    assert ratio_stats([2.0, 4.0], [2.0, 2.0]) == {"median": 1.5, "min": 1.0, "max": 2.0, "spread": 0.5}
    with pytest.raises(ValueError, match="preferred form"):
        decide({"a": [1.0]}, "b")


def test_sequential_rounds_stop_when_decided_and_rotate():
    """The timer stops once every comparison is decided (far apart here) and rotates the order every round."""
    order: list[str] = []

    def slow() -> None:
        order.append("s")
        time.sleep(0.002)

    per, stopped, _ = sequential_rounds({"f": lambda: order.append("f"), "s": slow}, "f", runs=1, budget_s=30)
    assert stopped == "every comparison decided" and len(per["f"]) == MIN_ROUNDS
    per, stopped, _ = sequential_rounds({"a": lambda: None, "b": lambda: None}, "a", runs=1, budget_s=30, fixed=3)
    assert len(per["a"]) == 3 and stopped == "the 3 rounds asked for"
    order.clear()
    round_medians({k: (lambda k=k: order.append(k)) for k in "abc"}, 3, 1, warmup=0)
    assert order == list("abcbcacab")


def test_a_candidate_that_cannot_ship_leaves_the_rounds_early():
    """Past MIN_ROUNDS, a candidate decidedly slower than the preferred form (or tied with it) is timed no more, so
    the budget goes to the comparison still open; the rounds it ran stay in the record, paired with the first rounds
    of the others."""
    calls = {"close": 0}

    def close() -> None:  # 10% faster one round, 10% slower the next: never decided
        calls["close"] += 1
        time.sleep(0.002 * (0.9 if calls["close"] % 2 else 1.1))

    per, stopped, _ = sequential_rounds({"pref": lambda: time.sleep(0.002), "slow": lambda: time.sleep(0.006),
                                         "close": close}, "pref", runs=1, budget_s=0.5)
    assert stopped == "the time budget ran out"
    assert len(per["slow"]) == MIN_ROUNDS < len(per["close"]) == len(per["pref"])
    assert out_of_the_running(per, "pref") == ["slow"]
    d = decide(per, "pref")
    assert d["ratio_to_preferred"]["slow"]["rounds"] == MIN_ROUNDS and d["chosen"] == "pref"


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
