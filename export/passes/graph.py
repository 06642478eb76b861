"""A small editable view of a .tflite flatbuffer (the `ai_edge_litert` schema's object API).

Passes read producers/consumers, add constant tensors and operators, and `finish()` drops whatever
became unused, re-sorts operators topologically and packs the model again.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError

NP_OF_TFL = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
TFL_OF_NP = {np.dtype(v): k for k, v in NP_OF_TFL.items()}


def tensor_quant(t: Any) -> tuple[float, int] | None:
    """A tensor's (scale, zero point) when it has one of each (per-tensor quantization), else None."""
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


def schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


_OP_NAMES: dict[int, str] | None = None


def op_names() -> dict[int, str]:
    global _OP_NAMES
    if _OP_NAMES is None:
        _OP_NAMES = {v: k for k, v in schema().BuiltinOperator.__dict__.items() if not k.startswith("_")}
    return _OP_NAMES


class Graph:
    def __init__(self, buf: bytes) -> None:
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise EdgeError("not a TFLite flatbuffer (missing TFL3 identifier)")
        self.model = schema().ModelT.InitFromPackedBuf(buf, 0)
        if len(self.model.subgraphs) != 1:
            raise EdgeError(f"expected one subgraph, found {len(self.model.subgraphs)}")
        self.sg = self.model.subgraphs[0]
        self.notes: list[str] = []

    # --- reading -------------------------------------------------------------------------------
    @property
    def ops(self) -> list[Any]:
        return self.sg.operators  # type: ignore[no-any-return]

    def op_name(self, op: Any) -> str:
        oc = self.model.operatorCodes[op.opcodeIndex]
        return op_names().get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "CUSTOM")

    def tensor(self, i: int) -> Any:
        return self.sg.tensors[i]

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.sg.tensors[i].shape
        return tuple(int(v) for v in s) if s is not None else ()

    def dtype(self, i: int) -> Any:
        return NP_OF_TFL[self.sg.tensors[i].type]

    def const(self, i: int) -> np.ndarray | None:
        t = self.sg.tensors[i]
        data = self.model.buffers[t.buffer].data if t.buffer else None
        if data is None or len(data) == 0:
            return None
        arr = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=NP_OF_TFL[t.type])
        return arr.reshape(self.shape(i)) if self.shape(i) else arr.reshape(())

    def producers(self) -> dict[int, Any]:
        return {int(o): op for op in self.ops for o in op.outputs}

    def consumers(self) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = collections.defaultdict(list)
        for op in self.ops:
            for i in op.inputs:
                if i >= 0:
                    out[int(i)].append(op)
        return out

    def graph_outputs(self) -> set[int]:
        return {int(i) for i in self.sg.outputs}

    def quant(self, i: int) -> tuple[float, int] | None:
        return tensor_quant(self.sg.tensors[i])

    # --- writing -------------------------------------------------------------------------------
    def opcode(self, name: str, version: int = 1) -> int:
        code = getattr(schema().BuiltinOperator, name)
        for k, oc in enumerate(self.model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return k
        oc = schema().OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = version
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def add_tensor(self, shape: tuple[int, ...], dtype: Any, name: str, like: int | None = None,
                   data: np.ndarray | None = None) -> int:
        t = schema().TensorT()
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = TFL_OF_NP[np.dtype(dtype)]
        t.name = name.encode()
        t.buffer = 0
        if like is not None:
            src = self.sg.tensors[like].quantization
            if src is not None and src.scale is not None:
                q = schema().QuantizationParametersT()
                q.scale = np.array(src.scale, dtype=np.float32)
                q.zeroPoint = np.array(src.zeroPoint, dtype=np.int64)
                q.quantizedDimension = src.quantizedDimension
                t.quantization = q
        if data is not None:
            b = schema().BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data.astype(dtype)).tobytes(), dtype=np.uint8)
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const_i32(self, values: Any, name: str) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self.add_tensor(arr.shape, np.int32, name, data=arr)

    def make_op(self, name: str, inputs: list[int], outputs: list[int], options: Any = None,
                options_type: str | None = None, version: int = 1) -> Any:
        op = schema().OperatorT()
        op.opcodeIndex = self.opcode(name, version)
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(schema().BuiltinOptions, options_type or (name.title().replace("_", "") + "Options"))
            op.builtinOptions = options
        return op

    def reshape(self, x: int, shape: tuple[int, ...], name: str, out: int | None = None) -> tuple[Any, int]:
        o = out if out is not None else self.add_tensor(shape, self.dtype(x), name, like=x)
        opts = schema().ReshapeOptionsT()
        opts.newShape = list(shape)
        return self.make_op("RESHAPE", [x, self.const_i32(list(shape), name + "/shape")], [o], opts, "ReshapeOptions"), o

    def transpose(self, x: int, perm: tuple[int, ...], name: str, out: int | None = None) -> tuple[Any, int]:
        shape = tuple(self.shape(x)[p] for p in perm)
        o = out if out is not None else self.add_tensor(shape, self.dtype(x), name, like=x)
        opts = schema().TransposeOptionsT()
        return self.make_op("TRANSPOSE", [x, self.const_i32(list(perm), name + "/perm")], [o], opts, "TransposeOptions"), o

    def split(self, x: int, axis: int, n: int, name: str, outs: list[int] | None = None) -> tuple[Any, list[int]]:
        shape = list(self.shape(x))
        shape[axis] //= n
        o = outs or [self.add_tensor(tuple(shape), self.dtype(x), f"{name}:{k}", like=x) for k in range(n)]
        opts = schema().SplitOptionsT()
        opts.numSplits = n
        axis_t = self.add_tensor((), np.int32, name + "/axis", data=np.asarray(axis, dtype=np.int32))
        return self.make_op("SPLIT", [axis_t, x], o, opts, "SplitOptions"), o

    def concat(self, inputs: list[int], axis: int, name: str, out: int | None = None) -> tuple[Any, int]:
        shape = list(self.shape(inputs[0]))
        shape[axis] = sum(self.shape(i)[axis] for i in inputs)
        o = out if out is not None else self.add_tensor(tuple(shape), self.dtype(inputs[0]), name, like=inputs[0])
        opts = schema().ConcatenationOptionsT()
        opts.axis = axis
        return self.make_op("CONCATENATION", inputs, [o], opts, "ConcatenationOptions"), o

    # --- finishing -----------------------------------------------------------------------------
    def replace_ops(self, remove: list[Any], add: list[Any]) -> None:
        ids = {id(op) for op in remove}
        self.sg.operators = [op for op in self.ops if id(op) not in ids] + add

    def finish(self) -> bytes:
        self._toposort()
        self._compact()
        import flatbuffers

        b = flatbuffers.Builder(1 << 20)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def _toposort(self) -> None:
        prod = self.producers()
        order: list[Any] = []
        seen: set[int] = set()
        visiting: set[int] = set()

        def visit(op: Any) -> None:
            if id(op) in seen:
                return
            if id(op) in visiting:
                raise EdgeError("graph pass produced a cycle")
            visiting.add(id(op))
            for i in op.inputs:
                if i >= 0 and int(i) in prod:
                    visit(prod[int(i)])
            visiting.discard(id(op))
            seen.add(id(op))
            order.append(op)

        needed = [prod[o] for o in self.graph_outputs() if o in prod]
        for op in needed:
            visit(op)
        # Ops not on a path to an output are dead: drop them.
        self.sg.operators = order

    def _compact(self) -> None:
        used = {int(i) for op in self.ops for i in list(op.inputs) + list(op.outputs) if i >= 0}
        used |= {int(i) for i in self.sg.inputs} | self.graph_outputs()
        old = self.sg.tensors
        remap = {}
        new = []
        for k, t in enumerate(old):
            if k in used:
                remap[k] = len(new)
                new.append(t)
        self.sg.tensors = new

        def m(arr: Any) -> Any:
            return np.asarray([remap[int(i)] if i >= 0 else -1 for i in arr], dtype=np.int32)

        for op in self.ops:
            op.inputs, op.outputs = m(op.inputs), m(op.outputs)
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = m(op.intermediates)
        self.sg.inputs, self.sg.outputs = m(self.sg.inputs), m(self.sg.outputs)
        for sd in self.model.signatureDefs or []:
            for tm in list(sd.inputs or []) + list(sd.outputs or []):
                tm.tensorIndex = remap[int(tm.tensorIndex)]
        # Buffers: keep 0 (the empty sentinel) and those still referenced.
        bused = sorted({0} | {int(t.buffer) for t in new})
        bmap = {b: k for k, b in enumerate(bused)}
        meta_buffers = {int(md.buffer) for md in (self.model.metadata or [])}
        for b in sorted(meta_buffers):
            if b not in bmap:
                bmap[b] = len(bused)
                bused.append(b)
        self.model.buffers = [self.model.buffers[b] for b in bused]
        for t in new:
            t.buffer = bmap[int(t.buffer)]
        for md in self.model.metadata or []:
            md.buffer = bmap[int(md.buffer)]
