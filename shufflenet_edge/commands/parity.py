"""`parity`: every artifact against the PyTorch float model; non-zero exit when a threshold is missed."""

from __future__ import annotations

import argparse
from typing import Any

from shufflenet_edge.cli import add_json_argument, command, emit_json, human_stream, positive_int
from shufflenet_edge.console import err
from shufflenet_edge.errors import UsageError


def fraction(s: str) -> float:
    """0.99 or 99%."""
    try:
        v = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.99 or a percentage like 99%, got {s!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1] (or a percentage like 99%), got {s!r}")
    return v


def non_negative(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def add_gate_arguments(g: Any, drop_help: str) -> None:
    """The gate flags, shared by `parity` (its gate) and `export --int8` (the int8 budget); `gate_from` reads them."""
    g.add_argument("--min-top1-agreement", type=fraction, metavar="X", help="e.g. 0.99 or 99%%")
    g.add_argument("--min-top5-overlap", type=fraction, metavar="X")
    g.add_argument("--min-psnr", type=float, metavar="DB", help="e.g. 30")
    g.add_argument("--max-abs-error", type=non_negative, metavar="E", help="max absolute output error, e.g. 1e-4")
    g.add_argument("--min-cosine", type=fraction, metavar="X", help="minimum per-sample cosine similarity")
    g.add_argument("--max-accuracy-drop", type=non_negative, metavar="POINTS", help=drop_help)


def gate_from(args: argparse.Namespace) -> Any:
    """The parity `Thresholds` the gate flags give (empty when none is set)."""
    from shufflenet_edge.parity import Thresholds

    return Thresholds(max_abs_error=args.max_abs_error, min_psnr=args.min_psnr,
                      min_top1_agreement=args.min_top1_agreement, min_top5_overlap=args.min_top5_overlap,
                      min_cosine=args.min_cosine, max_accuracy_drop=args.max_accuracy_drop)


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help=".onnx or .tflite files (their sidecar JSON says how to feed them)")
    p.add_argument("--model", help="registered model name (default: from each artifact's sidecar)")
    p.add_argument("--model-file", metavar="FILE.py:FACTORY",
                   help="your own model as the reference (as for export; default: the one the sidecar records)")
    p.add_argument("--weights", help="torchvision-format state dict (default: the one the sidecar records)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="DIR", help="image folder; one sub-folder per class gives accuracy numbers")
    src.add_argument("--npy", metavar="FILE",
                     help="preprocessed inputs: .npy float (N,3,H,W) or (N,H,W,3), uint8 (N,H,W,3) raw RGB, or .npz with x and y")
    src.add_argument("--synthetic", type=positive_int, metavar="N",
                     help="N structured synthetic images (default, without --images/--npy: the images each int8 "
                          "artifact's export checked it on, as its sidecar records them, else 32 synthetic ones)")
    p.add_argument("--labels", metavar="FILE",
                   help="class names in model output order, one per line (e.g. ImageNet synsets), to map --images folders")
    p.add_argument("--limit", type=positive_int, help="use this many images from --images, evenly spaced over the sorted folder")
    add_json_argument(p, "the report")
    add_gate_arguments(p, "top-1 accuracy may fall at most this many percentage points (needs labelled --images)")
    p.add_argument("--report-only", action="store_true",
                   help="report the statistics without a gate (by default each artifact must pass its precision's "
                        "default gate, or the thresholds given above)")
    p.add_argument("--per-layer", action="store_true",
                   help="compare the stem, every unit and the head with PyTorch and show where error first grows")
    p.add_argument("--per-layer-samples", type=positive_int, default=4, metavar="N", help="inputs used by --per-layer (default 4)")
    p.add_argument("--threads", type=positive_int, default=1)
    t = p.add_argument_group("where the artifact runs (default: here); the same metrics and gate, one row per target")
    t.add_argument("--target", action="append", metavar="TARGET",
                   help="local, ssh://user@host[:port] (runner.py on the board's python) or adb[:SERIAL] (the demo "
                        "app's ParityActivity); repeat for several")
    t.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="passed to ssh/scp as -o OPT")
    t.add_argument("--ssh-jump", metavar="HOST", help="jump host (-J)")
    t.add_argument("--ssh-config", metavar="FILE", help="ssh config file (-F)")
    t.add_argument("--ssh-identity", metavar="FILE", help="private key (-i)")
    t.add_argument("--remote-python", default="python3", help="python on the board (default python3)")
    t.add_argument("--timeout", type=float, default=600.0, help="seconds per remote run (default 600)")
    t.add_argument("--delegate", choices=("cpu", "gpu"), default="cpu",
                   help="adb: run on the CPU (XNNPACK) or the GPU delegate (the delegate-vs-CPU check)")
    t.add_argument("--adb", metavar="PATH", help="adb binary (default: adb on PATH or $ADB)")
    p.add_argument("--quiet", action="store_true", help="print only failures")


def _target_options(args: argparse.Namespace) -> dict[str, Any]:
    from shufflenet_edge.runtimes.ssh import SshOptions
    from shufflenet_edge.runtimes.targets import AdbOptions

    ssh = SshOptions(options=list(args.ssh_option), jump=args.ssh_jump, config=args.ssh_config,
                     identity=args.ssh_identity, remote_python=args.remote_python,
                     **({"timeout": args.timeout} if args.timeout else {}))
    return {"ssh": ssh, "adb": AdbOptions(adb=args.adb, delegate=args.delegate or "cpu", timeout=args.timeout)}


@command("parity", "compare .onnx/.tflite artifacts with the PyTorch float model: errors, PSNR, agreement, accuracy")(_add)
def cmd_parity(args: argparse.Namespace) -> int:
    from shufflenet_edge.parity import (
        DEFAULT_SEED,
        Inputs,
        ParityOptions,
        Reference,
        format_table,
        inputs_from_npy,
        read_label_file,
        run_parity,
    )

    if args.limit and not args.images:
        raise UsageError("--limit applies to --images only")
    if args.labels and not args.images:
        raise UsageError("--labels maps the class sub-folders of --images; give --images too")
    if args.images:
        inputs = Inputs("images", f"image folder {args.images}", folder=args.images, limit=args.limit)
        if args.labels:
            inputs.label_names, inputs.label_source = read_label_file(args.labels), f"label file {args.labels}"
    elif args.npy:
        inputs = inputs_from_npy(args.npy)
    elif args.synthetic:
        inputs = Inputs("synthetic", "synthetic", n_synthetic=args.synthetic, seed=DEFAULT_SEED)
    else:  # per artifact: the images its export checked int8 on (recorded), else 32 structured synthetic ones
        inputs = Inputs("default", "default")
    thresholds = gate_from(args)
    if args.report_only and thresholds.any():
        raise UsageError("--report-only turns the gate off; drop it or the threshold options")
    report = run_parity(
        args.artifacts, inputs, Reference(model=args.model, model_file=args.model_file, weights=args.weights),
        ParityOptions(thresholds=thresholds, report_only=args.report_only, per_layer=args.per_layer,
                      per_layer_samples=args.per_layer_samples, threads=args.threads,
                      targets=tuple(args.target or ["local"]), target_options=_target_options(args)),
    )
    emit_json(report, args.json)
    if not args.quiet:
        print(format_table(report), file=human_stream(args))
    if not report["passed"]:
        for r in report["artifacts"]:
            if not r["passed"]:
                msg = f"parity failed for {r['artifact']}: {'; '.join(r['failures'])} ({r['gate']['source']} gate; {r['summary']})"
                pl = r.get("per_layer")
                if pl and pl.get("first_divergence"):
                    msg += f" (per-layer: error first grows at {pl['first_divergence']})"
                print(f"shufflenet-edge: {msg}", file=err())
        return 1
    return 0
