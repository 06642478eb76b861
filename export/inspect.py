"""`shufflenet-edge inspect`: what is in an .onnx or .tflite graph (how users and tests see the fold)."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

from shufflenet_edge.errors import EdgeError

ONNX_DATA_MOVEMENT = ("Transpose", "Slice", "Split", "Gather", "GatherElements", "GatherND")
TFLITE_DATA_MOVEMENT = ("TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "GATHER_ND", "PACK", "UNPACK")
ONNX_SHAPE_OPS = ("Shape", "ConstantOfShape", "Size")


def inspect_artifact(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"artifact not found: {p}")
    ext = p.suffix.lower()
    if ext == ".onnx":
        return inspect_onnx(p)
    if ext == ".tflite":
        return inspect_tflite(p)
    raise EdgeError(f"unknown artifact type {ext!r} for {p}: expected .onnx or .tflite")


def inspect_onnx(p: Path) -> dict[str, Any]:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        m = onnx.load(str(p), load_external_data=False)
        m = onnx.shape_inference.infer_shapes(m)
    except (DecodeError, onnx.onnx_cpp2py_export.shape_inference.InferenceError, ValueError, RuntimeError, OSError) as e:  # type: ignore[attr-defined]
        raise EdgeError(f"cannot read ONNX model {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    g = m.graph
    if not g.node:
        raise EdgeError(f"cannot read ONNX model {p}: the graph has no nodes (truncated or not an ONNX file?)")
    hist = collections.Counter(n.op_type for n in g.node)
    ranks = {}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            ranks[v.name] = len(t.shape.dim)
    # Shape arithmetic: Shape/ConstantOfShape/Size, and Gather/Unsqueeze/Concat fed by shape values.
    shape_values = {o for n in g.node if n.op_type in ONNX_SHAPE_OPS for o in n.output}
    changed = True
    while changed:
        changed = False
        for n in g.node:
            if n.op_type in ("Gather", "Unsqueeze", "Concat", "Squeeze", "Cast", "Mul", "Div", "Add", "Sub", "Slice") and any(i in shape_values for i in n.input):
                for o in n.output:
                    if o not in shape_values:
                        shape_values.add(o)
                        changed = True
    shape_ops = sum(1 for n in g.node if n.op_type in ONNX_SHAPE_OPS or any(o in shape_values for o in n.output))
    elem = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16"}

    def io(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        return {
            "name": v.name,
            "dtype": elem.get(t.elem_type, str(t.elem_type)),
            "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim],
            "quantization": None,
        }

    return {
        "path": str(p),
        "format": "onnx",
        "size_bytes": os.path.getsize(p),
        "opset": max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "ops": len(g.node),
        "op_histogram": dict(sorted(hist.items(), key=lambda kv: -kv[1])),
        "data_movement_ops": sum(hist[k] for k in ONNX_DATA_MOVEMENT),
        "data_movement_histogram": {k: hist[k] for k in ONNX_DATA_MOVEMENT if hist[k]},
        "max_rank": max(ranks.values(), default=0),
        "shape_ops": shape_ops,
        "quantized": bool(hist.get("QuantizeLinear") or hist.get("QLinearConv")),
        "float_compute_nodes": onnx_float_compute(g),
        "inputs": [io(v) for v in g.input if v.name not in {i.name for i in g.initializer}],
        "outputs": [io(v) for v in g.output],
    }


def _tflite_model(p: Path) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    buf = p.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise EdgeError(f"cannot read TFLite model {p}: not a TFLite flatbuffer (missing TFL3 identifier; truncated?)")
    try:
        return schema.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as e:  # noqa: BLE001  (flatbuffers raises assorted errors on bad data)
        raise EdgeError(f"cannot read TFLite model {p}: {e}") from e


def tflite_op_names(model: Any) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    out = []
    for op in model.subgraphs[0].operators:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        out.append(names.get(code, f"CUSTOM:{oc.customCode!r}" if oc.customCode else str(code)))
    return out


def inspect_tflite(p: Path, analyze_gpu: bool = True) -> dict[str, Any]:
    model = _tflite_model(p)
    sg = model.subgraphs[0]
    ops = tflite_op_names(model)
    hist = collections.Counter(ops)
    ttypes = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16"}

    def io(i: int) -> dict[str, Any]:
        t = sg.tensors[i]
        q = t.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale) == 1:
            quant = {"scale": float(q.scale[0]), "zero_point": int(q.zeroPoint[0])}
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        return {"name": name, "dtype": ttypes.get(t.type, str(t.type)), "shape": [int(s) for s in t.shape], "quantization": quant}

    max_rank = max((len(t.shape) for t in sg.tensors if t.shape is not None), default=0)
    info: dict[str, Any] = {
        "path": str(p),
        "format": "tflite",
        "size_bytes": os.path.getsize(p),
        "ops": len(ops),
        "op_histogram": dict(sorted(hist.items(), key=lambda kv: -kv[1])),
        "data_movement_ops": sum(hist[k] for k in TFLITE_DATA_MOVEMENT),
        "data_movement_histogram": {k: hist[k] for k in TFLITE_DATA_MOVEMENT if hist[k]},
        "max_rank": max_rank,
        "quantize_ops": hist.get("QUANTIZE", 0),
        "dequantize_ops": hist.get("DEQUANTIZE", 0),
        "requantizing_moves": _requantizing_moves(sg, ops),
        "inputs": [io(int(i)) for i in sg.inputs],
        "outputs": [io(int(i)) for i in sg.outputs],
    }
    info["xnnpack_partitions"] = xnnpack_partitions(p)
    info["float_islands"] = tflite_float_islands(sg, ops)
    if analyze_gpu:
        info["gpu_compatibility"] = gpu_compatibility(p)
    return info


# Ops that only move or select int8 values: with one scale and zero point on every quantized input and output they
# copy bytes; with different ones each value is requantized (arithmetic an int8 graph adds that its float form lacks).
_MOVES = (*TFLITE_DATA_MOVEMENT, "RESHAPE", "CONCATENATION", "PAD", "PADV2", "MAX_POOL_2D")


def _requantizing_moves(sg: Any, ops: list[str]) -> int:
    from shufflenet_edge.export.passes.graph import tensor_quant

    n = 0
    for op, name in zip(sg.operators, ops):
        if name in _MOVES:
            qs = {tensor_quant(sg.tensors[int(i)]) for i in [*op.inputs, *op.outputs] if int(i) >= 0} - {None}
            n += len(qs) > 1
    return n


def tflite_float_islands(sg: Any, ops: list[str]) -> list[dict[str, Any]]:
    """In an int8 graph, the connected groups of ops that compute in float (`export --int8 --keep-float`): each
    with its op count, op types and first/last output tensor. Empty for float graphs and full-integer ones."""
    types = [t.type for t in sg.tensors]
    if 9 not in types and 3 not in types:  # no int8 / uint8 tensor: a float model, no islands to speak of
        return []
    floaty = [k for k, (op, name) in enumerate(zip(sg.operators, ops))
              if name not in ("QUANTIZE", "DEQUANTIZE") and op.outputs is not None
              and any(types[o] == 0 for o in op.outputs if o >= 0)]
    parent = {k: k for k in floaty}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    producer = {int(o): k for k in floaty for o in sg.operators[k].outputs if o >= 0}
    for k in floaty:
        for i in sg.operators[k].inputs if sg.operators[k].inputs is not None else []:
            if int(i) in producer:
                parent[find(k)] = find(producer[int(i)])
    groups: dict[int, list[int]] = {}
    for k in floaty:
        groups.setdefault(find(k), []).append(k)

    def tname(i: int) -> str:
        n = sg.tensors[i].name
        return n.decode() if isinstance(n, bytes) else str(n)

    out = []
    for ks in sorted(groups.values()):
        hist = collections.Counter(ops[k] for k in ks)
        out.append({"float_ops": len(ks), "first_op": ks[0], "last_op": ks[-1],
                    "op_histogram": dict(hist), "last_output": tname(int(sg.operators[ks[-1]].outputs[0]))})
    return out


def onnx_float_compute(g: Any) -> list[str]:
    """In a QDQ graph, the Conv/Gemm/MatMul nodes whose weights come from no DequantizeLinear: float compute."""
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    if not dq:
        return []
    return [n.name for n in g.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] not in dq]


def xnnpack_partitions(p: Path, threads: int = 1) -> int | None:
    """Number of XNNPACK partitions: DELEGATE nodes in the interpreter after allocate_tensors()."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    it = Interpreter(model_path=str(p), num_threads=threads)
    it.allocate_tensors()
    return sum(1 for op in it._get_ops_details() if op["op_name"] == "DELEGATE")


def gpu_compatibility(p: Path) -> dict[str, Any]:
    """What LiteRT's model analyzer says about GPU-delegate compatibility."""
    try:
        from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer
    except ImportError:
        return {"checked": False, "reason": "LiteRT's model analyzer is not available"}
    text = analyzer.ModelAnalyzer(str(p), True, True)
    problems = [ln.strip() for ln in text.splitlines() if "GPU COMPATIBILITY WARNING" in ln or "Not supported op" in ln or "is not supported" in ln]
    return {"checked": True, "compatible": not problems and "GPU COMPATIBILITY WARNING" not in text, "warnings": problems[:20]}


def format_table(info: dict[str, Any]) -> str:
    lines = [f"{info['path']}  ({info['format']}, {info['size_bytes'] / 1e6:.2f} MB)"]
    lines.append(f"ops: {info['ops']}   data-movement ops: {info['data_movement_ops']} {info['data_movement_histogram'] or ''}   max tensor rank: {info['max_rank']}")
    if info["format"] == "onnx":
        lines.append(f"opset: {info['opset']}   shape-arithmetic ops: {info['shape_ops']}   quantized (QDQ): {info['quantized']}")
        if info.get("float_compute_nodes"):
            lines.append(f"float compute in the QDQ graph (--keep-float): {len(info['float_compute_nodes'])} node(s): "
                         f"{', '.join(info['float_compute_nodes'][:8])}")
    else:
        lines.append(f"XNNPACK partitions: {info.get('xnnpack_partitions')}   QUANTIZE ops: {info['quantize_ops']}   "
                     f"DEQUANTIZE ops: {info['dequantize_ops']}   "
                     f"requantizing data moves: {info['requantizing_moves']}")
        isl = info.get("float_islands") or []
        if isl:
            lines.append(f"float islands (int8 graph, ops computing in float): {len(isl)}; XNNPACK partitions with them: "
                         f"{info.get('xnnpack_partitions')} (XNNPACK runs fp32 and int8 ops; an op it lacks cuts the graph)")
            for k, i in enumerate(isl):
                lines.append(f"  island {k + 1}: ops #{i['first_op']}-#{i['last_op']}, {i['float_ops']} float op(s) "
                             f"{dict(i['op_histogram'])}")  # the converter's tensor names stay in --json
        g = info.get("gpu_compatibility")
        if g and g.get("checked"):
            lines.append(f"GPU delegate (model analyzer): {'compatible' if g['compatible'] else 'NOT compatible'}")
            lines += [f"  {w}" for w in g["warnings"][:5]]
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            q = v["quantization"]
            qs = f" scale={q['scale']:.6g} zero_point={q['zero_point']}" if q else ""
            lines.append(f"{kind[:-1]}: {v['name']} {v['dtype']} {v['shape']}{qs}")
    lines.append("op histogram: " + ", ".join(f"{k}={v}" for k, v in info["op_histogram"].items()))
    return "\n".join(lines)


