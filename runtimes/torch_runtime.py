"""torch eager timing of a registered model, CPU or CUDA, in the runner's JSON format.

Artifact syntax on the bench command line: `torch:MODEL` or `torch:MODEL@SIZE` (a registered model name,
input SIZE x SIZE, default 224), e.g. `torch:shufflenet_v2_x1_0@224`. Weights: seeded random unless
`--weights` is given (latency does not depend on the values).

Run as a child process by the local target (`python -m shufflenet_edge.runtimes.torch_runtime ...`) so
torch's thread pool does not disturb other runtimes. On CUDA the model and input are moved to the device
before the clock starts and every run ends with `torch.cuda.synchronize()`, so the clock sees the kernels
and not host-device copies; `--include-transfers` times the copy of the input in and the logits out.
This CUDA path is written for real but cannot run on our CPU-only machines; there it reports "skipped".
"""

from __future__ import annotations

import os
import sys
from typing import Any

from shufflenet_edge.runtimes.runner import (
    RUNNER_VERSION,
    RunnerError,
    Skipped,
    _current_rss_mb,
    _emit,
    _now_ms,
    _peak_rss_mb,
    _skip_or_error,
    _time_loop,
    _TimeLimit,
    cpu_state,
    environment,
    no_gpu_reason,
)

DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "fp16")  # fp16: the model and input in half precision (CUDA only; eager, no autocast)


def parse_torch_artifact(spec: str) -> tuple[str, int]:
    """`torch:MODEL[@SIZE]` -> (MODEL, SIZE); ValueError naming the rule otherwise."""
    if not spec.startswith("torch:"):
        raise ValueError(f"a torch eager artifact is written torch:MODEL[@SIZE], got {spec!r}")
    name, _, size = spec[len("torch:"):].partition("@")
    if not name:
        raise ValueError(f"no model name in {spec!r}; write torch:MODEL[@SIZE], e.g. torch:shufflenet_v2_x1_0")
    try:
        s = int(size) if size else 224
    except ValueError:
        raise ValueError(f"input size in {spec!r} must be an integer, got {size!r}") from None
    if s < 32:
        raise ValueError(f"input size in {spec!r} must be >= 32 (the networks downsample by 32), got {s}")
    return name, s


def cuda_absent_reason() -> str | None:
    """Why torch cannot use CUDA here, or None (imports torch; the bench parent has it loaded already)."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        build = f"torch {torch.__version__} is a CPU-only build"
        hw = no_gpu_reason("nvidia")
        return f"{hw}; {build}" if hw else f"{build} (install a CUDA build of torch)"
    return no_gpu_reason("nvidia") or f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable CUDA device"


def bench_torch(spec: str, device: str = "cpu", threads: int = 1, runs: int = 100, warmup: int = 10,
                seed: int = 0, include_transfers: bool = False, weights: str | None = None,
                dtype: str = "fp32") -> dict[str, Any]:
    try:
        name, size = parse_torch_artifact(spec)
    except ValueError as e:
        raise RunnerError(str(e)) from e
    if device not in DEVICES:
        raise RunnerError(f"unknown torch device {device!r}; valid: {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise RunnerError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if dtype == "fp16" and device != "cuda":
        raise RunnerError("--dtype fp16 is for --device cuda (half-precision convolutions on a CPU are not what "
                          "a user would run)")
    rss0 = _current_rss_mb()
    state0 = cpu_state()
    import torch

    from shufflenet_edge.errors import EdgeError
    from shufflenet_edge.models.weights import load_model

    if device == "cuda":
        reason = cuda_absent_reason()
        if reason:
            raise Skipped(reason)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (only possible once per process)
    t0 = _now_ms()
    try:
        net = load_model(name, weights, warn=False, seed=seed).eval()
    except EdgeError as e:
        raise RunnerError(str(e)) from e
    gen = torch.Generator().manual_seed(seed)
    x_host = torch.randn(1, 3, size, size, generator=gen)
    dev = torch.device(device)
    net = net.to(dev)
    x = x_host.to(dev)
    if dtype == "fp16":
        net, x_host, x = net.half(), x_host.half(), x.half()
    if device == "cuda":
        torch.cuda.synchronize()
    init_ms = _now_ms() - t0

    if device == "cuda" and include_transfers:
        x_pinned = x_host.pin_memory()

        def step() -> None:
            net(x_pinned.to(dev, non_blocking=True)).cpu()  # .cpu() waits for the device
    elif device == "cuda":

        def step() -> None:
            net(x)
            torch.cuda.synchronize()  # the clock stops when the kernels are done, not when they are queued
    else:

        def step() -> None:
            net(x)

    with torch.inference_mode():
        res = _time_loop(step, runs, warmup)
        y = net(x)
    size_bytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    version = torch.__version__
    res.update(runner=RUNNER_VERSION, status="ok", reason=None, runtime="torch", runtime_version=version,
               provider=device, init_ms=init_ms, xnnpack_partitions=None, precision_guess=dtype,
               input={"shape": [1, 3, size, size], "dtype": "float16" if dtype == "fp16" else "float32",
                      "layout": "nchw"},
               cpu_state={"before": state0, "after": cpu_state()},
               output_shape=list(y.shape), transfers_timed=bool(device == "cuda" and include_transfers),
               runtime_options={"num_threads": threads, "interop_threads": 1,
                                "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"},
               threads=threads, runs=runs, warmup=warmup, peak_rss_mb=_peak_rss_mb(), rss_before_load_mb=rss0,
               model_size_bytes=size_bytes, environment=environment({"torch": version}))
    return res


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="time torch eager on a registered model; prints JSON")
    p.add_argument("artifact", help="torch:MODEL[@SIZE]")
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights")
    p.add_argument("--include-transfers", action="store_true")
    p.add_argument("--time-limit", type=float)
    p.add_argument("--dtype", default="fp32", choices=DTYPES, help="fp16: half precision (CUDA only)")
    a = p.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import warnings

    warnings.simplefilter("ignore")
    try:
        with _TimeLimit(a.time_limit):
            _emit(bench_torch(a.artifact, a.device, a.threads, a.runs, a.warmup, a.seed, a.include_transfers,
                              a.weights, a.dtype))
    except Skipped as e:
        _emit(_skip_or_error("skipped", str(e)))
    except RunnerError as e:
        _emit(_skip_or_error("error", str(e), e.missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
