"""Benchmark: is `--form auto` ever slower than `--form reference`? fp32 and int8, 1 and 2 threads.

For ShuffleNetV2 1.0x (224x224, batch 1, seeded random weights) it runs the exporter's default
`shufflenet-edge export --target tflite [--int8] --keep-candidates DIR` (the reference form is one of the
candidates; the exporter's own choice and verdict are in the sidecar), then times every candidate and the
shipped artifact side by side in one process, interleaved run by run (LiteRT, XNNPACK), at 1 and 2 threads.
Ratios to the reference are taken per round; the spread is half the round-to-round range of the ratio.
Verdict per precision and thread count: "auto is not slower than the reference beyond the noise" holds when the
shipped artifact's median ratio is below 1 + spread.

    python benchmarks/form_choice.py [--rounds 5 --runs 200 --threads 1 2 --model shufflenet_v2_x1_0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _timing  # noqa: E402


def export(model: str, precision: str, folder: Path) -> tuple[dict, dict[str, Path], float]:
    out = folder / f"{model}_{precision}.tflite"
    cands = folder / f"candidates_{precision}"
    argv = [sys.executable, "-m", "shufflenet_edge", "export", "--model", model, "--target", "tflite", "--out", str(out),
            "--keep-candidates", str(cands), "--quiet"] + (["--int8"] if precision == "int8" else [])
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"export failed: {r.stderr.strip().splitlines()[-1:]}")
    side = json.loads(Path(str(out) + ".json").read_text())
    files = {p.name.split(".")[-2]: p for p in sorted(cands.glob("*.tflite"))}
    files["auto (shipped)"] = out
    return side, files, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shufflenet_v2_x1_0")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default="form_choice")
    a = ap.parse_args()
    from shufflenet_edge.runtimes.runner import TFLiteRunner

    env = _timing.environment()
    data: dict = {"model": a.model, "rounds": a.rounds, "runs": a.runs, "environment": env, "results": {}}
    md = [f"## `--form auto` against `--form reference`: {a.model}, LiteRT (XNNPACK), 224x224, batch 1",
          "",
          f"Machine: {env['cpu']} ({env['cores']} cores); load average at start {env['loadavg_start']:.2f}. "
          f"{a.rounds} rounds x {a.runs} runs per graph per round after warm-up, all graphs interleaved in one process; "
          "ratio to the reference per round, median (range); spread = half the range.", ""]
    with tempfile.TemporaryDirectory() as td:
        for precision in ("fp32", "int8"):
            side, files, wall = export(a.model, precision, Path(td))
            ft = side["form_timings"]
            md += [f"### {precision}: the exporter chose `{side['recipe']}` ({ft['verdict']}); export wall time {wall:.0f} s", ""]
            data["results"][precision] = {"export_wall_s": wall, "chosen": side["recipe"], "exporter_timings": ft}
            for n in a.threads:
                runners = {k: TFLiteRunner(str(p), threads=n) for k, p in files.items()}
                x = np.random.default_rng(0).standard_normal(runners["reference"].input_shape).astype(np.float32)
                prepared = {k: r.prepare(x) for k, r in runners.items()}
                per = _timing.interleaved({k: (lambda r=r, px=prepared[k]: r.invoke(px)) for k, r in runners.items()},
                                          a.rounds, a.runs)
                summ = _timing.summarize(per, "reference", None)
                auto = summ["auto (shipped)"]
                spread = (auto["ratio_max"] - auto["ratio_min"]) / 2
                ok = auto["ratio_to_reference"] < 1 + spread
                verdict = (f"auto / reference = {auto['ratio_to_reference']:.3f} (spread {spread:.3f}): "
                           + ("not slower than the reference beyond the noise" if ok else "SLOWER than the reference beyond the noise"))
                data["results"][precision][f"{n}_threads"] = {"rounds_ms": per, "summary": summ, "auto_ok": ok, "verdict": verdict}
                md += [_timing.table(summ, f"{precision}, {n} thread(s)"), "", f"{verdict}", ""]
                print(f"{precision} {n} thread(s): {verdict}")
    env["loadavg_end"] = __import__("os").getloadavg()[0]
    md.insert(3, f"Load average at the end: {env['loadavg_end']:.2f}.")
    _timing.write_results(a.out, data, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
