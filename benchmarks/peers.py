#!/usr/bin/env python3
"""Side by side with what users would pick instead: litert-torch by hand, ExecuTorch, ncnn and MNN.

    pip install -c constraints.txt -e '.[peers]'         # executorch + torchao, ncnn, pnnx, MNN (never default)
    python benchmarks/peers.py [--models shufflenet_v2_x0_5,shufflenet_v2_x1_0,shufflenet_v1_x1_0_g3]
                               [--rounds 5 --runs 200 --warmup 20 --threads 1,2] [--arm] [--reuse]

For each model (224x224, batch 1, the registry's seeded random weights, seed 0) every path starts from the same
PyTorch module and, for int8, the same calibration images (our exporter's stated synthetic fallback: 32 structured
images, seed 1234; MNN reads them as lossless PNGs of the very same pixels):

- ours: ``shufflenet_edge.api.export`` to TFLite fp32 and int8 (what ``shufflenet-edge export --target tflite [--int8]`` runs), and
  to ONNX fp32 and int8 (onnxruntime);
- litert-torch by hand: the torchvision form, ``to_channel_last_io`` + ``litert_torch.convert``; int8 with PT2E the
  way its README shows (``PT2EQuantizer``, symmetric per-channel static, ``convert_pt2e(fold_quantize=False)``,
  ``QuantConfig(pt2e_quantizer=...)``);
- ExecuTorch: ``torch.export`` + ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])``; int8 with
  ``XNNPACKQuantizer`` (symmetric, per-channel) through PT2E;
- ncnn: the ``pnnx`` executable on our reference ONNX (``fp16=0``);
- MNN: its converter on the same ONNX; int8 with its post-training quantization tool, trying MNN's default
  calibration method (KL) first and then EMA, each in its own process (KL segfaults here).

Every conversion runs in a child process (a crash is recorded with its signal and the script goes on) and its wall
time is recorded. Each artifact is then run in a child on the same check inputs and compared with PyTorch float
(max abs error, top-1 agreement, PSNR). Timing: at 1 thread all artifacts in one process, interleaved run by run in
rounds (rotated order); at 2+ threads one process per artifact per round, the order rotated each round. Thread
counts are set the way each runtime documents: LiteRT ``num_threads``; ExecuTorch
``_unsafe_reset_threadpool(n)`` before loading; ncnn ``opt.num_threads`` and ``set_kmp_blocktime(0)``; MNN
``numThread`` in a runtime manager; onnxruntime ``intra_op_num_threads`` with spinning off when it shares the
process. Ratios are taken per round against litert-torch fp32 (int8 rows also against litert-torch int8);
medians and round ranges are reported.

``--arm`` adds the aarch64 emulation (qemu-user, the sysroot of benchmarks/arm_qemu.py): which peers' aarch64 wheels
exist, install and import, and whether their outputs agree with the x86 run of the same artifacts. Numbers only:
emulated timings mean nothing.

Writes benchmarks/results/peers.md, peers.json and peers.png. Artifacts go to out/peers/<model>/.
This file imports only the standard library and numpy at module level: its ``_run`` mode runs under the emulated
aarch64 Python with one runtime.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_OUT = REPO / "out" / "peers"
MODELS = ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v1_x1_0_g3")
SIZE = 224
SEED = 0
CALIB_SEED, CALIB_N = 1234, 32  # export/calibration.py's synthetic fallback, used by every path here
CHECK_SEED = 2024
REFERENCE = "litert_fp32"  # ratios are taken against this artifact
INT8_REFERENCE = "litert_int8"
MNN_INT8_METHODS = ("KL", "EMA")  # MNN's default first; the first that does not crash is kept
EXPORT_TIMEOUT_S = 1200
PEER_DISTS = ("executorch", "torchao", "ncnn", "pnnx", "mnn")


# ---------------------------------------------------------------------------------------------------------------
# What is exported and timed

ARTIFACTS: tuple[dict[str, str], ...] = (
    # key, label, runtime, precision, file name, export kind, path description
    {"key": "litert_fp32", "label": "litert-torch fp32 (by hand)", "runtime": "litert", "precision": "fp32",
     "file": "litert_fp32.tflite", "how": "torchvision form, to_channel_last_io + litert_torch.convert"},
    {"key": "ours_tflite_fp32", "label": "ours TFLite fp32", "runtime": "litert", "precision": "fp32",
     "file": "ours_fp32.tflite", "how": "shufflenet-edge export --target tflite, default --form auto"},
    {"key": "litert_int8", "label": "litert-torch int8 (PT2E, by hand)", "runtime": "litert", "precision": "int8",
     "file": "litert_int8.tflite", "how": "PT2EQuantizer per-channel static, convert_pt2e(fold_quantize=False), QuantConfig"},
    {"key": "ours_tflite_int8", "label": "ours TFLite int8", "runtime": "litert", "precision": "int8",
     "file": "ours_int8.tflite", "how": "export --target tflite --int8 (shared data-path scales), default --form auto"},
    {"key": "executorch_fp32", "label": "ExecuTorch XNNPACK fp32", "runtime": "executorch", "precision": "fp32",
     "file": "executorch_fp32.pte", "how": "torch.export + to_edge_transform_and_lower(XnnpackPartitioner)"},
    {"key": "executorch_int8", "label": "ExecuTorch XNNPACK int8", "runtime": "executorch", "precision": "int8",
     "file": "executorch_int8.pte", "how": "XNNPACKQuantizer symmetric per-channel, PT2E, then as fp32"},
    {"key": "ncnn_fp32", "label": "ncnn fp32", "runtime": "ncnn", "precision": "fp32",
     "file": "ncnn_fp32.param", "how": "pnnx reference.onnx inputshape=[1,3,224,224] fp16=0"},
    {"key": "mnn_fp32", "label": "MNN fp32", "runtime": "mnn", "precision": "fp32",
     "file": "mnn_fp32.mnn", "how": "MNNConvert -f ONNX from reference.onnx"},
    {"key": "mnn_int8", "label": "MNN int8", "runtime": "mnn", "precision": "int8",
     "file": "mnn_int8.mnn", "how": "MNN quantization tool on mnn_fp32.mnn (KL tried first, then EMA), MAX_ABS weights"},
    {"key": "reference_onnx", "label": "onnxruntime fp32, reference ONNX", "runtime": "onnxruntime", "precision": "fp32",
     "file": "reference.onnx", "how": "export --target onnx --form reference (the ONNX that ncnn and MNN convert)"},
    {"key": "ours_onnx_fp32", "label": "ours ONNX fp32 (onnxruntime)", "runtime": "onnxruntime", "precision": "fp32",
     "file": "ours_fp32.onnx", "how": "export --target onnx, default --form auto"},
    {"key": "ours_onnx_int8", "label": "ours ONNX int8 (onnxruntime)", "runtime": "onnxruntime", "precision": "int8",
     "file": "ours_int8.onnx", "how": "export --target onnx --int8 (QDQ, per-channel)"},
)
BY_KEY = {a["key"]: a for a in ARTIFACTS}
# Conversion order: ncnn and MNN start from the reference ONNX, MNN int8 from MNN fp32.
EXPORT_ORDER = ("reference_onnx", "ours_tflite_fp32", "ours_tflite_int8", "ours_onnx_fp32", "ours_onnx_int8",
                "litert_fp32", "litert_int8", "executorch_fp32", "executorch_int8", "ncnn_fp32", "mnn_fp32", "mnn_int8")
DEPENDS = {"ncnn_fp32": "reference_onnx", "mnn_fp32": "reference_onnx", "mnn_int8": "mnn_fp32"}

COMPARABILITY = (
    "Same weights (registry builders, seed 0, identity BatchNorm statistics), same 224x224 input, batch 1, same "
    "calibration images for every int8 path (32 synthetic structured images, seed 1234: no real data).",
    "ncnn: its x86 kernels are not its ARM kernels (ncnn is tuned for ARM NEON); fp16 storage and arithmetic are "
    "turned off here so the row is fp32 like the others, while on ARMv8.2 phones ncnn's default runs fp16 "
    "arithmetic. No ncnn int8 row: the int8 tools (ncnn2table, ncnn2int8) are in no pip wheel.",
    "ncnn's pip wheel is built with GCC's OpenMP (libgomp): ncnn.set_kmp_blocktime(0) only acts on LLVM's OpenMP, "
    "so it changes nothing here and ncnn's worker threads keep spin-waiting between layers; with 2 threads on 2 "
    "CPUs that other processes also use, that spinning is what its 2-thread rows measure.",
    "MNN rows here say little about MNN on ARM (its ARM kernels, fp16 and sdot paths are what phones run).",
    "Inputs: our and litert-torch's int8 TFLite models take int8 input, quantized outside the timed call; "
    "ExecuTorch and MNN int8 models take float input and quantize inside the timed call (one pass over 150K values).",
    "ExecuTorch and MNN int8 differ from the TFLite int8 paths in what they quantize: ExecuTorch's XNNPACKQuantizer "
    "leaves view/permute/split in float with quantize/dequantize around them; MNN quantizes convolutions with "
    "per-channel weight scales and its own feature statistics.",
    "int8 agreement with float on random weights says little about real accuracy (docs/design.md, int8).",
    "onnxruntime timed in one process with the others runs with spinning off (its default is on); in its own "
    "process (2+ threads) it keeps its default.",
)


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers (tested without any peer installed)

def rotate(names: Sequence[str], r: int) -> list[str]:
    """Round r's order: the list rotated by r, so every artifact leads a round in turn."""
    names = list(names)
    if not names:
        return []
    k = r % len(names)
    return names[k:] + names[:k]


def ratio_stats(per_round: Sequence[float | None], ref_round: Sequence[float | None]) -> dict[str, float] | None:
    """Median and range across rounds of value / reference, taken round by round (rounds where either is missing
    are skipped). None when no round has both."""
    pairs = [(a, b) for a, b in zip(per_round, ref_round) if a is not None and b is not None and b > 0]
    if not pairs:
        return None
    r = np.asarray([a / b for a, b in pairs], dtype=np.float64)
    return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max()), "rounds": len(pairs)}


def summarize(per_round: dict[str, list[float | None]], precision: dict[str, str],
              reference: str = REFERENCE, int8_reference: str = INT8_REFERENCE) -> dict[str, dict[str, Any]]:
    """Per artifact: median and round range of the per-round medians (ms), ratio to `reference` per round, and for
    int8 artifacts the ratio to `int8_reference` too."""
    out: dict[str, dict[str, Any]] = {}
    ref = per_round.get(reference)
    ref8 = per_round.get(int8_reference)
    for k, v in per_round.items():
        vals = np.asarray([x for x in v if x is not None], dtype=np.float64)
        row: dict[str, Any] = {"rounds": len(vals)}
        if len(vals):
            row.update(median_ms=float(np.median(vals)), round_min_ms=float(vals.min()), round_max_ms=float(vals.max()))
        row["ratio"] = ratio_stats(v, ref) if ref is not None else None
        if precision.get(k) == "int8":
            row["ratio_int8"] = ratio_stats(v, ref8) if ref8 is not None else None
        out[k] = row
    return out


# The goals the fastest-artifact work is held to (1 thread): our default int8 / litert-torch's int8, our default fp32 /
# litert-torch's fp32, and our fastest artifact / every peer's fastest.
GOALS = (("ours_tflite_int8", "litert_int8", 0.90), ("ours_tflite_fp32", "litert_fp32", 0.95))
OURS = ("ours_tflite_fp32", "ours_tflite_int8", "ours_onnx_fp32", "ours_onnx_int8")


def goal_rows(per_round: dict[str, list[float | None]]) -> list[dict[str, Any]]:
    """Each goal as a per-round ratio (median and round range): met when the median is at or below it, and said
    whether the slowest round is too. The best-against-best row pairs the artifacts with the lowest median time."""
    def med(k: str) -> float:
        v = [x for x in per_round.get(k, []) if x is not None]
        return float(np.median(v)) if v else float("inf")

    rows = []
    pairs = [(a, b, g, False) for a, b, g in GOALS if a in per_round and b in per_round]
    ours = [k for k in OURS if med(k) < float("inf")]
    peers = [k for k in per_round if k not in OURS and med(k) < float("inf")]
    if ours and peers:
        pairs.append((min(ours, key=med), min(peers, key=med), 1.0, True))
    for a, b, goal, best in pairs:
        r = ratio_stats(per_round[a], per_round[b])
        if r is None:
            continue
        rows.append({"ours": a, "against": b, "goal": goal, "ratio": r, "met": r["median"] <= goal,
                     "every_round": r["max"] <= goal, "best_vs_best": best})
    return rows


def fmt_ratio(r: dict[str, float] | None) -> str:
    if not r:
        return "-"
    return f"{r['median']:.3f} ({r['min']:.2f}-{r['max']:.2f})"


def fmt_ms(row: dict[str, Any] | None) -> str:
    if not row or "median_ms" not in row:
        return "-"
    return f"{row['median_ms']:.2f} ({row['round_min_ms']:.2f}-{row['round_max_ms']:.2f})"


def simd_note(flags: Sequence[str], evidence: dict[str, Any]) -> str:
    """What the CPU's vector width means for the comparison (MNN's x86 wheel has no AVX-512 kernels)."""
    mnn = (evidence.get("mnn") or {}).get("avx512_strings")
    mnn_txt = ("MNN's x86 wheel carries no AVX-512 kernels (no 'avx512' string in its library)" if mnn == 0 else
               "MNN's x86 wheel: AVX-512 kernels not checked")
    if any(f.startswith("avx512") for f in flags):
        return (f"This CPU has AVX-512, which LiteRT's (XNNPACK), ExecuTorch's (XNNPACK), onnxruntime's and ncnn's x86 "
                f"builds use; {mnn_txt}, so its rows run AVX2 kernels against AVX-512 ones.")
    return (f"This CPU has no AVX-512 (its vector flags: {' '.join(flags) or 'none read'}): every runtime runs its "
            f"AVX2/FMA kernels. {mnn_txt}: that costs MNN nothing here, and would on an AVX-512 machine.")


def agreement(got: np.ndarray, want: np.ndarray) -> dict[str, Any]:
    """Numbers of an artifact against PyTorch float: max/mean abs error, top-1 agreement, PSNR (AI Hub's form)."""
    got = np.asarray(got, np.float64).reshape(len(want), -1)
    want = np.asarray(want, np.float64).reshape(len(want), -1)
    err = np.abs(got - want)
    rmse = float(np.sqrt(np.mean((got - want) ** 2)))
    peak = float(np.abs(want).max())
    return {"inputs": int(len(want)), "max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
            "max_abs_logit": peak, "top1_agreement": float(np.mean(got.argmax(1) == want.argmax(1))),
            "psnr_db": float(20 * np.log10(peak / rmse)) if rmse > 0 else float("inf")}


def fp32_agrees(a: dict[str, Any]) -> bool:
    """The exporters' own float rule: max abs logit error <= 1e-4 x max(1, largest logit)."""
    return a["max_abs_error"] <= 1e-4 * max(1.0, a["max_abs_logit"])


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"killed by {name} (signal {-rc})"
    if rc == 124:
        return "timed out"
    return f"exit code {rc}"


def last_json(stdout: str) -> dict[str, Any] | None:
    """Runtimes print banners on stdout (MNN: 'The device supports: ...'); the child's result is its last JSON line."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def tail(text: str, lines: int = 3, chars: int = 400) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)[-chars:]


# ---------------------------------------------------------------------------------------------------------------
# Runtime adapters: one artifact, one runtime, numpy in (NCHW float), numpy out. Imports happen on use.

class Runner:
    """load, prepare(x NCHW float32 batch 1) once, invoke() in the timed loop, output() as float logits."""

    runtime = "?"

    def prepare(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def output(self) -> np.ndarray:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {}


class LiteRTRunner(Runner):
    runtime = "litert"

    def __init__(self, path: str, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.threads = threads

    def prepare(self, x: np.ndarray) -> None:
        if tuple(self.inp["shape"])[-1] == 3:
            x = x.transpose(0, 2, 3, 1)
        dt = np.dtype(self.inp["dtype"])
        scale, zp = self.inp["quantization"]
        if dt in (np.int8, np.uint8) and scale:
            info = np.iinfo(dt)
            x = np.clip(np.round(x / scale) + zp, info.min, info.max)
        self.x = np.ascontiguousarray(x.astype(dt))

    def invoke(self) -> None:
        self.interp.set_tensor(self.inp["index"], self.x)
        self.interp.invoke()

    def output(self) -> np.ndarray:
        y = self.interp.get_tensor(self.out["index"])
        scale, zp = self.out["quantization"]
        if np.dtype(self.out["dtype"]) in (np.int8, np.uint8) and scale:
            return ((y.astype(np.float32) - zp) * scale).reshape(1, -1)
        return y.astype(np.float32).reshape(1, -1)

    def info(self) -> dict[str, Any]:
        return {"num_threads": self.threads, "input_dtype": np.dtype(self.inp["dtype"]).name,
                "xnnpack_partitions": sum(1 for op in self.interp._get_ops_details() if op["op_name"] == "DELEGATE")}


class OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int, spinning: bool, optimize: bool = True) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not optimize:  # QDQ graphs then run as written: dequantize, float op, quantize (the simulation)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        self.opts = {"intra_op_num_threads": threads, "allow_spinning": spinning, "graph_optimizations": optimize}

    def prepare(self, x: np.ndarray) -> None:
        self.x = np.ascontiguousarray(x, np.float32)

    def invoke(self) -> None:
        self.y = self.sess.run(None, {self.name: self.x})[0]

    def output(self) -> np.ndarray:
        return np.asarray(self.y, np.float32).reshape(1, -1)

    def info(self) -> dict[str, Any]:
        return self.opts


_ET_THREADS: int | None = None


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: str, threads: int) -> None:
        global _ET_THREADS
        from executorch.extension.pybindings import portable_lib as pl

        if _ET_THREADS != threads:  # documented: reset the threadpool before loading programs
            pl._unsafe_reset_threadpool(threads)
            _ET_THREADS = threads
        self.pool = int(pl._threadpool_get_thread_count())
        self.mod = pl._load_for_executorch(path)

    def prepare(self, x: np.ndarray) -> None:
        import torch

        self.x = (torch.from_numpy(np.ascontiguousarray(x, np.float32)),)

    def invoke(self) -> None:
        self.y = self.mod.forward(self.x)

    def output(self) -> np.ndarray:
        y = self.y[0]
        y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
        return np.asarray(y, np.float32).reshape(1, -1)

    def info(self) -> dict[str, Any]:
        return {"threadpool_threads": self.pool}


class NcnnRunner(Runner):
    runtime = "ncnn"

    def __init__(self, path: str, threads: int, fp16: bool = False) -> None:
        import ncnn

        ncnn.set_kmp_blocktime(0)
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"):
            if not fp16:
                setattr(self.net.opt, flag, False)
        self.opts = {"num_threads": threads, "kmp_blocktime": ncnn.get_kmp_blocktime(),
                     **{f: bool(getattr(self.net.opt, f)) for f in ("use_fp16_packed", "use_fp16_storage",
                                                                       "use_fp16_arithmetic", "use_bf16_storage")}}
        if self.net.load_param(path) != 0 or self.net.load_model(str(Path(path).with_suffix(".bin"))) != 0:
            raise RuntimeError(f"ncnn cannot load {path}")

    def prepare(self, x: np.ndarray) -> None:
        import ncnn

        self.arr = np.ascontiguousarray(x[0], np.float32)  # (C, H, W); the Mat borrows this memory
        self.mat = ncnn.Mat(self.arr)

    def invoke(self) -> None:
        ex = self.net.create_extractor()
        ex.input("in0", self.mat)
        rc, self.y = ex.extract("out0")
        if rc != 0:
            raise RuntimeError(f"ncnn extract returned {rc}")

    def output(self) -> np.ndarray:
        return np.array(self.y, np.float32).reshape(1, -1)

    def info(self) -> dict[str, Any]:
        return self.opts


class MNNRunner(Runner):
    runtime = "mnn"

    def __init__(self, path: str, threads: int, precision: str = "high") -> None:
        import MNN.nn as mnn_nn

        self.config = {"backend": "CPU", "numThread": threads, "precision": precision}
        self.rt = mnn_nn.create_runtime_manager((self.config,))
        self.mod = mnn_nn.load_module_from_file(path, ["input"], ["logits"], runtime_manager=self.rt)

    def prepare(self, x: np.ndarray) -> None:
        import MNN.expr as F

        self.x = F.const(np.ascontiguousarray(x, np.float32), list(x.shape), F.NCHW)

    def invoke(self) -> None:
        self.y = self.mod.forward(self.x)
        self.y.read()

    def output(self) -> np.ndarray:
        return np.array(self.y.read(), np.float32).reshape(1, -1)

    def info(self) -> dict[str, Any]:
        return {"runtime_manager": self.config}


def open_runner(spec: dict[str, Any], threads: int, solo: bool) -> Runner:
    rt, path, opts = spec["runtime"], spec["path"], spec.get("options") or {}
    if rt == "litert":
        return LiteRTRunner(path, threads)
    if rt == "onnxruntime":
        return OrtRunner(path, threads, spinning=solo, optimize=bool(opts.get("optimize", True)))
    if rt == "executorch":
        return ExecuTorchRunner(path, threads)
    if rt == "ncnn":
        return NcnnRunner(path, threads, fp16=bool(opts.get("fp16", False)))
    if rt == "mnn":
        return MNNRunner(path, threads, precision=str(opts.get("precision", "high")))
    raise ValueError(f"unknown runtime {rt!r}; valid: litert, onnxruntime, executorch, ncnn, mnn")


def runtime_version(rt: str) -> str | None:
    from importlib import metadata

    dist = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "executorch": "executorch", "ncnn": "ncnn",
            "mnn": "mnn"}[rt]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Child modes

def child_run(spec_json: str, inputs: str, outputs: str) -> int:
    """Run one artifact on every input (N, 3, H, W) at 1 thread; save the float logits (N, classes)."""
    spec = json.loads(spec_json)
    t0 = time.perf_counter()
    r = open_runner(spec, 1, solo=True)
    load_s = time.perf_counter() - t0
    x = np.load(inputs)
    ys = []
    for i in range(len(x)):
        r.prepare(x[i : i + 1])
        r.invoke()
        ys.append(r.output().copy())
    np.save(outputs, np.concatenate(ys))
    print(json.dumps({"status": "ok", "load_s": load_s, "run_s": time.perf_counter() - t0 - load_s,
                      "machine": platform.machine(), "version": runtime_version(spec["runtime"]),
                      "info": r.info()}))
    return 0


def child_time(specs_json: str, inputs: str, threads: int, rounds: int, runs: int, warmup: int, solo: bool) -> int:
    """Time the artifacts: several interleaved in this process (1 thread), or one alone (solo)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import _timing

    specs = json.loads(Path(specs_json).read_text()) if specs_json.endswith(".json") else json.loads(specs_json)
    x = np.load(inputs)[:1]
    fns, infos = {}, {}
    for s in specs:
        r = open_runner(s, threads, solo=solo)
        r.prepare(x)
        fns[s["key"]] = r.invoke
        infos[s["key"]] = r.info()
    per = _timing.interleaved(fns, rounds, runs, warmup=warmup)
    print(json.dumps({"status": "ok", "per_round_ms": per, "runtime_settings": infos}))
    return 0


def child_export(kind: str, model: str, out_dir: str, extra: str | None) -> int:
    """One conversion path; prints a JSON line with its wall time (imports excluded) and details."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")
    d = Path(out_dir)
    a = BY_KEY[kind]
    path = d / a["file"]
    t0 = time.perf_counter()
    details = _export(kind, model, d, path, extra)
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in _artifact_files(path) if p.is_file())
    print(json.dumps({"status": "ok", "seconds": dt, "artifact": str(path), "size_bytes": size, "details": details},
                     default=str))
    return 0


def _artifact_files(path: Path) -> list[Path]:
    return [path, path.with_suffix(".bin")] if path.suffix == ".param" else [path]


def _model_and_calib(model: str) -> tuple[Any, Any, np.ndarray]:
    import torch
    from shufflenet_edge.export.calibration import calibration_set

    from shufflenet_edge.data import Preprocess
    from shufflenet_edge.models.weights import load_model

    m = load_model(model, seed=SEED, warn=False)
    calib = calibration_set(None, Preprocess.for_size(SIZE)).images  # the exporter's own fallback
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return m, x, calib


def _export(kind: str, model: str, d: Path, path: Path, extra: str | None) -> dict[str, Any]:
    if kind.startswith("ours_tflite"):
        from shufflenet_edge.api import export as se_export

        side = se_export(model, path, target="tflite", precision="int8" if kind.endswith("int8") else "fp32", seed=SEED,
                             show_progress=False)
        g = side["graph"]
        return {"form": side["form"], "recipe": side.get("recipe"), "form_timings": side.get("form_timings"),
                "checks": side.get("checks"), "ops": g.get("ops"), "xnnpack_partitions": g.get("xnnpack_partitions"),
                "quantize_ops": g.get("quantize_ops"), "calibration": side.get("calibration")}
    if kind in ("ours_onnx_fp32", "ours_onnx_int8", "reference_onnx"):
        from shufflenet_edge.api import export as se_export

        side = se_export(model, path, target="onnx", form="reference" if kind == "reference_onnx" else "auto",
                           int8=kind.endswith("int8"), seed=SEED, show_progress=False)
        return {"form": side["form"], "form_timings": side.get("form_timings"), "ops": side["graph"].get("ops"),
                "calibration": side.get("calibration")}
    if kind in ("litert_fp32", "litert_int8"):
        return _export_litert(model, path, int8=kind.endswith("int8"))
    if kind in ("executorch_fp32", "executorch_int8"):
        return _export_executorch(model, path, int8=kind.endswith("int8"))
    if kind == "ncnn_fp32":
        return _export_ncnn(d / BY_KEY["reference_onnx"]["file"], path)
    if kind == "mnn_fp32":
        return _export_mnn(d / BY_KEY["reference_onnx"]["file"], path)
    if kind == "mnn_int8":
        return _quantize_mnn(d / BY_KEY["mnn_fp32"]["file"], path, method=extra or "EMA", calib_dir=d.parent / "calib_png")
    raise ValueError(f"unknown export kind {kind!r}")


def _export_litert(model: str, path: Path, int8: bool) -> dict[str, Any]:
    """litert-torch as its README shows, on the torchvision-form module, NHWC I/O via to_channel_last_io."""
    import litert_torch
    import torch

    m, _, calib = _model_and_calib(model)
    nhwc = litert_torch.to_channel_last_io(m, args=[0]).eval()
    x = torch.randn(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    if not int8:
        edge = litert_torch.convert(nhwc, (x,))
    else:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        gm = prepare_pt2e(torch.export.export(nhwc, (x,)).module(), quantizer)
        with torch.no_grad():
            for i in range(len(calib)):
                gm(torch.from_numpy(np.ascontiguousarray(calib[i : i + 1].transpose(0, 2, 3, 1))))
        gm = convert_pt2e(gm, fold_quantize=False)
        edge = litert_torch.convert(gm, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(path))
    return {"calibration": f"{len(calib)} synthetic images (seed {CALIB_SEED})" if int8 else None}


def _export_executorch(model: str, path: Path, int8: bool) -> dict[str, Any]:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    m, x, calib = _model_and_calib(model)
    if int8:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        q = XNNPACKQuantizer()
        q.set_global(get_symmetric_quantization_config(is_per_channel=True))
        gm = prepare_pt2e(torch.export.export(m, (x,)).module(), q)
        with torch.no_grad():
            for i in range(len(calib)):
                gm(torch.from_numpy(calib[i : i + 1]))
        m = convert_pt2e(gm)
    ep = torch.export.export(m, (x,))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(prog.buffer)
    return {"calibration": f"{len(calib)} synthetic images (seed {CALIB_SEED})" if int8 else None}


def _export_ncnn(onnx_path: Path, path: Path) -> dict[str, Any]:
    """The pnnx executable (the documented `pnnx model.onnx inputshape=[...]`); pnnx.convert() drops fp16=0 when
    given input_shapes, so the executable is called directly."""
    import pnnx

    if not onnx_path.is_file():
        raise FileNotFoundError(f"reference ONNX missing: {onnx_path}")
    with tempfile.TemporaryDirectory(prefix="pnnx.") as td:
        src = Path(td) / "model.onnx"
        shutil.copyfile(onnx_path, src)
        cmd = [pnnx.EXEC_PATH, str(src), f"inputshape=[1,3,{SIZE},{SIZE}]", "fp16=0"]
        p = subprocess.run(cmd, cwd=td, capture_output=True, text=True)
        param, binf = Path(td) / "model.ncnn.param", Path(td) / "model.ncnn.bin"
        if p.returncode != 0 or not param.is_file():
            raise RuntimeError(f"pnnx failed ({describe_exit(p.returncode)}): {tail(p.stderr or p.stdout)}")
        shutil.copyfile(param, path)
        shutil.copyfile(binf, path.with_suffix(".bin"))
    layers = [ln.split()[0] for ln in path.read_text().splitlines()[2:] if ln.strip()]
    hist: dict[str, int] = {}
    for t in layers:
        hist[t] = hist.get(t, 0) + 1
    return {"layers": len(layers), "layer_histogram": hist, "pnnx": " ".join(Path(c).name for c in cmd)}


def _export_mnn(onnx_path: Path, path: Path) -> dict[str, Any]:
    """MNNConvert through the wheel's C extension (`_tools`): the `mnnconvert` script's wrapper module imports a
    telemetry logger that pip-installs aliyun-log-python-sdk at import time."""
    import _tools  # MNN's converter/quantizer extension

    if not onnx_path.is_file():
        raise FileNotFoundError(f"reference ONNX missing: {onnx_path}")
    if path.exists():
        path.unlink()
    _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(path),
                       "--bizCode", "shufflenet-edge"])
    if not path.is_file():
        raise RuntimeError("MNNConvert wrote no model")
    return {}


def write_calibration_pngs(folder: Path) -> dict[str, Any]:
    """The exporter's synthetic calibration images as lossless PNGs (MNN's tool reads image files); checked to give
    back the very same normalized arrays."""
    from PIL import Image
    from shufflenet_edge.export.calibration import calibration_set

    from shufflenet_edge.data import Preprocess

    pre = Preprocess.for_size(SIZE)
    ims = calibration_set(None, pre)
    folder.mkdir(parents=True, exist_ok=True)
    mean = np.asarray(pre.mean, np.float32)[:, None, None]
    std = np.asarray(pre.std, np.float32)[:, None, None]
    worst = 0.0
    for i, x in enumerate(ims.images):
        u8 = np.round((x * std + mean) * 255).clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
        worst = max(worst, float(np.abs(pre.normalize(u8) - x).max()))
        Image.fromarray(u8).save(folder / f"{i:03d}.png")
    if worst > 1e-5:
        raise RuntimeError(f"calibration PNGs do not reproduce the images (max diff {worst:g})")
    return {"images": len(ims.images), "source": ims.source, "max_roundtrip_diff": worst, "mean": list(pre.mean),
            "std": list(pre.std)}


def _quantize_mnn(src: Path, path: Path, method: str, calib_dir: Path) -> dict[str, Any]:
    """MNN's post-training quantization tool. The wheel's `mnnquant` script passes three strings where the C
    function expects an argv list (std::length_error for every method), so the extension is called with a list."""
    import _tools

    from shufflenet_edge.data import Preprocess

    pre = Preprocess.for_size(SIZE)
    if not src.is_file():
        raise FileNotFoundError(f"MNN fp32 model missing: {src}")
    n = len(list(calib_dir.glob("*.png")))
    if n == 0:
        raise FileNotFoundError(f"no calibration PNGs in {calib_dir}")
    cfg = {"format": "RGB", "mean": [m * 255 for m in pre.mean], "normal": [1 / (s * 255) for s in pre.std],
           "width": SIZE, "height": SIZE, "path": str(calib_dir) + "/", "used_image_num": n,
           "feature_quantize_method": method, "weight_quantize_method": "MAX_ABS"}
    cfg_path = path.with_suffix(f".{method}.json")
    cfg_path.write_text(json.dumps(cfg, indent=1))
    if path.exists():
        path.unlink()
    _tools.mnnquant(["mnnquant", str(src), str(path), str(cfg_path)])
    if not path.is_file():
        raise RuntimeError("MNN quantization wrote no model")
    return {"feature_quantize_method": method, "weight_quantize_method": "MAX_ABS", "calibration_images": n}


# ---------------------------------------------------------------------------------------------------------------
# Parent side

def log(msg: str) -> None:
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def _child(args: list[str], timeout: float, env: dict[str, str] | None = None,
           prefix: list[str] | None = None) -> tuple[dict[str, Any] | None, str, float]:
    """Run this file in a child; returns (its JSON or None, error text, wall seconds)."""
    cmd = [*(prefix or [sys.executable]), str(Path(__file__).resolve()), *args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s", time.monotonic() - t0
    wall = time.monotonic() - t0
    res = last_json(p.stdout)
    if p.returncode != 0 or res is None or res.get("status") != "ok":
        err = describe_exit(p.returncode)
        detail = tail(p.stderr) or tail(p.stdout)
        return None, f"{err}: {detail}" if detail else err, wall
    return res, "", wall


def do_exports(model: str, d: Path, reuse: bool, only: set[str] | None) -> dict[str, Any]:
    d.mkdir(parents=True, exist_ok=True)
    record_path = d / "exports.json"
    old = json.loads(record_path.read_text()) if reuse and record_path.is_file() else {}
    recs: dict[str, Any] = {}
    for kind in EXPORT_ORDER:
        if only is not None and kind not in only:
            continue
        art = d / BY_KEY[kind]["file"]
        if reuse and old.get(kind, {}).get("status") == "ok" and art.is_file():
            recs[kind] = {**old[kind], "reused": True}
            continue
        dep = DEPENDS.get(kind)
        if dep and recs.get(dep, old.get(dep, {})).get("status") != "ok":
            recs[kind] = {"status": "skipped", "error": f"needs {dep}, which failed"}
            log(f"{model}: {kind}: skipped (needs {dep})")
            continue
        attempts = []
        methods = MNN_INT8_METHODS if kind == "mnn_int8" else (None,)
        rec: dict[str, Any] = {}
        for method in methods:
            args = ["_export", kind, model, str(d)] + ([method] if method else [])
            log(f"{model}: exporting {kind}" + (f" ({method})" if method else ""))
            res, err, wall = _child(args, EXPORT_TIMEOUT_S)
            if res is None:
                attempts.append({"method": method, "status": "error", "error": err, "process_s": wall})
                log(f"{model}: {kind}" + (f" ({method})" if method else "") + f" FAILED: {err}")
                continue
            rec = {"status": "ok", "seconds": res["seconds"], "process_s": wall, "artifact": res["artifact"],
                   "size_bytes": res["size_bytes"], "details": res.get("details")}
            attempts.append({"method": method, "status": "ok", "seconds": res["seconds"]})
            log(f"{model}: {kind} done in {res['seconds']:.1f} s (process {wall:.1f} s)")
            break
        if not rec:
            rec = {"status": "error", "error": attempts[-1]["error"] if attempts else "?"}
        if kind == "mnn_int8":
            rec["attempts"] = attempts
        recs[kind] = rec
    record_path.write_text(json.dumps(recs, indent=1, default=str) + "\n")
    return recs


def spec_of(key: str, d: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
    a = BY_KEY[key]
    return {"key": key, "runtime": a["runtime"], "path": str(d / a["file"]), "precision": a["precision"],
            "options": options or {}}


def reference_outputs(model: str, x: np.ndarray) -> np.ndarray:
    import torch

    from shufflenet_edge.models.weights import load_model

    m = load_model(model, seed=SEED, warn=False)
    with torch.no_grad():
        return torch.cat([m(torch.from_numpy(x[i : i + 1])) for i in range(len(x))]).numpy()


def check_inputs(n: int) -> np.ndarray:
    from shufflenet_edge.data import Preprocess, synthetic_images

    return np.ascontiguousarray(synthetic_images(n, Preprocess.for_size(SIZE), seed=CHECK_SEED).images)


def do_checks(model: str, d: Path, exports: dict[str, Any], x_path: Path, want: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in BY_KEY:
        if exports.get(key, {}).get("status") != "ok":
            continue
        y_path = d / f"check_{key}.npy"
        res, err, wall = _child(["_run", json.dumps(spec_of(key, d)), str(x_path), str(y_path)], 600)
        if res is None:
            out[key] = {"status": "error", "error": err}
            log(f"{model}: {key} does not run: {err}")
            continue
        a = agreement(np.load(y_path), want)
        a.update(status="ok", load_s=res["load_s"], runtime_version=res.get("version"), runtime_info=res.get("info"))
        if BY_KEY[key]["precision"] == "fp32":
            a["fp32_rule"] = "max abs error <= 1e-4 x max(1, |logit|max)"
            a["fp32_agrees"] = fp32_agrees(a)
        elif BY_KEY[key]["runtime"] == "onnxruntime":
            # The same QDQ file with graph optimizations off runs dequantize -> float op -> quantize: how far the
            # optimized int8 kernels of this CPU are from what the file means.
            sim_path = d / f"check_{key}_qdq_simulation.npy"
            r2, err2, _ = _child(["_run", json.dumps(spec_of(key, d, {"optimize": False})), str(x_path), str(sim_path)],
                                 600)
            if r2 is not None:
                sim = np.load(sim_path)
                a["qdq_simulation"] = {"vs_pytorch": agreement(sim, want),
                                       "optimized_vs_simulation_max_abs": float(np.abs(np.load(y_path) - sim).max())}
        out[key] = a
        log(f"{model}: {key}: max abs err {a['max_abs_error']:.3g}, top-1 {a['top1_agreement']:.0%}, "
            f"PSNR {a['psnr_db']:.1f} dB")
    return out


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine from /proc/stat, CPU seconds of this process and its waited-for
    children): their difference over a phase is what other processes used."""
    import resource

    busy = float("nan")
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        busy = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    own = sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
              for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return busy, own


def foreign_cores(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float | None:
    """Average number of CPUs other processes kept busy over a phase (None where /proc/stat is unreadable)."""
    if seconds <= 0 or before[0] != before[0] or after[0] != after[0]:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def do_timing(model: str, d: Path, keys: list[str], x_path: Path, threads: int, rounds: int, runs: int,
              warmup: int) -> dict[str, Any]:
    specs = [spec_of(k, d) for k in keys]
    load0 = os.getloadavg()
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    per: dict[str, list[float | None]] = {k: [None] * rounds for k in keys}
    errors: dict[str, str] = {}
    settings: dict[str, Any] = {}
    if threads == 1:
        mode = f"one process, all {len(keys)} artifacts interleaved run by run, {rounds} rounds x {runs} runs"
        sp = d / "specs.json"
        sp.write_text(json.dumps(specs))
        res, err, _ = _child(["_time", str(sp), str(x_path), "1", str(rounds), str(runs), str(warmup), "shared"],
                             3600)
        if res is None:
            errors["all"] = err
            log(f"{model}: 1-thread timing failed: {err}")
        else:
            for k, v in res["per_round_ms"].items():
                per[k] = list(v)
            settings = res["runtime_settings"]
    else:
        mode = (f"one process per artifact per round ({rounds} rounds, order rotated each round), "
                f"{warmup} warm-up + {runs} timed runs in each")
        for r in range(rounds):
            for k in rotate(keys, r):
                res, err, _ = _child(["_time", json.dumps([spec_of(k, d)]), str(x_path), str(threads), "1", str(runs),
                                      str(warmup), "solo"], 900)
                if res is None:
                    errors[k] = err
                    log(f"{model}: {k} at {threads} threads, round {r + 1}: {err}")
                    continue
                per[k][r] = res["per_round_ms"][k][0]
                settings[k] = res["runtime_settings"][k]
            log(f"{model}: {threads} threads, round {r + 1}/{rounds} done")
    prec = {k: BY_KEY[k]["precision"] for k in keys}
    seconds = time.monotonic() - t0
    return {"threads": threads, "mode": mode, "rounds": rounds, "runs_per_round": runs, "warmup": warmup,
            "loadavg_before": list(load0), "loadavg_after": list(os.getloadavg()),
            "foreign_cpu_cores": foreign_cores(cpu0, cpu_seconds(), seconds), "seconds": seconds,
            "per_round_ms": per, "errors": errors, "runtime_settings": settings, "summary": summarize(per, prec)}


# ---------------------------------------------------------------------------------------------------------------
# Machine and evidence

def machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    vers = {}
    for dist in ("torch", "litert-torch", "ai-edge-litert", "onnxruntime", "onnx", "executorch", "torchao", "ncnn",
                 "pnnx", "mnn", "numpy"):
        try:
            vers[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            vers[dist] = "not installed"
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "export", "shufflenet_edge",
                            "runtimes"], capture_output=True, text=True)
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "memory_gib": mem, "machine": platform.machine(),
            "kernel": platform.release(), "python": platform.python_version(),
            "simd": sorted(f for f in flags if f.startswith(("avx512", "avx2", "fma", "f16c", "amx", "avx_vnni"))),
            "versions": vers, "git": git.stdout.strip(),
            "uncommitted_library_changes": sorted({ln[3:] for ln in dirty.stdout.splitlines()})}


def kernel_evidence() -> dict[str, Any]:
    """Does each runtime's native code carry AVX-512 kernels? Counts 'avx512' in its shared objects."""
    import importlib.util

    where = {"mnn": ("_mnncengine",), "ncnn": ("ncnn",), "executorch": ("executorch",),
             "litert": ("ai_edge_litert",), "onnxruntime": ("onnxruntime",)}
    out: dict[str, Any] = {}
    for rt, mods in where.items():
        n, files = 0, 0
        for mod in mods:
            spec = importlib.util.find_spec(mod)
            if spec is None:
                continue
            if spec.origin and spec.origin.endswith(".so"):
                paths = [Path(spec.origin)]
            else:  # a package (possibly a namespace package): every shared object under it
                roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
                paths = [p for r in roots for p in Path(r).rglob("*.so*")]
            for p in paths:
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                files += 1
                n += data.lower().count(b"avx512")
        out[rt] = {"shared_objects": files, "avx512_strings": n} if files else {"shared_objects": 0}
    return out


# ---------------------------------------------------------------------------------------------------------------
# aarch64 emulation (numbers only)

def arm_section(models: list[str], out_dir: Path, per_model: dict[str, Any], n_inputs: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import arm_qemu
    except ImportError as e:
        return {"status": "not set up", "reason": f"benchmarks/arm_qemu.py cannot be imported: {e}"}
    from importlib import metadata

    cache = arm_qemu.DEFAULT_CACHE
    try:
        arm_qemu.qemu_cmd(Path("/nonexistent"))
        cache.mkdir(parents=True, exist_ok=True)
        sysroot = arm_qemu.ensure_sysroot(cache)
        base_site, base_versions = arm_qemu.ensure_site(cache)
        qemu = arm_qemu.qemu_cmd(sysroot)
    except (arm_qemu.SetupError, subprocess.CalledProcessError, OSError) as e:
        return {"status": "not set up", "reason": str(e)}
    section: dict[str, Any] = {"status": "ok", "emulator": Path(qemu[0]).name, "cpu": "neoverse-n1",
                               "python": arm_qemu.PYVER, "base_site": base_versions, "wheels": {}, "imports": {},
                               "models": {}}
    # The peers' aarch64 wheels, pinned to the versions installed here.
    wheels = cache / "wheels-peers"
    wheels.mkdir(parents=True, exist_ok=True)
    site = cache / "site-peers"
    site.mkdir(parents=True, exist_ok=True)
    want = {"executorch": "executorch", "ncnn": "ncnn", "mnn": "mnn"}
    for rt, dist in want.items():
        try:
            ver = metadata.version(dist)
        except metadata.PackageNotFoundError:
            section["wheels"][rt] = {"status": "skipped", "reason": f"{dist} not installed on the host"}
            continue
        rec = _arm_wheel(dist, ver, wheels, site)
        section["wheels"][rt] = rec
        log(f"arm: {dist}=={ver} aarch64 wheel: {rec['status']}" + (f" ({rec.get('reason')})" if rec.get("reason") else ""))
    if section["wheels"].get("executorch", {}).get("status") == "ok":
        # ExecuTorch's Python runtime imports torch (its extension links libtorch): try the matching aarch64 torch.
        tv = metadata.version("torch").split("+")[0]
        rec = _arm_wheel("torch", tv, wheels, site)
        section["wheels"]["torch (for executorch)"] = rec
        if rec["status"] == "ok":
            lib = site / "torch" / "lib" / "libtorch_cpu.so"
            if lib.is_file():
                data = lib.read_bytes()
                cuda = sorted({s.decode() for s in (b"libcudart.so", b"libcupti.so", b"libcudnn.so") if s in data})
                rec["libtorch_cpu_links"] = cuda
                if cuda:
                    rec["note"] = ("PyPI's aarch64 torch is the CUDA build: libtorch links " + ", ".join(cuda)
                                   + "; importing it needs the nvidia-* aarch64 wheels (several GB); the CPU-only "
                                   "aarch64 build is on download.pytorch.org")
    env = arm_qemu.arm_env(base_site)
    env["PYTHONPATH"] = f"{site}{os.pathsep}{base_site}"
    probes = {"litert": "ai_edge_litert.interpreter", "onnxruntime": "onnxruntime", "ncnn": "ncnn", "mnn": "MNN",
              "executorch": "executorch.extension.pybindings.portable_lib"}
    for rt, mod in probes.items():
        code = f"import time; t = time.time(); import {mod}; print('IMPORTED', round(time.time() - t, 1))"
        try:
            p = subprocess.run([*qemu, "-c", code], capture_output=True, text=True, env=env, timeout=900)
            ok = p.returncode == 0 and "IMPORTED" in p.stdout
            section["imports"][rt] = ({"status": "ok", "seconds": float(p.stdout.split("IMPORTED")[-1].split()[0])}
                                      if ok else {"status": "error", "error": f"{describe_exit(p.returncode)}: "
                                                  f"{(p.stderr.strip().splitlines() or [''])[-1].split(' in the system path')[0][:160]}"})
        except subprocess.TimeoutExpired:
            section["imports"][rt] = {"status": "error", "error": "import timed out (900 s)"}
        log(f"arm: import {mod}: {section['imports'][rt]['status']}")
    ok_rts = {rt for rt, r in section["imports"].items() if r["status"] == "ok"}
    variants = {"ncnn_fp32": [("ncnn defaults (fp16 storage/arithmetic on)", {"fp16": True})],
                "mnn_fp32": [("MNN precision normal (its default)", {"precision": "normal"}),
                             ("MNN precision low (fp16 where the CPU has it)", {"precision": "low"})]}
    for model in models:
        d = out_dir / model
        x_path = d / "check_inputs.npy"
        checks = per_model.get(model, {}).get("checks", {})
        if not x_path.is_file():
            continue
        xa = d / "arm_inputs.npy"
        np.save(xa, np.load(x_path)[:n_inputs])
        rows: dict[str, Any] = {}
        for key, a in BY_KEY.items():
            if checks.get(key, {}).get("status") != "ok":
                continue
            y86 = np.load(d / f"check_{key}.npy")[:n_inputs]
            runs = [(a["label"], {})] + variants.get(key, [])
            for label, opts in runs:
                name = key if not opts else f"{key}:{'+'.join(f'{k}={v}' for k, v in opts.items())}"
                if a["runtime"] not in ok_rts:
                    rows[name] = {"label": label, "status": "not run",
                                  "reason": f"{a['runtime']} does not import under emulation"}
                    continue
                if opts:  # the x86 output of the variant, for a like-for-like comparison
                    y86_path = d / f"x86_{name.replace(':', '_').replace('=', '_')}.npy"
                    r86, err86, _ = _child(["_run", json.dumps(spec_of(key, d, opts)), str(xa), str(y86_path)], 600)
                    if r86 is None:
                        rows[name] = {"label": label, "status": "error", "error": f"x86: {err86}"}
                        continue
                    yx = np.load(y86_path)
                else:
                    yx = y86
                y_arm = d / f"arm_{name.replace(':', '_').replace('=', '_')}.npy"
                res, err, wall = _child(["_run", json.dumps(spec_of(key, d, opts)), str(xa), str(y_arm)], 1800,
                                        env=env, prefix=qemu)
                if res is None:
                    rows[name] = {"label": label, "status": "error", "error": err}
                    log(f"arm: {model} {name}: {err}")
                    continue
                ya = np.load(y_arm)
                diff = float(np.abs(ya - yx).max())
                peak = float(np.abs(yx).max())
                top = int(np.sum(ya.argmax(1) == yx.argmax(1)))
                if a["precision"] == "fp32":
                    tol = 1e-4 * max(1.0, peak)
                    passed, rule = diff <= tol, f"max abs(arm - x86) <= {tol:.2g}"
                else:
                    passed, rule = top == len(yx), "top-1 identical"
                rows[name] = {"label": label, "status": "pass" if passed else "differs", "rule": rule,
                              "max_abs_diff_vs_x86": diff, "max_abs_logit": peak, "top1_same": f"{top}/{len(yx)}",
                              "vs_pytorch_max_abs_error": agreement(ya, reference_slice(d, n_inputs))["max_abs_error"],
                              "emulated_seconds": round(wall, 1), "arm_runtime_version": res.get("version"),
                              "machine": res.get("machine")}
                log(f"arm: {model} {name}: {rows[name]['status']} (max |arm-x86| {diff:.2e}, top-1 {top}/{len(yx)})")
        section["models"][model] = rows
    return section


def reference_slice(d: Path, n: int) -> np.ndarray:
    return np.load(d / "check_reference.npy")[:n]


def _arm_wheel(dist: str, version: str, wheels: Path, site: Path) -> dict[str, Any]:
    import zipfile

    norm = dist.replace("-", "_").lower()
    found = [w for w in wheels.glob("*.whl") if w.name.split("-")[0].lower() == norm and w.name.split("-")[1] == version]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.11", "--implementation", "cp", "-d", str(wheels)]
        for plat in ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_24_aarch64",
                     "manylinux_2_17_aarch64", "manylinux2014_aarch64"):
            cmd += ["--platform", plat]
        p = subprocess.run(cmd + [f"{dist}=={version}"], capture_output=True, text=True)
        if p.returncode != 0:
            return {"status": "no wheel", "reason": tail(p.stderr, 1)}
        found = [w for w in wheels.glob("*.whl") if w.name.split("-")[0].lower() == norm and w.name.split("-")[1] == version]
        if not found:
            return {"status": "no wheel", "reason": "pip download produced no aarch64 wheel"}
    w = sorted(found)[-1]
    stamp = site / f".{norm}-{version}"
    if not stamp.is_file():
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
        stamp.write_text("ok\n")
    return {"status": "ok", "wheel": w.name, "size_mb": round(w.stat().st_size / 1e6, 1)}


# ---------------------------------------------------------------------------------------------------------------
# Report

def _label(k: str) -> str:
    return BY_KEY[k]["label"]


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    s = data["settings"]
    L = ["# Peers side by side: litert-torch by hand, ExecuTorch, ncnn, MNN and ours", "",
         f"Produced by `{data['command']}` on {data['date']} (git {env['git']}"
         + (f", uncommitted changes in {', '.join(env['uncommitted_library_changes'])}"
            if env["uncommitted_library_changes"] else "") + f"), {data['seconds'] / 60:.0f} min."
         + (f" This page was rewritten from that run's JSON by `--render` on {data['rendered']} (no new measurement)."
            if data.get("rendered") else ""), "",
         f"Machine: {env['cpu']}, {env['logical_cpus']} logical CPUs, {env['memory_gib']} GiB, {env['machine']}, "
         f"SIMD flags {' '.join(env['simd'])}. Versions: "
         + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
         f"Settings: 224x224, batch 1, seeded random weights (seed {SEED}); {s['rounds']} rounds x {s['runs']} runs "
         f"after {s['warmup']} warm-up runs; threads {', '.join(map(str, s['threads']))}; checks on "
         f"{s['check_inputs']} synthetic structured images (seed {CHECK_SEED}), not the calibration ones.", "",
         f"Load average (1 min) at start {data['loadavg_start'][0]:.2f}, at end {data['loadavg_end'][0]:.2f} "
         f"(it counts this benchmark's own processes too). While timing, other processes kept up to "
         f"{data['foreign_cpu_max']:.2f} of {env['logical_cpus']} CPUs busy"
         + (": **the numbers were taken under load**; per-round ratios cancel part of it, absolute milliseconds "
            "do not." if data["loaded"] else ": the machine was quiet enough."), "",
         "Ratios are taken per round against litert-torch fp32 of the same round (int8 rows also against "
         "litert-torch int8), then the median across rounds; the range in brackets is the lowest and highest "
         "round. Below 1 is faster.", ""]
    for model, m in data["models"].items():
        L += [f"## {model}", ""]
        tkeys = [t for t in m.get("timing", {})]
        head = "| artifact | " + " | ".join(
            f"{t} thr ms (round range) | {t} thr / litert fp32 | {t} thr int8 / litert int8" for t in tkeys) + " |"
        L += [head, "|---|" + "---|---|---|" * len(tkeys)]
        for k in BY_KEY:
            if k not in m["exports"]:
                continue
            cells = []
            for t in tkeys:
                row = m["timing"][t]["summary"].get(k)
                cells += [fmt_ms(row), fmt_ratio(row and row.get("ratio")),
                          fmt_ratio(row.get("ratio_int8")) if row and "ratio_int8" in row else ""]
            L.append(f"| {_label(k)} | " + " | ".join(cells) + " |")
        L.append("")
        one = m.get("timing", {}).get("1") or m.get("timing", {}).get(1)
        if one and one.get("per_round_ms"):
            L += ["Goals at 1 thread (set for shufflenet_v2_x1_0; stated for the others): per-round ratios in the one "
                  "process, met when the median is at or below the goal.", ""]
            for g in goal_rows(one["per_round_ms"]):
                what = ("our fastest / the fastest peer" if g["best_vs_best"]
                        else f"{_label(g['ours'])} / {_label(g['against'])}")
                L.append(f"- {what}" + (f" ({_label(g['ours'])} / {_label(g['against'])})" if g["best_vs_best"] else "")
                         + f": {fmt_ratio(g['ratio'])}, goal {g['goal']:.2f}: **{'met' if g['met'] else 'not met'}**"
                         + ("" if g["met"] == g["every_round"] else " (not in every round)" if g["met"]
                            else " (met in some rounds)"))
            L.append("")
        for t, tm in m.get("timing", {}).items():
            fc = tm.get("foreign_cpu_cores")
            L.append(f"- {t} thread(s): {tm['mode']}; {tm['seconds'] / 60:.1f} min; load average "
                     f"{tm['loadavg_before'][0]:.2f} before, {tm['loadavg_after'][0]:.2f} after"
                     + (f"; other processes kept {fc:.2f} of {env['logical_cpus']} CPUs busy" if fc is not None else "")
                     + (f"; errors: {tm['errors']}" if tm["errors"] else ""))
        L += ["", "| artifact | export path | export s | size MB | max abs err vs PyTorch | top-1 agreement | PSNR dB | notes |",
              "|---|---|---|---|---|---|---|---|"]
        for k in BY_KEY:
            e = m["exports"].get(k)
            if e is None:
                continue
            c = m["checks"].get(k, {})
            note = []
            if e["status"] != "ok":
                note.append(f"**export failed**: {e.get('error')}")
            elif c.get("status") == "error":
                note.append(f"**does not run**: {c.get('error')}")
            det = e.get("details") or {}
            if det.get("form"):
                rec = det.get("recipe")
                note.append(f"form {det['form']}" + (f" (recipe {rec})" if rec and rec != det["form"] else ""))
            if det.get("layers"):
                note.append(f"{det['layers']} ncnn layers")
            for att in e.get("attempts", []):
                if att["status"] != "ok":
                    note.append(f"{att['method']} calibration: {att['error'].split(': ')[0]}")
                else:
                    note.append(f"{att['method']} calibration used")
            if c.get("fp32_agrees") is False:
                note.append("**disagrees with PyTorch** beyond the float rule")
            if c.get("qdq_simulation"):
                q = c["qdq_simulation"]
                note.append(f"the same file with onnxruntime's graph optimizations off (QDQ as written): max abs err "
                            f"{q['vs_pytorch']['max_abs_error']:.2g}, PSNR {q['vs_pytorch']['psnr_db']:.1f} dB; optimized "
                            f"vs that: {q['optimized_vs_simulation_max_abs']:.2g}")
            secs = f"{e['seconds']:.1f}" if e.get("seconds") is not None else "-"
            size = f"{e['size_bytes'] / 1e6:.2f}" if e.get("size_bytes") else "-"
            errc = f"{c['max_abs_error']:.2g}" if "max_abs_error" in c else "-"
            top = f"{c['top1_agreement']:.0%}" if "top1_agreement" in c else "-"
            psnr = f"{c['psnr_db']:.1f}" if "psnr_db" in c else "-"
            L.append(f"| {_label(k)} | {BY_KEY[k]['how']} | {secs} | {size} | {errc} | {top} | {psnr} | {'; '.join(note)} |")
        L.append("")
    L += ["## Export wall time (s)", "",
          "Time of the conversion call in its own process, imports excluded: model build, calibration, conversion, "
          "and for ours the form timing and the checks. ncnn and MNN start from the reference ONNX (add its time "
          "for the whole path); MNN int8 starts from MNN fp32.", "",
          "| path | " + " | ".join(data["models"]) + " |", "|---|" + "---|" * len(data["models"])]
    for k in EXPORT_ORDER:
        cells = []
        for m in data["models"].values():
            e = m["exports"].get(k, {})
            cells.append(f"{e['seconds']:.1f}" if e.get("status") == "ok" else (e.get("status") or "-"))
        L.append(f"| {_label(k)} | " + " | ".join(cells) + " |")
    L += ["", "## What failed", ""]
    fails = []
    for model, m in data["models"].items():
        for k, e in m["exports"].items():
            for att in e.get("attempts", []):
                if att["status"] != "ok":
                    why, _, last = att["error"].partition(": ")
                    last = last.split(" | ")[-1] if last else ""
                    fails.append(f"- {model}: {_label(k)} with {att['method']} calibration: {why}"
                                 + (f" (its last output line: '{last}')" if last else ""))
            if e["status"] != "ok":
                fails.append(f"- {model}: {_label(k)} export: {e.get('error')}")
        for k, c in m["checks"].items():
            if c.get("status") == "error":
                fails.append(f"- {model}: {_label(k)} run: {c.get('error')}")
    L += fails or ["- nothing"]
    L += ["", "## What is and is not comparable", ""] + [f"- {c}" for c in COMPARABILITY]
    L.append("- " + simd_note(env.get("simd", []), data.get("kernel_evidence") or {}))
    ev = data.get("kernel_evidence") or {}
    if ev:
        L.append("- Kernel evidence (occurrences of 'avx512' in each runtime's shared objects): "
                 + ", ".join(f"{k} {v.get('avx512_strings', 'n/a')}" for k, v in ev.items()) + ".")
    L.append("")
    arm = data.get("arm")
    if arm is not None:
        L += ["## aarch64 under qemu-user (numbers only)", ""]
        if arm.get("status") != "ok":
            L += [f"Not set up: {arm.get('reason')}", ""]
        else:
            L += [f"Emulator {arm['emulator']} (cpu {arm['cpu']}), Debian Python {arm['python']}, the sysroot of "
                  f"benchmarks/arm_qemu.py; base wheels {arm['base_site']}. Each artifact made on x86 is run on the "
                  "first check inputs in the emulated Python and compared with the x86 run of the same file. Emulated "
                  "timings mean nothing.", "", "| peer | aarch64 wheel | imports under qemu |", "|---|---|---|"]
            for rt in ("litert", "onnxruntime", "executorch", "ncnn", "mnn"):
                w = arm["wheels"].get(rt, {"status": "base site" if rt in ("litert", "onnxruntime") else "-"})
                imp = arm["imports"].get(rt, {})
                wtxt = w.get("wheel", w.get("status")) + (f" ({w['reason']})" if w.get("reason") else "")
                itxt = imp.get("status", "-") + (f": {imp['error']}" if imp.get("error") else "")
                L.append(f"| {rt} | {wtxt} | {itxt} |")
            tw = arm["wheels"].get("torch (for executorch)")
            if tw:
                L += ["", f"ExecuTorch's runtime imports torch: aarch64 torch wheel {tw.get('wheel', tw.get('status'))}"
                      + (f"; {tw['note']}" if tw.get("note") else "") + "."]
            L += ["", "| model | artifact | status | rule | max abs arm - x86 | top-1 same | vs PyTorch max abs err |",
                  "|---|---|---|---|---|---|---|"]
            for model, rows in arm["models"].items():
                for r in rows.values():
                    if r["status"] in ("pass", "differs"):
                        L.append(f"| {model} | {r['label']} | {r['status']} | {r['rule']} | {r['max_abs_diff_vs_x86']:.2g} "
                                 f"| {r['top1_same']} | {r['vs_pytorch_max_abs_error']:.2g} |")
                    else:
                        L.append(f"| {model} | {r['label']} | {r['status']} | {r.get('reason') or r.get('error')} | | | |")
            L.append("")
    return "\n".join(L)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(data["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 5.5), sharey=True, squeeze=False)
    keys = [k for k in BY_KEY]
    for ax, model in zip(axes[0], models):
        m = data["models"][model]
        threads = list(m.get("timing", {}))
        h = 0.8 / max(1, len(threads))
        for j, t in enumerate(threads):
            summ = m["timing"][t]["summary"]
            ys, meds, lo, hi = [], [], [], []
            for i, k in enumerate(keys):
                r = (summ.get(k) or {}).get("ratio")
                if not r:
                    continue
                ys.append(i + j * h)
                meds.append(r["median"])
                lo.append(r["median"] - r["min"])
                hi.append(r["max"] - r["median"])
            ax.barh(ys, meds, height=h, xerr=[lo, hi], capsize=2, label=f"{t} thread(s)")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(keys))])
        ax.set_yticklabels([_label(k) for k in keys], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("latency / litert-torch fp32\n(median of per-round ratios; whiskers: round range)", fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(f"Peers, 224x224 batch 1, {data['environment']['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_run":
        return child_run(argv[1], argv[2], argv[3])
    if argv and argv[0] == "_time":
        return child_time(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]), argv[7] == "solo")
    if argv and argv[0] == "_export":
        return child_export(argv[1], argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Needs the [peers] extra; a peer that is missing or fails is recorded, not fatal.")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", default="1,2", help="comma list; 1 = one process interleaved, more = a process each")
    ap.add_argument("--check-inputs", type=int, default=8)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="peers", help="results file stem (default peers)")
    ap.add_argument("--reuse", action="store_true", help="keep artifacts exported by an earlier run (and their times)")
    ap.add_argument("--only", help="comma list of artifact keys (default all): " + ",".join(BY_KEY))
    ap.add_argument("--arm", action="store_true", help="add the aarch64 emulation section (qemu-user)")
    ap.add_argument("--arm-inputs", type=int, default=2)
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only rewrite the .md and .png from a recorded JSON (no measurement)")
    a = ap.parse_args(argv)
    if a.render:
        try:
            data = json.loads(a.render.read_text())
            data["rendered"] = datetime.datetime.now().isoformat(timespec="seconds")
            page = markdown(data)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"peers: cannot render {a.render}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                  file=sys.stderr)
            return 1
        stem = a.render.with_suffix("")
        Path(f"{stem}.md").write_text(page + "\n")
        plot(data, Path(f"{stem}.png"))
        log(f"rewrote {stem}.md and {stem}.png from {a.render}")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    t_start = time.monotonic()
    load_start = os.getloadavg()
    models = [m for m in a.models.split(",") if m]
    threads = [int(t) for t in a.threads.split(",") if t]
    only = set(a.only.split(",")) if a.only else None
    if only is not None:
        unknown = only - set(BY_KEY)
        if unknown:
            ap.error(f"unknown artifact key(s) {', '.join(sorted(unknown))}; valid: {', '.join(BY_KEY)}")
        only |= {REFERENCE} | ({INT8_REFERENCE} if any(BY_KEY[k]["precision"] == "int8" for k in only) else set())
        for k in list(only):
            while k in DEPENDS:
                k = DEPENDS[k]
                only.add(k)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    calib_info = write_calibration_pngs(a.out_dir / "calib_png")
    data: dict[str, Any] = {
        "command": "python benchmarks/peers.py " + " ".join(argv), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "environment": machine(), "kernel_evidence": kernel_evidence(), "calibration": calib_info,
        "settings": {"rounds": a.rounds, "runs": a.runs, "warmup": a.warmup, "threads": threads,
                     "check_inputs": a.check_inputs, "size": SIZE, "seed": SEED},
        "artifacts": {k: {x: v for x, v in d.items() if x != "key"} for k, d in BY_KEY.items()},
        "comparability": list(COMPARABILITY), "loadavg_start": list(load_start), "models": {}}
    loads = [load_start[0]]
    x = check_inputs(a.check_inputs)
    for model in models:
        d = a.out_dir / model
        d.mkdir(parents=True, exist_ok=True)
        x_path = d / "check_inputs.npy"
        np.save(x_path, x)
        want = reference_outputs(model, x)
        np.save(d / "check_reference.npy", want)
        exports = do_exports(model, d, a.reuse, only)
        checks = do_checks(model, d, exports, x_path, want)
        keys = [k for k in BY_KEY if checks.get(k, {}).get("status") == "ok"]
        m: dict[str, Any] = {"exports": exports, "checks": checks, "timing": {}}
        for t in threads:
            loads.append(os.getloadavg()[0])
            log(f"{model}: timing {len(keys)} artifacts at {t} thread(s)")
            m["timing"][str(t)] = do_timing(model, d, keys, x_path, t, a.rounds, a.runs, a.warmup)
            loads.append(os.getloadavg()[0])
            for k, row in m["timing"][str(t)]["summary"].items():
                log(f"{model} {t} thr: {_label(k):40s} {fmt_ms(row):>22s}  / litert fp32 {fmt_ratio(row.get('ratio'))}"
                    + (f"  / litert int8 {fmt_ratio(row.get('ratio_int8'))}" if "ratio_int8" in row else ""))
        data["models"][model] = m
    if a.arm:
        data["arm"] = arm_section(models, a.out_dir, data["models"], a.arm_inputs)
    data["loadavg_end"] = list(os.getloadavg())
    loads.append(data["loadavg_end"][0])
    data["loadavg_max"] = max(loads)
    fcs = [t.get("foreign_cpu_cores") for m in data["models"].values() for t in m["timing"].values()]
    data["foreign_cpu_max"] = max([f for f in fcs if f is not None], default=0.0)
    data["loaded"] = data["foreign_cpu_max"] > 0.25
    data["seconds"] = time.monotonic() - t_start
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"{a.name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (a.results / f"{a.name}.md").write_text(markdown(data) + "\n")
    try:
        plot(data, a.results / f"{a.name}.png")
    except Exception as e:  # noqa: BLE001  (the plot is a convenience; the tables are the record)
        log(f"plot failed: {e}")
    log(f"wrote {a.results / (a.name + '.md')}, .json, .png in {data['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
