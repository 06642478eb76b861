"""`models` and `info`: what is registered, and where compute and memory traffic go."""

from __future__ import annotations

import argparse
from typing import Any

from shufflenet_edge.cli import DEFAULT_MODEL, add_json_argument, command, emit_json, input_size
from shufflenet_edge.errors import UsageError

# torch is imported when a command runs, not when the CLI starts: `bench`, `inspect` and `profile-report` on
# .onnx/.tflite files work without it.


def _add_models(p: argparse.ArgumentParser) -> None:
    add_json_argument(p, "the list")
    p.add_argument("--family", choices=["shufflenet_v1", "shufflenet_v2", "mobilenet_v2", "megvii_v1", "megvii_v2"])


@command("models", "list the registered models")(_add_models)
def cmd_models(args: argparse.Namespace) -> int:
    from shufflenet_edge.models import get_info, list_models

    rows = []
    for n in list_models(args.family):
        i = get_info(n)
        rows.append({"name": n, "family": i.family, "width": i.width, "groups": i.groups,
                     "paper_mflops": i.paper_mflops, "torchvision_weights": i.torchvision_weights})
    if args.json:
        path = emit_json(rows, args.json)
        if path is None:
            return 0
    nw = max([24, *(len(r["name"]) for r in rows)])
    print(f"{'model':<{nw}} {'family':<14} {'width':>5} {'g':>2} {'paper MFLOPs':>12}")
    for r in rows:
        g = r["groups"] or "-"
        mf = f"{r['paper_mflops']:.0f}" if r["paper_mflops"] else "-"
        print(f"{r['name']:<{nw}} {r['family']:<14} {r['width']:>5} {g:>2} {mf:>12}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help=f"registered model name (default {DEFAULT_MODEL})")
    p.add_argument("--model-file", metavar="FILE.py:FACTORY",
                   help="your own model, as `export --model-file` takes it: the table's unit names are the ones "
                        "`export --int8 --keep-float` accepts")
    p.add_argument("--weights", help="with --model-file: a state dict loaded into it (only the parameters count here)")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="square input size, >= 32 (default 224, or the input shape the --model-file factory returns)")
    p.add_argument("--num-classes", type=int, default=1000)
    add_json_argument(p, "the table")


def _fmt(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def _user_model(args: argparse.Namespace) -> tuple[Any, int, list[str]]:
    """(module, square input size, --keep-float unit names) of `--model-file`."""
    from shufflenet_edge.api import load_model_file
    from shufflenet_edge.export.int8_options import unit_names

    module, shape, _source = load_model_file(args.model_file, args.weights)
    size = args.input_size
    if size is None and shape is not None:
        if len(shape) != 4 or shape[2] != shape[3]:
            raise UsageError(f"{args.model_file} gives the input shape {tuple(shape)}; `info` counts square inputs: "
                             "pass --input-size N")
        size = int(shape[2])
    return module, size or 224, unit_names(module)


@command("info", "params, multiply-adds and memory access cost (MAC) per unit and in total")(_add_info)
def cmd_info(args: argparse.Namespace) -> int:
    from shufflenet_edge.complexity import analyze
    from shufflenet_edge.models import get_info
    from shufflenet_edge.models.registry import build_model

    if args.model_file and args.model:
        raise UsageError("give a registered model name or --model-file, not both")
    if args.weights and not args.model_file:
        raise UsageError("--weights goes with --model-file (a registered model's weights do not change its counts)")
    units: list[str] | None = None
    if args.model_file:
        model, size, units = _user_model(args)
        name, info = args.model_file, None
    else:
        name = args.model or DEFAULT_MODEL
        info = get_info(name)
        model, size = build_model(name, num_classes=args.num_classes), args.input_size or 224
    res = analyze(model, size)
    res["model"] = name
    res["paper_mflops_224"] = info.paper_mflops if info else None
    if units is not None:
        res["keep_float_units"] = units
    if args.json:
        path = emit_json(res, args.json)
        if path is None:  # on stdout: the JSON only
            return 0
    t = res["total"]
    classes = f", {args.num_classes} classes" if info else ""
    print(f"{name} at {size}x{size}{classes}")
    print(f"{'unit':<12} {'output':<18} {'params':>9} {'mult-adds':>10} {'MAC (elem)':>11} {'madds/MAC':>9}")
    for r in res["rows"]:
        shape = "x".join(str(s) for s in r["output_shape"][1:])
        ratio = f"{r['madds'] / r['mac']:.1f}" if r["mac"] else "-"
        print(f"{r['name']:<12} {shape:<18} {_fmt(r['params']):>9} {_fmt(r['madds']):>10} {_fmt(r['mac']):>11} {ratio:>9}")
    print(f"{'total':<12} {'':<18} {t['params']:>9,} {_fmt(t['madds']):>10} {_fmt(t['mac']):>11}")
    if info and info.paper_mflops and size == 224:
        source = "megvii README" if info.family.startswith("megvii") else "paper"
        print(f"{source}: {info.paper_mflops:.0f}M multiply-adds at 224x224; ours {t['madds'] / 1e6:.1f}M")
    if units is not None:
        print(f"--keep-float names (globs allowed): {' '.join(units)}")
    print("MAC counts elements read and written (x4 for fp32 bytes); formulas: docs in shufflenet_edge/complexity.py")
    if args.json:
        print(f"wrote {args.json}")
    return 0
