"""One benchmark result record, its statistics, and the table / JSON / PNG every target writes.

Every target (local, ssh, adb) produces the same record, one per artifact x runtime x provider x target x
threads, built with `new_record` so no field is forgotten:

    artifact, model, format, precision, form, madds, runtime, runtime_version, provider, target, threads,
    runs, warmup, latency_ms {median, p10, p90, p99, mean, std, min, max}, init_ms, first_inference_ms,
    peak_rss_mb, model_size_bytes, xnnpack_partitions, environment {cpu_model, cores, machine, os, python,
    runtime_versions, ...}, status ("ok" | "skipped" | "error"), reason (str | None)

plus a few optional extras (`extra`: input shape, runtime options, device details, ...). Statistics come
from the list of per-run times after warm-up (`latency_stats`), or, for tools that print only a summary
(TFLite's `benchmark_model`, `onnxruntime_perf_test`), from that summary (`latency_from_summary`).
Percentiles interpolate linearly between order statistics (numpy's default); std is the population std.
p10 (the lower whisker of the plot) is newer than the schema's first files: a record without it is still valid.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shufflenet_edge.errors import EdgeError

SCHEMA = "shufflenet-edge/bench/1"
STATUSES = ("ok", "skipped", "error")
LATENCY_KEYS = ("median", "p10", "p90", "p99", "mean", "std", "min", "max")
FIELDS = (
    "artifact", "model", "format", "precision", "form", "madds", "runtime", "runtime_version", "provider",
    "target", "threads", "runs", "warmup", "latency_ms", "init_ms", "first_inference_ms", "peak_rss_mb",
    "model_size_bytes", "xnnpack_partitions", "environment", "status", "reason",
)
ENVIRONMENT_KEYS = ("cpu_model", "cores", "machine", "os", "python", "runtime_versions")


class TargetError(EdgeError):
    """A target failed part-way (disconnect, timeout, refused host): one line naming the target, plus the
    records measured before (and the error row), which the caller keeps in the JSON before exiting non-zero."""

    def __init__(self, target: str, message: str, records: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{target}: {message}")
        self.target = target
        self.records = list(records or [])


# ---------------------------------------------------------------------------------------------------
# statistics

def _percentile(sorted_v: Sequence[float], q: float) -> float:
    k = (len(sorted_v) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (k - lo) * (sorted_v[hi] - sorted_v[lo])


def latency_stats(times_ms: Iterable[float]) -> dict[str, float]:
    """median, p10, p90, p99, mean, std (population), min, max of per-run times (warm-up already excluded)."""
    v = sorted(float(t) for t in times_ms)
    if not v:
        raise ValueError("latency_stats needs at least one timed run, got none")
    if any(not math.isfinite(t) or t < 0 for t in v):
        raise ValueError(f"per-run times must be finite and >= 0, got min {v[0]}, max {v[-1]}")
    mean = sum(v) / len(v)
    std = math.sqrt(sum((t - mean) ** 2 for t in v) / len(v))
    out = {"median": _percentile(v, 50), "p10": _percentile(v, 10), "p90": _percentile(v, 90), "p99": _percentile(v, 99),
           "mean": mean, "std": std, "min": v[0], "max": v[-1]}
    return {k: round(x, 4) for k, x in out.items()}


def latency_from_summary(**values: float | None) -> dict[str, float | None]:
    """A latency dict from a tool's printed summary (ms); keys not printed stay None.

    `latency_from_summary(mean=4.1, std=0.3, min=3.9, max=6.0, median=4.0)`; unknown keys are a ValueError."""
    bad = set(values) - set(LATENCY_KEYS)
    if bad:
        raise ValueError(f"unknown latency keys {sorted(bad)}; valid: {', '.join(LATENCY_KEYS)}")
    return {k: (None if values.get(k) is None else round(float(values[k]), 4)) for k in LATENCY_KEYS}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# records

def new_record(*, artifact: str, runtime: str, target: str, threads: int | None, status: str = "ok",
               reason: str | None = None, extra: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A complete record: every field of FIELDS present (None when unknown), keys in schema order.

    Pass the known fields by name (`latency_ms=latency_stats(times)`, `runs=100`, ...). A status other
    than "ok" needs a reason; unknown field names are a ValueError (put extras in `extra`)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if status != "ok" and not reason:
        raise ValueError(f"a {status!r} record needs a reason")
    bad = set(fields) - set(FIELDS)
    if bad:
        raise ValueError(f"unknown record fields {sorted(bad)}; valid: {', '.join(FIELDS)} (or use extra=)")
    rec: dict[str, Any] = {k: None for k in FIELDS}
    rec.update(fields)
    rec.update(artifact=artifact, runtime=runtime, target=target, threads=threads, status=status, reason=reason)
    if rec["latency_ms"] is None:
        rec["latency_ms"] = {k: None for k in LATENCY_KEYS}
    if rec["environment"] is None:
        rec["environment"] = {}
    if rec["format"] is None:
        rec["format"] = artifact_format(artifact)
    if extra:
        rec["extra"] = dict(extra)
    return rec


def artifact_format(artifact: str) -> str | None:
    if artifact.startswith("torch:"):
        return "torch"
    ext = os.path.splitext(artifact)[1].lower().lstrip(".")
    return ext or None


def merge_artifact_info(rec: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Fill model/format/precision/form/madds/model_size_bytes from `describe_artifact` where still None."""
    for k in ("model", "format", "precision", "form", "madds", "model_size_bytes"):
        if rec.get(k) is None and info.get(k) is not None:
            rec[k] = info[k]
    return rec


# ---------------------------------------------------------------------------------------------------
# what an artifact is: sidecar JSON first (the exporters write `<artifact>.json`), then the file itself

def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    return Path(str(artifact) + ".json")


def read_sidecar(artifact: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the artifact is: its sidecar, else the metadata embedded in it (export.common.artifact_info), or None."""
    from shufflenet_edge.errors import EdgeError
    from shufflenet_edge.export.common import artifact_info

    try:
        return artifact_info(artifact)[0]
    except EdgeError:  # an unreadable sidecar: bench still runs the file, without the description
        return None


def _input_size_from_shape(shape: Sequence[Any] | None) -> int | None:
    if not shape or len(shape) != 4:
        return None
    dims = [d if isinstance(d, int) else -1 for d in shape]
    h = dims[1] if dims[-1] in (1, 3) and dims[1] > 3 else dims[2]
    return h if h and h > 0 else None


def _registry_names() -> list[str]:
    try:
        from shufflenet_edge.models import list_models

        return list_models()
    except Exception:  # noqa: BLE001  (no torch here: the name stays unknown)
        return []


def model_from_filename(path: str) -> str | None:
    """The longest registered model name the file name starts with (`shufflenet_v2_x1_0_int8.tflite`)."""
    stem = Path(path).name
    best = None
    for n in _registry_names():
        if stem.startswith(n) and (len(stem) == len(n) or not stem[len(n)].isalnum()):
            if best is None or len(n) > len(best):
                best = n
    return best


_MADDS_CACHE: dict[tuple[str, int, int], int | None] = {}


def registry_madds(model: str | None, input_size: int | None, num_classes: int | None = None) -> int | None:
    """Multiply-adds of a registered model at `input_size` (from shufflenet_edge.complexity), or None."""
    if not model or not input_size:
        return None
    key = (model, int(input_size), int(num_classes or 1000))
    if key not in _MADDS_CACHE:
        try:
            from shufflenet_edge.complexity import count_madds
            from shufflenet_edge.models.registry import build_model

            _MADDS_CACHE[key] = int(count_madds(build_model(model, num_classes=key[2]), key[1]))
        except Exception:  # noqa: BLE001  (unknown name, or torch missing: the plot then skips the point)
            _MADDS_CACHE[key] = None
    return _MADDS_CACHE[key]


def _precision_from_graph(path: Path, fmt: str | None) -> str | None:
    try:
        if fmt == "onnx":
            import onnx

            m = onnx.load(str(path), load_external_data=False)
            ops = {n.op_type for n in m.graph.node}
            if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                      "MatMulInteger"}:
                return "int8"
            if any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer):
                return "fp16"
            return "fp32"
        if fmt == "tflite":
            from ai_edge_litert import schema_py_generated as schema  # type: ignore[import-not-found]

            model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
            types = set()
            for si in range(model.SubgraphsLength()):
                sg = model.Subgraphs(si)
                for ti in range(sg.TensorsLength()):
                    t = sg.Tensors(ti)
                    q = t.Quantization()
                    quantized = q is not None and q.ScaleLength() > 0
                    types.add((t.Type(), quantized))
            T = schema.TensorType
            if (T.INT8, True) in types or (T.UINT8, True) in types:
                return "int8"
            if any(tt == T.FLOAT16 for tt, _ in types):
                return "fp16"
            return "fp32"
    except Exception:  # noqa: BLE001  (a corrupt file is reported by the runtime, with its own message)
        return None
    return None


def describe_artifact(path: str, *, input_size: int | None = None, num_classes: int | None = None,
                      madds: bool = True) -> dict[str, Any]:
    """model, format, precision, form, madds, model_size_bytes (with ONNX external data), input_size,
    num_classes and companions of one artifact.

    Sidecar keys read: model, precision, form, format, num_classes, input.shape, preprocess.input_size,
    madds (if an exporter records it). Without a sidecar: the model from the file name (registry names),
    the precision from the graph (QDQ / quantized tensors), the form unknown. `torch:MODEL[@SIZE]` names a
    registered model for torch eager. `companions` are the files a copy to a board must carry along
    (ONNX external data)."""
    info: dict[str, Any] = {"model": None, "format": artifact_format(path), "precision": None, "form": None,
                            "madds": None, "model_size_bytes": None, "input_size": input_size,
                            "num_classes": num_classes, "companions": []}
    if path.startswith("torch:"):
        name, _, size = path[len("torch:"):].partition("@")
        info.update(model=name, precision="fp32", form="eager", input_size=input_size or int(size or 224))
    else:
        p = Path(path)
        if p.is_file():
            info["model_size_bytes"] = p.stat().st_size
        side = read_sidecar(p) or {}
        m = side.get("model")
        info["model"] = m.get("name") if isinstance(m, dict) else m
        info["precision"] = side.get("precision")
        info["form"] = side.get("form")
        info["format"] = side.get("format") or info["format"]
        info["num_classes"] = info["num_classes"] or side.get("num_classes")
        if info["input_size"] is None:
            inp = side.get("input") or {}
            pre = side.get("preprocess") or {}
            info["input_size"] = _input_size_from_shape(inp.get("shape")) or pre.get("input_size")
        for key in ("madds", "multiply_adds"):
            if isinstance(side.get(key), (int, float)):
                info["madds"] = int(side[key])
        if info["model"] is None:
            info["model"] = model_from_filename(path)
        if info["precision"] is None and p.is_file():
            info["precision"] = _precision_from_graph(p, info["format"])
        if info["format"] == "onnx" and p.is_file():
            info["companions"] = onnx_companions(p)
            info["model_size_bytes"] += sum(c.stat().st_size for c in info["companions"] if c.is_file())
    if info["madds"] is not None:
        info["madds_source"] = "sidecar"
    if madds and info["madds"] is None:
        info["madds"] = registry_madds(info["model"], info["input_size"], info["num_classes"])
        info["madds_source"] = "registry" if info["madds"] is not None else None
    if madds and info["madds"] is None and not path.startswith("torch:"):
        # A user's model (`export --model-file`) or an artifact from elsewhere: its own multiply-adds, counted in
        # the graph (conv, depthwise conv, fully connected, matmul), so it is plotted where it belongs.
        info["madds"] = graph_madds(path)
        info["madds_source"] = "graph" if info["madds"] is not None else None
    return info


# Multiply-adds per image counted in an artifact's graph: the same rule as shufflenet_edge/complexity.py
# (k*k*c_in/g multiply-adds per output element of a conv, n_in per output of a fully connected layer); other ops
# count 0. The first dimension of an output is the batch.
_TFLITE_MADDS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")
_ONNX_CONV = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of the weight input
_ONNX_MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


def _prod(dims: Sequence[int]) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def graph_madds(path: str | os.PathLike[str]) -> int | None:
    """Multiply-adds per image of an .onnx / .tflite, counted in its graph; None when the file does not parse or
    no counted op has static shapes."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".tflite":
            return _tflite_madds(p.read_bytes())
        if p.suffix.lower() == ".onnx":
            return _onnx_madds(p)
    except Exception:  # noqa: BLE001  (a damaged or foreign file: the plot says the count is unknown)
        return None
    return None


def _tflite_madds(buf: bytes) -> int | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    sg = model.subgraphs[0]

    def shape(i: int) -> list[int]:
        t = sg.tensors[i]
        return [int(d) for d in (t.shape if t.shape is not None else [])]

    total, counted = 0, False
    for op in sg.operators or []:
        oc = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode))
        if name not in _TFLITE_MADDS_OPS:
            continue
        out, w = shape(int(op.outputs[0])), shape(int(op.inputs[1]))
        if not out or not w or min(out + w) < 1:
            continue
        per_image = _prod(out[1:]) if len(out) > 1 else _prod(out)
        if name == "CONV_2D":  # filter (c_out, kh, kw, c_in / groups)
            total += per_image * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, c_out)
            total += per_image * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # weights (units, n_in)
            total += per_image * w[-1]
        else:  # BATCH_MATMUL: (..., m, k) x (..., k, n)
            a = shape(int(op.inputs[0]))
            if not a:
                continue
            total += per_image * a[-1]
        counted = True
    return total if counted else None


def _onnx_madds(p: Path) -> int | None:
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(p), load_external_data=False))
    g = m.graph
    shapes: dict[str, list[int | None]] = {t.name: [int(d) for d in t.dims] for t in g.initializer}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        tt = v.type.tensor_type
        if tt.HasField("shape"):
            shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    producer = {o: n for n in g.node for o in n.output}

    def shape_of(name: str) -> list[int | None] | None:
        if name in shapes:
            return shapes[name]
        n = producer.get(name)  # a weight behind DequantizeLinear / Cast / Identity keeps its shape
        if n is not None and n.op_type in ("DequantizeLinear", "Cast", "Identity") and n.input:
            return shape_of(n.input[0])
        return None

    total, counted = 0, False
    for n in g.node:
        if n.op_type in _ONNX_CONV and len(n.input) > _ONNX_CONV[n.op_type]:
            out, w = shape_of(n.output[0]), shape_of(n.input[_ONNX_CONV[n.op_type]])
            if not out or not w or any(d is None for d in out[1:] + w):
                continue
            total += _prod(out[1:]) * _prod(w[1:])  # (n, c_out, *spatial) x (c_out, c_in / g, *kernel)
            counted = True
        elif n.op_type in _ONNX_MATMUL:
            a_i, b_i = _ONNX_MATMUL[n.op_type]
            out, a = shape_of(n.output[0]), shape_of(n.input[a_i])
            if not out or not a or any(d is None for d in out[1:]):
                continue
            k = None
            if n.op_type == "Gemm":
                trans_a = next((at.i for at in n.attribute if at.name == "transA"), 0)
                k = a[0] if trans_a else a[-1]
            else:
                k = a[-1]
            if k is None:
                continue
            per_image = _prod(out[1:]) if len(out) > 1 else _prod(out)
            total += per_image * int(k)
            counted = True
    return total if counted else None


def onnx_companions(path: Path) -> list[Path]:
    """External-data files an .onnx refers to (they must travel with it), in the same folder."""
    try:
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        locs = set()
        for t in m.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    locs.add(e.value)
        return [path.parent / loc for loc in sorted(locs)]
    except Exception:  # noqa: BLE001
        return []


# ---------------------------------------------------------------------------------------------------
# output: table, JSON, PNG

def _fmt_ms(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def _runtime_label(r: dict[str, Any]) -> str:
    prov = r.get("provider")
    return f"{r['runtime']}/{prov}" if prov else str(r["runtime"])


_GPU_ROWS = {("onnxruntime", "cuda"), ("onnxruntime", "tensorrt"), ("litert", "gpu"), ("torch", "cuda")}


def is_gpu_skip(r: dict[str, Any]) -> bool:
    """A GPU row (runtimes/gpu.py's GPU_ROWS) skipped because this machine or this build has no GPU for it."""
    return r.get("status") == "skipped" and (r.get("runtime"), r.get("provider")) in _GPU_ROWS


def _short_reason(reason: Any) -> str:
    first = str(reason or "").split(";")[0]
    return re.sub(r"\s*\([^)]*\)", "", first).strip() or "no reason given"


def gpu_skip_line(records: Sequence[dict[str, Any]]) -> str | None:
    """One line for all the skipped GPU rows of a run (which rows, why in a few words), or None."""
    skips = [r for r in records if is_gpu_skip(r)]
    if not skips:
        return None
    rows = list(dict.fromkeys(_runtime_label(r) for r in skips))
    why = list(dict.fromkeys(_short_reason(r.get("reason")) for r in skips))
    where = ", ".join(dict.fromkeys(str(r.get("target")) for r in skips))
    return (f"GPU rows skipped on {where} ({', '.join(rows)}): {why[0]} (each row's reason is in the JSON; "
            "--no-gpu leaves them out)")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table (times in ms), then numbered notes with the reason of every skipped/error row,
    then one line per distinct environment. Skipped GPU rows are one line for the whole run, not rows."""
    head = ["artifact", "prec", "runtime", "target", "thr", "median", "p90", "p99", "mean", "std", "min",
            "init", "first", "RSS MB", "size MB", "parts"]
    gpu_line = gpu_skip_line(records)
    records = [r for r in records if not is_gpu_skip(r)]
    rows: list[list[str]] = []
    notes: list[str] = []
    for r in records:
        lat = r.get("latency_ms") or {}
        name = r["artifact"] if str(r["artifact"]).startswith("torch:") else os.path.basename(str(r["artifact"]))
        base = [name, _fmt(r.get("precision")), _runtime_label(r), str(r.get("target")), _fmt(r.get("threads"))]
        if r.get("status") != "ok":
            # one note per distinct (status, runtime, target, reason): a missing GPU is said once, not per file
            note = f"{r['status']}: {_runtime_label(r)} on {r.get('target')}: {r.get('reason')}"
            if note not in notes:
                notes.append(note)
            rows.append(base + [f"{r['status']} [{notes.index(note) + 1}]"] + [""] * (len(head) - len(base) - 1))
            continue
        size = r.get("model_size_bytes")
        rows.append(base + [_fmt_ms(lat.get(k)) for k in ("median", "p90", "p99", "mean", "std", "min")] + [
            _fmt_ms(r.get("init_ms")), _fmt_ms(r.get("first_inference_ms")), _fmt(r.get("peak_rss_mb"), ".0f"),
            "-" if size is None else f"{size / 1e6:.2f}", _fmt(r.get("xnnpack_partitions"))])
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(len(head))]
    left = {0, 1, 2, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    for rec, cells in zip(records, rows, strict=True):
        out.append(line(cells) + ("  (!)" if record_cpu_changes(rec) else ""))
    out.append("times in ms; warm-up excluded; parts = XNNPACK partitions (TFLite)")
    out += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    if gpu_line:
        out.append(gpu_line)
    out += cpu_state_lines(records)
    out += [f"{t}: {environment_line(env)}" for t, env in target_environments(records).items()]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# CPU state (governor, frequencies, temperatures) before and after each measurement

FIXED_FREQUENCY_GOVERNORS = ("performance", "userspace")


def _cpu_ranges(cpus: Sequence[str]) -> str:
    nums = sorted(int(c[3:]) for c in cpus if c.startswith("cpu") and c[3:].isdigit())
    out: list[str] = []
    for n in nums:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))  # type: ignore[arg-type]
    return "cpu" + ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out) if out else "?"


def _ghz(khz: Any) -> str:
    return "?" if khz is None else f"{float(khz) / 1e6:.2f}"


def cpu_state_changes(before: dict[str, Any] | None, after: dict[str, Any] | None, *, freq_tolerance: float = 0.10,
                      temp_rise_c: float = 5.0) -> list[str]:
    """What changed between two CPU-state readings (runner.cpu_state / parse_cpu_state_listing), worded for a
    warning; [] when nothing that matters did. Counted: a governor switched, a core's maximum frequency capped
    or raised (thermal throttling caps it), cpufreq appearing or vanishing, a thermal zone warming by
    `temp_rise_c` or more, and, under a fixed-frequency governor (performance, userspace), a current
    frequency moving by more than `freq_tolerance`. Under schedutil/ondemand the current frequency follows
    the load by design, so it is recorded but not warned about."""
    if not before or not after:
        return []
    out: list[str] = []
    if before.get("cpufreq") != after.get("cpufreq"):
        out.append(f"cpufreq {before.get('cpufreq')} -> {after.get('cpufreq')}")
    gb, ga = before.get("governor") or {}, after.get("governor") or {}
    changed: dict[tuple[Any, Any], list[str]] = {}
    for cpu in sorted(set(gb) | set(ga)):
        if gb.get(cpu) != ga.get(cpu):
            changed.setdefault((gb.get(cpu), ga.get(cpu)), []).append(cpu)
    for (a, b), cpus in changed.items():
        out.append(f"governor {a} -> {b} on {_cpu_ranges(cpus)}")
    mb, ma = before.get("max_freq_khz") or {}, after.get("max_freq_khz") or {}
    caps: dict[tuple[Any, Any], list[str]] = {}
    for cpu in sorted(set(mb) & set(ma)):
        if mb[cpu] != ma[cpu]:
            caps.setdefault((mb[cpu], ma[cpu]), []).append(cpu)
    for (a, b), cpus in caps.items():
        word = "capped" if b < a else "raised"
        out.append(f"max frequency {word} {_ghz(a)} -> {_ghz(b)} GHz on {_cpu_ranges(cpus)}")
    cb, ca = before.get("cur_freq_khz") or {}, after.get("cur_freq_khz") or {}
    moved: dict[tuple[Any, Any], list[str]] = {}
    for cpu in sorted(set(cb) & set(ca)):
        if ga.get(cpu) in FIXED_FREQUENCY_GOVERNORS and cb[cpu] and abs(ca[cpu] - cb[cpu]) > freq_tolerance * cb[cpu]:
            moved.setdefault((cb[cpu], ca[cpu]), []).append(cpu)
    for (a, b), cpus in moved.items():
        out.append(f"frequency {_ghz(a)} -> {_ghz(b)} GHz on {_cpu_ranges(cpus)} under a fixed-frequency governor")
    tb, ta = before.get("thermal") or {}, after.get("thermal") or {}
    for zone in sorted(set(tb) & set(ta), key=lambda z: (len(z), z)):
        t0, t1 = (tb[zone] or {}).get("temp_c"), (ta[zone] or {}).get("temp_c")
        if t0 is not None and t1 is not None and t1 - t0 >= temp_rise_c:
            kind = (ta[zone] or {}).get("type") or zone
            out.append(f"{kind} ({zone}) warmed {t0:.1f} -> {t1:.1f} C")
    return out


def record_cpu_changes(rec: dict[str, Any]) -> list[str]:
    st = (rec.get("extra") or {}).get("cpu_state") or {}
    return cpu_state_changes(st.get("before"), st.get("after"))


def cpu_state_summary(state: dict[str, Any] | None) -> str:
    """One line: governors, current frequency range, hottest zone; or why it is unavailable."""
    if not state:
        return "not recorded"
    parts: list[str] = []
    if state.get("cpufreq") == "available":
        govs = sorted(set((state.get("governor") or {}).values()))
        if govs:
            parts.append(f"governor {'/'.join(govs)}")
        cur = [v for v in (state.get("cur_freq_khz") or {}).values() if v]
        if cur:
            parts.append(f"{_ghz(min(cur))}-{_ghz(max(cur))} GHz now" if min(cur) != max(cur) else f"{_ghz(cur[0])} GHz now")
        mx = [v for v in (state.get("max_freq_khz") or {}).values() if v]
        if mx:
            parts.append(f"max {_ghz(max(mx))} GHz")
    else:
        why = state.get("cpufreq_reason") or "unavailable"
        mhz = list((state.get("proc_cpuinfo_mhz") or {}).values())
        parts.append(f"governor/frequency unavailable ({why})" +
                     (f"; /proc/cpuinfo says {min(mhz):.0f}-{max(mhz):.0f} MHz" if mhz and min(mhz) != max(mhz)
                      else f"; /proc/cpuinfo says {mhz[0]:.0f} MHz" if mhz else ""))
    zones = [z for z in (state.get("thermal") or {}).values() if z and z.get("temp_c") is not None]
    if zones:
        hot = max(zones, key=lambda z: z["temp_c"])
        parts.append(f"hottest zone {hot.get('type')} {hot['temp_c']:.1f} C")
    return "; ".join(parts)


def cpu_state_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Per target: the CPU state at its first and last measurement; then a WARNING line for every
    measurement during which the state changed (the (!) rows of the table)."""
    out: list[str] = []
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if (r.get("extra") or {}).get("cpu_state"):
            by_target.setdefault(str(r.get("target")), []).append(r)
    for t, recs in by_target.items():
        first = recs[0]["extra"]["cpu_state"].get("before")
        last = recs[-1]["extra"]["cpu_state"].get("after")
        out.append(f"{t}: cpu before: {cpu_state_summary(first)}")
        if cpu_state_summary(last) != cpu_state_summary(first):
            out.append(f"{t}: cpu after:  {cpu_state_summary(last)}")
        run_changes = cpu_state_changes(first, last)
        if run_changes and len(recs) > 1:
            out.append(f"WARNING: {t}: the CPU state changed over the run: {'; '.join(run_changes)}")
        cool = [(r.get("extra") or {}).get("cooldown_s") for r in recs]
        if any(cool):
            out.append(f"{t}: cool-down between measurements: {max(c or 0 for c in cool):g} s")
    for r in records:
        changes = record_cpu_changes(r)
        if changes:
            name = os.path.basename(str(r["artifact"]))
            out.append(f"WARNING (!): {r.get('target')}: {name} ({_runtime_label(r)}, {r.get('threads')} thr): the CPU "
                       f"state changed during the measurement: {'; '.join(changes)}")
    return out


def target_environments(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One environment per target: its machine, with every runtime version seen there merged in."""
    envs: dict[str, dict[str, Any]] = {}
    for r in records:
        env = r.get("environment") or {}
        if not env:
            continue
        t = str(r.get("target"))
        if t not in envs:
            envs[t] = dict(env, runtime_versions=dict(env.get("runtime_versions") or {}))
        else:
            envs[t]["runtime_versions"].update(env.get("runtime_versions") or {})
    return envs


def format_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the successful rows (model, format, precision, runtime, threads, median / p90 /
    p99 ms, multiply-adds, size), sorted by model, then one line per target environment: for the README."""
    ok = [r for r in records if r.get("status") == "ok"]
    ok.sort(key=lambda r: (r.get("madds") or 0, str(r.get("model")), str(r.get("format")), str(r.get("precision")),
                           str(r.get("runtime")), r.get("threads") or 0))
    lines = ["| model | MMAdds | format | precision | runtime | target | threads | median ms | p90 ms | p99 ms | size MB |",
             "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in ok:
        lat = r["latency_ms"]
        madds = f"{r['madds'] / 1e6:.0f}" if r.get("madds") else "-"
        size = f"{r['model_size_bytes'] / 1e6:.2f}" if r.get("model_size_bytes") else "-"
        lines.append(f"| {r.get('model') or os.path.basename(str(r['artifact']))} | {madds} | {r.get('format')} | "
                     f"{r.get('precision') or '-'} | {_runtime_label(r)} | {r.get('target')} | {r.get('threads')} | "
                     f"{_fmt_ms(lat.get('median'))} | {_fmt_ms(lat.get('p90'))} | {_fmt_ms(lat.get('p99'))} | {size} |")
    lines.append("")
    lines += [f"- {t}: {environment_line(e)}" for t, e in target_environments(ok).items()]
    return "\n".join(lines)


def environment_line(env: dict[str, Any]) -> str:
    vers = env.get("runtime_versions") or {}
    v = ", ".join(f"{k} {val}" for k, val in vers.items())
    cores = env.get("cores")
    extra = f" ({env['device']})" if env.get("device") else ""
    pin = f"; pinning: {env['pinning']}" if env.get("pinning") else ""
    return (f"{env.get('cpu_model', '?')}{extra}, {cores} cores, {env.get('machine', '?')}, "
            f"{env.get('os', '?')}, Python {env.get('python', '?')}" + (f"; {v}" if v else "") + pin)


def _atomic_write(path: Path, write: Any, suffix: str) -> None:
    """`write(tmp_path)` into a temporary file beside `path` (same suffix), renamed into place when complete."""
    from shufflenet_edge.files import atomic_path

    try:
        with atomic_path(path) as tmp:
            write(str(tmp))
    except OSError as e:
        raise EdgeError(f"cannot write {path}: {e.strerror or e}") from e


def bench_document(records: Sequence[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **meta, "results": list(records)}


def write_json(path: str | os.PathLike[str], records: Sequence[dict[str, Any]], **meta: Any) -> Path:
    """Write {"schema", "created", **meta, "results": records} atomically (temp file, then rename)."""
    doc = bench_document(records, **meta)
    text = json.dumps(doc, indent=2, default=str) + "\n"

    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_write(Path(path), w, ".json")
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a file written by write_json (for merging runs and for the README table)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise EdgeError(f"cannot read benchmark results {path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise EdgeError(f"{path} is not a shufflenet-edge benchmark file (schema {SCHEMA})")
    return list(doc.get("results") or [])


def _short_model(name: str | None) -> str:
    if not name:
        return "?"
    s = re.sub(r"^shufflenet_", "", name)
    return s.replace("_x", " ").replace("_g", " g").replace("_", ".")


PRECISION_COLOURS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8": "#ff7f0e"}
OTHER_COLOUR = "#7f7f7f"


def _model_key(r: dict[str, Any]) -> str:
    return str(r.get("model") or os.path.splitext(os.path.basename(str(r["artifact"])))[0])


def _whiskers(r: dict[str, Any]) -> tuple[float, float, bool]:
    """(down, up) lengths from the median to p10 and p90, and whether p10 was recorded (else min is used)."""
    lat = r["latency_ms"]
    y = float(lat["median"])
    lo, has_p10 = lat.get("p10"), lat.get("p10") is not None
    if lo is None:
        lo = lat.get("min")
    hi = lat.get("p90")
    return (max(0.0, y - float(lo)) if lo is not None else 0.0, max(0.0, float(hi) - y) if hi is not None else 0.0,
            has_p10)


def plot_figure(records: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    """The bench figure (matplotlib Figure), or None when no measurement succeeded (then nothing is drawn).

    One model: median latency per artifact x runtime x threads as bars, whiskers p10 to p90, coloured by
    precision. Several models with known multiply-adds: latency against multiply-adds (the papers' Figure 1 view),
    one series per runtime/provider, precision, format, target and thread count; rows without a multiply-add count
    are named under the plot, with the reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status") == "ok" and (r.get("latency_ms") or {}).get("median") is not None]
    if not ok:
        return None
    models = list(dict.fromkeys(_model_key(r) for r in ok))
    with_madds = [r for r in ok if r.get("madds")]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    if len(models) > 1 and len({_model_key(r) for r in with_madds}) > 1:
        _madds_view(fig, ax, ok, with_madds, title)
    else:
        _bars_view(fig, ax, ok, models, title)
    fig.tight_layout()
    return fig


def _bars_view(fig: Any, ax: Any, ok: list[dict[str, Any]], models: list[str], title: str | None) -> None:
    from matplotlib.patches import Patch

    targets = {str(r.get("target")) for r in ok}
    rows = sorted(ok, key=lambda r: (os.path.basename(str(r["artifact"])), _runtime_label(r), str(r.get("target")),
                                     r.get("threads") or 0))
    labels, ys, down, up, colours = [], [], [], [], []
    all_p10 = True
    for r in rows:
        name = r["artifact"] if str(r["artifact"]).startswith("torch:") else os.path.basename(str(r["artifact"]))
        where = f" @ {r.get('target')}" if len(targets) > 1 else ""
        labels.append(f"{name}\n{_runtime_label(r)}{where}, {r.get('threads')} thr")
        ys.append(float(r["latency_ms"]["median"]))
        d, u, has_p10 = _whiskers(r)
        down.append(d)
        up.append(u)
        all_p10 = all_p10 and has_p10
        colours.append(PRECISION_COLOURS.get(str(r.get("precision")), OTHER_COLOUR))
    xs = list(range(len(rows)))
    ax.bar(xs, ys, color=colours, yerr=[down, up], capsize=3, error_kw={"elinewidth": 1, "ecolor": "black"})
    ax.set_xticks(xs, labels, fontsize=7, rotation=30 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center")
    ax.set_xlabel("artifact, runtime, threads")
    ax.set_ylabel("median latency (ms); whiskers p10 to p90" + ("" if all_p10 else " (min to p90 where p10 is not recorded)"))
    who = ", ".join(models) if len(models) <= 3 else f"{len(models)} models"
    ax.set_title(title or f"{who}: median latency per artifact and thread count")
    ax.grid(True, axis="y", alpha=0.3)
    seen = list(dict.fromkeys(str(r.get("precision")) for r in rows))
    ax.legend(handles=[Patch(color=PRECISION_COLOURS.get(pr, OTHER_COLOUR), label=pr if pr != "None" else "precision unknown")
                       for pr in seen], fontsize=7, loc="best", title="precision", title_fontsize=7)


def _madds_view(fig: Any, ax: Any, ok: list[dict[str, Any]], with_madds: list[dict[str, Any]], title: str | None) -> None:
    series: dict[str, list[dict[str, Any]]] = {}
    for r in with_madds:
        key = (f"{_runtime_label(r)} {r.get('precision') or ''} {r.get('format') or ''}, {r.get('threads')} thr"
               f" @ {r.get('target')}")
        series.setdefault(key, []).append(r)
    all_p10 = True
    for key, rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["madds"])
        xs = [r["madds"] / 1e6 for r in rs]
        ys = [r["latency_ms"]["median"] for r in rs]
        w = [_whiskers(r) for r in rs]
        all_p10 = all_p10 and all(h for _, _, h in w)
        ax.errorbar(xs, ys, yerr=[[d for d, _, _ in w], [u for _, u, _ in w]], marker="o", capsize=3, label=key,
                    linewidth=1)
        for x, y, r in zip(xs, ys, rs, strict=True):
            ax.annotate(_short_model(r.get("model")), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("multiply-adds (millions)")
    ax.set_ylabel("median latency (ms); bars p10 to p90" + ("" if all_p10 else " (min to p90 where p10 is not recorded)"))
    ax.set_title(title or "Latency against multiply-adds (measured, not inferred)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    missing = [r for r in ok if not r.get("madds")]
    if missing:
        names = ", ".join(sorted({os.path.basename(str(r["artifact"])) for r in missing}))
        fig.text(0.01, 0.01, f"not plotted: {names} (multiply-adds unknown: not a registered model, no madds in the "
                 "sidecar, and no conv/matmul with static shapes in the graph)", fontsize=7)


def write_plot(path: str | os.PathLike[str], records: Sequence[dict[str, Any]], title: str | None = None) -> Path | None:
    """Write `plot_figure` as a PNG (atomically); None, and nothing written, when no measurement succeeded."""
    fig = plot_figure(records, title)
    if fig is None:
        return None
    return _save_png(fig, path)


def _save_png(fig: Any, path: str | os.PathLike[str]) -> Path:
    """`fig` as a PNG at `path` (atomically), then closed."""
    import matplotlib.pyplot as plt

    def w(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    try:
        _atomic_write(Path(path), w, ".png")
    finally:
        plt.close(fig)
    return Path(path)


def int8_curves(artifacts: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Artifact -> the accuracy/latency curve its int8 budget search recorded (sidecar
    `checks.int8_loss.search.curve`: fully int8, the chosen set, float), for the artifacts that have one."""
    out = {}
    for a in dict.fromkeys(artifacts):
        if str(a).startswith("torch:"):
            continue
        side = read_sidecar(a) or {}
        curve = ((((side.get("checks") or {}).get("int8_loss") or {}).get("search") or {}).get("curve")) or []
        if curve:
            out[str(a)] = curve
    return out


def _curve_metric(points: list[dict[str, Any]]) -> tuple[str, str]:
    """The accuracy axis: the user's validation score, else top-1 accuracy on labelled images, else the worst
    output's PSNR against the float model (the measure every budget has)."""
    if all(p.get("score") is not None for p in points):
        return "score", "validation score (the user's function)"
    if all(p.get("top1_accuracy") is not None for p in points):
        return "top1_accuracy", "top-1 accuracy on the labelled check images"
    return "worst_psnr_db", "worst output's PSNR against the float model (dB; float: off the scale, drawn at the top)"


def write_curve_plot(path: str | os.PathLike[str], curves: dict[str, list[dict[str, Any]]]) -> Path | None:
    """Accuracy against latency (ratio to the fully-int8 artifact, measured by the export on its tuning target) for
    each artifact's int8 budget curve, as a PNG (atomically); None when there is none."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    labels = set()
    for art, points in curves.items():
        key, label = _curve_metric(points)
        labels.add(label)
        finite = [p[key] for p in points if p.get(key) is not None]
        top = (max(finite) + 5.0) if finite else 100.0
        xs = [p.get("latency_ratio") for p in points]
        ys = [p[key] if p.get(key) is not None else top for p in points]
        keep = [i for i, x in enumerate(xs) if x is not None]
        lo = [xs[i] - (points[i].get("latency_ratio_min") or xs[i]) for i in keep]
        hi = [(points[i].get("latency_ratio_max") or xs[i]) - xs[i] for i in keep]
        ax.errorbar([xs[i] for i in keep], [ys[i] for i in keep], xerr=[lo, hi], marker="o", capsize=3,
                    label=os.path.basename(art))
        for i in keep:
            p = points[i]
            fl = p.get("float_units") or []
            names = " ".join(fl) if len(fl) <= 3 else f"{len(fl)} units"
            what = {"fully_int8": "fully int8", "float": "float"}.get(p["point"], f"{p['point']}: {names} float")
            mark = "" if p.get("meets_budget") else " (misses the budget)"
            ax.annotate(what + mark, (xs[i], ys[i]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("latency / fully-int8 artifact (median of the export's interleaved rounds; bars: round range)")
    ax.set_ylabel("; ".join(sorted(labels)), fontsize=8)
    ax.set_title("int8 budget search: accuracy against latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path)


def exit_summary(records: Sequence[dict[str, Any]]) -> str | None:
    """One line for the first error row (and how many there were), or None when nothing failed."""
    errors = [r for r in records if r.get("status") == "error"]
    if not errors:
        return None
    first = errors[0]
    name = os.path.basename(str(first["artifact"]))
    where = f"{first.get('target')}: {name} ({_runtime_label(first)}, {first.get('threads')} thread(s))"
    more = f" (+{len(errors) - 1} more error row(s), see the table)" if len(errors) > 1 else ""
    return f"{where}: {first.get('reason')}{more}"


def print_table(records: Sequence[dict[str, Any]], file: Any = None) -> None:
    print(format_table(records), file=file or sys.stdout)
