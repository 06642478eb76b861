#!/usr/bin/env python3
"""The local benchmark matrix recorded in benchmarks/results/: ShuffleNet V2 0.5x/1.0x/1.5x/2.0x and V1 g=3
0.5x/1.0x, fp32 and int8, ONNX and TFLite, 1 and 2 threads, on this machine.

    python benchmarks/local_matrix.py [--out-dir out/matrix] [--runs 200] [--warmup 20] [--form auto]

Exports what is missing with `shufflenet-edge export` (random weights: latency does not depend on the
values), then runs `shufflenet-edge bench` on all of it in one go (each measurement in its own process)
and writes benchmarks/results/local.json, local.png (latency against multiply-adds) and local.md (the
table the README shows). Run it on a quiet machine: other processes on the cores move the numbers.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODELS = ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
          "shufflenet_v1_x0_5_g3", "shufflenet_v1_x1_0_g3")


def cli() -> str:
    return shutil.which("shufflenet-edge") or str(Path(sys.executable).with_name("shufflenet-edge"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=REPO / "out" / "matrix")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--form", default=None, help="passed to export --form (default: the exporter's default)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for model in a.models.split(","):
        for target in ("tflite", "onnx"):
            for prec in ("fp32", "int8"):
                path = a.out_dir / f"{model}_{prec}.{target}"
                if not path.is_file():
                    cmd = [cli(), "export", "--model", model, "--target", target, "--out", str(path), "--quiet"]
                    cmd += ["--int8"] if prec == "int8" else []
                    cmd += ["--form", a.form] if a.form else []
                    t0 = time.monotonic()
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        print(f"local_matrix: export failed: {' '.join(cmd[1:])}: {r.stderr.strip()[-300:]}",
                              file=sys.stderr)
                        return 1
                    print(f"exported {path.name} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
                artifacts.append(str(path))
    a.results.mkdir(parents=True, exist_ok=True)
    cmd = [cli(), "bench", *artifacts, "--threads", a.threads, "--runs", str(a.runs), "--warmup", str(a.warmup),
           "--no-gpu", "--json", str(a.results / "local.json"), "--plot", str(a.results / "local.png")]
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        return rc
    from shufflenet_edge.runtimes.results import format_markdown, read_json

    (a.results / "local.md").write_text(format_markdown(read_json(a.results / "local.json")) + "\n")
    print(f"wrote {a.results / 'local.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
