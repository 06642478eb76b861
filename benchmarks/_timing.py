"""Interleaved timing shared by the benchmark scripts: several graphs, one process, rounds of runs.

Every round times every graph (in a rotating order), so machine noise hits all graphs alike; ratios
are taken per round and then the median across rounds is reported with its spread.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    from importlib import metadata

    vers = {}
    for d in ("onnxruntime", "ai-edge-litert", "litert-torch", "torch", "onnx"):
        try:
            vers[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "versions": vers, "loadavg_start": os.getloadavg()[0]}


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, runs: int, warmup: int = 20) -> dict[str, list[float]]:
    """Median latency (ms) of each fn per round: the library's interleaved timer (export/timing.py)."""
    from shufflenet_edge.export.timing import round_medians

    return round_medians(fns, rounds, runs, warmup)


def summarize(per: dict[str, list[float]], reference: str, bound: str | None) -> dict[str, Any]:
    ref = np.asarray(per[reference])
    out: dict[str, Any] = {}
    for k, v in per.items():
        a = np.asarray(v)
        ratio = a / ref
        row = {"median_ms": float(np.median(a)), "round_min_ms": float(a.min()), "round_max_ms": float(a.max()),
               "ratio_to_reference": float(np.median(ratio)), "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max())}
        if bound is not None and k not in (reference, bound):
            b = np.asarray(per[bound])
            removed = (ref - a) / (ref - b)
            row["shuffle_cost_removed"] = float(np.median(removed))
            row["shuffle_cost_removed_min"] = float(removed.min())
            row["shuffle_cost_removed_max"] = float(removed.max())
        out[k] = row
    return out


def table(summary: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "", "| graph | median ms | round range ms | / reference (range) | shuffle cost removed (range) |", "|---|---|---|---|---|"]
    for k, r in summary.items():
        rem = f"{r['shuffle_cost_removed']:.0%} ({r['shuffle_cost_removed_min']:.0%} to {r['shuffle_cost_removed_max']:.0%})" if "shuffle_cost_removed" in r else "-"
        lines.append(f"| {k} | {r['median_ms']:.3f} | {r['round_min_ms']:.3f}-{r['round_max_ms']:.3f} | {r['ratio_to_reference']:.3f} ({r['ratio_min']:.3f}-{r['ratio_max']:.3f}) | {rem} |")
    return "\n".join(lines)


def write_results(name: str, data: dict[str, Any], markdown: str) -> None:
    d = Path(__file__).parent / "results"
    d.mkdir(exist_ok=True)
    data["environment"]["loadavg_end"] = os.getloadavg()[0]
    (d / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (d / f"{name}.md").write_text(markdown + "\n")
    print(f"wrote {d / (name + '.json')} and {d / (name + '.md')}")
