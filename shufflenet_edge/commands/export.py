"""`export` and `inspect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from shufflenet_edge.cli import DEFAULT_MODEL, command, input_size, positive_int, print_json
from shufflenet_edge.commands.parity import add_gate_arguments, gate_from
from shufflenet_edge.errors import UsageError
from shufflenet_edge.export.config import ExportConfig


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
                   help="ONNX: auto|reference|gather|transpose; TFLite: auto|reference|cpu|delegate|blocks (default auto: "
                        "time the candidates (ONNX: every form, the reference included; TFLite: the cpu and delegate "
                        "recipes of one conversion) and ship the preferred folded form unless another is faster "
                        "beyond a 1.5%% tie band with 95%% confidence)")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--batch", type=positive_int, default=1, help="static batch size (default 1)")
    b.add_argument("--dynamic-batch", action="store_true", help="ONNX: symbolic batch dimension")
    p.add_argument("--io", choices=["float", "int8", "uint8"], help="TFLite int8: input/output type (default int8)")
    p.add_argument("--layout", choices=["nhwc", "nchw"], default=None, help="TFLite input layout (default nhwc)")
    p.add_argument("--input-size", type=input_size, default=224)
    p.add_argument("--threads", type=positive_int, default=1, help="threads used when --form auto times the candidates")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights when --weights is not given")
    p.add_argument("--keep-candidates", metavar="DIR", help="TFLite: also write every candidate graph of the form to DIR")
    t = p.add_argument_group("where --form auto times the candidates (the rule is in the sidecar)")
    t.add_argument("--tune-on", default="local", metavar="TARGET",
                   help="local (default), ssh://user@host[:port] or adb[:SERIAL]: time the candidates on the device that "
                        "will run it")
    t.add_argument("--tune-rounds", type=positive_int, metavar="N",
                   help="exactly N interleaved rounds (default: locally until every comparison is decided or "
                        "--tune-seconds is spent; 7 on a remote target)")
    t.add_argument("--tune-seconds", type=float, metavar="S",
                   help="local timing budget in seconds (default: a quarter of the time the conversion took, 5 to 60 s): "
                        "past it, an undecided comparison is said to be too noisy to tell")
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
    p.add_argument("--verbose", action="store_true",
                   help="every fold line (one per shuffle) and every candidate's timing")
    q = p.add_argument_group("int8 choices (docs/int8.md)")
    q.add_argument("--keep-float", nargs="+", metavar="UNIT",
                   help="keep these units in float, with quantize/dequantize at their borders: names as `info` prints "
                        "them (conv1, stage3.1, conv5, fc), globs allowed (stage3.*)")
    q.add_argument("--calib-method", choices=["minmax", "histogram", "percentile"],
                   help="activation ranges: TFLite PT2E observers (default histogram); ONNX onnxruntime methods "
                        "(default minmax; histogram = Entropy)")
    q.add_argument("--calib-images", type=positive_int, metavar="N", help="calibration images to use (default 64; 32 synthetic)")
    q.add_argument("--int8-weights", choices=["per-channel", "per-tensor"], help="weight scales (default per-channel)")
    g = p.add_argument_group("int8 budget: the gate against the float model (default: report only; same flags as "
                             "`parity`); an artifact that misses it gets the fewest units kept float that meet it")
    add_gate_arguments(g, "top-1 accuracy on the labelled --images may fall at most this many percentage points")
    g.add_argument("--images", metavar="DIR",
                   help="judge the int8 artifact on these images (one sub-folder per class gives accuracy); parity "
                        "then uses them by default for it (default: held-out --calib images, else synthetic ones)")
    g.add_argument("--labels", metavar="FILE",
                   help="class names in model output order, one per line, to map the --images folders")
    g.add_argument("--search-tries", type=int, metavar="N",
                   help="simulated quantizations the float-unit search may spend when the fully-int8 artifact misses "
                        "the gate (default 12; 0: refuse at once)")


def _tune_options(args: argparse.Namespace) -> object:
    """The typed options of the --tune-on target (runtimes.targets): ssh's or adb's."""
    from shufflenet_edge.runtimes.targets import AdbOptions, parse_target

    kind = parse_target(args.tune_on).kind
    if kind == "ssh":
        from shufflenet_edge.runtimes.ssh import SshOptions

        return SshOptions(options=list(args.ssh_option), jump=args.ssh_jump, config=args.ssh_config,
                          identity=args.ssh_identity, remote_python=args.remote_python)
    if kind == "adb":
        return AdbOptions(adb=args.adb, benchmark_binary=tuple(args.benchmark_binary or ()), cpu_mask=args.cpu_mask,
                          delegate=args.tune_delegate)
    return None


def _check_adb_tuning(args: argparse.Namespace, opts: object) -> None:
    """--tune-on adb: the phone and the benchmark binary exist, before any conversion."""
    from shufflenet_edge.runtimes.adb import ENV_BENCHMARK_MODEL, connect, find_tools

    runner_opts = opts.as_runner_options()  # type: ignore[attr-defined]
    connect(args.tune_on, runner_opts)  # no device, unknown serial: fail now, not after the conversion
    tools = find_tools(runner_opts)
    if (tools.benchmark_model if args.target == "tflite" else tools.ort_perf_test) is None:
        raise UsageError(f"--tune-on {args.tune_on}: pass --benchmark-binary PATH (TFLite's benchmark_model, or "
                         f"onnxruntime_perf_test, built for the phone) or set {ENV_BENCHMARK_MODEL}")


def build_config(args: argparse.Namespace) -> ExportConfig:
    """The flags -> one ExportConfig; every rule between them is checked there (export/config.py)."""
    gate = gate_from(args)
    opts = _tune_options(args)
    return ExportConfig.from_options(
        args.target, precision="int8" if args.int8 else "fp16" if args.fp16 else "fp32", form=args.form,
        batch=args.batch, dynamic_batch=args.dynamic_batch, input_size=args.input_size, layout=args.layout, io=args.io,
        seed=args.seed, keep_candidates=args.keep_candidates, progress=not args.quiet,
        calib=args.calib, calib_method=args.calib_method, calib_images=args.calib_images,
        int8_weights=args.int8_weights, keep_float=args.keep_float, gate=gate, search_tries=args.search_tries,
        images=args.images, labels=args.labels,
        tune_on=args.tune_on, tune_options=opts, tune_rounds=args.tune_rounds, tune_runs=args.tune_runs,
        tune_seconds=args.tune_seconds,
        tune_delegate=args.tune_delegate, threads=args.threads)


@command("export", "export a model to ONNX or TFLite (folded, optionally int8), checked against PyTorch")(_add_export)
def cmd_export(args: argparse.Namespace) -> int:
    from shufflenet_edge.export.pipeline import export

    cfg = build_config(args)
    if cfg.tune.options is not None and cfg.tune.target.startswith("adb"):
        _check_adb_tuning(args, cfg.tune.options)
    kw: dict = {"weights": args.weights}  # type: ignore[type-arg]
    if args.model_file:
        import torch

        from shufflenet_edge.api import load_model_file

        module, shape, source = load_model_file(args.model_file, args.weights)
        if shape is None:
            shape = (args.batch, 3, args.input_size, args.input_size)
        model: object = module
        kw = {"name": args.model_file.rpartition(":")[2], "source": source,
              "example_input": torch.randn(*shape, generator=torch.Generator().manual_seed(0))}
    else:
        model = args.model
    out = Path(args.out) if args.out else None
    art = export(model, out, cfg, **kw)  # type: ignore[arg-type]
    side, out = dict(art), art.path
    g = side["graph"]
    # `--form cpu` covers two CPU recipes: say which one shipped (the form line above names the recipe)
    recipe = side.get("recipe")
    form = side["form"] + (f" ({recipe} recipe)" if recipe and recipe != side["form"] else "")
    print(f"wrote {out} ({side['format']}, {side['precision']}, form {form}, {g['ops']} ops, "
          f"{g['data_movement_ops']} data-movement, max rank {g['max_rank']}"
          + (f", {g['xnnpack_partitions']} XNNPACK partition(s)" if g.get("xnnpack_partitions") is not None else "") + ")")
    from shufflenet_edge.graph_fold import report_lines

    lines = report_lines(side.get("fold"))
    for line in lines if args.verbose else lines[:1]:  # one line per shuffle only with --verbose
        print(line)
    if args.verbose and side.get("form_timings"):
        t = side["form_timings"]
        for k, ms in (t.get("median_ms") or {}).items():
            gr = (t.get("candidate_graphs") or {}).get(k) or {}
            print(f"  candidate {k}: {ms:.3f} ms median ({t.get('threads')} thread(s))"
                  + (f", {gr['data_movement_ops']} data-movement ops, max rank {gr['max_rank']}" if gr else ""))
    if (side.get("fallback") or {}).get("warning"):
        print(f"warning: {side['fallback']['warning']}")
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
    checks = side.get("checks") or {}
    if checks.get("warning"):
        print(f"warning: {checks['warning']}")
    loss = checks.get("int8_loss")
    if not loss:
        return
    print(int8_report.summary_line(loss))
    if loss.get("search"):
        from shufflenet_edge.export import int8_search

        print(int8_search.summary(loss["search"]))
    if loss.get("below_default_gate"):
        print(f"warning: below the default int8 parity gate ({', '.join(f'{k} {v}' for k, v in loss['default_gate'].items())}); "
              f"{int8_report.remedies(loss.get('first_weak_point'))}")
    speed = checks.get("int8_speed")
    if speed:
        isa = (speed.get("host") or {}).get("isa") or {}
        where = (f"this host ({', '.join(isa.get('flags') or []) or 'no int8 dot-product flags'})"
                 if speed["target"] == "local" else speed["target"])
        line = (f"int8 speed: x{speed['int8_over_fp32']:.3f} (95% CI {speed['ci95'][0]:.3f}-{speed['ci95'][1]:.3f}) of "
                f"the fp32 graph on {where} ({speed['runtime']}, {speed['threads']} thread(s)): {speed['int8_is']}")
        if speed["int8_is"] == "slower":
            line = ("warning: " + line + "; this runtime's int8 kernels lose to its fp32 ones here: for speed on "
                    "this machine ship fp32, or --target tflite --int8")
        print(line)


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
