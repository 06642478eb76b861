"""The fewest units kept in float that bring an int8 artifact within the user's budget (the gate flags).

Why this order of work: a conversion costs 10-60 s, a PT2E simulation of the same quantization a second or two. So
the units are ranked once from where the fully-int8 artifact loses its signal (the per-layer SQNR `parity
--per-layer` computes), the top few are tried one by one in the simulation to refine that order, float units are
added in that order until the simulation meets the budget, and each one that turns out not to be needed is taken out
again. Calibration images, the float reference and the check inputs are the ones the export already has. Only the
chosen set is converted, and the artifact, not the simulation, is what the gate finally judges.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

REFINE = 3  # top-ranked units tried alone before the greedy pass


@dataclasses.dataclass(frozen=True)
class Trial:
    """One set of float units, judged: the worst output's PSNR, what the budget missed (empty: met), the top-1
    accuracy on labelled check images and the user's validation score where the budget has them."""

    units: tuple[str, ...]
    worst_psnr_db: float
    failures: tuple[str, ...]
    top1_accuracy: float | None = None
    score: float | None = None

    @property
    def meets(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = {"float_units": list(self.units), "worst_psnr_db": _finite(self.worst_psnr_db),
             "meets_budget": self.meets, "failures": list(self.failures)}
        if self.top1_accuracy is not None:
            d["top1_accuracy"] = round(self.top1_accuracy, 5)
        if self.score is not None:
            d["score"] = self.score
        return d


@dataclasses.dataclass
class Budget:
    """What an int8 graph must meet against the float model: the gate on every output (parity's thresholds; the
    top-1 accuracy drop needs the labels of the check images) and the user's validation function (its score may
    fall at most `max_drop` below the float model's). One judge for the fully-int8 artifact, every try of the
    search and the chosen artifact, in both exporters."""

    gate: Any = None  # parity.Thresholds or None
    labels: Any = None  # model class indices of the check inputs, or None
    validation: Any = None  # config.AccuracyBudget or None
    float_score: float | None = None

    @classmethod
    def of(cls, q: Any, labels: Any, float_predict: Callable[[Any], list[Any]]) -> Budget:
        """The export's budget (`q`: its Int8Config); the float model's validation score is computed here, once."""
        b = cls(q.gate, labels, q.budget)
        if b.validation is not None:
            b.float_score = _score(b.validation, float_predict, "the float model")
        return b

    def any(self) -> bool:
        return (self.gate is not None and self.gate.any()) or self.validation is not None

    def judge(self, units: tuple[str, ...], outs: Sequence[Any], wants: Sequence[Any],
              predict: Callable[[Any], list[Any]] | None = None) -> Trial:
        """`outs` (the int8 graph's outputs on the check inputs) against `wants` (the float model's); `predict` runs
        the same int8 graph on any batch, for the validation function."""
        from shufflenet_edge.parity import Thresholds, compare_outputs

        rows = compare_outputs(list(outs), list(wants), self.gate or Thresholds(), self.labels)
        worst = min((r["stats"].psnr_db for r in rows), default=math.inf)
        fails = [(f"output {r['output']}: " if len(rows) > 1 else "") + f for r in rows for f in r["failures"]]
        acc = next((r["stats"].top1_accuracy for r in rows if r["stats"].top1_accuracy is not None), None)
        score = None
        if self.validation is not None and predict is not None:
            score = _score(self.validation, predict, "the int8 graph")
            drop = float(self.float_score) - score  # type: ignore[arg-type]
            if not drop <= self.validation.max_drop:
                fails.append(f"{self.validation.name} drop {drop:.4g} > {self.validation.max_drop:g} (float "
                             f"{self.float_score:.4g}, int8 {score:.4g})")
        return Trial(units, worst, tuple(fails), acc, score)

    def record(self, t: Trial) -> dict[str, Any] | None:
        """The sidecar's `int8_loss.gate`: the budget and what the judged graph missed (None: no budget given)."""
        if not self.any():
            return None
        rec: dict[str, Any] = {"thresholds": self.gate.to_dict() if self.gate is not None else {},
                               "failures": list(t.failures)}
        if t.top1_accuracy is not None:
            rec["top1_accuracy"] = round(t.top1_accuracy, 5)
        if self.validation is not None:
            rec["validation"] = {"name": self.validation.name, "max_drop": self.validation.max_drop,
                                 "float": self.float_score, "int8": t.score}
        return rec

    def to_dict(self) -> dict[str, Any]:
        d = self.gate.to_dict() if self.gate is not None else {}
        if self.validation is not None:
            d[f"max {self.validation.name} drop"] = self.validation.max_drop
        return d


def _score(v: Any, predict: Callable[[Any], list[Any]], what: str) -> float:
    """The user's validation function on `predict`: a finite number, or a one-line error that says it is theirs."""
    from shufflenet_edge.errors import EdgeError

    try:
        s = float(v.validate(predict))
    except EdgeError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: one line, what and where)
        raise EdgeError(f"the int8 budget's validation function failed on {what}: {type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''} (fix the function; it gets "
                        "predict(x: float32 NCHW batch) -> list of output arrays and returns a score)") from e
    if not math.isfinite(s):
        raise EdgeError(f"the int8 budget's validation function returned {s} on {what}; it must return a finite score "
                        "(higher is better)")
    return s


@dataclasses.dataclass
class SearchResult:
    ranking: list[str]
    ranked_by: str
    trials: list[Trial]
    chosen: Trial | None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ranking": self.ranking, "ranked_by": self.ranked_by, "quantizations": len(self.trials),
                "trials": [t.to_dict() for t in self.trials],
                "chosen": list(self.chosen.units) if self.chosen is not None else None,
                "seconds": round(self.seconds, 1)}


def _finite(v: float) -> float | None:
    return None if v is None or math.isinf(v) or math.isnan(v) else round(float(v), 2)


def rank_units(units: Sequence[str], sqnr_db: dict[str, float | None]) -> tuple[list[str], str]:
    """Units ordered by the quantization noise each one adds: the rise of the noise-to-signal power (10^(-SQNR/10))
    from the unit before it to its own output. Units without a measured SQNR come last, from the output backwards
    (heads lose most); with no measurement at all, that order is the ranking. Returns (order, what it was ranked by)."""
    measured = [u for u in units if sqnr_db.get(u) is not None]
    rest = [u for u in reversed(units) if u not in measured]
    if not measured:
        return rest, "no per-layer SQNR of the artifact: units from the output backwards"
    added: dict[str, float] = {}
    prev = 0.0
    for u in measured:
        nsr = 10.0 ** (-float(sqnr_db[u]) / 10.0)  # type: ignore[arg-type]
        added[u] = nsr - prev
        prev = nsr
    order = sorted(measured, key=lambda u: -added[u])
    return order + rest, "the noise each unit adds in the fully-int8 artifact (per-layer SQNR)"


def _closeness(t: Trial | None) -> tuple[float, ...]:
    """How near a try is to the budget, for comparing tries: fewer missed thresholds first, then the user's score,
    top-1 accuracy, and the worst output's PSNR (to 0.1 dB: smaller moves are rounding, not progress)."""
    if t is None:
        return (-math.inf,)
    return (-len(t.failures), t.score if t.score is not None else 0.0,
            t.top1_accuracy if t.top1_accuracy is not None else 0.0, round(t.worst_psnr_db, 1))


def _outermost(units: Sequence[str]) -> list[str]:
    """A set without the layers that a unit of the same set already holds (`detect.m.0` beside `detect`)."""
    return [u for u in units if not any(u != v and u.startswith(v + ".") for v in units)]


def search(evaluate: Callable[[tuple[str, ...]], Trial], ranking: list[str], *, base: Sequence[str] = (),
           forward: Sequence[str] | None = None, max_tries: int, refine: int = REFINE) -> SearchResult:
    """Greedy search over `ranking` with `evaluate` (one simulated quantization per call, at most `max_tries`).
    `base`: units the user already keeps float (always in the set). `forward`: forward order of all units, used to
    name sets in a stable order. The fewest units found: the first of the top-ranked units that meets the budget
    alone; else units are added in the refined order, each kept only when its try came nearer the budget, until the
    budget holds, and every member that is not needed is taken out again."""
    order_of = {u: i for i, u in enumerate(forward or ranking)}
    tried: dict[tuple[str, ...], Trial] = {}
    trials: list[Trial] = []
    t0 = time.monotonic()

    def run(extra: Sequence[str]) -> Trial | None:
        key = tuple(sorted(_outermost(list(set(base) | set(extra))), key=lambda u: order_of.get(u, len(order_of))))
        if key in tried:
            return tried[key]
        if len(trials) >= max_tries:
            return None
        t = evaluate(key)
        tried[key] = t
        trials.append(t)
        return t

    def done(chosen: Trial | None, ranked: list[str]) -> SearchResult:
        return SearchResult(ranked, "", trials, chosen, time.monotonic() - t0)

    candidates = [u for u in ranking if u not in base]
    if not candidates:
        return done(None, ranking)
    top = candidates[:max(1, min(refine, max_tries))]
    singles: dict[str, Trial | None] = {}
    for u in top:  # one unit is the fewest there can be: the first that meets the budget ends the search
        singles[u] = run((u,))
        if singles[u] is not None and singles[u].meets:  # type: ignore[union-attr]
            return done(singles[u], ranking)
    refined = sorted(top, key=lambda u: _closeness(singles[u]), reverse=True)
    order = refined + candidates[len(top):]
    chosen: list[str] = [order[0]]
    current = singles[order[0]]
    best: Trial | None = None
    for u in order[1:]:
        if any(u.startswith(v + ".") for v in chosen):
            continue  # a layer of a unit already float: nothing to try
        t = run([*chosen, u])
        if t is None:
            return done(None, order)
        if t.meets:
            chosen.append(u)
            best = t
            break
        if _closeness(t) > _closeness(current):  # kept only when it brought the budget nearer
            chosen.append(u)
            current = t
    if best is None:
        return done(None, order)
    for u in list(chosen[:-1]):  # the last one added was needed: without it the set before missed the budget
        fewer = [v for v in chosen if v != u]
        t = run(fewer)
        if t is None:
            break
        if t.meets:
            chosen, best = fewer, t
    return done(best, order)


def by_failing_outputs(ranking: list[str], paths: Sequence[Sequence[str]], failing: Sequence[int]) -> list[str]:
    """Several outputs, some missing the budget: the candidates on the failing outputs' paths first, nearest the
    output first (`paths`: per output, the units and head ends it depends on, `int8_options.output_paths`),
    interleaved across those outputs; then the rest in `ranking`'s order."""
    lists = [list(paths[k]) for k in failing if k < len(paths)]
    out: list[str] = []
    for depth in range(max((len(v) for v in lists), default=0)):
        for v in lists:
            if depth < len(v) and v[depth] not in out and v[depth] in ranking:
                out.append(v[depth])
    return out + [u for u in ranking if u not in out]


def with_head_ends(ranking: list[str], ends: Sequence[str]) -> list[str]:
    """Each head end (a module below a unit: the last convolution(s) of an output) goes just before the unit that
    holds it: the same loss is often in those few layers, and keeping them float costs far less than the unit."""
    out = list(ranking)
    for e in ends:
        holder = next((i for i, u in enumerate(out) if e.startswith(u + ".")), len(out))
        out.insert(holder, e)
    return out


def find(p: Any, evaluate: Callable[[tuple[str, ...]], Trial], units: list[str], rows: list[dict[str, Any]],
         rep: dict[str, Any], budget: Budget, max_tries: int, kept: Sequence[str], what: str,
         how: str, ends: Sequence[str] = (), paths: Sequence[Sequence[str]] = (),
         size_of: Callable[[Sequence[str]], int] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The search as an export runs it: rank `units` from the fully-int8 artifact's per-layer `rows` (with the head
    ends `ends`, `int8_options.head_ends`, before their units; with several outputs, what the failing ones depend on
    first, from `paths`), search with `evaluate` (`what` each try is, for the progress line), and return (the chosen
    float units, the sidecar record; `size_of` estimates each set's size). Nothing meets the budget: the export's
    refusal (ParityError), naming the closest set tried."""
    from shufflenet_edge.export import int8_report

    ranking, ranked_by = rank_units(units, {r["point"]: r.get("sqnr_db") for r in rows})
    ranking = with_head_ends(ranking, ends)
    if ends:
        ranked_by += f"; the last layers of each output ({', '.join(ends)}) just before their units"
    failing = failing_outputs(rep.get("judged") or {})
    if paths and len(paths) > 1 and failing:
        ranking = by_failing_outputs(ranking, paths, failing)
        ranked_by = (f"the units and head ends the failing outputs ({', '.join(map(str, failing))}) depend on, nearest "
                     f"the output first; then {ranked_by}")
    with p.step(f"int8 budget search: the fewest float units, at most {max_tries} {what}"):
        res = search(evaluate, ranking, base=kept, forward=[*units, *ends], max_tries=max_tries)
    res.ranked_by = ranked_by
    rec = record(res, budget, max_tries, rep, kept, how)
    if size_of is not None:  # the size of each set tried, estimated from the weights (only three are converted)
        for t in rec["trials"]:
            t["weight_bytes_estimate"] = size_of(t["float_units"])
    if res.chosen is None:
        raise int8_report.refusal(rep, no_set_found(res, max_tries))
    return list(res.chosen.units), rec


def failing_outputs(judged: dict[str, Any]) -> list[int]:
    """The outputs a judged graph's failures name ("output 2: PSNR ..."), in order; [] when they name none."""
    import re

    found = [int(m.group(1)) for f in judged.get("failures") or [] for m in [re.match(r"output (\d+): ", f)] if m]
    return sorted(set(found))


def record(res: SearchResult, budget: Budget, max_tries: int, fully_int8: dict[str, Any], kept: Sequence[str],
           how: str) -> dict[str, Any]:
    """The sidecar's `checks.int8_loss.search` (the latency is added once the chosen set is converted)."""
    return {"budget": budget.to_dict(), "max_tries": max_tries, **res.to_dict(),
            "fully_int8": {"worst_psnr_db": fully_int8["artifact_vs_float"]["psnr_db"],
                           "failures": (fully_int8.get("gate") or {}).get("failures"), "float_units": list(kept)},
            "how": how}


def no_set_found(res: SearchResult, max_tries: int) -> str:
    """Why the search ends the export: the closest set it tried."""
    closest = max(res.trials, key=lambda t: t.worst_psnr_db, default=None)
    near = (f"; closest: {' '.join(closest.units) or 'no unit'} float, worst-output PSNR {closest.worst_psnr_db:.1f} "
            f"dB ({'; '.join(closest.failures)})") if closest else ""
    return (f"no set of float units the search tried meets it ({len(res.trials)} simulated quantization(s), "
            f"--search-tries {max_tries}{near}); more tries, a calibration with real images or QAT may; the float "
            "export (no --int8) is the other end")


def latency_cost(paths: dict[str, str], x: Any, tune: Any, rounds: int = 5, runs: int = 20) -> dict[str, Any]:
    """Every artifact of `paths` (keys: "fully_int8", "chosen", "float", and any tried set) against
    `paths["fully_int8"]`, interleaved round by round where `tune` (a TuneConfig) says: here, pinned, with the
    runtime of the file; or on the tuning target. The chosen artifact's ratio is also the record's headline."""
    import os

    import numpy as np
    from shufflenet_edge.export.timing import pinned, ratio_stats, round_medians, time_on_target
    from shufflenet_edge.runtimes.runner import open_artifact

    if tune.target == "local":
        runners = {k: open_artifact(p, threads=tune.threads) for k, p in paths.items()}
        prepared = {k: r.prepare(x) for k, r in runners.items()}
        invokers = {k: (lambda r=r, px=prepared[k]: r.invoke(px)) for k, r in runners.items()}
        with pinned(tune.threads):
            per = round_medians(invokers, rounds, runs, warmup=5, reverse_odd=True)
        runtime = next(iter(runners.values())).runtime
    else:
        timed = time_on_target(paths, tune.target, tune.threads, rounds=rounds, runs=runs, options=tune.options)
        per, runtime = timed["round_medians_ms"], timed["runtime"]
    points = {}
    for k in paths:
        r = ratio_stats(per[k], per["fully_int8"])
        points[k] = {"ms": float(np.median(per[k])), "ratio": r["median"], "ratio_min": r["min"],
                     "ratio_max": r["max"], "bytes": os.path.getsize(paths[k])}
    c = points["chosen"]
    return {"target": tune.target, "runtime": runtime, "threads": tune.threads, "rounds": rounds,
            "runs_per_round": runs, "fully_int8_ms": points["fully_int8"]["ms"], "chosen_ms": c["ms"],
            "ratio": c["ratio"], "ratio_min": c["ratio_min"], "ratio_max": c["ratio_max"], "points": points}


def curve(rec: dict[str, Any], ends: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy against latency, from the fully-int8 end to the float one: each converted artifact's budget metrics
    (`ends`: key -> its Trial's dict, judged on the artifact) with its size and measured latency ratio."""
    pts = (rec.get("latency") or {}).get("points") or {}
    order = ["fully_int8", *[k for k in ends if k not in ("fully_int8", "float")], "float"]
    out = []
    for k in order:
        if k not in ends:
            continue
        lat = pts.get(k) or {}
        out.append({"point": k, **ends[k], "bytes": lat.get("bytes"), "latency_ratio": lat.get("ratio"),
                    "latency_ratio_min": lat.get("ratio_min"), "latency_ratio_max": lat.get("ratio_max")})
    return out


def summary(res: dict[str, Any]) -> str:
    """One line: the budget, what fully int8 missed, and the chosen point of the search (from its sidecar record)."""
    budget = ", ".join(f"{k} {v:g}" for k, v in (res.get("budget") or {}).items())
    full = res.get("fully_int8") or {}
    missed = "; ".join(full.get("failures") or []) or "missed"
    head = (f"int8 budget ({budget}): fully int8 missed it ({missed}); search: {res.get('quantizations')} simulated "
            f"quantization(s) in {res.get('seconds')} s; ")
    chosen = res.get("chosen")
    if not chosen:
        return head + "no set of float units tried meets the budget"
    lat = res.get("latency") or {}
    cost = (f"; latency x{lat['ratio']:.3f} of the fully-int8 artifact (rounds {lat['ratio_min']:.3f}-"
            f"{lat['ratio_max']:.3f}, {lat['threads']} thread(s), {lat['runtime']})") if lat.get("ratio") else ""
    missed = res.get("artifact_misses") or []
    conv = (f" (converted, {' '.join(missed[0]['float_units'])} missed it: {len(missed)} more unit(s) added)"
            if missed else "")
    float_end = next((c for c in res.get("curve") or [] if c.get("point") == "float"), {})
    fl = (lat.get("points") or {}).get("float") or {}
    every = bool(float_end.get("float_units")) and set(float_end["float_units"]) <= set(chosen)
    plain = (f"; every unit is float: the float export (no --int8) meets it as well, at x{fl['ratio']:.3f} of the "
             "fully-int8 artifact") if every and fl.get("ratio") and float_end.get("meets_budget") else ""
    return head + f"kept in float: {' '.join(chosen)}{conv}{cost}{plain}"
