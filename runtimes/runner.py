"""Run one .onnx or .tflite artifact: the adapters every part of shufflenet-edge uses, and the script
copied onto a board.

This file must import nothing but the standard library, numpy and one runtime (imported lazily), so it
runs on a Raspberry Pi or any Linux board with `pip install numpy ai-edge-litert` (or tflite-runtime,
or onnxruntime). Inputs are float NCHW or NHWC arrays in the *model's* float domain; an int8/uint8 input
is quantized here with the artifact's own scale and zero point, and outputs are dequantized to float.

Command line (one JSON object on the last line of stdout in every mode, errors included):

    python3 runner.py MODEL [--input-npy X.npy]            # outputs, for parity checks
    python3 runner.py MODEL --bench [--runs N --warmup N --threads N --provider P]
                                                          # per-run times, init, first inference, peak RSS
    python3 runner.py --probe onnxruntime litert          # what this python has, and what to pip install

The bench mode times only the runtime's invoke (input prepared once, outside the clock). On a GPU provider
(onnxruntime CUDA/TensorRT) the input and output stay on the device (IOBinding) and each run waits for the
device, so transfers are excluded unless `--include-transfers` is given. A GPU provider that is absent
here gives status "skipped" with the reason, never a silent CPU fallback. Python >= 3.8.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any

try:
    import numpy as np
except ImportError:  # reported as one JSON error by main(), so a board without numpy gets a pip line
    np = None  # type: ignore[assignment]

RUNTIMES = ("onnxruntime", "litert", "tflite-runtime")
RUNNER_VERSION = 1
# pip distribution that provides each runtime (what to install on a board that lacks it)
PIP_NAMES = {"numpy": "numpy", "onnxruntime": "onnxruntime", "litert": "ai-edge-litert",
             "tflite-runtime": "tflite-runtime"}
IMPORT_NAMES = {"numpy": "numpy", "onnxruntime": "onnxruntime", "litert": "ai_edge_litert.interpreter",
                "tflite-runtime": "tflite_runtime.interpreter"}
# Providers per runtime; the first is the default. Short names on the command line, ORT names inside.
PROVIDERS = {"onnxruntime": ("cpu", "xnnpack", "cuda", "tensorrt"), "litert": ("xnnpack", "gpu"),
             "tflite-runtime": ("xnnpack",)}
ORT_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
                      "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class RunnerError(Exception):
    """A one-line, user-facing failure (missing runtime, unreadable artifact)."""

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []  # pip distributions to install


class Skipped(Exception):
    """The requested device or provider does not exist here: a "skipped" row with this reason."""


def _quantize(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * scale


class TFLiteRunner:
    """LiteRT (ai_edge_litert) interpreter with its default XNNPACK delegate, or tflite_runtime."""

    def __init__(self, path: str, threads: int = 1, runtime: str = "litert") -> None:
        if runtime == "tflite-runtime":
            try:
                from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
            except ImportError as e:
                raise RunnerError("tflite-runtime is not installed here: pip install tflite-runtime",
                                  ["tflite-runtime"]) from e
            self.runtime_version = _version("tflite-runtime", "tflite_runtime")
        else:
            try:
                from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
            except ImportError as e:
                raise RunnerError("LiteRT is not installed here: pip install ai-edge-litert", ["ai-edge-litert"]) from e
            self.runtime_version = _version("ai-edge-litert", "ai_edge_litert")
        self.runtime = runtime
        try:
            self.interp = Interpreter(model_path=path, num_threads=threads)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunnerError(f"cannot load TFLite model {path}: {msg}") from e
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.input_shape = [int(s) for s in self.inp["shape"]]
        self.input_dtype = np.dtype(self.inp["dtype"]).name
        self.layout = "nhwc" if self.input_shape[-1] == 3 else "nchw"

    def partitions(self) -> int:
        """XNNPACK partitions: each DELEGATE node left in the execution plan is one."""
        return sum(1 for op in self.interp._get_ops_details() if op["op_name"] == "DELEGATE")

    def prepare(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        scale, zp = self.inp["quantization"]
        if np.dtype(self.inp["dtype"]) in (np.int8, np.uint8) and scale:
            return _quantize(x, self.inp["dtype"], scale, zp)
        return x.astype(self.inp["dtype"])

    def invoke(self, prepared: np.ndarray) -> None:
        self.interp.set_tensor(self.inp["index"], prepared)
        self.interp.invoke()

    def output(self) -> np.ndarray:
        y = self.interp.get_tensor(self.out["index"])
        scale, zp = self.out["quantization"]
        if np.dtype(self.out["dtype"]) in (np.int8, np.uint8) and scale:
            return _dequantize(y, scale, zp)
        return y.astype(np.float32)

    def raw_output(self) -> np.ndarray:
        return self.interp.get_tensor(self.out["index"]).copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run each sample of a batch (the artifact's batch is usually 1)."""
        n = self.input_shape[0]
        outs = []
        for i in range(0, x.shape[0], n):
            self.invoke(self.prepare(x[i : i + n]))
            outs.append(self.output().copy())
        return np.concatenate(outs)


class OnnxRunner:
    """onnxruntime InferenceSession on the CPU (or the providers asked for), spinning off."""

    def __init__(self, path: str, threads: int = 1, providers: list[str] | None = None,
                 optimization: str = "all") -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-not-found]
        except ImportError as e:
            raise RunnerError("onnxruntime is not installed here: pip install onnxruntime", ["onnxruntime"]) from e
        self.runtime = "onnxruntime"
        self.runtime_version = ort.__version__
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # Spinning threads starve other runtimes timed in the same process (DESIGN.md section 3).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        self.providers = providers or ["CPUExecutionProvider"]
        try:
            self.sess = ort.InferenceSession(path, so, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunnerError(f"cannot load ONNX model {path}: {msg}") from e
        i = self.sess.get_inputs()[0]
        self.input_name = i.name
        self.input_shape = [s if isinstance(s, int) else -1 for s in i.shape]
        self.input_dtype = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}.get(i.type, i.type)
        self.layout = "nhwc" if self.input_shape[-1] == 3 else "nchw"
        self._fixed_batch = self.input_shape[0] if self.input_shape[0] > 0 else None
        self._last: np.ndarray | None = None

    def partitions(self) -> int:
        return 1

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.astype(np.float32))

    def invoke(self, prepared: np.ndarray) -> None:
        self._last = self.sess.run(None, {self.input_name: prepared})[0]

    def output(self) -> np.ndarray:
        assert self._last is not None
        return self._last.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = self._fixed_batch or x.shape[0]
        outs = []
        for i in range(0, x.shape[0], n):
            self.invoke(self.prepare(x[i : i + n]))
            outs.append(self.output())
        return np.concatenate(outs)


def _version(dist: str, module: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        mod = sys.modules.get(module)
        return str(getattr(mod, "__version__", "unknown"))


def default_runtime(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        return "onnxruntime"
    if ext == ".tflite":
        try:
            import ai_edge_litert  # noqa: F401

            return "litert"
        except ImportError:
            return "tflite-runtime"
    raise RunnerError(f"unknown artifact type {ext!r} for {path}: expected .onnx or .tflite")


def open_artifact(path: str, runtime: str = "auto", threads: int = 1, **kwargs: Any) -> Any:
    if not os.path.isfile(path):
        raise RunnerError(f"artifact not found: {path}")
    if runtime == "auto":
        runtime = default_runtime(path)
    if runtime == "onnxruntime":
        return OnnxRunner(path, threads=threads, **kwargs)
    if runtime in ("litert", "tflite-runtime"):
        return TFLiteRunner(path, threads=threads, runtime=runtime)
    raise RunnerError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")


# ----------------------------------------------------------------------------------------------------
# What this machine is: recorded with every measurement (a number without its machine means nothing).

_ARM_PARTS = {  # /proc/cpuinfo "CPU part" of Arm Ltd. (implementer 0x41) cores seen on boards and phones
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3", "0xd80": "Cortex-A520",
    "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return ""


def cpu_model() -> str:
    """x86: the "model name"; ARM: the board (device tree) and the core types from "CPU part"."""
    info = _read("/proc/cpuinfo")
    for line in info.splitlines():
        if line.lower().startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    parts: list[str] = []
    implementer = ""
    for line in info.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if key == "cpu implementer":
            implementer = val
        elif key == "cpu part":
            name = _ARM_PARTS.get(val.lower(), f"part {val}") if implementer in ("0x41", "") else f"{implementer}/{val}"
            if name not in parts:
                parts.append(name)
    board = _read("/proc/device-tree/model")
    hardware = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.lower().startswith("hardware")), "")
    desc = " + ".join(parts)
    head = board or hardware
    if head and desc:
        return f"{head} ({desc})"
    return head or desc or platform.processor() or platform.machine()


def gpu_devices() -> dict[str, Any]:
    """GPU device nodes and libraries visible here (no driver calls, so it is safe and fast anywhere)."""
    import ctypes.util
    import glob

    nvidia = sorted(p for p in glob.glob("/dev/nvidia[0-9]*"))
    render = sorted(glob.glob("/dev/dri/renderD*"))
    smi = ""
    if nvidia:
        import subprocess

        try:
            smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            smi = ""
    return {"nvidia": nvidia, "nvidia_smi": smi, "dri_render": render,
            "libcuda": ctypes.util.find_library("cuda"), "libvulkan": ctypes.util.find_library("vulkan")}


def no_gpu_reason(kind: str = "any") -> str | None:
    """Why there is no usable GPU of `kind` ("nvidia" for CUDA/TensorRT, "any" for Vulkan/OpenCL), or None."""
    d = gpu_devices()
    if kind == "nvidia":
        if not d["nvidia"]:
            return "no NVIDIA GPU on this machine (no /dev/nvidia* device)"
        if not d["libcuda"]:
            return "NVIDIA device present but no CUDA driver library (libcuda) is installed"
        return None
    if not d["nvidia"] and not d["dri_render"]:
        return "no GPU on this machine (no /dev/nvidia* and no /dev/dri/renderD* device)"
    return None


def environment(runtime_versions: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    versions = {"numpy": getattr(np, "__version__", "not installed") if np is not None else "not installed"}
    versions.update(runtime_versions or {})
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "runtime_versions": versions,
    }


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process. Linux: VmHWM, which starts afresh at exec (ru_maxrss does not:
    a child forked from a large parent inherits the parent's high-water mark)."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    try:
        import resource
    except ImportError:  # not Unix
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0, 1)


def _current_rss_mb() -> float | None:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


def probe(runtimes: list[str]) -> dict[str, Any]:
    """Import numpy and each runtime asked for; name the pip distributions that are missing or broken."""
    import importlib

    missing: list[str] = []
    broken: dict[str, str] = {}
    versions: dict[str, str] = {}
    for name in ["numpy", *runtimes]:
        mod = IMPORT_NAMES.get(name)
        if mod is None:
            broken[name] = f"unknown runtime {name!r}; valid: {', '.join(RUNTIMES)}"
            continue
        try:
            importlib.import_module(mod)
        except ImportError as e:
            if e.name == "numpy" and "numpy" in missing:
                continue  # installed, but needs numpy: the pip line already names numpy
            if getattr(e, "name", None) and not mod.startswith(str(e.name).split(".")[0]):
                broken[name] = f"{type(e).__name__}: {e}"  # installed, but one of its own imports failed
            else:
                missing.append(PIP_NAMES[name])
            continue
        except Exception as e:  # noqa: BLE001  (a wheel for another CPU or glibc fails in many ways)
            broken[name] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            continue
        versions[name] = _version(PIP_NAMES[name], mod.split(".")[0])
    return {"runner": RUNNER_VERSION, "status": "ok" if not missing and not broken else "error",
            "python": sys.executable, "python_version": platform.python_version(),
            "python_ok": sys.version_info >= (3, 8), "missing": missing, "broken": broken,
            "versions": versions, "environment": environment(versions)}


# ----------------------------------------------------------------------------------------------------
# Timing.

def _now_ms() -> float:
    return time.perf_counter_ns() / 1e6


def _precision_of_tflite(interp: Any) -> str:
    dtypes = set()
    for t in interp.get_tensor_details():
        q = t.get("quantization", (0.0, 0))
        dt = np.dtype(t["dtype"]).name
        if dt in ("int8", "uint8", "int16") and q and q[0]:
            dtypes.add("int8" if dt != "int16" else "int16")
        elif dt == "float16":
            dtypes.add("fp16")
    return "int8" if "int8" in dtypes else "int16" if "int16" in dtypes else "fp16" if "fp16" in dtypes else "fp32"


def _random_input(shape: list[int], seed: int) -> Any:
    rng = np.random.default_rng(seed)
    return rng.standard_normal([s if s > 0 else 1 for s in shape]).astype(np.float32)


def provider_absent_reason(runtime: str, provider: str | None) -> str | None:
    """Why `provider` cannot run here (checked without loading a model), or None if it may.

    Used by the runner before it loads anything, and by the local target to skip a child process."""
    if runtime == "onnxruntime" and provider in ("xnnpack", "cuda", "tensorrt"):
        try:
            import onnxruntime as ort  # type: ignore[import-not-found]
        except ImportError:
            return None  # the runner reports the missing runtime itself, as an error
        name = ORT_PROVIDER_NAMES[provider]
        avail = ort.get_available_providers()
        hw = no_gpu_reason("nvidia") if provider != "xnnpack" else None
        if name not in avail:
            if provider == "xnnpack":
                hint = "it is in onnxruntime builds made with --use_xnnpack (e.g. onnxruntime-android)"
            else:
                hint = "pip install onnxruntime-gpu"
            return (f"{hw}; " if hw else "") + f"onnxruntime {ort.__version__} here has no {name} " \
                f"(has: {', '.join(avail)}); {hint}"
        return hw
    if runtime == "litert" and provider == "gpu":
        return no_gpu_reason("any")
    return None


def _ort_session(path: str, threads: int, provider: str) -> tuple[Any, Any, str]:
    """An onnxruntime session on `provider`; Skipped when the provider is not in this build or fails to start."""
    try:
        import onnxruntime as ort  # type: ignore[import-not-found]
    except ImportError as e:
        raise RunnerError("onnxruntime is not installed here: pip install onnxruntime", ["onnxruntime"]) from e
    name = ORT_PROVIDER_NAMES.get(provider)
    if name is None:
        raise RunnerError(f"unknown onnxruntime provider {provider!r}; valid: {', '.join(ORT_PROVIDER_NAMES)}")
    reason = provider_absent_reason("onnxruntime", provider)
    if reason:
        raise Skipped(reason)
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.inter_op_num_threads = 1
    if provider == "xnnpack":
        # ORT's advice for the XNNPACK EP: its own thread pool does the work, ORT's intra-op pool stays at 1.
        so.intra_op_num_threads = 1
        providers: list[Any] = [(name, {"intra_op_num_threads": str(threads)}), "CPUExecutionProvider"]
    else:
        so.intra_op_num_threads = threads
        providers = [name] if provider == "cpu" else [name, "CPUExecutionProvider"]
        if provider == "tensorrt":
            providers = [name, "CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        sess = ort.InferenceSession(path, so, providers=providers)
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if provider != "cpu":
            raise Skipped(f"{name} failed to start: {msg}") from e
        raise RunnerError(f"cannot load ONNX model {path}: {msg}") from e
    if sess.get_providers()[0] != name:
        raise Skipped(f"{name} did not start (onnxruntime fell back to {sess.get_providers()[0]}); "
                      "check the CUDA/cuDNN/TensorRT libraries this onnxruntime build needs")
    return ort, sess, name


def _bench_onnx(path: str, threads: int, provider: str, runs: int, warmup: int, seed: int,
                include_transfers: bool) -> dict[str, Any]:
    t0 = _now_ms()
    ort, sess, name = _ort_session(path, threads, provider)
    init_ms = _now_ms() - t0
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    shape = [s if isinstance(s, int) else 1 for s in inp.shape]
    in_dtype: Any = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int8)": np.int8,
                     "tensor(uint8)": np.uint8}.get(inp.type, np.float32)
    x = _random_input(shape, seed)
    if np.dtype(in_dtype).kind in "iu":
        x = np.clip(np.round(x * 32), np.iinfo(in_dtype).min, np.iinfo(in_dtype).max)
    x = np.ascontiguousarray(x.astype(in_dtype))
    on_device = provider in ("cuda", "tensorrt") and not include_transfers
    if on_device:
        # Input and output live on the GPU: the clock sees the kernels, not PCIe copies. run_with_iobinding
        # returns after the device stream is synchronized; synchronize_outputs() makes that explicit.
        binding = sess.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding.bind_ortvalue_input(inp.name, x_dev)
        binding.bind_output(out.name, "cuda", 0)

        def step() -> None:
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()
    else:
        feed = {inp.name: x}

        def step() -> None:
            sess.run(None, feed)  # on a GPU provider this copies in and out, synchronously

    res = _time_loop(step, runs, warmup)
    if on_device:
        y = binding.copy_outputs_to_cpu()[0]
    else:
        y = sess.run(None, {inp.name: x})[0]
    res.update(runtime="onnxruntime", runtime_version=ort.__version__, provider=provider, init_ms=init_ms,
               xnnpack_partitions=None, precision_guess=None,
               input={"shape": shape, "dtype": np.dtype(in_dtype).name, "layout": "nhwc" if shape[-1] == 3 else "nchw"},
               output_shape=list(np.shape(y)), transfers_timed=bool(provider in ("cuda", "tensorrt") and include_transfers),
               runtime_options={"intra_op_num_threads": threads, "allow_spinning": False,
                                "providers": sess.get_providers()})
    return res


def _bench_tflite(path: str, threads: int, runtime: str, runs: int, warmup: int, seed: int) -> dict[str, Any]:
    t0 = _now_ms()
    r = TFLiteRunner(path, threads=threads, runtime=runtime)
    init_ms = _now_ms() - t0
    x = r.prepare(_random_input(r.input_shape, seed))
    r.interp.set_tensor(r.inp["index"], x)  # once, outside the clock: the clock sees invoke() only
    res = _time_loop(r.interp.invoke, runs, warmup)
    res.update(runtime=runtime, runtime_version=r.runtime_version, provider="xnnpack", init_ms=init_ms,
               xnnpack_partitions=r.partitions(), precision_guess=_precision_of_tflite(r.interp),
               input={"shape": r.input_shape, "dtype": r.input_dtype, "layout": r.layout},
               output_shape=[int(s) for s in r.out["shape"]], transfers_timed=False,
               runtime_options={"num_threads": threads})
    return res


def _bench_litert_gpu(path: str, runs: int, warmup: int, seed: int, include_transfers: bool) -> dict[str, Any]:
    """LiteRT's GPU accelerator through the CompiledModel API (GPU only: no silent CPU fallback)."""
    reason = provider_absent_reason("litert", "gpu")
    if reason:
        raise Skipped(reason)
    try:
        from ai_edge_litert.compiled_model import CompiledModel  # type: ignore[import-not-found]
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator  # type: ignore[import-not-found]
        from ai_edge_litert.options import Options  # type: ignore[import-not-found]
    except ImportError as e:
        raise Skipped(f"this LiteRT has no CompiledModel GPU API ({e}); pip install -U ai-edge-litert") from e
    version = _version("ai-edge-litert", "ai_edge_litert")
    t0 = _now_ms()
    try:
        model = CompiledModel.from_file(path, options=Options(hardware_accelerators=HardwareAccelerator.GPU))
    except Exception as e:  # noqa: BLE001  (the accelerator logs its reason on stderr; the exception is terse)
        raise Skipped("LiteRT GPU accelerator could not start here (no usable WebGPU/OpenCL device; "
                      f"libvulkan: {gpu_devices()['libvulkan'] or 'not found'})") from e
    init_ms = _now_ms() - t0
    if not model.is_fully_accelerated():
        raise Skipped("LiteRT GPU accelerator does not take the whole graph (some ops would run on the CPU)")
    sig = list(model.get_signature_list().keys())[0]
    in_details = model.get_input_tensor_details(sig)
    name, det = next(iter(in_details.items()))
    ins = {name: model.create_input_buffer_by_name(sig, name)}
    outs = {n: model.create_output_buffer_by_name(sig, n) for n in model.get_output_tensor_details(sig)}
    shape = [int(s) for s in det.get("shape", [])]
    x = _random_input(shape, seed).astype(det.get("dtype", "float32"))
    ins[name].write(x)

    out_details = model.get_output_tensor_details(sig)
    out_sizes = {n: int(np.prod(d.get("shape", [1]))) for n, d in out_details.items()}

    def step() -> None:
        if include_transfers:
            ins[name].write(x)
        model.run_by_name(sig, ins, outs)  # synchronous: returns when the GPU work is done
        if include_transfers:
            for n, b in outs.items():
                b.read(out_sizes[n], np.float32)

    res = _time_loop(step, runs, warmup)
    res.update(runtime="litert", runtime_version=version, provider="gpu", init_ms=init_ms, xnnpack_partitions=None,
               precision_guess=None, input={"shape": shape, "dtype": str(det.get("dtype")), "layout": "nhwc"},
               output_shape=None, transfers_timed=include_transfers, runtime_options={"accelerator": "GPU"})
    return res


def _time_loop(step: Any, runs: int, warmup: int) -> dict[str, Any]:
    """First inference timed alone, then `warmup` untimed-for-statistics runs, then `runs` timed runs."""
    t = _now_ms()
    step()
    first = _now_ms() - t
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t = _now_ms()
        step()
        times.append(round(_now_ms() - t, 4))
    return {"first_inference_ms": round(first, 4), "times_ms": times}


def bench(path: str, runtime: str = "auto", provider: str | None = None, threads: int = 1, runs: int = 100,
          warmup: int = 10, seed: int = 0, include_transfers: bool = False) -> dict[str, Any]:
    """Time one artifact on one runtime/provider; the result is what `--bench` prints (one JSON object)."""
    if not os.path.isfile(path):
        raise RunnerError(f"artifact not found: {path}")
    if runtime == "auto":
        runtime = default_runtime(path)
    if runtime not in RUNTIMES:
        raise RunnerError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    ext = os.path.splitext(path)[1].lower()
    if (ext == ".onnx") != (runtime == "onnxruntime"):
        raise RunnerError(f"runtime {runtime} cannot run a {ext} file ({path})")
    provider = provider or PROVIDERS[runtime][0]
    if provider not in PROVIDERS[runtime]:
        raise RunnerError(f"provider {provider!r} is not one of {runtime}'s: {', '.join(PROVIDERS[runtime])}")
    rss0 = _current_rss_mb()
    if runtime == "onnxruntime":
        res = _bench_onnx(path, threads, provider, runs, warmup, seed, include_transfers)
    elif provider == "gpu":
        res = _bench_litert_gpu(path, runs, warmup, seed, include_transfers)
    else:
        res = _bench_tflite(path, threads, runtime, runs, warmup, seed)
    res.update(runner=RUNNER_VERSION, status="ok", reason=None, threads=threads, runs=runs, warmup=warmup,
               peak_rss_mb=_peak_rss_mb(), rss_before_load_mb=rss0, model_size_bytes=os.path.getsize(path),
               environment=environment({res["runtime"]: res["runtime_version"]}))
    return res


def _skip_or_error(status: str, reason: str, missing: list[str] | None = None) -> dict[str, Any]:
    return {"runner": RUNNER_VERSION, "status": status, "reason": reason, "error": reason if status == "error" else None,
            "missing": missing or [], "environment": environment()}


class _TimeLimit:
    """SIGALRM after `seconds`, so a runner orphaned by a dropped SSH connection does not run on for ever."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def __enter__(self) -> _TimeLimit:
        import signal

        if self.seconds and hasattr(signal, "SIGALRM"):
            def on_alarm(signum: int, frame: Any) -> None:
                raise RunnerError(f"time limit of {self.seconds:g} s reached")

            signal.signal(signal.SIGALRM, on_alarm)
            signal.alarm(max(1, int(self.seconds + 0.999)))
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.seconds and hasattr(signal, "SIGALRM"):
            signal.alarm(0)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Board entry point; prints one JSON object on the last line of stdout (see the module docstring)."""
    import argparse

    p = argparse.ArgumentParser(description="run or time one .onnx/.tflite artifact; prints JSON")
    p.add_argument("model", nargs="?")
    p.add_argument("--runtime", default="auto", help=f"auto or one of {', '.join(RUNTIMES)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--input-npy", help="float input (NCHW or NHWC, as the model wants)")
    p.add_argument("--bench", action="store_true", help="time the artifact instead of printing its output")
    p.add_argument("--provider", help="cpu|xnnpack|cuda|tensorrt (onnxruntime), xnnpack|gpu (litert)")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-transfers", action="store_true", help="GPU: time host<->device copies too")
    p.add_argument("--time-limit", type=float, help="give up after this many seconds")
    p.add_argument("--probe", nargs="*", metavar="RUNTIME", help="report what this python has for these runtimes")
    a = p.parse_args(argv)
    if a.probe is not None:
        res = probe(a.probe)
        _emit(res)
        return 0 if res["status"] == "ok" else 1
    if np is None:
        _emit(_skip_or_error("error", f"numpy is not installed for {sys.executable}: "
                             f"{os.path.basename(sys.executable)} -m pip install numpy", ["numpy"]))
        return 1
    if not a.model:
        p.error("MODEL is required (or --probe)")
    try:
        with _TimeLimit(a.time_limit):
            if a.bench:
                _emit(bench(a.model, a.runtime, a.provider, a.threads, a.runs, a.warmup, a.seed,
                            a.include_transfers))
                return 0
            r = open_artifact(a.model, a.runtime, a.threads)
            x = np.load(a.input_npy) if a.input_npy else np.zeros(r.input_shape, np.float32)
            y = r(x)
    except Skipped as e:
        _emit(_skip_or_error("skipped", str(e)))
        return 0
    except RunnerError as e:
        _emit(_skip_or_error("error", str(e), e.missing))
        return 1
    _emit({"runner": RUNNER_VERSION, "status": "ok", "runtime": r.runtime, "version": r.runtime_version,
           "output": y.tolist()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
