"""`models` and `info`: what is registered, and where compute and memory traffic go."""

from __future__ import annotations

import argparse

from shufflenet_edge.cli import DEFAULT_MODEL, command, input_size, print_json
from shufflenet_edge.complexity import analyze
from shufflenet_edge.models import get_info, list_models
from shufflenet_edge.models.registry import build_model


def _add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--family", choices=["shufflenet_v1", "shufflenet_v2", "mobilenet_v2", "megvii_v1", "megvii_v2"])


@command("models", "list the registered models")(_add_models)
def cmd_models(args: argparse.Namespace) -> int:
    rows = []
    for n in list_models(args.family):
        i = get_info(n)
        rows.append({"name": n, "family": i.family, "width": i.width, "groups": i.groups,
                     "paper_mflops": i.paper_mflops, "torchvision_weights": i.torchvision_weights})
    if args.json:
        print_json(rows)
        return 0
    nw = max([24, *(len(r["name"]) for r in rows)])
    print(f"{'model':<{nw}} {'family':<14} {'width':>5} {'g':>2} {'paper MFLOPs':>12}")
    for r in rows:
        g = r["groups"] or "-"
        mf = f"{r['paper_mflops']:.0f}" if r["paper_mflops"] else "-"
        print(f"{r['name']:<{nw}} {r['family']:<14} {r['width']:>5} {g:>2} {mf:>12}")
    return 0


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"registered model name (default {DEFAULT_MODEL})")
    p.add_argument("--input-size", type=input_size, default=224, help="square input size, >= 32 (default 224)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fmt(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


@command("info", "params, multiply-adds and memory access cost (MAC) per unit and in total")(_add_info)
def cmd_info(args: argparse.Namespace) -> int:
    info = get_info(args.model)
    model = build_model(args.model, num_classes=args.num_classes)
    res = analyze(model, args.input_size)
    res["model"] = args.model
    res["paper_mflops_224"] = info.paper_mflops
    if args.json:
        print_json(res)
        return 0
    t = res["total"]
    print(f"{args.model} at {args.input_size}x{args.input_size}, {args.num_classes} classes")
    print(f"{'unit':<12} {'output':<18} {'params':>9} {'mult-adds':>10} {'MAC (elem)':>11} {'madds/MAC':>9}")
    for r in res["rows"]:
        shape = "x".join(str(s) for s in r["output_shape"][1:])
        ratio = f"{r['madds'] / r['mac']:.1f}" if r["mac"] else "-"
        print(f"{r['name']:<12} {shape:<18} {_fmt(r['params']):>9} {_fmt(r['madds']):>10} {_fmt(r['mac']):>11} {ratio:>9}")
    print(f"{'total':<12} {'':<18} {t['params']:>9,} {_fmt(t['madds']):>10} {_fmt(t['mac']):>11}")
    if info.paper_mflops and args.input_size == 224:
        source = "megvii README" if info.family.startswith("megvii") else "paper"
        print(f"{source}: {info.paper_mflops:.0f}M multiply-adds at 224x224; ours {t['madds'] / 1e6:.1f}M")
    print("MAC counts elements read and written (x4 for fp32 bytes); formulas: docs in shufflenet_edge/complexity.py")
    return 0
