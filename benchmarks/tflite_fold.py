"""Benchmark: the folded TFLite forms on LiteRT (XNNPACK), interleaved in one process.

Per model (ShuffleNetV2 1.0x and ShuffleNet V1 1.0x g=3, 224x224, batch 1, random weights with random
BN statistics), fp32 and int8 graphs timed together so every ratio is side by side:
- reference: the torchvision form converted by litert-torch as users do today (int8: litert-torch's
  own PT2EQuantizer, per-channel);
- delegate / cpu / reference3: our folded graphs (shuffle_path recipes + maxpool_pad; int8 with one
  scale per shuffle chain);
- blocks (V2): the planned channel order of shufflenet_edge.channel_plan (splits and concatenations of contiguous
  channel blocks, weights permuted; no transpose), converted by litert-torch, with its passes (max-pool padding,
  concatenations within XNNPACK's 5 inputs): the exporter's `blocks` form;
- bound: the same network with the shuffle deleted (wrong numbers, right cost), converted by
  litert-torch (it then also drops the concats and slices), and bound+pad with the max-pool fix.
Prints each / reference (same precision), int8 / reference fp32, and the share of the shuffle's cost
removed, (ref - form) / (ref - bound).

    python benchmarks/tflite_fold.py [--rounds 5 --runs 200 --threads 1 2 --models shufflenet_v2_x1_0 shufflenet_v1_x1_0_g3]
    python benchmarks/tflite_fold.py --models megvii_shufflenet_v2_x1_0 --out tflite_fold_megvii_v2

The folded graphs are the exporter's: the graph-level fold (shufflenet_edge.graph_fold) of the model's
`torch.export` graph, then the shuffle_path recipes. The bound is the same pass's ``noshuffle`` form (every
shuffle it finds deleted), for any model with a shuffle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _timing  # noqa: E402

from shufflenet_edge.data import Preprocess, synthetic_images  # noqa: E402
from shufflenet_edge.export.inspect import inspect_tflite  # noqa: E402
from shufflenet_edge.export.tflite_export import _nhwc, apply_passes, convert  # noqa: E402
from shufflenet_edge.export.tflite_quantize import pt2e_quantize  # noqa: E402
from shufflenet_edge.graph_fold import fold_graph  # noqa: E402
from shufflenet_edge.models import build_model  # noqa: E402
from shufflenet_edge.models.common import randomize_batchnorm  # noqa: E402
from shufflenet_edge.runtimes.runner import TFLiteRunner  # noqa: E402


def build_graphs(name: str, calib: np.ndarray) -> dict[str, bytes]:
    ref = randomize_batchnorm(build_model(name, seed=0), seed=1)
    x = torch.randn(1, 224, 224, 3, generator=torch.Generator().manual_seed(0))
    v2 = name.startswith("shufflenet_v2")
    x_nchw = x.permute(0, 3, 1, 2).contiguous()
    folded, _ = fold_graph(ref, (x_nchw,), form="transpose", split="slice", int8_friendly=True)  # as the exporter
    forms = {"reference": _nhwc(ref), "folded": _nhwc(folded)}
    from shufflenet_edge.channel_plan import plan_v2, plannable

    if plannable(ref) is None:  # the planned channel order: channel blocks, no transpose
        forms["blocks"] = _nhwc(plan_v2(ref))
    has_bound = not name.startswith("mobilenet")
    if has_bound:
        bound, _ = fold_graph(ref, (x_nchw,), form="noshuffle", split="slice", int8_friendly=True)  # shuffle deleted
        forms["bound"] = _nhwc(bound)
    graphs: dict[str, bytes] = {}
    for prec in ("fp32", "int8"):
        base = {}
        for k, m in forms.items():
            if prec == "fp32":
                base[k] = convert(m, x)
            else:
                sim, q = pt2e_quantize(m, x, calib, shared_data_path=(k != "reference"))
                base[k] = convert(sim, x, q)
        graphs[f"reference {prec}"] = base["reference"]
        if "blocks" in base:
            graphs[f"blocks {prec}"] = apply_passes(base["blocks"], "blocks", "int8", False)[0]
        for recipe in ("delegate", "cpu", "reference3"):
            if not v2 and recipe == "reference3":
                continue
            graphs[f"{recipe} {prec}"] = apply_passes(base["folded"], recipe, "int8", False)[0]
        if not has_bound:
            continue
        graphs[f"bound {prec}"] = base["bound"]
        from shufflenet_edge.export.passes import maxpool_pad
        from shufflenet_edge.export.passes.graph import Graph

        g = Graph(base["bound"])
        maxpool_pad.run(g)
        graphs[f"bound+pad {prec}"] = g.finish()
    return graphs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shufflenet_v2_x1_0", "shufflenet_v1_x1_0_g3"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default="tflite_fold")
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    calib = np.ascontiguousarray(synthetic_images(32, Preprocess(), seed=7).images.transpose(0, 2, 3, 1))
    data = {"rounds": a.rounds, "runs_per_round": a.runs, "environment": _timing.environment(), "models": {}}
    md = ["## LiteRT (XNNPACK): the folded TFLite forms, 224x224, batch 1", "",
          f"Interleaved in one process, {a.rounds} rounds x {a.runs} runs after 20 warm-up runs, medians. "
          f"CPU: {data['environment']['cpu']}. int8 calibrated on 32 synthetic images.", ""]
    xf = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    for name in a.models:
        graphs = build_graphs(name, calib)
        mdata: dict[str, object] = {"graphs": {}, "timing": {}}
        with tempfile.TemporaryDirectory() as td:
            paths = {}
            for k, b in graphs.items():
                p = Path(td) / (k.replace(" ", "_").replace("+", "_") + ".tflite")
                p.write_bytes(b)
                paths[k] = p
                info = inspect_tflite(p, analyze_gpu=False)
                mdata["graphs"][k] = {f: info[f] for f in ("ops", "data_movement_ops", "data_movement_histogram", "max_rank", "xnnpack_partitions", "quantize_ops")}
            md.append(f"### {name}: graphs")
            md.append("")
            md.append("| graph | ops | data-movement ops | max rank | XNNPACK partitions | QUANTIZE ops |")
            md.append("|---|---|---|---|---|---|")
            for k, gi in mdata["graphs"].items():  # type: ignore[union-attr]
                md.append(f"| {k} | {gi['ops']} | {gi['data_movement_ops']} | {gi['max_rank']} | {gi['xnnpack_partitions']} | {gi['quantize_ops']} |")
            md.append("")
            for th in a.threads:
                runners = {k: TFLiteRunner(str(p), threads=th) for k, p in paths.items()}
                fns = {}
                for k, r in runners.items():
                    px = r.prepare(xf)
                    fns[k] = (lambda r=r, px=px: r.invoke(px))
                per = _timing.interleaved(fns, a.rounds, a.runs)
                rows = {}
                for prec in ("fp32", "int8"):
                    sub = {k.rsplit(" ", 1)[0]: v for k, v in per.items() if k.endswith(prec)}
                    rows[prec] = _timing.summarize(sub, "reference", "bound" if "bound" in sub else None)
                ref32 = np.asarray(per["reference fp32"])
                cross = {k: float(np.median(np.asarray(v) / ref32)) for k, v in per.items() if k.endswith("int8")}
                mdata["timing"][f"threads_{th}"] = {"per_round_ms": per, "summary": rows, "int8_over_reference_fp32": cross}  # type: ignore[index]
                for prec in ("fp32", "int8"):
                    md.append(_timing.table(rows[prec], f"{name}, {prec}, {th} thread(s)"))
                    md.append("")
                md.append(f"int8 / reference fp32 ({th} thread(s)): " + ", ".join(f"{k.rsplit(' ', 1)[0]} {v:.3f}" for k, v in cross.items()))
                md.append("")
                print("\n".join(md[-8:]), flush=True)
        data["models"][name] = mdata
    _timing.write_results(a.out, data, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
