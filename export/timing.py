"""Timing candidate graphs and choosing among them, for `--form auto` (the paper's rule: measure on the platform).

The decision never follows noise. Candidates are timed interleaved, round by round, so slow drifts of the
machine hit every candidate alike; each candidate's speed is compared with the preferred form's *per round*
(ratio of the two round medians), and a candidate displaces the preferred form only when it is faster by more
than the round-to-round spread of that ratio. The reference form (the torchvision graph as converted) is shipped
only when it beats every folded form beyond the spread, and the verdict says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# --form auto: rounds x runs per candidate, interleaved. Seven rounds give the spread a range to stand on (three
# did not: their ranges overlapped and the choice followed noise, DESIGN.md section 10).
TUNE_ROUNDS = 7
TUNE_RUNS = 30

RULE = ("ship the preferred form unless another candidate is faster by more than the round-to-round spread of "
        "its per-round time ratio to the preferred one (median ratio < 1 - spread, spread = half the range of the "
        "ratios); among those, the fastest; the reference form only if it beats every folded form that way")


def interleaved_medians(invokers: dict[str, Callable[[], Any]], runtime: str, threads: int,
                        rounds: int = 3, runs: int = 30, warmup: int = 5) -> dict[str, Any]:
    """Each round times every candidate in turn (order rotated per round); per candidate, the median of each
    round (ms) and the median of those."""
    keys = list(invokers)
    for f in invokers.values():
        for _ in range(warmup):
            f()
    per: dict[str, list[float]] = {k: [] for k in invokers}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            f = invokers[k]
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            per[k].append(float(np.median(ts) * 1e3))
    return {"runtime": runtime, "threads": threads, "rounds": rounds, "runs_per_round": runs,
            "median_ms": {k: float(np.median(v)) for k, v in per.items()}, "round_medians_ms": per}


def ratio_stats(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Per-round ratios a/b: median, min, max and spread (half the range)."""
    r = np.asarray(a, np.float64) / np.asarray(b, np.float64)
    lo, hi = float(r.min()), float(r.max())
    return {"median": float(np.median(r)), "min": lo, "max": hi, "spread": (hi - lo) / 2.0}


def faster_beyond_noise(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is faster than b by more than the round-to-round spread of their ratio."""
    s = ratio_stats(a, b)
    return s["median"] < 1.0 - s["spread"]


def decide(round_ms: dict[str, list[float]], preferred: str, reference: str | None = "reference") -> dict[str, Any]:
    """The form to ship from interleaved round medians (ms), by `RULE`; a JSON-able record of why."""
    if preferred not in round_ms:
        raise ValueError(f"preferred form {preferred!r} was not timed (timed: {', '.join(round_ms)})")
    pref = round_ms[preferred]
    ratios = {k: ratio_stats(v, pref) for k, v in round_ms.items() if k != preferred}
    folded = [k for k in round_ms if k != reference]
    winners = [k for k in folded if k != preferred and faster_beyond_noise(round_ms[k], pref)]
    chosen = min(winners, key=lambda k: ratios[k]["median"]) if winners else preferred
    if winners:
        verdict = (f"{chosen} is faster than the preferred {preferred} beyond the noise "
                   f"(x{ratios[chosen]['median']:.3f}, spread {ratios[chosen]['spread']:.3f})")
    else:
        verdict = f"no folded form is faster than the preferred {preferred} beyond the noise: {preferred}"
    if reference is not None and reference in round_ms:
        ref = round_ms[reference]
        if all(faster_beyond_noise(ref, round_ms[k]) for k in folded):
            s = ratio_stats(ref, round_ms[chosen])
            verdict = (f"the reference form beats every folded form beyond the noise (x{s['median']:.3f} of "
                       f"{chosen}, spread {s['spread']:.3f}): shipping the reference form, not a folded one")
            chosen = reference
    return {"rule": RULE, "preferred": preferred, "chosen": chosen, "verdict": verdict,
            "ratio_to_preferred": ratios}


def time_on_target(paths: dict[str, str], target: str, threads: int, *, rounds: int = 5, runs: int = 30,
                   warmup: int = 5, ssh_options: Any = None) -> dict[str, Any]:
    """Time candidate files on a remote target through the bench machinery, interleaved round by round (the
    candidates' order rotates per round; each measurement is its own runner process on the board). Returns the
    same record as `interleaved_medians`, plus the target and the board's environment."""
    keys = list(paths)
    order = [k for r in range(rounds) for k in keys[r % len(keys):] + keys[: r % len(keys)]]  # rotated per round
    if target.startswith("ssh://"):
        from shufflenet_edge.runtimes.local import Job
        from shufflenet_edge.runtimes.ssh import SshOptions, run_ssh_target

        jobs = [Job(paths[k], "auto", None, threads) for k in order]
        recs = run_ssh_target(target, jobs, runs=runs, warmup=warmup, opts=ssh_options or SshOptions())
    elif target == "adb" or target.startswith("adb:"):
        # benchmark_model on the phone (pinned to its big cores unless --cpu-mask), one run per candidate per
        # round in the rotated order; `ssh_options` is then the adb options dict (benchmark_binary, adb, ...).
        from shufflenet_edge.runtimes.adb import run_adb_target

        recs = run_adb_target(target, [paths[k] for k in order], runtime="auto", threads=threads, runs=runs,
                              warmup=warmup, options=dict(ssh_options or {}))
    else:
        from shufflenet_edge.errors import UsageError

        raise UsageError(f"--tune-on {target!r}: local, ssh://user@host[:port] or adb[:SERIAL]")
    per: dict[str, list[float]] = {k: [] for k in keys}
    env: dict[str, Any] = {}
    for k, rec in zip(order, recs):
        if rec.get("status") != "ok" or not rec.get("latency_ms"):
            from shufflenet_edge.errors import EdgeError

            raise EdgeError(f"timing {k} on {target} failed: {rec.get('reason') or rec.get('status')}")
        per[k].append(float(rec["latency_ms"]["median"]))
        env = rec.get("environment") or env
    return {"runtime": recs[0].get("runtime") if recs else None, "threads": threads, "rounds": rounds,
            "runs_per_round": runs, "target": target, "environment": env,
            "median_ms": {k: float(np.median(v)) for k, v in per.items()}, "round_medians_ms": per}
