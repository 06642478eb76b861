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

DEFAULT_TRIES = 8  # quantizations at most, refinement and pruning included
REFINE = 3  # top-ranked units tried alone before the greedy pass


@dataclasses.dataclass(frozen=True)
class Trial:
    """One set of float units, simulated: the worst output's PSNR and what the budget missed (empty: met)."""

    units: tuple[str, ...]
    worst_psnr_db: float
    failures: tuple[str, ...]

    @property
    def meets(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"float_units": list(self.units), "worst_psnr_db": _finite(self.worst_psnr_db),
                "meets_budget": self.meets, "failures": list(self.failures)}


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


def search(evaluate: Callable[[tuple[str, ...]], Trial], ranking: list[str], *, base: Sequence[str] = (),
           forward: Sequence[str] | None = None, max_tries: int = DEFAULT_TRIES, refine: int = REFINE) -> SearchResult:
    """Greedy search over `ranking` with `evaluate` (one simulated quantization per call, at most `max_tries`).
    `base`: units the user already keeps float (always in the set). `forward`: forward order of all units, used to
    name sets in a stable order. The fewest units found: a single unit when one alone meets the budget (the best of
    those tried), else the greedy set with every member that is not needed taken out."""
    order_of = {u: i for i, u in enumerate(forward or ranking)}
    tried: dict[tuple[str, ...], Trial] = {}
    trials: list[Trial] = []
    t0 = time.monotonic()

    def run(extra: Sequence[str]) -> Trial | None:
        key = tuple(sorted(set(base) | set(extra), key=lambda u: order_of.get(u, len(order_of))))
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
    singles = {u: run((u,)) for u in top}
    met = [t for t in singles.values() if t is not None and t.meets]
    if met:
        return done(max(met, key=lambda t: t.worst_psnr_db), ranking)
    refined = sorted(top, key=lambda u: -(singles[u].worst_psnr_db if singles[u] is not None else -math.inf))
    order = refined + candidates[len(top):]
    chosen: list[str] = [order[0]]
    best: Trial | None = None
    for u in order[1:]:
        chosen.append(u)
        t = run(chosen)
        if t is None:
            return done(None, order)
        if t.meets:
            best = t
            break
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


def summary(res: dict[str, Any]) -> str:
    """One line: the chosen point of the search (from its sidecar record)."""
    chosen = res.get("chosen")
    n, secs = res.get("quantizations"), res.get("seconds")
    head = (f"int8 budget search: {n} simulated quantization(s) in {secs} s; ")
    if not chosen:
        return head + "no set of float units tried meets the budget"
    lat = res.get("latency") or {}
    cost = (f"; latency x{lat['ratio']:.3f} of the fully-int8 artifact (rounds {lat['ratio_min']:.3f}-"
            f"{lat['ratio_max']:.3f}, {lat['threads']} thread(s), {lat['runtime']})") if lat.get("ratio") else ""
    return head + f"kept in float: {' '.join(chosen)}{cost}"
