"""`export` and `inspect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from shufflenet_edge.cli import DEFAULT_MODEL, command, input_size, positive_int, print_json
from shufflenet_edge.commands.parity import fraction, non_negative
from shufflenet_edge.errors import UsageError


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model name (default {DEFAULT_MODEL})")
    p.add_argument("--model-file", metavar="FILE.py:FACTORY",
                   help="your own model: FACTORY() returns the nn.Module, or (module, example input shape); --weights "
                        "is loaded into it; the graph-level fold finds its channel shuffles")
    p.add_argument("--weights", help="state dict (.pth): torchvision's layout, or megvii's checkpoints ({'state_dict': "
                   "{'module.*': ...}}) for the megvii_* models; without it: seeded random weights")
    p.add_argument("--target", choices=["onnx", "tflite"], default="tflite", help="artifact format (default tflite)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true", help="full-integer int8 (TFLite PT2E; ONNX QDQ)")
    prec.add_argument("--fp16", action="store_true", help="float16 weights (TFLite only)")
    p.add_argument("--calib", metavar="DIR", help="calibration image folder (default: stated synthetic images)")
    p.add_argument("--out", help="output path (default out/<model>_<precision>.<ext>)")
    p.add_argument("--form", default="auto",
                   help="ONNX: auto|reference|gather|transpose; TFLite: auto|reference|cpu|delegate (default auto: time every candidate, "
                        "the reference form included, and ship the preferred folded form unless another is faster "
                        "beyond the round-to-round spread)")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--batch", type=positive_int, default=1, help="static batch size (default 1)")
    b.add_argument("--dynamic-batch", action="store_true", help="ONNX: symbolic batch dimension")
    p.add_argument("--io", choices=["float", "int8", "uint8"], help="TFLite int8: input/output type (default int8)")
    p.add_argument("--layout", choices=["nhwc", "nchw"], default=None, help="TFLite input layout (default nhwc)")
    p.add_argument("--input-size", type=input_size, default=224)
    p.add_argument("--threads", type=positive_int, default=1, help="threads used when --form auto times the candidates")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights when --weights is not given")
    p.add_argument("--keep-candidates", metavar="DIR", help="TFLite: also write every candidate graph of the form to DIR")
    t = p.add_argument_group("where --form auto times the candidates (reference included; the rule is in the sidecar)")
    t.add_argument("--tune-on", default="local", metavar="TARGET",
                   help="local (default), ssh://user@host[:port] or adb[:SERIAL]: time the candidates on the device that "
                        "will run it")
    t.add_argument("--tune-rounds", type=positive_int, metavar="N", help="interleaved rounds (default 7)")
    t.add_argument("--tune-runs", type=positive_int, metavar="N", help="runs per candidate per round (default 30)")
    t.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="passed to ssh/scp as -o OPT")
    t.add_argument("--ssh-jump", metavar="HOST", help="jump host (-J)")
    t.add_argument("--ssh-config", metavar="FILE", help="ssh config file (-F)")
    t.add_argument("--ssh-identity", metavar="FILE", help="private key (-i)")
    t.add_argument("--remote-python", default="python3", help="python on the board (default python3)")
    t.add_argument("--adb", metavar="PATH", help="adb binary for --tune-on adb (default: adb on PATH or $ADB)")
    t.add_argument("--benchmark-binary", action="append", metavar="PATH",
                   help="--tune-on adb: TFLite's benchmark_model built for the phone (or $SHUFFLENET_EDGE_BENCHMARK_MODEL)")
    t.add_argument("--cpu-mask", metavar="HEX", help="--tune-on adb: taskset CPU mask (default: the big cores)")
    t.add_argument("--tune-delegate", choices=["cpu", "gpu"], default="cpu",
                   help="TFLite: what the artifact will run on; gpu prefers the delegate form (and times the "
                        "candidates with benchmark_model --use_gpu on --tune-on adb)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    q = p.add_argument_group("int8 choices (issue 15; README 'int8 that survives')")
    q.add_argument("--keep-float", nargs="+", metavar="UNIT",
                   help="keep these units in float, with quantize/dequantize at their borders: names as `info` prints "
                        "them (conv1, stage3.1, conv5, fc), globs allowed (stage3.*)")
    q.add_argument("--calib-method", choices=["minmax", "histogram", "percentile"],
                   help="activation ranges: TFLite PT2E observers (default histogram); ONNX onnxruntime methods "
                        "(default minmax; histogram = Entropy)")
    q.add_argument("--calib-images", type=positive_int, metavar="N", help="calibration images to use (default 64; 32 synthetic)")
    q.add_argument("--int8-weights", choices=["per-channel", "per-tensor"], help="weight scales (default per-channel)")
    g = p.add_argument_group("int8 gate against the float model (default: report only; same flags as `parity`)")
    g.add_argument("--min-psnr", type=float, metavar="DB")
    g.add_argument("--min-top1-agreement", type=fraction, metavar="X")
    g.add_argument("--min-top5-overlap", type=fraction, metavar="X")
    g.add_argument("--max-abs-error", type=non_negative, metavar="E")
    g.add_argument("--min-cosine", type=fraction, metavar="X")


def _tune_kw(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    if args.tune_on != "local" and args.form != "auto":
        raise UsageError("--tune-on chooses among the candidates of --form auto; drop --form or --tune-on")
    is_adb = args.tune_on == "adb" or args.tune_on.startswith("adb:")
    if args.tune_delegate == "gpu" and not is_adb:
        raise UsageError("--tune-delegate gpu times the candidates on a phone's GPU: use --tune-on adb[:SERIAL] "
                         "(elsewhere the timings would be CPU ones; without a phone, export --form delegate)")
    if args.tune_on == "local":
        opts = None
    elif args.tune_on.startswith("ssh://"):
        from shufflenet_edge.runtimes.ssh import SshOptions, parse_ssh_target

        parse_ssh_target(args.tune_on)  # a bad spec fails now, not after the conversion
        opts = SshOptions(options=list(args.ssh_option), jump=args.ssh_jump, config=args.ssh_config,
                          identity=args.ssh_identity, remote_python=args.remote_python)
    elif is_adb:
        from shufflenet_edge.runtimes.adb import ENV_BENCHMARK_MODEL, _tools, connect

        opts = {"adb": args.adb, "benchmark_binary": args.benchmark_binary, "cpu_mask": args.cpu_mask,
                "adb_delegate": args.tune_delegate}
        connect(args.tune_on, opts)  # no device, unknown serial: fail now, not after the conversion
        tool = _tools(opts).benchmark_model if args.target == "tflite" else _tools(opts).ort_perf_test
        if tool is None:
            raise UsageError(f"--tune-on {args.tune_on}: pass --benchmark-binary PATH (TFLite's benchmark_model, or "
                             f"onnxruntime_perf_test, built for the phone) or set {ENV_BENCHMARK_MODEL}")
    else:
        raise UsageError(f"--tune-on {args.tune_on!r}: local, ssh://user@host[:port] or adb[:SERIAL]")
    return {"tune_on": args.tune_on, "tune_options": opts, "tune_rounds": args.tune_rounds, "tune_runs": args.tune_runs}


@command("export", "export a model to ONNX or TFLite (folded, optionally int8), checked against PyTorch")(_add_export)
def cmd_export(args: argparse.Namespace) -> int:
    from shufflenet_edge.models import get_info

    user_kw: dict = {}  # type: ignore[type-arg]
    if args.model_file:
        import torch

        from shufflenet_edge.api import load_model_file

        module, shape, source = load_model_file(args.model_file, args.weights)
        if shape is None:
            shape = (args.batch, 3, args.input_size, args.input_size)
        args.model = args.model_file.rpartition(":")[2]
        user_kw = {"module": module, "source": source,
                   "example_input": torch.randn(*shape, generator=torch.Generator().manual_seed(0))}
        args.weights = None  # already loaded into the module
        if shape[-1] != shape[-2]:
            args.input_size = int(shape[-1])
    else:
        get_info(args.model)
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    ext = "onnx" if args.target == "onnx" else "tflite"
    out = Path(args.out) if args.out else Path("out") / f"{args.model}_{precision}.{ext}"
    if args.calib and not args.int8:
        raise UsageError("--calib is only used with --int8")
    from shufflenet_edge.parity import Thresholds

    gate = Thresholds(max_abs_error=args.max_abs_error, min_psnr=args.min_psnr, min_top1_agreement=args.min_top1_agreement,
                      min_top5_overlap=args.min_top5_overlap, min_cosine=args.min_cosine)
    int8_flags = [f for f, v in (("--keep-float", args.keep_float), ("--calib-method", args.calib_method),
                                 ("--calib-images", args.calib_images), ("--int8-weights", args.int8_weights)) if v]
    if not args.int8 and (int8_flags or gate.any()):
        raise UsageError(f"{', '.join(int8_flags) or 'the gate options'} only apply with --int8")
    int8_kw = {"keep_float": args.keep_float, "calib_method": args.calib_method, "calib_images": args.calib_images,
               "int8_weights": args.int8_weights, "gate": gate if gate.any() else None}
    if args.target == "onnx":
        if args.fp16:
            raise UsageError("--fp16 is for --target tflite")
        if args.keep_candidates or args.tune_delegate != "cpu":
            raise UsageError("--keep-candidates and --tune-delegate are for --target tflite")
        if args.io or args.layout:
            raise UsageError("--io and --layout are for --target tflite (ONNX input is float NCHW)")
        from shufflenet_edge.export.onnx_export import ONNX_FORMS, export_onnx

        if args.form not in ONNX_FORMS:
            raise UsageError(f"unknown ONNX form {args.form!r}; valid: {', '.join(ONNX_FORMS)}")
        side = export_onnx(args.model, out, weights=args.weights, form=args.form, batch=args.batch,
                           dynamic_batch=args.dynamic_batch, input_size=args.input_size, int8=args.int8,
                           calib=args.calib, threads=args.threads, seed=args.seed, show_progress=not args.quiet,
                           **int8_kw, **user_kw, **_tune_kw(args))
    else:
        if args.dynamic_batch:
            raise UsageError("--dynamic-batch is for --target onnx (TFLite tensors are static)")
        if args.io and not args.int8:
            raise UsageError("--io is for --int8 models (float models have float I/O)")
        from shufflenet_edge.export.tflite_export import TFLITE_FORMS, export_tflite

        if args.form not in TFLITE_FORMS:
            raise UsageError(f"unknown TFLite form {args.form!r}; valid: {', '.join(TFLITE_FORMS)}")
        side = export_tflite(args.model, out, weights=args.weights, form=args.form, precision=precision,
                             io=args.io or ("int8" if args.int8 else "float"), layout=args.layout or "nhwc",
                             batch=args.batch, input_size=args.input_size, calib=args.calib, threads=args.threads,
                             seed=args.seed, show_progress=not args.quiet, tune_delegate=args.tune_delegate,
                             keep_candidates=args.keep_candidates, **int8_kw, **user_kw, **_tune_kw(args))
    g = side["graph"]
    print(f"wrote {out} ({side['format']}, {side['precision']}, form {side['form']}, {g['ops']} ops, "
          f"{g['data_movement_ops']} data-movement, max rank {g['max_rank']}"
          + (f", {g['xnnpack_partitions']} XNNPACK partition(s)" if g.get("xnnpack_partitions") is not None else "") + ")")
    from shufflenet_edge.graph_fold import report_lines

    for line in report_lines(side.get("fold")):
        print(line)
    print(f"report: {out}.json")
    if side.get("random_weights"):
        print("note: random weights (no --weights): numbers are for speed and parity only")
    if side.get("calibration"):
        print(f"calibration: {side['calibration']}")
    _print_int8(side)
    return 0


def _print_int8(side: dict) -> None:  # type: ignore[type-arg]
    from shufflenet_edge.export import int8_report

    if side.get("keep_float"):
        print(f"kept in float: {' '.join(side['keep_float'])}")
    loss = (side.get("checks") or {}).get("int8_loss") or side.get("int8_loss")
    if not loss:
        return
    print(int8_report.summary_line(loss))
    if loss.get("below_default_gate"):
        print(f"warning: below the default int8 parity gate ({', '.join(f'{k} {v}' for k, v in loss['default_gate'].items())}); "
              f"{int8_report.remedies(loss.get('first_weak_point'))}")


def _add_inspect(p: argparse.ArgumentParser) -> None:
    from shufflenet_edge.cli import add_json_argument

    p.add_argument("artifact", help=".onnx or .tflite file")
    add_json_argument(p, "the graph summary")
    p.add_argument("--no-gpu-check", action="store_true", help="TFLite: skip LiteRT's GPU compatibility analysis")


@command("inspect", "op histogram, data-movement ops, max rank, I/O and quantization of an artifact")(_add_inspect)
def cmd_inspect(args: argparse.Namespace) -> int:
    from shufflenet_edge.cli import emit_json, json_to_stdout
    from shufflenet_edge.export.inspect import format_table, inspect_artifact, inspect_tflite

    if args.artifact.endswith(".tflite") and args.no_gpu_check:
        from pathlib import Path as _P

        info = inspect_tflite(_P(args.artifact), analyze_gpu=False)
    else:
        info = inspect_artifact(args.artifact)
    if json_to_stdout(args):  # the JSON only on stdout
        print_json(info)
        return 0
    written = emit_json(info, args.json)
    print(format_table(info))
    if written is not None:
        print(f"wrote {written}")
    return 0
