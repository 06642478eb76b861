"""Benchmark: the ShuffleNet family as public projects write it (tests/zoo.py), through the user's path.

Per zoo model, fp32 and int8: one `shufflenet_edge.export(..., form="auto", keep_candidates=DIR)` (the wall time a
user waits, every candidate graph kept) and one `form="reference"` export (litert-torch's conversion of the module as
written, which --form auto no longer converts), then
- the graphs: ops, data-movement ops, max tensor rank, XNNPACK partitions of litert-torch's conversion of the
  module as written (the `reference` candidate) and of our folded forms (`cpu`, the CPU-preferred recipe, and
  `delegate`, the single rank-4 path), and which form `--form auto` shipped;
- latency: every candidate of one precision timed interleaved in this process (LiteRT with XNNPACK, 1 thread,
  the project's one timer), ratios folded / reference per round with their range;
- int8 PSNR per output against the float model (the export's own int8 loss report).

    python benchmarks/zoo.py [--models nanodet_plus megvii_v2 ...] [--rounds 7 --runs 40 --threads 1]

Writes benchmarks/results/zoo.json and zoo.md. Random weights with non-identity BatchNorm statistics (no weights can
be downloaded here): latency and graph structure do not depend on the values; PSNR does, and is that of random
weights calibrated on synthetic images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import _timing  # noqa: E402
import zoo  # noqa: E402

import shufflenet_edge as se  # noqa: E402
from shufflenet_edge.export.inspect import inspect_tflite  # noqa: E402
from shufflenet_edge.export.timing import ratio_stats, round_medians  # noqa: E402
from shufflenet_edge.runtimes.runner import TFLiteRunner  # noqa: E402

FORMS = ("reference", "cpu", "delegate")


def _invoker(path: Path, threads: int) -> Any:
    """One inference of the artifact on a fixed random input (quantized as the artifact's input wants)."""
    r = TFLiteRunner(str(path), threads)
    x = r.prepare(np.random.default_rng(0).standard_normal(r.inp["shape"]).astype(np.float32))
    return lambda: r.invoke(x)


def one_precision(name: str, precision: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    m, shp = zoo.ZOO[name]()
    x = torch.randn(*shp, generator=torch.Generator().manual_seed(0))
    out = work / f"{name}_{precision}.tflite"
    kd = work / f"{name}_{precision}_candidates"
    t0 = time.perf_counter()
    try:
        art = se.export(m, out, example_input=x, name=name, form="auto", int8=precision == "int8",
                        keep_candidates=str(kd), show_progress=False)
    except Exception as e:  # noqa: BLE001  (a failed export is a row of the table, with its message)
        return {"model": name, "precision": precision, "error": f"{type(e).__name__}: {str(e)[:300]}"}
    row: dict[str, Any] = {"model": name, "precision": precision, "export_s": round(time.perf_counter() - t0, 1),
                           "shipped": art["form"], "graphs": {}}
    paths = {f: kd / f"{out.stem}.{f}.tflite" for f in FORMS if (kd / f"{out.stem}.{f}.tflite").is_file()}
    if "reference" not in paths:  # --form auto converts the module as written only when the fold fails
        ref = work / f"{name}_{precision}_reference.tflite"
        try:
            se.export(m, ref, example_input=x, name=name, form="reference", int8=precision == "int8",
                      show_progress=False)
            paths["reference"] = ref
        except Exception as e:  # noqa: BLE001  (litert-torch refused the module as written: said in the row)
            row["reference_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    for f, p in paths.items():
        g = inspect_tflite(p, analyze_gpu=False)
        row["graphs"][f] = {k: g[k] for k in ("ops", "data_movement_ops", "max_rank", "xnnpack_partitions")}
    if precision == "int8":
        loss = (art["checks"] or {}).get("int8_loss") or {}
        per = loss.get("per_output") or [loss]  # one entry per output where the model has several
        row["psnr_db"] = [(p.get("artifact_vs_float") or {}).get("psnr_db") for p in per]
    if "reference" in paths and len(paths) > 1:
        per_round = round_medians({f: _invoker(p, args.threads) for f, p in paths.items()}, args.rounds, args.runs,
                                  warmup=10)
        row["median_ms"] = {f: float(np.median(v)) for f, v in per_round.items()}
        row["ratio_to_reference"] = {f: ratio_stats(per_round[f], per_round["reference"])
                                     for f in per_round if f != "reference"}
    return row


def _ratio(row: dict[str, Any], form: str) -> str:
    r = (row.get("ratio_to_reference") or {}).get(form)
    return f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})" if r else "-"


def _graph(row: dict[str, Any], form: str) -> str:
    g = row["graphs"].get(form)
    return f"{g['ops']} / {g['data_movement_ops']} / {g['max_rank']} / {g['xnnpack_partitions']}" if g else "-"


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace) -> str:
    isa = env.get("isa", {})
    lines = [
        "## The zoo: ShuffleNet-family models as public projects write them (tests/zoo.py)", "",
        f"`python benchmarks/zoo.py` on {env['cpu']} ({env['cores']} cores, ISA flags read: "
        f"{', '.join(isa.get('flags') or []) or 'none of avx512_vnni/avx_vnni/amx_int8'}; {env['machine']}). "
        f"LiteRT with XNNPACK, {args.threads} thread(s); every candidate of one precision timed interleaved in one "
        f"process, {args.rounds} rounds x {args.runs} runs after warm-up, medians; ratio = form / reference per round "
        "(median, round range). Graph columns: ops / data-movement ops / max rank / XNNPACK partitions. `reference` is "
        "litert-torch's conversion of the module as written; `cpu` and `delegate` are our folded forms. Random weights "
        "(non-identity BatchNorm statistics), int8 calibrated on 32 synthetic images; export time is one "
        "`--form auto` export (all candidates converted, timed and checked).", "",
        "| model | precision | reference graph | cpu graph | delegate graph | cpu / reference | delegate / reference "
        "| `--form auto` ships | int8 PSNR dB | export s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['precision']} | export failed: {r['error']} | | | | | | | |")
            continue
        psnr = ", ".join(f"{p:.1f}" for p in r.get("psnr_db", []) if p is not None) or "-"
        lines.append(f"| {r['model']} | {r['precision']} | {_graph(r, 'reference')} | {_graph(r, 'cpu')} | "
                     f"{_graph(r, 'delegate')} | {_ratio(r, 'cpu')} | {_ratio(r, 'delegate')} | {r['shipped']} | "
                     f"{psnr} | {r['export_s']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=sorted(zoo.ZOO), choices=sorted(zoo.ZOO))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="zoo", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    from shufflenet_edge.runtimes.runner import environment

    env = {**_timing.environment(), "isa": environment()["isa"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="shufflenet-edge-zoo-") as tmp:
        for name in args.models:
            for precision in ("fp32", "int8"):
                row = one_precision(name, precision, Path(tmp), args)
                print(row, flush=True)
                rows.append(row)
    md = markdown(rows, env, args)
    print(md)
    _timing.write_results(args.out, {"environment": env, "args": vars(args), "rows": rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
