"""Export-time goal: the README's default `shufflenet-edge export --target tflite --int8` of ShuffleNetV2
1.0x, tuning included, under 60 s wall on this machine.

Each round runs the exact CLI command in a fresh process twice, in alternating order: as shipped (the reference
candidate of `--form auto` converted in a child process beside the folded one) and with
`SHUFFLENET_EDGE_SERIAL_CANDIDATES=1` (one after the other, as before). Wall time of the whole command, imports
included. Prints and writes the median and range of each, and the per-round ratio.

    python benchmarks/export_time.py [--rounds 3 --model shufflenet_v2_x1_0 --goal 60]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def run_once(model: str, out: Path, serial: bool) -> float:
    env = dict(os.environ)
    env.pop("SHUFFLENET_EDGE_SERIAL_CANDIDATES", None)
    if serial:
        env["SHUFFLENET_EDGE_SERIAL_CANDIDATES"] = "1"
    argv = [sys.executable, "-m", "shufflenet_edge", "export", "--model", model, "--target", "tflite", "--int8",
            "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"export failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shufflenet_v2_x1_0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--goal", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "export_time")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    load0 = os.getloadavg()
    walls: dict[str, list[float]] = {"as shipped (child process)": [], "serial candidates": []}
    with tempfile.TemporaryDirectory() as td:
        for r in range(a.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            for serial in order:
                w = run_once(a.model, Path(td) / f"m{r}_{int(serial)}.tflite", serial)
                key = "serial candidates" if serial else "as shipped (child process)"
                walls[key].append(w)
                print(f"round {r + 1}: {key}: {w:.1f} s", flush=True)
    ship, ser = walls["as shipped (child process)"], walls["serial candidates"]
    ratios = [s / t for s, t in zip(ship, ser)]
    load1 = os.getloadavg()
    data = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": f"shufflenet-edge export --model {a.model} --target tflite --int8 (default --form auto)",
        "cpus": os.cpu_count(), "loadavg_start": load0, "loadavg_end": load1, "rounds": a.rounds,
        "walls_s": walls, "median_s": {k: float(np.median(v)) for k, v in walls.items()},
        "ratio_shipped_over_serial": {"per_round": ratios, "median": float(np.median(ratios)),
                                      "min": min(ratios), "max": max(ratios)},
        "goal_s": a.goal, "goal_met": bool(max(ship) < a.goal),
    }
    lines = [
        f"# Export wall time: default int8 TFLite export of {a.model}", "",
        f"`python benchmarks/export_time.py --rounds {a.rounds}` on {data['date']}, {data['cpus']} CPUs, load average "
        f"{load0[0]:.2f} at start, {load1[0]:.2f} at end. Command: `{data['command']}`, whole process, imports "
        "included; the two variants alternate within each round.", "",
        "| variant | median s | range s | every round |", "|---|---|---|---|",
    ]
    for k, v in walls.items():
        lines.append(f"| {k} | {np.median(v):.1f} | {min(v):.1f}-{max(v):.1f} | {', '.join(f'{w:.1f}' for w in v)} |")
    lines += ["", f"Shipped / serial per round: median {data['ratio_shipped_over_serial']['median']:.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}). Goal: every shipped run under {a.goal:.0f} s: "
              f"**{'met' if data['goal_met'] else 'not met'}** (slowest {max(ship):.1f} s)."]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(json.dumps(data, indent=2) + "\n")
    Path(f"{a.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
