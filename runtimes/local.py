"""The local target: every (artifact, runtime, provider, threads) timed in its own child process.

Why a child process per measurement: runtimes disturb each other inside one process (onnxruntime's
spinning intra-op threads starved LiteRT's threads to half speed in our measurements, docs/design.md, the fold),
and peak resident memory is only meaningful per process. The child is the same runner.py that is copied to
boards (or torch_runtime.py for `torch:MODEL`); it reports its own `ru_maxrss` as peak RSS.

This module also holds what every target shares: the job plan (which runtimes and providers an artifact
gets) and the conversion of the runner's JSON into a result record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shufflenet_edge.runtimes import gpu as gpu_mod
from shufflenet_edge.runtimes.results import (
    artifact_format,
    describe_artifact,
    latency_stats,
    new_record,
    registry_madds,
)

from shufflenet_edge.errors import UsageError

RUNNER_PATH = Path(__file__).with_name("runner.py")
RUNTIME_CHOICES = ("auto", "torch", "onnxruntime", "litert", "tflite-runtime")
# providers each runtime accepts (first = the CPU default); "cpu" means XNNPACK for the TFLite interpreters
PROVIDERS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("cpu", "xnnpack", "cuda", "tensorrt"),
    "litert": ("xnnpack", "gpu"),
    "tflite-runtime": ("xnnpack",),
    "torch": ("cpu", "cuda"),
}
PROVIDER_CHOICES = ("auto", "cpu", "xnnpack", "cuda", "tensorrt", "gpu")
FORMAT_RUNTIMES = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-runtime"), "torch": ("torch",)}

OnRecord = Callable[[dict[str, Any]], None]
PROFILE_RUNS = 50  # runs of a per-op profile (after the timed runs): averages settle well before that
TORCH_NO_PROFILE = "no per-op profile for torch eager here (torch.profiler is the tool for it)"


class Cooldown:
    """`--cooldown SECONDS`: a pause before every measurement but the first, so the CPU cools down between
    rounds. The time of each pause and of each measurement goes into the record (extra.started_at,
    extra.ended_at, extra.cooldown_s: Unix seconds), so the pauses can be checked after the fact."""

    def __init__(self, seconds: float = 0.0, sleep: Callable[[float], None] | None = None) -> None:
        self.seconds = max(0.0, float(seconds or 0.0))
        self.sleep = sleep or time.sleep
        self.rounds = 0

    def before_round(self) -> float:
        """Sleep (unless first); return the seconds slept."""
        slept = 0.0
        if self.rounds and self.seconds:
            t0 = time.monotonic()
            self.sleep(self.seconds)
            slept = time.monotonic() - t0
        self.rounds += 1
        return slept


def stamp(rec: dict[str, Any], started: float, ended: float, cooldown_s: float) -> dict[str, Any]:
    """Record when the measurement ran and the pause before it."""
    extra = rec.setdefault("extra", {})
    extra.update(started_at=round(started, 3), ended_at=round(ended, 3), cooldown_s=round(cooldown_s, 3))
    return rec


@dataclasses.dataclass(frozen=True)
class Job:
    artifact: str
    runtime: str  # may be "auto" for a remote target: the board's runner picks what it has
    provider: str | None
    threads: int


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def runtimes_for(artifact: str, requested: Sequence[str], *, local: bool) -> list[str]:
    """Runtimes that run this artifact among those requested ("auto": the natural one(s))."""
    fmt = artifact_format(artifact)
    natural = FORMAT_RUNTIMES.get(fmt or "")
    if natural is None:
        raise UsageError(f"unknown artifact type {artifact!r}: expected .onnx, .tflite or torch:MODEL[@SIZE]")
    out: list[str] = []
    for r in requested:
        if r == "auto":
            if fmt == "tflite":
                if not local:
                    out.append("auto")  # the board's runner uses LiteRT, else tflite-runtime
                else:
                    if _installed("ai_edge_litert"):
                        out.append("litert")
                    if _installed("tflite_runtime"):
                        out.append("tflite-runtime")
                    if not out:
                        out.append("litert")  # the child then says what to pip install
            else:
                out.append(natural[0])
        elif r in natural:
            out.append(r)
    out = list(dict.fromkeys(out))
    if not out:
        raise UsageError(f"no runtime among --runtime {', '.join(requested)} runs {artifact} "
                         f"(it runs on: {', '.join(natural)})")
    return out


def providers_for(runtime: str, requested: Sequence[str] | None, *, local: bool, gpu: bool) -> list[str]:
    """Providers for one runtime: explicit ones that apply to it, or the defaults (CPU, XNNPACK EP when this
    onnxruntime build has it, and the GPU rows when `gpu`)."""
    valid = PROVIDERS.get(runtime, ())
    if not requested or list(requested) == ["auto"]:
        if runtime == "auto":
            return [""]
        out = [valid[0]]
        if local and runtime == "onnxruntime" and "XnnpackExecutionProvider" in gpu_mod.onnxruntime_providers():
            out.append("xnnpack")
        if gpu:
            out += [p for r, p in gpu_mod.GPU_ROWS.get({"onnxruntime": "onnx", "torch": "torch"}.get(runtime, "tflite"), ())
                    if r == runtime]
        return out
    out = []
    for p in requested:
        if p == "auto":
            out += providers_for(runtime, None, local=local, gpu=gpu)
            continue
        if runtime in ("litert", "tflite-runtime", "auto") and p == "cpu":
            p = "xnnpack"
        if runtime == "auto" or p in valid:
            out.append(p)
    return list(dict.fromkeys(out))


def plan_jobs(artifacts: Sequence[str], runtimes: Sequence[str], providers: Sequence[str] | None,
              threads: Sequence[int], *, local: bool = True, gpu: bool = True) -> list[Job]:
    """Every (artifact, runtime, provider, threads) to measure. GPU rows run once (at the first thread
    count): threads do not apply to them."""
    jobs: list[Job] = []
    for a in artifacts:
        mine: list[Job] = []
        for rt in runtimes_for(a, runtimes, local=local):
            for prov in providers_for(rt, providers, local=local, gpu=gpu):
                if gpu_mod.is_gpu(rt, prov):
                    mine.append(Job(a, rt, prov, threads[0]))
                else:
                    mine += [Job(a, rt, prov or None, t) for t in threads]
        if not mine:
            raise UsageError(f"no --provider among {', '.join(providers or [])} applies to {a}; "
                             f"valid: {', '.join(PROVIDER_CHOICES)}")
        jobs += mine
    return jobs


def parse_runner_output(stdout: str) -> dict[str, Any] | None:
    """The last line of stdout that is a JSON object from the runner (runtimes may print before it)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "runner" in obj:
                return obj
    return None


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def record_from_runner(res: dict[str, Any], job: Job, target: str, info: dict[str, Any]) -> dict[str, Any]:
    """A result record from the runner's JSON (ok, skipped or error) and the artifact's description."""
    common = dict(model=info.get("model"), format=info.get("format"), precision=info.get("precision"),
                  form=info.get("form"), madds=info.get("madds"), model_size_bytes=info.get("model_size_bytes"),
                  environment=res.get("environment") or {})
    runtime = res.get("runtime") or job.runtime
    provider = res.get("provider") or job.provider
    if res.get("status") != "ok":
        status = res.get("status") if res.get("status") in ("skipped", "error") else "error"
        reason = res.get("reason") or res.get("error") or "the runner gave no reason"
        return new_record(artifact=job.artifact, runtime=runtime, provider=provider, target=target,
                          threads=job.threads, status=status, reason=reason, runs=res.get("runs"),
                          warmup=res.get("warmup"), **common,
                          extra={"missing": res.get("missing")} if res.get("missing") else None)
    times = res.get("times_ms") or []
    if common["precision"] is None:
        common["precision"] = res.get("precision_guess")
    if common["madds"] is None:
        shape = (res.get("input") or {}).get("shape")
        size = None
        if shape and len(shape) == 4:
            size = shape[1] if shape[-1] == 3 else shape[2]
        out_shape = res.get("output_shape") or []
        classes = out_shape[-1] if out_shape else None
        common["madds"] = registry_madds(common["model"], size, info.get("num_classes") or classes)
    if common["model_size_bytes"] is None:
        common["model_size_bytes"] = res.get("model_size_bytes")
    extra = {k: res.get(k) for k in ("input", "output_shape", "runtime_options", "transfers_timed",
                                     "rss_before_load_mb", "cpu_state") if res.get(k) is not None}
    if res.get("op_profile") is not None:
        from shufflenet_edge.runtimes.profile import profile_from_runner

        extra["op_profile"] = profile_from_runner(res["op_profile"])
    return new_record(artifact=job.artifact, runtime=runtime, provider=provider, target=target,
                      threads=res.get("threads", job.threads), runs=len(times), warmup=res.get("warmup"),
                      runtime_version=res.get("runtime_version"), latency_ms=latency_stats(times),
                      init_ms=None if res.get("init_ms") is None else round(float(res["init_ms"]), 3),
                      first_inference_ms=res.get("first_inference_ms"), peak_rss_mb=res.get("peak_rss_mb"),
                      xnnpack_partitions=res.get("xnnpack_partitions"), extra=extra, **common)


def child_argv(job: Job, runs: int, warmup: int, *, python: str, runner: str, time_limit: float | None,
               include_transfers: bool, artifact_path: str | None = None, profile: bool = False) -> list[str]:
    """argv of one measurement (runner.py, or torch_runtime.py for torch:MODEL). `profile`: the runner adds a
    per-op profile after the timed runs (at most PROFILE_RUNS runs)."""
    path = artifact_path or job.artifact
    if job.runtime == "torch":
        argv = [python, "-m", "shufflenet_edge.runtimes.torch_runtime", path, "--device", job.provider or "cpu"]
    else:
        argv = [python, runner, path, "--bench", "--runtime", job.runtime]
        if job.provider:
            argv += ["--provider", job.provider]
        if profile:
            argv += ["--profile", "--profile-runs", str(min(runs, PROFILE_RUNS))]
    argv += ["--threads", str(job.threads), "--runs", str(runs), "--warmup", str(warmup)]
    if time_limit:
        argv += ["--time-limit", f"{time_limit:g}"]
    if include_transfers:
        argv.append("--include-transfers")
    return argv


class _Absent(Exception):
    pass


def gpu_absent_reason(job: Job) -> str | None:
    """The runner's own pre-check for a GPU row, made here (cheap: no model is loaded)."""
    if job.runtime == "torch":
        from shufflenet_edge.runtimes.torch_runtime import cuda_absent_reason

        return cuda_absent_reason() if job.provider == "cuda" else None
    from shufflenet_edge.runtimes.runner import provider_absent_reason

    return provider_absent_reason(job.runtime, job.provider)


def run_local(jobs: Sequence[Job], *, runs: int, warmup: int, timeout: float = 600.0,
              include_transfers: bool = False, on_record: OnRecord | None = None,
              infos: dict[str, dict[str, Any]] | None = None, cooldown: float = 0.0, profile: bool = False,
              sleep: Callable[[float], None] | None = None) -> list[dict[str, Any]]:
    """Run each job in a fresh child process of this Python, one after the other; one record per job.
    `cooldown`: seconds of pause between measurements; `profile`: a per-op profile with each (runner jobs)."""
    infos = dict(infos or {})
    records: list[dict[str, Any]] = []
    pause = Cooldown(cooldown, sleep)
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    for job in jobs:
        info = infos.get(job.artifact)
        if info is None:
            info = infos[job.artifact] = describe_artifact(job.artifact, madds=False)
        absent = gpu_absent_reason(job) if gpu_mod.is_gpu(job.runtime, job.provider) else None
        argv = child_argv(job, runs, warmup, python=sys.executable, runner=str(RUNNER_PATH),
                          time_limit=timeout, include_transfers=include_transfers, profile=profile)
        slept, started = 0.0, time.time()
        try:
            if absent:
                # The same check the child would make first; no process needed to say "skipped".
                raise _Absent(absent)
            slept = pause.before_round()
            started = time.time()
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30, env=env)
            res = parse_runner_output(p.stdout)
            if res is None:
                sig = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit code {p.returncode}"
                res = {"status": "error", "reason": f"runner crashed ({sig}): {last_line(p.stderr) or 'no output'}"}
        except subprocess.TimeoutExpired:
            res = {"status": "error", "reason": f"timed out after {timeout:g} s"}
        except _Absent as e:
            from shufflenet_edge.runtimes.runner import environment

            res = {"status": "skipped", "reason": str(e), "environment": environment()}
        rec = stamp(record_from_runner(res, job, "local", info), started, time.time(), slept)
        if profile and job.runtime == "torch" and rec["status"] == "ok":
            rec["extra"]["op_profile"] = {"source": "torch", "timing": False, "reason": TORCH_NO_PROFILE,
                                          "summary_by_node_type": [], "notes": []}
        records.append(rec)
        if on_record:
            on_record(rec)
    return records
