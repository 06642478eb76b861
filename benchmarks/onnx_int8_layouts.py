"""ONNX int8 layouts on this CPU: which onnxruntime int8 graph of a ShuffleNet is faster than its fp32 graph here,
and how far each is from PyTorch.

One float ONNX graph per form (our fold, `gather` by default, and the module as written), exported by
`shufflenet_edge.export`; every int8 variant quantized from it by onnxruntime's `quantize_static` on the same
calibration images (the exporter's synthetic set, 32 images) after `quant_pre_process`:
- `s8s8 qdq pc` (what `export --int8` ships): QDQ, int8 activations (asymmetric), int8 weights per channel;
- `u8s8 qdq pc`, `u8s8 qdq pt` (per tensor), `u8s8 qop pc` (QOperator: QLinearConv and friends), `u8u8 qdq pc`;
- `ort default (as written)`: onnxruntime's quantize_static with its defaults on the module as written (what a
  user gets from onnxruntime's own tool without us).
Each int8 graph is timed with the default kernels and, for the ones the x64 precise mode changes, also with
`session.x64quantprecision=1` (the exact u8u8 kernels `parity` uses on x86-64 without VNNI). All sessions time
interleaved in one process (the project's one timer), 1 thread, rounds x runs after warm-up; ratio to our fp32 graph
per round. Accuracy: max abs error and PSNR of the logits against PyTorch fp32 on 16 seeded normal inputs.

    python benchmarks/onnx_int8_layouts.py [--model shufflenet_v2_x1_0 --rounds 7 --runs 50]

Writes benchmarks/results/onnx_int8_layouts.{json,md}. The ISA flags read are recorded: int8 speed on onnxruntime
depends on them (VNNI or not).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).parent / "results"

VARIANTS: dict[str, dict[str, Any]] = {
    "s8s8 qdq pc": {"fmt": "QDQ", "act": "QInt8", "w": "QInt8", "pc": True},
    "u8s8 qdq pc": {"fmt": "QDQ", "act": "QUInt8", "w": "QInt8", "pc": True},
    "u8s8 qdq pt": {"fmt": "QDQ", "act": "QUInt8", "w": "QInt8", "pc": False},
    "u8s8 qop pc": {"fmt": "QOperator", "act": "QUInt8", "w": "QInt8", "pc": True},
    "u8u8 qdq pc": {"fmt": "QDQ", "act": "QUInt8", "w": "QUInt8", "pc": True},
}
ORT_DEFAULTS = {"fmt": "QDQ", "act": "QInt8", "w": "QInt8", "pc": False}  # quantize_static's own defaults


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shufflenet_v2_x1_0")
    ap.add_argument("--form", default="gather", help="our fold's ONNX form (default gather)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "onnx_int8_layouts")
    a = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    import shufflenet_edge as se
    from shufflenet_edge.data import Preprocess
    from shufflenet_edge.export.calibration import calibration_set
    from shufflenet_edge.export.onnx_quantize import quantize_qdq
    from shufflenet_edge.export.timing import ratio_stats, round_medians
    from shufflenet_edge.models import build_model
    from shufflenet_edge.parity import compare
    from shufflenet_edge.runtimes.ort_session import X64_QUANT_PRECISION, cpu_isa, int8_needs_precise_mode

    load0 = os.getloadavg()
    pre = Preprocess.for_model(a.model, a.size)
    calib = calibration_set(None, pre, limit=32).images.astype(np.float32)
    batches = [calib[i : i + 1] for i in range(len(calib))]
    xs = np.random.default_rng(0).standard_normal((16, 3, a.size, a.size)).astype(np.float32)
    model = build_model(a.model).eval()
    with torch.no_grad():
        want = np.concatenate([model(torch.from_numpy(xs[i : i + 1])).numpy() for i in range(len(xs))])
    with tempfile.TemporaryDirectory() as td:
        t = Path(td)
        fold, ref = t / "fold.onnx", t / "ref.onnx"
        se.export(a.model, fold, target="onnx", form=a.form, input_size=a.size, show_progress=False)
        se.export(a.model, ref, target="onnx", form="reference", input_size=a.size, show_progress=False)
        graphs = {"fp32 (ours)": fold, "fp32 (as written)": ref}
        for k, (src, v) in {**{k: (fold, v) for k, v in VARIANTS.items()},
                            "ort default (as written)": (ref, ORT_DEFAULTS)}.items():
            graphs[k] = t / f"{k.replace(' ', '_')}.onnx"
            quantize_qdq(src, graphs[k], batches, per_channel=v["pc"], activations=v["act"], weights=v["w"],
                         quant_format=v["fmt"])

        def session(path: Path, precise: bool) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if precise:
                so.add_session_config_entry(X64_QUANT_PRECISION, "1")
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        sessions: dict[str, Any] = {}
        for k, p in graphs.items():
            sessions[k] = session(p, False)
            if not k.startswith("fp32") and int8_needs_precise_mode():
                sessions[k + " [x64 precise]"] = session(p, True)
        rows: dict[str, dict[str, Any]] = {}
        for k, s in sessions.items():
            name = s.get_inputs()[0].name
            got = np.concatenate([s.run(None, {name: xs[i : i + 1]})[0] for i in range(len(xs))])
            st = compare(got, want)
            rows[k] = {"max_abs_error_vs_torch": float(np.abs(got - want).max()), "psnr_db": st.psnr_db,
                       "top1_agreement": st.top1_agreement,
                       "nodes": len(__import__("onnx").load(str(graphs[k.split(" [")[0]])).graph.node)}
        x1 = xs[:1]
        invokers = {k: (lambda s=s, n=s.get_inputs()[0].name: s.run(None, {n: x1})) for k, s in sessions.items()}
        per = round_medians(invokers, a.rounds, a.runs, warmup=10, reverse_odd=True)
    base = "fp32 (ours)"
    for k in rows:
        rows[k]["median_ms"] = float(np.median(per[k]))
        rows[k]["ratio_to_fp32_ours"] = ratio_stats(per[k], per[base])
    load1 = os.getloadavg()
    isa = cpu_isa()
    data = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "model": a.model, "size": a.size,
            "form": a.form, "threads": a.threads, "rounds": a.rounds, "runs": a.runs, "onnxruntime": ort.__version__,
            "isa": isa, "precise_mode_applies": int8_needs_precise_mode(), "loadavg_start": load0,
            "loadavg_end": load1, "rows": rows, "round_medians_ms": per}
    lines = [
        f"## ONNX int8 layouts: {a.model} ({a.size}x{a.size}, batch 1) on onnxruntime {ort.__version__}, "
        f"{a.threads} thread(s)", "",
        f"`python benchmarks/onnx_int8_layouts.py --model {a.model} --rounds {a.rounds} --runs {a.runs}` on "
        f"{data['date']}; ISA flags read: {', '.join(isa.get('flags') or []) or 'none of the int8 dot-product ones'} "
        f"({isa['arch']}); load average {load0[0]:.2f} at start, {load1[0]:.2f} at end. Every graph timed interleaved "
        f"in one process, {a.rounds} rounds x {a.runs} runs after warm-up; ratio to our fp32 graph (`--form {a.form}`) "
        "per round, median (range). Errors: logits against PyTorch fp32 on 16 seeded normal inputs. `pc`/`pt`: "
        "per-channel / per-tensor weights; `[x64 precise]`: `session.x64quantprecision=1`.", "",
        "| graph | nodes | median ms | / fp32 ours (range) | max abs error | PSNR dB | top-1 agreement |",
        "|---|---:|---:|---|---:|---:|---:|"]
    for k, r in rows.items():
        rs = r["ratio_to_fp32_ours"]
        top1 = f"{r['top1_agreement']:.0%}" if r["top1_agreement"] is not None else "-"
        lines.append(f"| {k} | {r['nodes']} | {r['median_ms']:.3f} | {rs['median']:.3f} ({rs['min']:.3f}-{rs['max']:.3f}) "
                     f"| {r['max_abs_error_vs_torch']:.3g} | {r['psnr_db']:.1f} | {top1} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(json.dumps(data, indent=2) + "\n")
    Path(f"{a.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
