"""Timing candidate graphs and choosing among them, for `--form auto` (the paper's rule: measure on the platform).

The decision never follows noise, and it resolves what is measurable. Candidates are timed interleaved, round by
round (warm-up discarded, the order rotated per round, the process pinned to the CPUs it times on where the OS
allows), so slow drifts of the machine hit every candidate alike. Each candidate is compared with the preferred form
*per round* (the ratio of the two round medians), and the comparison is sequential: rounds continue until the 95%
confidence interval of every ratio lies outside the tie band (faster or slower by more than `TIE_BAND`) or inside it
(a tie), or the time budget runs out; a candidate that can no longer ship (slower or tied) leaves the rounds
early, so the budget goes to the comparisons still open. A candidate displaces the preferred form only when it is
faster beyond the band; the reference form (the graph as written) only when it is faster beyond the band than the
best folded form. An interval that still straddles a band edge when the budget runs out is said to be too noisy to
tell, with the form shipped and why.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

# --form auto: runs per candidate per round; rounds until decided (at least MIN_ROUNDS) or the budget is spent.
# Remote targets time a fixed number of rounds (one runner process per measurement), decided by the same rule.
TUNE_RUNS = 30
TUNE_ROUNDS = 7  # rounds on a remote target
# The default local budget is a quarter of the time the export spent before timing (mostly its one conversion),
# within these bounds, so a default export stays within about 1.5x of the converter's own conversion (measured:
# benchmarks/export_time.py); an undecided comparison is said to be too noisy to tell, and --tune-seconds buys more.
TUNE_BUDGET_FRACTION = 0.25
TUNE_BUDGET_S = 60.0
TUNE_MIN_BUDGET_S = 5.0
MIN_ROUNDS = 5
MAX_ROUNDS = 400
TIE_BAND = 0.015  # candidates within 1.5% of each other are a tie: no decision follows a smaller difference

RULE = (f"paired rounds, sequential: rounds continue until the 95% confidence interval of each candidate's per-round "
        f"time ratio to the preferred form lies below 1 - {TIE_BAND:g} (faster), above 1 + {TIE_BAND:g} (slower) or "
        f"within the band (a tie), or the budget runs out (undecided: too noisy to tell); the fastest candidate that "
        f"is faster beyond the band ships, else the preferred form; the reference form only if it is faster beyond "
        f"the band than that folded form")


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


def ratio_stats(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Per-round ratios a/b: median, min, max and spread (half the range)."""
    r = np.asarray(a, np.float64) / np.asarray(b, np.float64)
    lo, hi = float(r.min()), float(r.max())
    return {"median": float(np.median(r)), "min": lo, "max": hi, "spread": (hi - lo) / 2.0}


def _t975(dof: int) -> float:
    """The two-sided 95% quantile of Student's t (a table to 30 degrees of freedom, the normal's 1.96 beyond)."""
    table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
             2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
    return table[dof - 1] if dof <= len(table) else 1.96 + 2.4 / dof


def ratio_ci(a: Sequence[float], b: Sequence[float], band: float = TIE_BAND) -> dict[str, Any]:
    """The per-round ratio a/b as a paired comparison: the geometric mean of the ratios with its 95% confidence
    interval (Student's t on the log ratios), and the verdict against the tie band: faster, slower, tie or
    undecided (the interval straddles a band edge)."""
    logs = np.log(np.asarray(a, np.float64) / np.asarray(b, np.float64))
    n = len(logs)
    mean = float(logs.mean())
    half = _t975(n - 1) * float(logs.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    lo, hi = math.exp(mean - half), math.exp(mean + half)
    if hi < 1 - band:
        verdict = "faster"
    elif lo > 1 + band:
        verdict = "slower"
    elif lo >= 1 - band and hi <= 1 + band:
        verdict = "tie"
    else:
        verdict = "undecided"
    return {"ratio": math.exp(mean), "low": lo, "high": hi, "rounds": n, "verdict": verdict}


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[Sequence[float], Sequence[float]]:
    """The rounds both were timed in: a candidate that can no longer ship leaves the timing early (its first rounds
    are the ones it shared with every other)."""
    n = min(len(a), len(b))
    return a[:n], b[:n]


def out_of_the_running(round_ms: dict[str, list[float]], preferred: str, band: float = TIE_BAND) -> list[str]:
    """Candidates that can no longer ship by `RULE`: slower than the preferred form beyond the band, or within it
    (a tie never displaces it). The reference form too: the form it must beat is the preferred one or a faster one."""
    pref = round_ms[preferred]
    return [k for k, v in round_ms.items()
            if k != preferred and ratio_ci(*paired(v, pref), band)["verdict"] in ("slower", "tie")]


def _ci_text(c: dict[str, Any]) -> str:
    return f"x{c['ratio']:.3f}, 95% CI {c['low']:.3f}-{c['high']:.3f}, {c['rounds']} rounds"


def decide(round_ms: dict[str, list[float]], preferred: str, reference: str | None = "reference",
           band: float = TIE_BAND, why_preferred: str = "the preferred form",
           stopped: str = "the time budget ran out") -> dict[str, Any]:
    """The form to ship from interleaved round medians (ms), by `RULE`; a JSON-able record of why, with every
    comparison and the ones still undecided (`undecided`: what more rounds could settle). `stopped`: why the timing
    ended (sequential_rounds' reason), said in an undecided verdict."""
    if preferred not in round_ms:
        raise ValueError(f"preferred form {preferred!r} was not timed (timed: {', '.join(round_ms)})")
    pref = round_ms[preferred]
    cis = {k: ratio_ci(*paired(v, pref), band) for k, v in round_ms.items() if k != preferred}
    folded = [k for k in round_ms if k != reference]
    winners = [k for k in folded if k != preferred and cis[k]["verdict"] == "faster"]
    chosen = min(winners, key=lambda k: cis[k]["ratio"]) if winners else preferred
    undecided = [k for k in folded if k != preferred and cis[k]["verdict"] == "undecided"]
    if winners:
        verdict = f"{chosen} is faster than the preferred {preferred} beyond the {band:.1%} tie band ({_ci_text(cis[chosen])})"
    elif undecided:
        verdict = ("the machine was too noisy to tell " + "; ".join(f"{k} from {preferred} ({_ci_text(cis[k])})"
                                                                   for k in undecided)
                   + f" when the timing stopped ({stopped}): shipped {preferred}, {why_preferred}")
    else:
        verdict = f"no folded form is faster than the preferred {preferred} beyond the {band:.1%} tie band: {preferred}"
    vs_ref = None
    if reference is not None and reference in round_ms:
        vs_ref = ratio_ci(*paired(round_ms[reference], round_ms[chosen]), band)
        if vs_ref["verdict"] == "faster":
            verdict = (f"the reference form is faster than {chosen} beyond the {band:.1%} tie band ({_ci_text(vs_ref)}): "
                       "shipping the reference form, not a folded one")
            chosen = reference
        elif vs_ref["verdict"] == "undecided":
            undecided.append(reference)
            verdict += f"; the reference form against {chosen}: too noisy to tell ({_ci_text(vs_ref)})"
    return {"rule": RULE, "preferred": preferred, "chosen": chosen, "verdict": verdict, "tie_band": band,
            "ratio_to_preferred": cis, "reference_to_chosen": vs_ref, "undecided": undecided}


def time_on_target(paths: dict[str, str], target: str, threads: int, *, rounds: int = 5, runs: int = 30,
                   warmup: int = 5, options: Any = None) -> dict[str, Any]:
    """Time candidate files on a remote target through the bench machinery, interleaved round by round (the
    candidates' order rotates per round; each measurement is its own runner process on the board). Returns the
    per-candidate round medians (ms) and their medians, the target and the board's environment."""
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


def default_budget(spent_s: float) -> float:
    """The local timing budget when the user set none: a share of `spent_s` (the export's time so far), bounded."""
    return min(TUNE_BUDGET_S, max(TUNE_MIN_BUDGET_S, TUNE_BUDGET_FRACTION * spent_s))


def time_and_decide(paths: dict[str, str], x: np.ndarray, tune: Any, preferred: str,
                    why_preferred: str = "the preferred form", *, spent_s: float | None = None) -> dict[str, Any]:
    """Time candidate files (one input `x` in their layout) where `tune` (a TuneConfig) says and apply `decide`:
    in this process for `local` (each runtime's runner, spinning off), round by round until every comparison is
    decided or `tune.budget_s` is spent (default: `default_budget(spent_s)`, `spent_s` the export's time so far;
    TUNE_BUDGET_S without it; or exactly `tune.rounds` rounds); else `tune.rounds or TUNE_ROUNDS` rounds on the
    target. The timings with the decision merged in."""
    from shufflenet_edge.runtimes.runner import environment, open_artifact

    runs = tune.runs or TUNE_RUNS
    if tune.target != "local":
        t = time_on_target(paths, tune.target, tune.threads, rounds=tune.rounds or TUNE_ROUNDS, runs=runs,
                           options=tune.options)
        t["stopped"] = "fixed rounds on the target"
    else:
        runners = {k: open_artifact(str(p), threads=tune.threads) for k, p in paths.items()}
        prepared = {k: r.prepare(x) for k, r in runners.items()}
        invokers = {k: (lambda r=r, px=prepared[k]: r.invoke(px)) for k, r in runners.items()}
        budget = tune.budget_s if tune.budget_s is not None else (
            default_budget(spent_s) if spent_s is not None else TUNE_BUDGET_S)
        with pinned(tune.threads) as cpus:
            per, stopped, seconds = sequential_rounds(invokers, preferred, runs, budget, tune.rounds)
        t = {"runtime": next(iter(runners.values())).runtime, "threads": tune.threads, "rounds": len(per[preferred]),
             "runs_per_round": runs, "median_ms": {k: float(np.median(v)) for k, v in per.items()},
             "round_medians_ms": per, "budget_s": budget, "seconds": round(seconds, 1), "stopped": stopped,
             "pinned_cpus": cpus, "environment": environment()}
    t.update(decide(t["round_medians_ms"], preferred, why_preferred=why_preferred, stopped=t["stopped"]))
    return t


def sequential_rounds(invokers: dict[str, Callable[[], Any]], preferred: str, runs: int, budget_s: float,
                      fixed: int | None = None) -> tuple[dict[str, list[float]], str, float]:
    """Round medians, one round at a time after a discarded warm-up round, until `decide` has nothing undecided (at
    least MIN_ROUNDS), the budget is spent, or MAX_ROUNDS; exactly `fixed` rounds when given. Returns (rounds,
    why it stopped, seconds)."""
    round_medians(invokers, 1, runs, warmup=5, reverse_odd=True)  # warm-up: caches, frequency, first allocations
    per: dict[str, list[float]] = {k: [] for k in invokers}
    active = dict(invokers)
    t0 = time.monotonic()
    r = 0
    while True:
        for k, v in round_medians(active, 1, runs, warmup=0, first_round=r, reverse_odd=True).items():
            per[k].append(v[0])
        r += 1
        if fixed is not None:
            if r >= fixed:
                return per, f"the {fixed} rounds asked for", time.monotonic() - t0
            continue
        if r >= MIN_ROUNDS:
            if not decide(per, preferred)["undecided"]:
                return per, "every comparison decided", time.monotonic() - t0
            for k in out_of_the_running({k: per[k] for k in active}, preferred):
                del active[k]  # decided: its rounds so far stay in the record, the rest of the budget goes elsewhere
        if time.monotonic() - t0 > budget_s:
            return per, "the time budget ran out", time.monotonic() - t0
        if r >= MAX_ROUNDS:
            return per, f"the round limit ({MAX_ROUNDS}) was reached", time.monotonic() - t0


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[list[int] | None]:
    """Pin this process to `threads` CPUs while timing (the highest-numbered ones, usually the least busy with
    interrupts), where the OS allows and there are more CPUs than threads; the CPUs, or None."""
    get, put = getattr(os, "sched_getaffinity", None), getattr(os, "sched_setaffinity", None)
    before = get(0) if get is not None else None
    if put is None or before is None or len(before) <= threads:
        yield None
        return
    cpus = sorted(before)[-threads:]
    try:
        put(0, cpus)
    except OSError:
        yield None
        return
    try:
        yield cpus
    finally:
        put(0, before)
