"""`bench`: latency where the model runs: this machine, Linux boards over SSH, Android phones over adb.

    shufflenet-edge bench out/*.tflite out/*.onnx torch:shufflenet_v2_x1_0 --threads 1,2
    shufflenet-edge bench out/m_int8.tflite --target local --target ssh://pi@raspberrypi.local
    shufflenet-edge bench out/m_int8.tflite --target adb --threads 4 --benchmark-binary ~/benchmark_model

One record per artifact x runtime x provider x target x threads (runtimes/results.py has the schema); a
table on stdout, JSON (rewritten after every measurement, so an interrupted run keeps what it measured; `--json`
alone prints it on stdout at the end and the table goes to stderr) and a PNG: for one model, latency per artifact
and thread count as bars; for several, latency against multiply-adds. When nothing was measured (every
measurement failed, or the target was unreachable) the command says so in one line, writes nothing and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from shufflenet_edge.cli import add_json_argument, command, human_stream, json_to_stdout, positive_int
from shufflenet_edge.console import err  # noqa: E402
from shufflenet_edge.errors import EdgeError, UsageError

DEFAULT_MODEL = "shufflenet_v2_x1_0"
DEFAULT_ARTIFACTS = tuple(f"out/{DEFAULT_MODEL}_{p}.{e}" for e in ("tflite", "onnx") for p in ("fp32", "int8"))
DEFAULT_JSON = "out/bench/bench.json"
DEFAULT_PLOT = "out/bench/bench.png"
# Defaults sized so the default artifacts (4 files, about 2-5 ms each here) finish in well under a minute,
# while 100 timed runs still give a p99 worth printing.
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10


def thread_counts(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"threads must be positive integers (e.g. 1 or 1,2,4), got {s!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"threads must be positive integers, got {v}")
        out.append(v)
    return out


def non_negative_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def non_negative_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {s!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {v}")
    return v


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {v}")
    return v


def _add_bench(p: argparse.ArgumentParser) -> None:
    from shufflenet_edge.runtimes.local import PROVIDER_CHOICES, RUNTIME_CHOICES

    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT",
                   help=".onnx / .tflite files, or torch:MODEL[@SIZE] for torch eager on a registered model "
                        f"(default: those of {', '.join(DEFAULT_ARTIFACTS)} that exist)")
    p.add_argument("--target", action="append", metavar="TARGET",
                   help="local (default), ssh://[user@]host[:port], adb or adb:SERIAL; repeat to run several "
                        "side by side in one table")
    p.add_argument("--runtime", action="append", choices=RUNTIME_CHOICES, metavar="RUNTIME",
                   help=f"{'|'.join(RUNTIME_CHOICES)} (repeatable; default auto: onnxruntime for .onnx, LiteRT "
                        "and tflite-runtime if installed for .tflite, torch for torch:MODEL)")
    p.add_argument("--provider", action="append", choices=PROVIDER_CHOICES, metavar="PROVIDER",
                   help=f"{'|'.join(PROVIDER_CHOICES)} (repeatable; default auto: CPU (XNNPACK for TFLite), "
                        "onnxruntime's XNNPACK EP when present, and the GPU rows locally)")
    p.add_argument("--threads", action="append", type=thread_counts, metavar="N[,N...]",
                   help="CPU threads; repeat or comma-separate for several (default 1)")
    p.add_argument("--runs", type=positive_int, default=DEFAULT_RUNS, help=f"timed runs (default {DEFAULT_RUNS})")
    p.add_argument("--warmup", type=non_negative_int, default=DEFAULT_WARMUP,
                   help=f"untimed runs after the first inference (default {DEFAULT_WARMUP})")
    add_json_argument(p, "the results", default=DEFAULT_JSON)
    p.add_argument("--plot", metavar="OUT.png", default=DEFAULT_PLOT,
                   help="PNG: one model, latency per artifact and thread count (bars, p10-p90 whiskers); several "
                        f"models, latency against multiply-adds (default {DEFAULT_PLOT}); an int8 artifact made by the "
                        "budget search also gets OUT_int8_curve.png, its accuracy against latency")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--no-gpu", action="store_true", help="leave out the GPU rows of the local target")
    p.add_argument("--include-transfers", action="store_true",
                   help="GPU: time host-to-device input and device-to-host output copies too")
    p.add_argument("--timeout", type=positive_float, default=600.0,
                   help="seconds allowed per measurement, SSH/adb included (default 600)")
    p.add_argument("--parallel", action="store_true",
                   help="run the remote targets (ssh, adb) at the same time (the local target runs first)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--profile", action="store_true",
                   help="per-op profile of each measurement: onnxruntime session profiling (local, SSH), "
                        "benchmark_model --enable_op_profiling / onnxruntime_perf_test -p (adb); LiteRT in Python "
                        "counts ops but cannot time them (said in the output)")
    p.add_argument("--cooldown", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="pause between measurements so the CPU cools down (default 0); the CPU governor, "
                        "frequencies and temperatures are recorded before and after each measurement")
    s = p.add_argument_group("SSH target (uses your OpenSSH client and ~/.ssh/config)")
    s.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="passed as `-o OPT` to ssh and scp, e.g. StrictHostKeyChecking=accept-new (repeatable)")
    s.add_argument("--ssh-jump", metavar="HOST", help="jump host (-J)")
    s.add_argument("--ssh-config", metavar="FILE", help="ssh config file (-F)")
    s.add_argument("--ssh-identity", metavar="FILE", help="private key (-i)")
    s.add_argument("--remote-python", default="python3", help="python on the board (default python3)")
    a = p.add_argument_group("adb target (Android)")
    a.add_argument("--benchmark-binary", action="append", metavar="PATH",
                   help="TFLite benchmark_model or onnxruntime_perf_test built for the phone (repeatable)")
    a.add_argument("--cpu-mask", metavar="HEX", help="taskset CPU mask on the phone (default: the big cores)")
    a.add_argument("--use-app", action="store_true",
                   help="run the demo app's BenchmarkActivity (android_demo, installed) instead of a native tool")
    a.add_argument("--adb-delegate", choices=("cpu", "gpu"), default="cpu",
                   help="CPU (XNNPACK, default) or the GPU delegate, for .tflite on the phone")
    a.add_argument("--adb-provider", default="cpu", metavar="EP",
                   help="onnxruntime_perf_test execution provider on the phone (-e; default cpu)")


def _target_kind(t: str) -> str:
    from shufflenet_edge.runtimes.targets import parse_target

    return parse_target(t).kind


def _adb_runner() -> Any:
    try:
        from shufflenet_edge.runtimes import adb  # type: ignore[attr-defined]
    except ImportError as e:
        raise EdgeError(f"the adb target is not available: cannot import shufflenet_edge.runtimes.adb ({e})") from e
    fn = getattr(adb, "run_adb_target", None)
    if fn is None:
        raise EdgeError("the adb target is not available: shufflenet_edge.runtimes.adb has no run_adb_target")
    return fn


def _resolve_artifacts(given: list[str]) -> list[str]:
    if not given:
        found = [a for a in DEFAULT_ARTIFACTS if os.path.isfile(a)]
        if not found:
            raise EdgeError(
                f"no ARTIFACT given and none of the defaults exist ({', '.join(DEFAULT_ARTIFACTS)}); make them "
                f"with `shufflenet-edge export --target tflite` and `shufflenet-edge export --target tflite --int8` "
                "(and --target onnx), or name .onnx/.tflite files or torch:MODEL")
        return found
    out = []
    for a in given:
        if a.startswith("torch:"):
            from shufflenet_edge.models import get_info
            from shufflenet_edge.runtimes.torch_runtime import parse_torch_artifact

            try:
                name, _ = parse_torch_artifact(a)
            except ValueError as e:
                raise UsageError(str(e)) from None
            get_info(name)  # unknown name: UsageError listing the valid ones
        elif os.path.isdir(a):
            raise EdgeError(f"artifact is a folder, not a file: {a}")
        elif not os.path.isfile(a):
            raise EdgeError(f"artifact not found: {a}")
        elif os.path.splitext(a)[1].lower() not in (".onnx", ".tflite"):
            raise UsageError(f"unknown artifact type {a!r}: expected .onnx, .tflite or torch:MODEL[@SIZE]")
        out.append(a)
    return list(dict.fromkeys(out))


class _Collector:
    """Records in target order, the JSON rewritten after every record (atomic), progress on stderr."""

    def __init__(self, json_path: str | None, meta: dict[str, Any], quiet: bool, total: int) -> None:
        self.by_target: dict[str, list[dict[str, Any]]] = {}
        self.order: list[str] = []
        self.json_path = json_path
        self.meta = meta
        self.quiet = quiet or total <= 1  # one measurement: its result follows at once
        self.total = total
        self.lock = threading.Lock()
        self.done = 0  # measurements announced (GPU rows skipped for want of a GPU are not measurements)

    def add_target(self, t: str) -> None:
        self.order.append(t)
        self.by_target.setdefault(t, [])

    def all(self) -> list[dict[str, Any]]:
        return [r for t in self.order for r in self.by_target[t]]

    def on_record(self, target: str) -> Any:
        def add(rec: dict[str, Any]) -> None:
            with self.lock:
                self.by_target[target].append(rec)
                self._progress(rec)
                self.save()

        return add

    def extend(self, target: str, recs: list[dict[str, Any]], announce: bool = True) -> None:
        with self.lock:
            known = {id(r) for r in self.by_target[target]}
            for r in recs:
                if id(r) not in known:
                    self.by_target[target].append(r)
                    if announce:
                        self._progress(r)
            self.save()

    def _progress(self, r: dict[str, Any]) -> None:
        from shufflenet_edge.runtimes.results import is_gpu_skip

        if self.quiet or is_gpu_skip(r):  # the skipped GPU rows are one line under the table
            return
        self.done += 1
        n = self.done
        name = os.path.basename(str(r["artifact"]))
        what = f"{r['runtime']}/{r.get('provider')}" if r.get("provider") else str(r["runtime"])
        if r["status"] == "ok":
            res = f"median {r['latency_ms']['median']:.3f} ms"
        else:
            res = f"{r['status']}: {r.get('reason')}"
        print(f"[{n}/{self.total}] {r['target']} {name} {what} {r.get('threads')} thr: {res}", file=err())

    def measured(self) -> bool:
        return any(r.get("status") == "ok" for r in self.all())

    def save(self, final: bool = False) -> None:
        """Rewrite the JSON file once something was measured (a run where everything failed writes nothing);
        `final`: also a run of skipped rows only (their reasons are the result)."""
        if not self.json_path or self.json_path == "-":
            return
        records = self.all()
        if self.measured() or (final and records and all(r.get("status") == "skipped" for r in records)):
            from shufflenet_edge.runtimes.results import write_json

            write_json(self.json_path, records, **self.meta)


@command("bench", "measure latency of artifacts locally, on boards over SSH, on phones over adb, on a GPU")(_add_bench)
def cmd_bench(args: argparse.Namespace) -> int:
    from shufflenet_edge.runtimes import gpu as gpu_mod
    from shufflenet_edge.runtimes.local import plan_jobs
    from shufflenet_edge.runtimes.results import describe_artifact

    targets = list(dict.fromkeys(args.target or ["local"]))
    kinds = {t: _target_kind(t) for t in targets}
    runtimes = args.runtime or ["auto"]
    threads = list(dict.fromkeys(n for group in (args.threads or [[1]]) for n in group))
    artifacts = _resolve_artifacts(list(args.artifacts))
    adb_run = _adb_runner() if any(k == "adb" for k in kinds.values()) else None
    if any(k != "local" for k in kinds.values()) and any(a.startswith("torch:") for a in artifacts):
        raise UsageError("torch:MODEL runs on the local target only (boards get the .onnx/.tflite runner)")
    for path in (None if json_to_stdout(args) else args.json, None if args.no_plot else args.plot):
        if path and os.path.isdir(path):
            raise UsageError(f"output path is a folder: {path}")

    plans = {t: plan_jobs(artifacts, runtimes, args.provider, threads, local=(k == "local"),
                          gpu=(k == "local" and not args.no_gpu))
             for t, k in kinds.items() if k in ("local", "ssh")}
    infos = {a: describe_artifact(a) for a in artifacts}
    gpu_info = gpu_mod.detect() if "local" in kinds.values() else None
    meta: dict[str, Any] = {"command": ["shufflenet-edge", "bench", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else None,
                            "runs": args.runs, "warmup": args.warmup, "threads": threads, "targets": targets,
                            "gpu": gpu_info, "cooldown_s": args.cooldown, "profile": bool(args.profile)}
    total = sum(len(v) for v in plans.values()) + sum(
        len(artifacts) * len(threads) for k in kinds.values() if k == "adb") - _gpu_rows_to_skip(plans, kinds)
    run = _BenchRun(args, kinds, plans, infos, _Collector(args.json, meta, args.quiet, total),
                    artifacts=artifacts, runtimes=runtimes, threads=threads, adb_run=adb_run)
    run.run_all(targets)
    return _report(args, run.col, run.failures, meta, gpu_info)


class _BenchRun:
    """Runs the planned measurements target by target into one collector, noting the targets that failed."""

    def __init__(self, args: argparse.Namespace, kinds: dict[str, str], plans: dict[str, Any],
                 infos: dict[str, dict[str, Any]], col: _Collector, *, artifacts: list[str], runtimes: list[str],
                 threads: list[int], adb_run: Any) -> None:
        self.args = args
        self.kinds = kinds
        self.plans = plans
        self.infos = infos
        self.artifacts = artifacts
        self.col = col
        self.runtimes = runtimes
        self.threads = threads
        self.adb_run = adb_run
        self.failures: list[str] = []

    def run_target(self, t: str) -> None:
        """Measure everything planned for one target; a target that fails adds its rows and one failure line."""
        from shufflenet_edge.runtimes.local import run_local
        from shufflenet_edge.runtimes.results import TargetError, new_record

        args, col, infos, kind = self.args, self.col, self.infos, self.kinds[t]
        try:
            if kind == "local":
                run_local(self.plans[t], runs=args.runs, warmup=args.warmup, timeout=args.timeout,
                          include_transfers=args.include_transfers, on_record=col.on_record(t), infos=infos,
                          cooldown=args.cooldown, profile=args.profile)
            elif kind == "ssh":
                from shufflenet_edge.runtimes.ssh import SshOptions, run_ssh_target

                opts = SshOptions(options=list(args.ssh_option), jump=args.ssh_jump, config=args.ssh_config,
                                  identity=args.ssh_identity, remote_python=args.remote_python, timeout=args.timeout)
                run_ssh_target(t, self.plans[t], runs=args.runs, warmup=args.warmup, opts=opts,
                               include_transfers=args.include_transfers, on_record=col.on_record(t), infos=infos,
                               cooldown=args.cooldown, profile=args.profile)
            else:
                options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
                for rt in self.runtimes:
                    for n in self.threads:
                        recs = self.adb_run(t, self.artifacts, runtime=rt, threads=n, runs=args.runs,
                                            warmup=args.warmup, options=options)
                        col.extend(t, [_fill(r, infos) for r in recs])
        except TargetError as e:
            col.extend(t, [_fill(r, infos) for r in e.records])
            self.failures.append(str(e))
        except EdgeError as e:  # the target itself failed (unreachable, no adb): one line at the end says it
            msg = f"{t}: {e}" if not str(e).startswith(t) else str(e)
            col.extend(t, [new_record(artifact=a, runtime=self.runtimes[0], target=t, threads=self.threads[0],
                                      status="error", reason=str(e), runs=args.runs, warmup=args.warmup)
                           for a in self.artifacts], announce=False)
            self.failures.append(msg)

    def run_all(self, targets: list[str]) -> None:
        """The local target first, then the remote ones (at the same time with --parallel); JSON saved on Ctrl-C."""
        for t in targets:
            self.col.add_target(t)
        local_targets = [t for t in targets if self.kinds[t] == "local"]
        remote = [t for t in targets if self.kinds[t] != "local"]
        try:
            for t in local_targets:
                self.run_target(t)
            if self.args.parallel and len(remote) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=len(remote)) as ex:
                    list(ex.map(self.run_target, remote))
            else:
                for t in remote:
                    self.run_target(t)
        except KeyboardInterrupt:
            self.col.save()
            raise


def _report(args: argparse.Namespace, col: _Collector, failures: list[str], meta: dict[str, Any],
            gpu_info: Any) -> int:
    """Table, profiles, JSON and PNG of what was measured; EdgeError for failed targets or measurements."""
    from shufflenet_edge.runtimes import gpu as gpu_mod
    from shufflenet_edge.runtimes.results import (exit_summary, format_table, int8_curves, write_curve_plot,
                                                  write_plot)

    records = col.all()
    errors = [r for r in records if r.get("status") == "error"]
    if not col.measured() and (failures or errors):
        # Nothing was measured: no table of error rows, no JSON, no PNG; one line (the first failure).
        first = failures[0] if failures else _error_line(errors[0])
        more = len(failures) - 1 if failures else len(errors) - 1
        # The cause leads the line (it names the target or the file); what bench did about it follows.
        also = f"; {more} more failure(s)" if more > 0 else ""
        raise EdgeError(f"{first} (nothing measured, nothing written{also})")
    out = human_stream(args)
    print(format_table(records), file=out)
    if args.profile:
        print_profiles(records, out)
    if gpu_info is not None and not args.no_gpu:
        print(gpu_mod.summary_line(gpu_info), file=out)
    if json_to_stdout(args):
        from shufflenet_edge.cli import emit_json
        from shufflenet_edge.runtimes.results import bench_document

        emit_json(bench_document(records, **meta), "-")
    elif args.json:
        col.save(final=True)
        print(f"wrote {args.json}", file=out)
    if args.plot and not args.no_plot:
        if write_plot(args.plot, records) is not None:
            print(f"wrote {args.plot}", file=out)
        else:
            print(f"no plot: no measurement succeeded ({args.plot} not written)", file=out)
        curve = Path(args.plot).with_name(Path(args.plot).stem + "_int8_curve.png")
        if write_curve_plot(curve, int8_curves([str(r["artifact"]) for r in records])) is not None:
            print(f"wrote {curve} (accuracy against latency, from the int8 budget search of the export)", file=out)
    if failures:
        more = f" (and {len(failures) - 1} more target(s) failed)" if len(failures) > 1 else ""
        raise EdgeError(failures[0] + more)
    summary = exit_summary(records)
    if summary:
        raise EdgeError(summary)
    return 0


def _gpu_rows_to_skip(plans: dict[str, Any], kinds: dict[str, str]) -> int:
    """How many planned local GPU rows will be skipped for want of a GPU (the runner's own cheap check)."""
    from shufflenet_edge.runtimes import gpu as gpu_mod
    from shufflenet_edge.runtimes.local import gpu_absent_reason

    return sum(1 for t, k in kinds.items() if k == "local" for j in plans.get(t, [])
               if gpu_mod.is_gpu(j.runtime, j.provider) and gpu_absent_reason(j))


def _error_line(r: dict[str, Any]) -> str:
    name = os.path.basename(str(r["artifact"]))
    what = f"{r['runtime']}/{r.get('provider')}" if r.get("provider") else str(r["runtime"])
    return f"{r.get('target')}: {name} ({what}, {r.get('threads')} thread(s)): {r.get('reason')}"


def print_profiles(records: list[dict[str, Any]], file: Any = None) -> None:
    """The per-op table of every measurement that has one (bench --profile), after the latency table."""
    from shufflenet_edge.runtimes.profile import format_profile

    file = file or sys.stdout

    for r in records:
        prof = (r.get("extra") or {}).get("op_profile")
        if r.get("status") != "ok" or not prof:
            continue
        prov = f"/{r['provider']}" if r.get("provider") else ""
        title = f"{os.path.basename(str(r['artifact']))} {r['runtime']}{prov} {r.get('threads')} thr @ {r.get('target')}"
        print(file=file)
        print(format_profile(prof, title), file=file)


def _fill(rec: dict[str, Any], infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Complete a record from another module (adb) with what we know of the artifact."""
    from shufflenet_edge.runtimes.results import merge_artifact_info

    info = infos.get(str(rec.get("artifact"))) or infos.get(os.path.abspath(str(rec.get("artifact")))) or {}
    return merge_artifact_info(rec, info)

