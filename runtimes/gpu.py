"""Desktop GPU: which GPU rows a local benchmark has, and what this machine offers.

GPU rows per artifact kind: onnxruntime CUDA and TensorRT for .onnx, LiteRT's GPU accelerator (WebGPU /
OpenCL through the CompiledModel API) for .tflite, torch CUDA for `torch:MODEL`. Each row is really
attempted in its own child process (runner.py / torch_runtime.py); when the device, the driver or the GPU
build of the runtime is missing, the row says "skipped" and why, instead of failing or quietly running on
the CPU. Timing on a GPU synchronizes the device after every run and keeps input and output on the device
(IOBinding for onnxruntime, device tensors for torch), unless `--include-transfers` is given.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from shufflenet_edge.runtimes.runner import gpu_devices, no_gpu_reason

# (runtime, provider) pairs that run on a GPU, per artifact format
GPU_ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "onnx": (("onnxruntime", "cuda"), ("onnxruntime", "tensorrt")),
    "tflite": (("litert", "gpu"),),
    "torch": (("torch", "cuda"),),
}


def gpu_rows(fmt: str | None) -> tuple[tuple[str, str], ...]:
    return GPU_ROWS.get(fmt or "", ())


def is_gpu(runtime: str, provider: str | None) -> bool:
    return (runtime, provider) in {p for rows in GPU_ROWS.values() for p in rows}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def onnxruntime_providers() -> list[str]:
    """Execution providers of the installed onnxruntime build (importing it is cheap; no session made)."""
    try:
        import onnxruntime as ort

        return list(ort.get_available_providers())
    except Exception:  # noqa: BLE001
        return []


def detect() -> dict[str, Any]:
    """What GPU support this machine and these Python packages have, without touching a driver."""
    dev = gpu_devices()
    return {
        "devices": dev,
        "no_gpu_reason": no_gpu_reason("any"),
        "no_nvidia_reason": no_gpu_reason("nvidia"),
        "onnxruntime_providers": onnxruntime_providers(),
        "onnxruntime_dist": next((d for d in ("onnxruntime-gpu", "onnxruntime") if _dist_version(d)), None),
        "torch": _dist_version("torch"),
        "ai_edge_litert": _dist_version("ai-edge-litert"),
    }


def summary_line(d: dict[str, Any] | None = None) -> str:
    d = d or detect()
    dev = d["devices"]
    if dev["nvidia"] or dev["dri_render"]:
        found = ", ".join(dev["nvidia"] + dev["dri_render"])
        where = f"GPU devices: {found}" + (f" ({dev['nvidia_smi']})" if dev.get("nvidia_smi") else "")
    else:
        where = "GPU: none on this machine (no /dev/nvidia*, no /dev/dri/renderD*)"
    provs = ", ".join(p.replace("ExecutionProvider", "") for p in d["onnxruntime_providers"]) or "-"
    return f"{where}; onnxruntime providers: {provs}; torch {d['torch'] or 'not installed'}"
