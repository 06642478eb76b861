"""ONNX int8: onnxruntime static QDQ quantization (u8s8, per-channel weights), after quant_pre_process.

Choices: `calib_method` minmax (default) | histogram (onnxruntime's Entropy: KL-divergence on a
histogram) | percentile (onnxruntime's Percentile, 99.999); `per_channel`; `calib_images`; `keep_float` module
paths whose nodes go to `nodes_to_exclude` (they stay float, with QuantizeLinear/DequantizeLinear at their
borders). Nodes are found by the module scope the torch exporter records per node (`pkg.torch.onnx.name_scopes`);
onnxslim drops node metadata, so the exporter carries the scopes over with `keep_scopes` / `restore_scopes`.
"""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from shufflenet_edge.export.calibration import DEFAULT_CALIBRATION_IMAGES, calibration_set

from shufflenet_edge.data import Preprocess
from shufflenet_edge.export.config import DEFAULT_CALIB_METHOD as DEFAULT_CALIB_METHODS
from shufflenet_edge.errors import EdgeError

SCOPE_KEY = "pkg.torch.onnx.name_scopes"
DEFAULT_CALIB_METHOD = DEFAULT_CALIB_METHODS["onnx"]


def fx_module_paths(gm: Any) -> dict[str, str]:
    """{FX node name: deepest module path} of a GraphModule whose nodes carry `nn_module_stack` (the graph fold's)."""
    out = {}
    for n in getattr(getattr(gm, "graph", None), "nodes", []):
        stack = n.meta.get("nn_module_stack") or {}
        paths = [str(v[0]) for v in stack.values() if v and v[0]]
        if paths:
            out[n.name] = paths[-1]
    return out


def keep_scopes(model: Any, fx_paths: dict[str, str] | None = None) -> dict[str, str]:
    """{node name: module path of the node} from the torch exporter's metadata (before onnxslim drops it): its
    name scopes, or, when the exported module was a GraphModule (scopes empty), the FX node it came from looked
    up in `fx_paths`."""
    out = {}
    for n in model.graph.node:
        props = {p.key: p.value for p in n.metadata_props}
        path = None
        if SCOPE_KEY in props:
            try:
                scopes = ast.literal_eval(props[SCOPE_KEY])
                mods = [s for s in scopes[:-1] if s]  # the last entry is the op itself
                path = mods[-1] if mods else None
            except (ValueError, SyntaxError):
                path = None
        if path is None and fx_paths and "pkg.torch.onnx.fx_node" in props:
            v = props["pkg.torch.onnx.fx_node"]
            name = v[1:].split(" ", 1)[0] if v.startswith("%") else ""
            path = fx_paths.get(name)
        if path:
            out[n.name] = path
    return out


def restore_scopes(model: Any, scopes: dict[str, str]) -> None:
    for n in model.graph.node:
        if n.name in scopes and not any(p.key == SCOPE_KEY for p in n.metadata_props):
            n.metadata_props.add(key=SCOPE_KEY, value=repr(["", scopes[n.name], n.op_type]))


def nodes_in(model: Any, prefixes: list[str]) -> list[str]:
    names = []
    for name, path in keep_scopes(model).items():
        if any(path == k or path.startswith(k + ".") for k in prefixes):
            names.append(name)
    return names


# uint8 activations (asymmetric) and int8 weights (symmetric): onnxruntime's own recommendation for x86, and its
# fastest int8 kernels there. Measured on an AVX2 host without VNNI (benchmarks/results/onnx_int8_layouts.md, V2 1.0x,
# 1 thread, ratio to the fp32 graph): u8s8 0.75 with the default kernels (which saturate there: up to 47 output
# steps from the graph's own simulation) and 0.88 exact with session.x64quantprecision=1; the int8 activations shipped
# before ran 1.26 (slower than fp32) either way; uint8 weights 0.88 but 5 steps off the simulation in both modes.
SCHEME = "QDQ, uint8 activations (asymmetric), int8 weights (symmetric)"


def quantize_qdq(src: Path, dst: Path, batches: list[np.ndarray], *, per_channel: bool = True,
                 method: str = "minmax", exclude: list[str] | None = None, activations: str = "QUInt8",
                 weights: str = "QInt8", quant_format: str = "QDQ") -> list[str]:
    """The project's one onnxruntime static quantization (`SCHEME`, weights per channel by default; the layout
    arguments, onnxruntime's QuantType / QuantFormat names, are for benchmarks/onnx_int8_layouts.py), after
    quant_pre_process, calibrated on `batches` (arrays for the graph's first input). Returns the names of the nodes
    left in float (`exclude` that survived pre-processing)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self):  # type: ignore[no-untyped-def]
            b = next(self.it, None)
            return None if b is None else {input_name: np.ascontiguousarray(b, dtype=np.float32)}

    calibrate = {"minmax": CalibrationMethod.MinMax, "histogram": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory() as td:
        prep = Path(td) / "prep.onnx"
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        present = {n.name for n in onnx.load(str(prep), load_external_data=False).graph.node}
        kept = [n for n in (exclude or []) if n in present]
        quantize_static(
            str(prep), str(dst), Reader(), quant_format=getattr(QuantFormat, quant_format), per_channel=per_channel,
            activation_type=getattr(QuantType, activations), weight_type=getattr(QuantType, weights),
            calibrate_method=calibrate, nodes_to_exclude=kept,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": weights == "QInt8"},
        )
    return kept


def quantize_onnx_int8(src: Path, dst: Path, pre: Preprocess, int8: Any = None, *, batch: int = 1,
                       input_hw: tuple[int, int] | None = None, excluded_out: list[str] | None = None) -> str:
    """Quantize float `src` into `dst` as `int8` (an `Int8Config`: calibration folder, method, image count,
    per-channel weights, units kept float; None = the defaults); returns the description of the calibration data.
    `excluded_out`, when given, receives the names of the nodes left in float. `input_hw`: the model's input size
    when it is not `pre`'s square (calibration images are resized to it, stated)."""
    import onnx

    from shufflenet_edge.export.config import Int8Config

    q = int8 if int8 is not None else Int8Config()
    calib, calib_method, per_channel, keep_float = q.calib, q.method, q.per_channel, list(q.keep_float)
    images = calibration_set(calib, pre, limit=q.images or DEFAULT_CALIBRATION_IMAGES)
    if input_hw is not None and tuple(images.images.shape[2:]) != tuple(input_hw):
        from shufflenet_edge.export.tflite_export import _resize_images

        images = _resize_images(images, (3, *input_hw))
    exclude = nodes_in(onnx.load(str(src), load_external_data=False), keep_float)
    if keep_float and not exclude:
        raise EdgeError(f"no ONNX node carries the module scope of {', '.join(keep_float)} (the graph has no "
                        f"'{SCOPE_KEY}' metadata): cannot keep them in float")
    n = len(images.images) // batch * batch  # whole batches only
    batches = [images.images[i : i + batch] for i in range(0, n, batch)]
    kept = quantize_qdq(src, dst, batches, per_channel=per_channel, method=calib_method or DEFAULT_CALIB_METHOD,
                        exclude=exclude)
    if excluded_out is not None:
        excluded_out.extend(kept)
    return images.source
