"""`guidelines`: the ShuffleNet V2 paper's G1-G4 micro-benchmarks (Tables 1-4) and the speed-vs-FLOPs view
of our model zoo (Figure 1 / Table 8), measured on your runtime, beside the paper's numbers.

    shufflenet-edge guidelines                                   # onnxruntime fp32, 1 thread, all tables + zoo
    shufflenet-edge guidelines --runtime litert --precision int8 --only G2,G3
    shufflenet-edge guidelines --target ssh://pi@raspberrypi.local --runtime litert

Networks: shufflenet_edge/guidelines/networks.py (and the assumptions it states); artifacts are cached
under --cache and reused when nothing that made them changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from shufflenet_edge.cli import add_json_argument, command, emit_json, human_stream, json_to_stdout, positive_int
from shufflenet_edge.errors import UsageError

DEFAULT_DIR = "out/guidelines"


def _csv(valid: tuple[str, ...], what: str, upper: bool = False) -> Any:
    def parse(s: str) -> list[str]:
        out = []
        for part in s.split(","):
            v = part.strip()
            v = v.upper() if upper and v.lower() != "zoo" else v.lower() if v.lower() == "zoo" else v
            if v not in valid:
                raise argparse.ArgumentTypeError(f"unknown {what} {part.strip()!r}; valid: {', '.join(valid)}")
            out.append(v)
        return list(dict.fromkeys(out))

    return parse


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.03, got {s!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v}")
    return v


def _add(p: argparse.ArgumentParser) -> None:
    from shufflenet_edge.guidelines.networks import G3_MERGES, SETUPS, WIDTHS
    from shufflenet_edge.guidelines.run import PRECISIONS, RUNTIMES, ZOO_CHOICES

    p.add_argument("--only", type=_csv(("G1", "G2", "G3", "G4", "zoo"), "part", upper=True), metavar="G1,G2,G3,G4,zoo",
                   help="which parts to run (default: all four tables and the zoo)")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help="default onnxruntime")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="default fp32")
    p.add_argument("--target", default="local",
                   help="local (default; interleaved, in process) or ssh://[user@]host[:port] (the bench SSH target)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default 1, as the paper's ARM columns)")
    p.add_argument("--width", type=_csv(WIDTHS, "width"), default=list(WIDTHS), metavar="x1,x2,x4",
                   help="which widths (default all three)")
    p.add_argument("--setup", choices=SETUPS, default="arm",
                   help="build the channel numbers of the paper's ARM (default) or GPU columns")
    p.add_argument("--g3-merge", choices=G3_MERGES, default="concat",
                   help="how Table 3's parallel branches merge (default concat; see networks.py)")
    p.add_argument("--zoo", choices=ZOO_CHOICES, default="table8",
                   help="zoo models: the paper's Table 8 set (V1 g=3 and V2 at every width, MobileNet V2; "
                        "default), all registered models (every V1 group count), or none")
    p.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()], metavar="M1,M2",
                   help="explicit zoo models (overrides --zoo)")
    p.add_argument("--rounds", type=positive_int, default=15, help="interleaved timing rounds (default 15)")
    p.add_argument("--round-ms", type=_positive_float, default=100.0,
                   help="time per row per round, sets the invokes per round (2-25; default 100)")
    p.add_argument("--tolerance", type=_fraction, default=0.03,
                   help="differences below this fraction count as ties in the verdicts (default 0.03)")
    p.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1),
                   help="conversion worker processes (default min(2, cores))")
    p.add_argument("--cache", default=f"{DEFAULT_DIR}/cache", help=f"artifact cache (default {DEFAULT_DIR}/cache)")
    p.add_argument("--fresh", action="store_true", help="rebuild every artifact even if cached")
    add_json_argument(p, f"the results (written to {DEFAULT_DIR}/guidelines_RUNTIME_PRECISION.json when --json is "
                         "not given; the report then goes to stderr when the JSON is on stdout)")
    p.add_argument("--markdown", metavar="OUT.md", help="Markdown report (default: beside the JSON)")
    p.add_argument("--plot", metavar="OUT.png", help="PNG (default: beside the JSON)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    s = p.add_argument_group("SSH target")
    s.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="`-o OPT` for ssh/scp (repeatable)")
    s.add_argument("--ssh-identity", metavar="FILE", help="private key (-i)")
    s.add_argument("--ssh-config", metavar="FILE", help="ssh config file (-F)")
    s.add_argument("--remote-python", default="python3", help="python on the board (default python3)")
    s.add_argument("--ssh-runs", type=positive_int, default=20, help="timed runs per artifact on the board (default 20)")


class _RichProgress:
    """rich progress bars on stderr (one per phase); silent with --quiet."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from shufflenet_edge.console import err

        self.p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TextColumn("{task.fields[last]}", style="dim"),
                          console=Console(file=err(), quiet=quiet), transient=False)

    def __enter__(self) -> _RichProgress:
        self.p.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.p.stop()

    def add(self, desc: str, total: int) -> Any:
        return self.p.add_task(desc, total=total, last="")

    def advance(self, task: Any, n: int, last: str = "") -> None:
        self.p.update(task, advance=n, last=last)


@command("guidelines", "the ShuffleNet V2 paper's G1-G4 micro-benchmarks and speed-vs-FLOPs view, on your runtime")(_add)
def cmd_guidelines(args: argparse.Namespace) -> int:
    from shufflenet_edge.guidelines.report import format_report, write_json, write_markdown, write_plot
    from shufflenet_edge.guidelines.run import Config, run_guidelines

    parts = args.only or ["G1", "G2", "G3", "G4", "zoo"]
    tables = tuple(p for p in ("G1", "G2", "G3", "G4") if p in parts)
    zoo = args.zoo if "zoo" in parts else "none"
    models = tuple(args.models) if args.models is not None and "zoo" in parts else None
    from shufflenet_edge.runtimes.targets import parse_target

    parse_target(args.target)
    stem = f"{DEFAULT_DIR}/guidelines_{args.runtime}_{args.precision}"
    to_stdout = json_to_stdout(args)
    json_path = f"{stem}.json" if to_stdout or not args.json else args.json
    base = json_path[:-5] if json_path.endswith(".json") else json_path
    md_path = args.markdown or f"{base}.md"
    plot_path = None if args.no_plot else (args.plot or f"{base}.png")
    if to_stdout:
        json_path = None
    for path in (json_path, md_path, plot_path):
        if path and os.path.isdir(path):
            raise UsageError(f"output path is a folder: {path}")
    ssh = {"options": list(args.ssh_option), "identity": args.ssh_identity, "config": args.ssh_config,
           "remote_python": args.remote_python}
    cfg = Config(tables=tables, zoo=zoo, runtime=args.runtime, precision=args.precision, target=args.target,
                 threads=args.threads, widths=tuple(args.width), setup=args.setup, g3_merge=args.g3_merge,
                 rounds=args.rounds, round_ms=args.round_ms, tolerance=args.tolerance, jobs=args.jobs,
                 cache=args.cache, fresh=args.fresh, ssh=ssh, ssh_runs=args.ssh_runs, models=models)
    with _RichProgress(args.quiet) as prog:
        doc = run_guidelines(cfg, prog)
    doc["meta"]["command"] = ["shufflenet-edge", *sys.argv[1:]] if sys.argv[1:2] == ["guidelines"] else None
    out = human_stream(args)
    print(format_report(doc), file=out)
    if json_path:
        write_json(json_path, doc)
    write_markdown(md_path, doc)
    if json_path:
        print(f"wrote {json_path}", file=out)
    print(f"wrote {md_path}", file=out)
    if plot_path:
        write_plot(plot_path, doc)
        print(f"wrote {plot_path}", file=out)
    if to_stdout:
        emit_json(doc, "-")
    return 0
