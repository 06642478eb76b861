#!/usr/bin/env python3
"""Run `shufflenet-edge guidelines` for every runtime x precision and record the results.

    python benchmarks/guidelines.py [--runtime onnxruntime --runtime litert] [--precision fp32 --precision int8]
                                    [--threads 1] [--out benchmarks/results] [--cache out/guidelines/cache]
                                    [--fresh] [-- EXTRA GUIDELINES ARGS]

Each (runtime, precision) runs in its own process (runtimes timed in one process disturb each other,
docs/design.md, the fold) and writes benchmarks/results/guidelines_<runtime>_<precision>.{json,md,png}.
Then benchmarks/results/guidelines.md gathers the verdicts of all runs beside the paper's, with each run's
wall-clock time and the load average before and after it (the machine may be shared: read the numbers
with that in mind).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def run_one(runtime: str, precision: str, args: argparse.Namespace, extra: list[str]) -> dict:
    stem = Path(args.out) / f"guidelines_{runtime}_{precision}"
    argv = [sys.executable, "-m", "shufflenet_edge", "guidelines", "--runtime", runtime, "--precision", precision,
            "--threads", str(args.threads), "--cache", args.cache, "--json", f"{stem}.json",
            "--markdown", f"{stem}.md", "--plot", f"{stem}.png", *(["--fresh"] if args.fresh else []), *extra]
    before = loadavg()
    t0 = time.monotonic()
    print(f"== {runtime} {precision}: {' '.join(argv[1:])}", flush=True)
    p = subprocess.run(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE)
    wall = round(time.monotonic() - t0, 1)
    after = loadavg()
    print(p.stdout, flush=True)
    print(f"== {runtime} {precision}: exit {p.returncode}, {wall} s wall clock, load {before} -> {after}", flush=True)
    return {"runtime": runtime, "precision": precision, "exit_code": p.returncode, "wall_s": wall,
            "loadavg_before": before, "loadavg_after": after, "json": f"{stem}.json", "command": argv[1:]}


def summary(runs: list[dict], out: Path) -> str:
    docs = {}
    for r in runs:
        try:
            docs[(r["runtime"], r["precision"])] = json.loads(Path(r["json"]).read_text())
        except (OSError, ValueError):
            pass
    lines = ["# ShuffleNet V2 guidelines on this machine: all runs", "",
             "| run | exit | wall clock (s) | built / cached artifacts | load avg before -> after |",
             "|---|---|---|---|---|"]
    for r in runs:
        d = docs.get((r["runtime"], r["precision"]), {}).get("meta", {})
        lines.append(f"| {r['runtime']} {r['precision']} | {r['exit_code']} | {r['wall_s']} | "
                     f"{d.get('artifacts_built', '-')} / {d.get('artifacts_cached', '-')} | "
                     f"{r['loadavg_before']} -> {r['loadavg_after']} |")
    env = next((d["meta"].get("environment") for d in docs.values()), None) or {}
    lines += ["", f"Machine: {env.get('cpu_model', '?')}, {env.get('usable_cores', '?')} usable cores, "
                  f"{env.get('os', '?')}; 1 thread unless stated.", ""]
    keys = [k for k in ("G1", "G2", "G3", "G4") if any(k in d.get("tables", {}) for d in docs.values())]
    head = ["guideline", *[f"{rt} {pr}" for rt, pr in docs], "paper ARM", "paper GPU"]
    lines += ["## Verdicts", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        first = next(d["tables"][k] for d in docs.values() if k in d.get("tables", {}))
        cells = [first["title"]]
        for d in docs.values():
            t = d.get("tables", {}).get(k)
            cells.append(t["verdict"]["ours"]["overall"] if t else "-")
        cells += [first["verdict"]["paper_arm"]["overall"], first["verdict"]["paper_gpu"]["overall"]]
        lines.append("| " + " | ".join(cells) + " |")
    zoo_runs = {k: d["zoo"] for k, d in docs.items() if d.get("zoo")}
    if zoo_runs:
        models = [r["model"] for r in next(iter(zoo_runs.values()))["rows"]]
        head = ["model", "M mult-adds", *[f"{rt} {pr} ms" for rt, pr in zoo_runs], "paper ARM img/s"]
        lines += ["", "## Model zoo latency (ms, 224x224, batch 1)", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for m in models:
            rows: dict = {k: next((r for r in z["rows"] if r["model"] == m), {}) for k, z in zoo_runs.items()}
            any_row = next(iter(rows.values()))
            cells = [m, f"{any_row['madds'] / 1e6:.1f}"]
            cells += [f"{r['median_ms']:.2f}" if r.get("median_ms") else "-" for r in rows.values()]
            cells.append(str(any_row.get("paper_arm") or "-"))
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per-run tables (normalized speeds beside the paper's, absolute latencies, networks): "
              + ", ".join(f"`{Path(r['json']).with_suffix('.md').name}`" for r in runs), ""]
    text = "\n".join(lines)
    tmp = out / f".guidelines.md.{os.getpid()}.partial"
    tmp.write_text(text)
    os.replace(tmp, out / "guidelines.md")
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", action="append", choices=("onnxruntime", "litert"))
    p.add_argument("--precision", action="append", choices=("fp32", "int8"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--cache", default=str(ROOT / "out" / "guidelines" / "cache"))
    p.add_argument("--fresh", action="store_true", help="rebuild every artifact")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = []
    for rt in args.runtime or ["onnxruntime", "litert"]:
        for pr in args.precision or ["fp32", "int8"]:
            runs.append(run_one(rt, pr, args, extra))
    runs_path = Path(args.out) / "guidelines_runs.json"
    tmp = runs_path.with_name(f".{runs_path.name}.partial")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    os.replace(tmp, runs_path)
    print(summary(runs, Path(args.out)))
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
