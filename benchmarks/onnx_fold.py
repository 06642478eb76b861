"""Benchmark: the fold on onnxruntime (CPU), interleaved in one process.

Graphs (ShuffleNetV2 1.0x unless --model, 224x224, batch 1, random weights with random BN statistics):
reference (torchvision form), the two folded forms (gather, transpose), and the lower bound: the same
network with the shuffle deleted (wrong numbers, right cost: only concat and split remain).
Prints each / reference and the share of the shuffle's cost removed, (ref - form) / (ref - bound).
Beyond the fold: the same graphs with onnxruntime's EXTENDED instead of ALL graph optimizations
(ALL adds the NCHWc layout transformer on x86), and int8 QDQ of the folded form.

    python benchmarks/onnx_fold.py [--rounds 5 --runs 200 --threads 1 2]
    python benchmarks/onnx_fold.py --model megvii_shufflenet_v2_x1_0 --out onnx_fold_megvii_v2

The folded forms are the exporter's: the graph-level fold (shufflenet_edge.graph_fold). The bound is the same
pass's ``noshuffle`` form (every shuffle it finds deleted), for any model with a shuffle.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _timing  # noqa: E402

from shufflenet_edge.data import Preprocess  # noqa: E402
from shufflenet_edge.export.onnx_export import _torch_to_onnx  # noqa: E402
from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8  # noqa: E402
from shufflenet_edge.graph_fold import fold_graph  # noqa: E402
from shufflenet_edge.models import build_model  # noqa: E402
from shufflenet_edge.models.common import randomize_batchnorm  # noqa: E402
from shufflenet_edge.runtimes.runner import OnnxRunner  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shufflenet_v2_x1_0")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-extras", action="store_true", help="skip the optimization-level and int8 comparisons")
    ap.add_argument("--out", default="onnx_fold", help="results name under benchmarks/results/")
    a = ap.parse_args()
    ref = randomize_batchnorm(build_model(a.model, seed=0), seed=1)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    data = {"model": a.model, "rounds": a.rounds, "runs_per_round": a.runs, "environment": _timing.environment(), "results": {}}
    md = [f"## onnxruntime: the fold on {a.model}, 224x224, batch 1", "",
          f"Interleaved in one process, {a.rounds} rounds x {a.runs} runs, medians; spinning off. CPU: {data['environment']['cpu']}.", ""]
    with tempfile.TemporaryDirectory() as td:
        paths = {}
        has_bound = not a.model.startswith("mobilenet")
        fold_counts = {}
        for form in ("reference", "gather", "transpose", "noshuffle"):
            p = Path(td) / f"{form}.onnx"
            if form == "noshuffle":
                if not has_bound:
                    continue
                m, _ = fold_graph(ref, (x,), form="noshuffle", split="split")  # the shuffle deleted: lower bound
            elif form == "reference":
                m = ref
            else:
                m, rep = fold_graph(ref, (x,), form=form, split="split")
                fold_counts[form] = rep.counts()
            _torch_to_onnx(m, x, p, dynamic_batch=False)
            paths[form] = p
        from shufflenet_edge.export.inspect import inspect_onnx

        data["graphs"] = {k: {f: inspect_onnx(p)[f] for f in ("ops", "data_movement_ops", "op_histogram", "max_rank")}
                          for k, p in paths.items()}
        data["fold"] = fold_counts
        md.append("| graph | ops | data-movement ops | max rank |")
        md.append("|---|---|---|---|")
        for k, gi in data["graphs"].items():
            md.append(f"| {k} | {gi['ops']} | {gi['data_movement_ops']} | {gi['max_rank']} |")
        md.append("")
        want = ref(x).detach().numpy()
        for form in ("gather", "transpose"):
            err = np.abs(OnnxRunner(str(paths[form]))(xn) - want).max()
            # relative to the largest logit: random BN statistics make megvii's logits large (float32 rounding grows)
            assert err < 1e-4 * max(1.0, float(np.abs(want).max())), f"{form} disagrees with PyTorch ({err})"
        if not a.no_extras:
            q = Path(td) / "gather_int8.onnx"
            quantize_onnx_int8(paths["gather"], q, Preprocess(), None)
            paths["gather_int8"] = q
        for th in a.threads:
            runners = {k: OnnxRunner(str(p), threads=th) for k, p in paths.items() if k != "gather_int8"}
            fns = {k: (lambda r=r: r.invoke(xn)) for k, r in runners.items()}
            per = _timing.interleaved(fns, a.rounds, a.runs)
            summ = _timing.summarize(per, "reference", "noshuffle" if has_bound else None)
            data["results"][f"threads_{th}"] = {"per_round_ms": per, "summary": summ}
            md.append(_timing.table(summ, f"{th} thread(s), graph optimizations ALL"))
            md.append("")
            print(md[-2])
            if not a.no_extras:
                ext = {f"{k}@extended": OnnxRunner(str(paths[k]), threads=th, optimization="extended") for k in ("reference", "gather")}
                ext["reference"] = runners["reference"]
                ext["gather"] = runners["gather"]
                ext["gather_int8"] = OnnxRunner(str(paths["gather_int8"]), threads=th)
                fns2 = {k: (lambda r=r: r.invoke(xn)) for k, r in ext.items()}
                per2 = _timing.interleaved(fns2, a.rounds, a.runs)
                summ2 = _timing.summarize(per2, "reference", None)
                data["results"][f"threads_{th}_extras"] = {"per_round_ms": per2, "summary": summ2}
                md.append(_timing.table(summ2, f"{th} thread(s): beyond the fold (EXTENDED optimizations, int8 QDQ)"))
                md.append("")
                print(md[-2])

    _timing.write_results(a.out, data, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
