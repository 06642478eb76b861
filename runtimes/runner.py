"""Run one .onnx or .tflite artifact: the adapters every part of shufflenet-edge uses, and the script
copied onto a board.

This file must import nothing but the standard library, numpy and one runtime (imported lazily), so it
runs on a Raspberry Pi or any Linux board with `pip install numpy ai-edge-litert` (or tflite-runtime,
or onnxruntime). Inputs are float NCHW or NHWC arrays in the *model's* float domain; an int8/uint8 input
is quantized here with the artifact's own scale and zero point, and outputs are dequantized to float.

Command line (one JSON object on the last line of stdout in every mode, errors included):

    python3 runner.py MODEL [--input-npy X.npy]            # outputs, for parity checks
    python3 runner.py MODEL --infer-npz IN.npz --out-npz OUT.npz [--threads N]
                                                          # parity on a board: IN's `x` (a batch, in the
                                                          # model's layout) in, float outputs `y` out
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
            msg = _first_line(e)
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


def _first_line(e: BaseException) -> str:
    """An exception's first line (runtimes put C++ traces below it), or its type when it has no text."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _exact_int8_mode(so: Any) -> bool:
    """Whether these SessionOptions ask for onnxruntime's exact int8 kernels (an absent key raises)."""
    try:
        return bool(so.get_session_config_entry("session.x64quantprecision") == "1")
    except (RuntimeError, AttributeError):
        return False


def _optimization_level(ort: Any, optimization: str) -> Any:
    levels = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
    return getattr(ort.GraphOptimizationLevel, levels[optimization])


class OnnxRunner:
    """onnxruntime InferenceSession on the CPU (or the providers asked for), spinning off."""

    def __init__(self, path: str, threads: int = 1, providers: list[str] | None = None,
                 optimization: str = "all", *, check_numbers: bool = False) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-not-found]
        except ImportError as e:
            raise RunnerError("onnxruntime is not installed here: pip install onnxruntime", ["onnxruntime"]) from e
        self.runtime = "onnxruntime"
        self.runtime_version = ort.__version__
        try:
            from shufflenet_edge.runtimes.ort_session import session_options
        except ImportError:  # runner.py run as a script (a board): ort_session.py lies beside it
            from ort_session import session_options  # type: ignore[import-not-found,no-redef]
        # Spinning threads starve other runtimes timed in the same process (docs/design.md, the fold). check_numbers:
        # exact int8 kernels on x86-64 without VNNI (ort_session); timing keeps the default kernels.
        self.providers = providers or ["CPUExecutionProvider"]
        self.precise_mode_failed: str | None = None

        def options(exact: bool) -> Any:
            so = session_options(threads, check_numbers=exact)
            so.inter_op_num_threads = 1
            so.graph_optimization_level = _optimization_level(ort, optimization)
            return so

        so = options(check_numbers)
        try:
            try:
                self.sess = ort.InferenceSession(path, so, providers=self.providers)
            except Exception as e:  # onnxruntime raises its own exception types
                if not _exact_int8_mode(so):
                    raise
                # onnxruntime 1.32's optimizer fails on some QDQ graphs (ShuffleNetV2+'s) in the exact-int8 mode
                # ("Attempt to replace the existing tensor"): the default kernels then, and the caller says which ran.
                self.precise_mode_failed = _first_line(e)
                self.sess = ort.InferenceSession(path, options(False), providers=self.providers)
        except Exception as e:  # noqa: BLE001
            raise RunnerError(f"cannot load ONNX model {path}: {_first_line(e)}") from e
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

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output for one batch `x`, in graph order."""
        return [np.asarray(y) for y in self.sess.run(None, {self.input_name: self.prepare(x)})]

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
        "pinning": pinning(),
        "isa": _isa(),
    }


def _isa() -> dict[str, Any]:
    """The CPU flags that decide onnxruntime's int8 kernels, and the mode timed runs use (its defaults): on x86-64
    without VNNI they can saturate, so int8 numbers and speed from such a host are those kernels'."""
    try:
        from shufflenet_edge.runtimes.ort_session import cpu_isa, describe_int8_mode
    except ImportError:  # runner.py run as a script (a board): ort_session.py lies beside it
        try:
            from ort_session import cpu_isa, describe_int8_mode  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return {}
    return {**cpu_isa(), "onnxruntime_int8_timed_with": describe_int8_mode(False)}


def _cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out: list[str] = []
    for c in sorted(cpus):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == c - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{c}"
        elif out and "-" not in out[-1] and int(out[-1]) == c - 1:
            out[-1] = f"{out[-1]}-{c}"
        else:
            out.append(str(c))
    return ",".join(out)


def pinning() -> str:
    """Which cores this process may run on. We never pin on the local and SSH targets; an affinity smaller
    than the machine was set outside (taskset, cgroups, a container's cpuset) and is said so."""
    try:
        allowed = sorted(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return "none (the OS schedules threads; affinity not readable here)"
    total = os.cpu_count() or len(allowed)
    if len(allowed) >= total:
        return f"none (the OS schedules threads over CPUs {_cpu_list(allowed)})"
    return f"affinity CPUs {_cpu_list(allowed)} of {total}, set outside shufflenet-edge (taskset/cgroup/cpuset)"


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


# ----------------------------------------------------------------------------------------------------
# CPU governor, frequencies and temperatures: read before and after each measurement, so a table can say
# when they changed under it (thermal throttling, a governor switched by the system, a core capped).

CPUFREQ_FILES = ("scaling_governor", "scaling_cur_freq", "scaling_max_freq", "cpuinfo_max_freq")
# The same reading as one shell command, for targets reached through a shell (adb shell, ssh): one
# "PATH<TAB>VALUE" line per file, parsed by parse_cpu_state_listing().
CPU_STATE_SCRIPT = (
    "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_max_freq "
    "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq "
    "/sys/class/thermal/thermal_zone[0-9]*/type /sys/class/thermal/thermal_zone[0-9]*/temp; do "
    '[ -r "$f" ] && printf \'%s\\t%s\\n\' "$f" "$(cat "$f" 2>/dev/null)"; done; '
    "ls -d /sys/devices/system/cpu/cpu[0-9]* 2>/dev/null"
)
_NO_CPUFREQ = ("no cpufreq driver: /sys/devices/system/cpu/cpu*/cpufreq is absent (usual in virtual machines "
               "and containers, where the host sets the frequencies)")


def parse_cpu_state_listing(text: str, when: float | None = None) -> dict[str, Any]:
    """The state from "PATH<TAB>VALUE" lines (CPU_STATE_SCRIPT's output, or the files read here)."""
    gov: dict[str, str] = {}
    freqs: dict[str, dict[str, int]] = {"scaling_cur_freq": {}, "scaling_max_freq": {}, "cpuinfo_max_freq": {}}
    zones: dict[str, dict[str, Any]] = {}
    cpus: set[str] = set()
    import re

    for line in text.splitlines():
        path, _, value = line.strip().partition("\t")
        value = value.strip()
        m = re.match(r"^/sys/devices/system/cpu/(cpu\d+)(?:/cpufreq/(\w+))?$", path)
        if m:
            cpus.add(m[1])
            if m[2] == "scaling_governor" and value:
                gov[m[1]] = value
            elif m[2] in freqs and value.isdigit():
                freqs[m[2]][m[1]] = int(value)
            continue
        m = re.match(r"^/sys/class/thermal/(thermal_zone\d+)/(type|temp)$", path)
        if m and value:
            z = zones.setdefault(m[1], {"type": None, "temp_c": None})
            if m[2] == "type":
                z["type"] = value
            else:
                try:  # millidegrees on almost every kernel; a few drivers print degrees
                    t = float(value)
                    z["temp_c"] = round(t / 1000.0 if abs(t) > 500 else t, 1)
                except ValueError:
                    pass
    def key(c: str) -> int:
        return int(c[3:])

    state: dict[str, Any] = {
        "time": round(time.time() if when is None else when, 3),
        "governor": dict(sorted(gov.items(), key=lambda kv: key(kv[0]))) or None,
        "cur_freq_khz": dict(sorted(freqs["scaling_cur_freq"].items(), key=lambda kv: key(kv[0]))) or None,
        "max_freq_khz": dict(sorted(freqs["scaling_max_freq"].items(), key=lambda kv: key(kv[0]))) or None,
        "cpuinfo_max_freq_khz": dict(sorted(freqs["cpuinfo_max_freq"].items(), key=lambda kv: key(kv[0]))) or None,
        "thermal": {k: zones[k] for k in sorted(zones, key=lambda z: int(z[12:]))} or None,
    }
    if state["governor"] is None and state["cur_freq_khz"] is None:
        state["cpufreq"] = "unavailable"
        state["cpufreq_reason"] = _NO_CPUFREQ if cpus or not text.strip() else "cpufreq files not readable"
    else:
        state["cpufreq"] = "available"
    if state["thermal"] is None:
        state["thermal_reason"] = "no /sys/class/thermal/thermal_zone* here"
    return state


def cpu_state() -> dict[str, Any]:
    """This machine's governor, current/max frequency per core and thermal zones (sysfs, read-only, no
    privileges). Where cpufreq is absent the reason is recorded, with /proc/cpuinfo's "cpu MHz" if it has one."""
    import glob

    lines = []
    for name in CPUFREQ_FILES:
        for f in sorted(glob.glob(f"/sys/devices/system/cpu/cpu[0-9]*/cpufreq/{name}")):
            v = _read(f)
            if v:
                lines.append(f"{f}\t{v}")
    for f in sorted(glob.glob("/sys/class/thermal/thermal_zone[0-9]*/type")) + sorted(
            glob.glob("/sys/class/thermal/thermal_zone[0-9]*/temp")):
        v = _read(f)
        if v:
            lines.append(f"{f}\t{v}")
    lines += sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*"))
    state = parse_cpu_state_listing("\n".join(lines))
    if state["cpufreq"] == "unavailable":
        mhz = [ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
               if ln.lower().startswith("cpu mhz") and ":" in ln]
        if mhz:
            state["proc_cpuinfo_mhz"] = {f"cpu{i}": float(v) for i, v in enumerate(mhz) if _is_float(v)}
    return state


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


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


def _ort_session(path: str, threads: int, provider: str, profile_prefix: str | None = None) -> tuple[Any, Any, str]:
    """An onnxruntime session on `provider`; Skipped when the provider is not in this build or fails to start.
    `profile_prefix`: turn on onnxruntime's per-node profiling, writing its JSON trace under that prefix."""
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
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
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
        msg = _first_line(e)
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


# ----------------------------------------------------------------------------------------------------
# Per-op profiles (bench --profile). Measured in a second session after the timed runs, so profiling's own
# overhead never reaches the latency figures.

LITERT_NO_OP_TIMING = ("LiteRT's Python Interpreter ({version}) exposes no per-op timing (no profiler hook in "
                       "ai_edge_litert.interpreter.Interpreter or CompiledModel), so ops are counted, not timed; "
                       "per-op times come from benchmark_model --enable_op_profiling=true (bench --target adb "
                       "--profile, or shufflenet-edge profile-report on its saved output)")


def summarize_ort_trace(events: list[dict[str, Any]], skip_runs: int = 0) -> dict[str, Any]:
    """onnxruntime's profiling trace (the JSON list that `end_profiling()` writes) to per-node times per run.

    Runs are the "model_run" session events in time order; the first `skip_runs` are dropped (warm-up) and a
    node's time is the sum of its "*_kernel_time" events that fall inside the kept runs, divided by their
    number. Nodes come in run order (first execution)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: float(e.get("ts", 0)))
    kept = runs[skip_runs:]
    spans = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in kept]
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    import bisect

    starts = [a for a, _ in spans]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        ts = float(e.get("ts", 0))
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or ts > spans[i][1]:
            continue  # outside the kept runs (warm-up, or session set-up)
        name = str(e["name"])[: -len("_kernel_time")]
        args = e.get("args") or {}
        n = nodes.get(name)
        if n is None:
            n = nodes[name] = {"name": name, "op_type": str(args.get("op_name") or "?"),
                               "provider": str(args.get("provider") or "") or None, "total_us": 0.0, "calls": 0,
                               "_first_ts": ts}
            order.append(name)
        n["total_us"] += float(e.get("dur", 0))
        n["calls"] += 1
    k = max(len(kept), 1)
    out_nodes = []
    for name in sorted(order, key=lambda n: nodes[n]["_first_ts"]):
        n = nodes[name]
        out_nodes.append({"name": n["name"], "op_type": n["op_type"], "provider": n["provider"],
                          "avg_ms": round(n["total_us"] / k / 1000.0, 6), "times_called": round(n["calls"] / k, 3)})
    return {"runs": len(kept), "skipped_runs": min(skip_runs, len(runs)),
            "run_ms": [round(float(e.get("dur", 0)) / 1000.0, 4) for e in kept], "nodes": out_nodes}


def _profile_onnx(path: str, threads: int, provider: str, runs: int, warmup: int, seed: int) -> dict[str, Any]:
    import shutil
    import tempfile

    if provider in ("cuda", "tensorrt"):
        return {"source": "onnxruntime", "timing": False,
                "reason": "not profiled on a GPU provider: onnxruntime's per-node times there are host-side "
                          "launch times, not kernel times"}
    tmp = tempfile.mkdtemp(prefix="shufflenet-edge-ortprof-")
    try:
        ort, sess, _ = _ort_session(path, threads, provider, profile_prefix=os.path.join(tmp, "ort"))
        inp = sess.get_inputs()[0]
        shape = [s if isinstance(s, int) else 1 for s in inp.shape]
        x = _random_input(shape, seed)
        in_dtype: Any = {"tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
                         "tensor(float16)": np.float16}.get(inp.type, np.float32)
        if np.dtype(in_dtype).kind in "iu":
            x = np.clip(np.round(x * 32), np.iinfo(in_dtype).min, np.iinfo(in_dtype).max)
        feed = {inp.name: np.ascontiguousarray(x.astype(in_dtype))}
        for _ in range(warmup + runs):
            sess.run(None, feed)
        trace = sess.end_profiling()
        with open(trace) as f:
            events = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = summarize_ort_trace(events, skip_runs=warmup)
    res.update(source="onnxruntime", timing=True, runtime_version=ort.__version__, provider=provider,
               threads=threads,
               note="onnxruntime session profiling (SessionOptions.enable_profiling): each node's kernel time; "
                    "the gap to the run time is the executor's own overhead")
    return res


def _profile_tflite(path: str, threads: int, runtime: str) -> dict[str, Any]:
    """Op counts by type of the graph as the interpreter holds it (default delegates off, so every op is
    listed, not one DELEGATE node per XNNPACK partition); no times: see LITERT_NO_OP_TIMING."""
    if runtime == "tflite-runtime":
        from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[import-not-found]
        version = _version("tflite-runtime", "tflite_runtime")
    else:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # type: ignore[import-not-found]
        version = _version("ai-edge-litert", "ai_edge_litert")
    interp = Interpreter(model_path=path, num_threads=threads,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    nodes = [{"name": f"{op['op_name']}:{op['index']}", "op_type": op["op_name"], "provider": None, "avg_ms": None,
              "times_called": 1} for op in interp._get_ops_details()]
    return {"source": runtime, "timing": False, "runtime_version": version, "threads": threads, "nodes": nodes,
            "reason": LITERT_NO_OP_TIMING.format(version=f"{runtime} {version}")}


def op_profile(path: str, runtime: str, provider: str, threads: int, runs: int, warmup: int,
               seed: int = 0) -> dict[str, Any]:
    """The per-op profile of one artifact on one runtime (see summarize_ort_trace / _profile_tflite)."""
    if runtime == "onnxruntime":
        return _profile_onnx(path, threads, provider, runs, warmup, seed)
    if provider == "gpu":
        return {"source": runtime, "timing": False,
                "reason": "LiteRT's GPU accelerator (CompiledModel) exposes no per-op timing in Python"}
    return _profile_tflite(path, threads, runtime)


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
          warmup: int = 10, seed: int = 0, include_transfers: bool = False, profile: bool = False,
          profile_runs: int | None = None) -> dict[str, Any]:
    """Time one artifact on one runtime/provider; the result is what `--bench` prints (one JSON object).

    The CPU state (governor, frequencies, temperatures) is read before loading and after timing. With
    `profile`, a per-op profile follows the timed runs (`op_profile`, `profile_runs` runs, default `runs`)."""
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
    state0 = cpu_state()
    if runtime == "onnxruntime":
        res = _bench_onnx(path, threads, provider, runs, warmup, seed, include_transfers)
    elif provider == "gpu":
        res = _bench_litert_gpu(path, runs, warmup, seed, include_transfers)
    else:
        res = _bench_tflite(path, threads, runtime, runs, warmup, seed)
    state1 = cpu_state()
    res.update(runner=RUNNER_VERSION, status="ok", reason=None, threads=threads, runs=runs, warmup=warmup,
               peak_rss_mb=_peak_rss_mb(), rss_before_load_mb=rss0, model_size_bytes=os.path.getsize(path),
               environment=environment({res["runtime"]: res["runtime_version"]}),
               cpu_state={"before": state0, "after": state1})
    if profile:
        try:
            res["op_profile"] = op_profile(path, runtime, provider, threads, profile_runs or runs, min(warmup, 5) or 1,
                                           seed)
        except Exception as e:  # noqa: BLE001  (the timing stands; the profile says why it is missing)
            msg = _first_line(e)
            res["op_profile"] = {"source": runtime, "timing": False, "reason": f"profiling failed: {msg}"}
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


def infer_npz(model: str, in_path: str, out_path: str | None, runtime: str = "auto", threads: int = 1) -> dict[str, Any]:
    """Parity on a board: run each sample of `x` (float, in the model's layout; quantized here for int8 inputs)
    and write the float outputs as `y` (written to a temporary name, then renamed)."""
    if not out_path:
        raise RunnerError("--infer-npz needs --out-npz")
    try:
        with np.load(in_path) as z:
            x = np.asarray(z["x"])
    except (OSError, KeyError, ValueError) as e:
        raise RunnerError(f"cannot read inputs {in_path}: {e}") from e
    r = open_artifact(model, runtime, threads)
    t0 = time.perf_counter()
    y = np.stack([np.asarray(r(x[i : i + 1]), np.float32).reshape(-1) for i in range(len(x))])
    seconds = time.perf_counter() - t0
    tmp = out_path + ".partial.npz"
    np.savez(tmp, y=y)
    os.replace(tmp, out_path)
    return {"runner": RUNNER_VERSION, "status": "ok", "runtime": r.runtime, "version": r.runtime_version,
            "samples": int(len(x)), "outputs_shape": list(y.shape), "seconds": seconds,
            "environment": environment({r.runtime: r.runtime_version})}


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
    p.add_argument("--profile", action="store_true", help="--bench: add a per-op profile after the timed runs")
    p.add_argument("--profile-runs", type=int, help="runs of the per-op profile (default: --runs)")
    p.add_argument("--cpu-state", action="store_true", help="print the CPU governor/frequencies/thermal state")
    p.add_argument("--infer-npz", metavar="IN.npz", help="parity mode: run every sample of IN's array `x`")
    p.add_argument("--out-npz", metavar="OUT.npz", help="--infer-npz: write the float outputs here as `y`")
    a = p.parse_args(argv)
    if a.cpu_state:
        _emit({"runner": RUNNER_VERSION, "status": "ok", "cpu_state": cpu_state(), "pinning": pinning()})
        return 0
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
                            a.include_transfers, a.profile, a.profile_runs))
                return 0
            if a.infer_npz:
                _emit(infer_npz(a.model, a.infer_npz, a.out_npz, a.runtime, a.threads))
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
