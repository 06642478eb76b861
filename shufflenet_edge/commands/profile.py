"""`profile-report`: the per-op table of a saved profile, e.g. what a user pasted from a phone.

    adb shell /data/local/tmp/benchmark_model --graph=... --enable_op_profiling=true > phone.txt
    shufflenet-edge profile-report phone.txt --json phone_profile.json   # or --json alone: the JSON on stdout

FILE is TFLite `benchmark_model --enable_op_profiling=true` output (any release: with or without the
`[start]` column, tab-separated or space-aligned, CSV mode, `INFO:`/logcat prefixes, XNNPACK `Delegate/...`
rows, an initialization block first), or an onnxruntime profiling trace (`.json`, from
`SessionOptions.enable_profiling` or `onnxruntime_perf_test -p`); `-` reads standard input. The JSON holds
the regular-run "Summary by node type" as rows (node_type, count, avg_ms, percent, category), the top ops
and the data-movement shares (runtimes/profile.py says which ops count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shufflenet_edge.cli import add_json_argument, command, emit_json, human_stream, positive_int
from shufflenet_edge.errors import EdgeError, UsageError


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="saved benchmark_model --enable_op_profiling=true output, or an onnxruntime profile .json "
                        "(- for standard input)")
    add_json_argument(p, "the profile (the table then goes to stderr when the JSON is on stdout)")
    p.add_argument("--top", type=positive_int, default=10, help="top ops to keep (default 10)")
    p.add_argument("--rows", type=positive_int, default=40, help="node types to print (default 40; the JSON has all)")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path} is a folder, not a saved profile")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise EdgeError(f"profile file not found: {path}") from None
    except OSError as e:
        raise EdgeError(f"cannot read {path}: {e.strerror or e}") from None
    return data.decode("utf-8", errors="replace")


def load_profile(text: str, top: int = 10) -> dict[str, Any]:
    """A profile (runtimes/profile.py's shape) from benchmark_model text or an onnxruntime trace."""
    from shufflenet_edge.runtimes.profile import profile_from_benchmark_model, profile_from_runner
    from shufflenet_edge.runtimes.runner import summarize_ort_trace

    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            events = json.loads(stripped)
        except ValueError:
            events = None
        if isinstance(events, list) and any(isinstance(e, dict) and e.get("cat") == "Node" for e in events):
            runs = sum(1 for e in events if isinstance(e, dict) and e.get("name") == "model_run")
            op = summarize_ort_trace(events, skip_runs=1 if runs > 1 else 0)
            op.update(source="onnxruntime", timing=True,
                      note="onnxruntime profiling trace; the first run is left out as warm-up" if runs > 1
                      else "onnxruntime profiling trace with a single run (no warm-up left out)")
            return profile_from_runner(op, top=top)
    return profile_from_benchmark_model(text, top=top)


@command("profile-report", "per-op table of a saved benchmark_model --enable_op_profiling output or onnxruntime trace")(_add)
def cmd_profile_report(args: argparse.Namespace) -> int:
    from shufflenet_edge.runtimes.profile import format_profile, report_json

    if args.json and args.json != "-" and Path(args.json).is_dir():
        raise UsageError(f"--json path is a folder: {args.json}")
    text = _read(args.file)
    name = "standard input" if args.file == "-" else args.file
    try:
        prof = load_profile(text, top=args.top)
    except ValueError as e:
        raise EdgeError(f"{name}: {e}") from None
    out = human_stream(args)
    print(format_profile(prof, None if args.file == "-" else Path(args.file).name, max_rows=args.rows), file=out)
    if args.json:
        written = emit_json(report_json(prof, None if args.file == "-" else str(args.file)), args.json)
        if written is not None:
            print(f"wrote {written}", file=out)
    return 0
