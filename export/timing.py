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
# did not: their ranges overlapped and the choice followed noise, docs/design.md, the timing rule).
TUNE_ROUNDS = 7
TUNE_RUNS = 30

RULE = ("ship the preferred form unless another candidate is faster by more than the round-to-round spread of "
        "its per-round time ratio to the preferred one (median ratio < 1 - spread, spread = half the range of the "
        "ratios); among those, the fastest; when none is, the folded form with the fewest data-movement ops among "
        "those the preferred one is not faster than beyond the spread (the single rank-4 path GPU/NPU delegates "
        "want costs nothing there); the reference form only if it beats every folded form that way")


def round_medians(invokers: dict[str, Callable[[], Any]], rounds: int, runs: int | dict[str, int],
                  warmup: int = 5, *, first_round: int = 0, reverse_odd: bool = False) -> dict[str, list[float]]:
    """The project's one interleaved timer: each round runs every invoker `runs` times in turn, the order rotated by
    one per round (and reversed on odd rounds with `reverse_odd`), so drift and a neighbour's warm cache fall on
    every candidate alike. Per invoker, the median of each round in ms. `runs` may differ per invoker;
    `first_round` offsets the rotation when a caller runs one round at a time."""
    keys = list(invokers)
    n_runs = runs if isinstance(runs, dict) else dict.fromkeys(keys, runs)
    for f in invokers.values():
        for _ in range(warmup):
            f()
    per: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(first_round, first_round + rounds):
        order = keys[r % len(keys):] + keys[: r % len(keys)]
        if reverse_odd and r % 2:
            order.reverse()
        for k in order:
            f = invokers[k]
            ts = np.empty(n_runs[k])
            for i in range(n_runs[k]):
                t0 = time.perf_counter()
                f()
                ts[i] = time.perf_counter() - t0
            per[k].append(float(np.median(ts) * 1e3))
    return per


def interleaved_medians(invokers: dict[str, Callable[[], Any]], runtime: str, threads: int,
                        rounds: int = 3, runs: int = 30, warmup: int = 5) -> dict[str, Any]:
    """`round_medians` as the sidecar records it: per candidate, the median of each round (ms) and the median of
    those."""
    per = round_medians(invokers, rounds, runs, warmup)
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


def decide(round_ms: dict[str, list[float]], preferred: str, reference: str | None = "reference",
           data_movement: dict[str, int] | None = None) -> dict[str, Any]:
    """The form to ship from interleaved round medians (ms), by `RULE`; a JSON-able record of why.
    `data_movement`: each candidate's data-movement op count (ties go to the fewest)."""
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
        dm = data_movement or {}
        tied = [k for k in folded if k in dm and (k == preferred or not faster_beyond_noise(pref, round_ms[k]))]
        if preferred in dm and tied:
            fewest = min(tied, key=lambda k: (dm[k], k != preferred))
            if dm[fewest] < dm[preferred]:
                chosen = fewest
                verdict = (f"no folded form is faster than the preferred {preferred} beyond the noise, and {fewest} "
                           f"ties with it (x{ratios[fewest]['median']:.3f}, spread {ratios[fewest]['spread']:.3f}) "
                           f"with {dm[fewest]} data-movement ops against {dm[preferred]}: {fewest}")
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
                   warmup: int = 5, options: Any = None) -> dict[str, Any]:
    """Time candidate files on a remote target through the bench machinery, interleaved round by round (the
    candidates' order rotates per round; each measurement is its own runner process on the board). Returns the
    same record as `interleaved_medians`, plus the target and the board's environment."""
    keys = list(paths)
    order = [k for r in range(rounds) for k in keys[r % len(keys):] + keys[: r % len(keys)]]  # rotated per round
    from shufflenet_edge.runtimes.targets import parse_target

    t = parse_target(target, options)
    if t.kind == "ssh":
        from shufflenet_edge.runtimes.local import Job
        from shufflenet_edge.runtimes.ssh import run_ssh_target

        jobs = [Job(paths[k], "auto", None, threads) for k in order]
        recs = run_ssh_target(target, jobs, runs=runs, warmup=warmup, opts=t.options)
    elif t.kind == "adb":
        # benchmark_model on the phone (pinned to its big cores unless --cpu-mask), one run per candidate per
        # round in the rotated order.
        from shufflenet_edge.runtimes.adb import run_adb_target

        recs = run_adb_target(target, [paths[k] for k in order], runtime="auto", threads=threads, runs=runs,
                              warmup=warmup, options=t.options.as_runner_options())
    else:
        from shufflenet_edge.errors import UsageError

        raise UsageError("--tune-on local times the candidates in this process, not through a target")
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


def time_candidates(paths: dict[str, str], x: np.ndarray, tune: Any) -> dict[str, Any]:
    """Interleaved round medians of candidate files (one input `x` in their layout) where `tune` (a TuneConfig)
    says: in this process for `local` (each runtime's runner, spinning off), else on the target."""
    from shufflenet_edge.runtimes.runner import environment, open_artifact

    rounds, runs = tune.rounds or TUNE_ROUNDS, tune.runs or TUNE_RUNS
    if tune.target != "local":
        return time_on_target(paths, tune.target, tune.threads, rounds=rounds, runs=runs, options=tune.options)
    runners = {k: open_artifact(str(p), threads=tune.threads) for k, p in paths.items()}
    prepared = {k: r.prepare(x) for k, r in runners.items()}
    runtime = next(iter(runners.values())).runtime
    t = interleaved_medians({k: (lambda r=r, px=prepared[k]: r.invoke(px)) for k, r in runners.items()}, runtime,
                            tune.threads, rounds, runs)
    t["environment"] = environment()
    return t
