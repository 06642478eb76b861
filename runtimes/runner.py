"""Run one .onnx or .tflite artifact: the adapters every part of shufflenet-edge uses, and the script
copied onto a board.

This file must import nothing but the standard library, numpy and one runtime (imported lazily), so it
runs on a Raspberry Pi or any Linux board with `pip install numpy ai-edge-litert` (or tflite-runtime,
or onnxruntime). Inputs are float NCHW or NHWC arrays in the *model's* float domain; an int8/uint8 input
is quantized here with the artifact's own scale and zero point, and outputs are dequantized to float.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

RUNTIMES = ("onnxruntime", "litert", "tflite-runtime")


class RunnerError(Exception):
    """A one-line, user-facing failure (missing runtime, unreadable artifact)."""


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
                raise RunnerError("tflite-runtime is not installed here: pip install tflite-runtime") from e
            self.runtime_version = _version("tflite-runtime", "tflite_runtime")
        else:
            try:
                from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
            except ImportError as e:
                raise RunnerError("LiteRT is not installed here: pip install ai-edge-litert") from e
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
            raise RunnerError("onnxruntime is not installed here: pip install onnxruntime") from e
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


def main(argv: list[str] | None = None) -> int:
    """Minimal board entry point: `python3 runner.py MODEL [--threads N]` prints one JSON line."""
    import argparse

    p = argparse.ArgumentParser(description="run one artifact and print its output as JSON")
    p.add_argument("model")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--input-npy", help="float input (NCHW or NHWC, as the model wants)")
    a = p.parse_args(argv)
    try:
        r = open_artifact(a.model, a.runtime, a.threads)
        x = np.load(a.input_npy) if a.input_npy else np.zeros(r.input_shape, np.float32)
        y = r(x)
    except RunnerError as e:
        print(json.dumps({"error": str(e)}))
        return 1
    print(json.dumps({"runtime": r.runtime, "version": r.runtime_version, "output": y.tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
