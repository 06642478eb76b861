"""Per-op profiles: onnxruntime traces, LiteRT op counts and TFLite `benchmark_model --enable_op_profiling`
output, brought to one shape, with the share of data-movement ops ("what the shuffle costs here").

Sources:
- onnxruntime session profiling: the runner (runtimes/runner.py, `--bench --profile`) turns on
  `SessionOptions.enable_profiling`, runs the model and reduces the JSON trace to per-node times per run
  (`runner.summarize_ort_trace`); `profile_from_runner` groups them by op type. Local and over SSH alike.
- LiteRT's Python interpreter has no per-op timing (`runner.LITERT_NO_OP_TIMING`): its profile counts ops
  by type and says so; nothing is timed or estimated.
- TFLite's `benchmark_model --enable_op_profiling=true` text (adb target, or a file users paste from a
  phone): `parse_benchmark_model_profile` reads every variant we know of (see tests/fixtures/profiles/):
  space-aligned and tab-separated tables, with and without the `[start]` column, the CSV mode
  (`--op_profiling_output_mode=csv`), `INFO:` / logcat / `native :` line prefixes, an `Initialization`
  block before the regular runs (newer builds), `Run Order`, `Top by Computation Time`, `Top by Memory Use`
  and `Summary by node type` tables, node types with spaces and commas (XNNPACK's per-operator
  `Delegate/Convolution (NHWC, QU8) GEMM:3` rows), opaque delegate rows (`TfLiteXNNPackDelegate`,
  `DELEGATE`, `TfLiteNnapiDelegate`, `TfLiteGpuDelegateV2`), names wrapped onto a second line by a
  terminal, and outputs cut short.

Data movement. The headline share uses docs/design.md's list: TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V,
GATHER, PACK, UNPACK (ONNX: Transpose, Slice, Split, Gather; XNNPACK: Transpose, Slice, Even Split). These
are the ops the channel shuffle adds and the fold changes. CONCATENATION and RESHAPE are left out of it on
purpose: the concat is the unit's own output in every form (the fold keeps one per unit), and a reshape is
usually a free view. They are reported beside it as the wider share, together with the layout copies a
runtime inserts around the shuffle (onnxruntime's NCHWc `ReorderInput` / `ReorderOutput`, XNNPACK `Copy`,
SQUEEZE, EXPAND_DIMS, Flatten, Identity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

# --------------------------------------------------------------------------------------- op categories

DATA_MOVEMENT = frozenset({
    "TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "GATHER_ND", "GATHERND",
    "GATHERELEMENTS", "PACK", "UNPACK",
    # XNNPACK operator names inside Delegate/... rows
    "EVEN_SPLIT", "EVEN_SPLIT2", "EVEN_SPLIT3", "EVEN_SPLIT4", "STATIC_SLICE", "STATIC_TRANSPOSE",
})
LAYOUT_COPY = frozenset({
    "CONCATENATION", "CONCAT", "CONCATENATE", "RESHAPE", "SQUEEZE", "UNSQUEEZE", "EXPAND_DIMS", "FLATTEN",
    "IDENTITY", "COPY", "REORDERINPUT", "REORDEROUTPUT", "STATIC_RESHAPE", "STATIC_EXPAND_DIMS",
    "CONCATENATE2", "CONCATENATE3", "CONCATENATE4",
})
OPAQUE_DELEGATES = frozenset({
    "DELEGATE", "TFLITEXNNPACKDELEGATE", "TFLITENNAPIDELEGATE", "TFLITEGPUDELEGATEV2", "TFLITEGPUDELEGATE",
    "TFLITEHEXAGONDELEGATE", "TFLITECOREMLDELEGATE", "TFLITEMETALDELEGATE", "TFLITEFLEXDELEGATE",
})
CATEGORY_LABELS = {"data_movement": "data movement", "layout_copy": "concat/reshape/copy",
                   "delegate": "delegate (opaque)", "compute": "compute"}
DATA_MOVEMENT_LABEL = "TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, GATHER, PACK, UNPACK"


def _op_key(node_type: str) -> str:
    """`Convolution (NHWC, QU8) GEMM` -> `CONVOLUTION`; `Even Split2 (ND, X32)` -> `EVEN_SPLIT2`; `Split` -> `SPLIT`."""
    base = re.sub(r"\s*\(.*$", "", node_type.strip())
    return re.sub(r"[\s\-]+", "_", base).upper()


def op_category(node_type: str) -> str:
    """data_movement | layout_copy | delegate | compute (see the module docstring for the lists)."""
    k = _op_key(node_type)
    if k in DATA_MOVEMENT:
        return "data_movement"
    if k in LAYOUT_COPY:
        return "layout_copy"
    if k.replace("_", "") in OPAQUE_DELEGATES:
        return "delegate"
    return "compute"


# --------------------------------------------------------------------------- benchmark_model's tables

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# Log prefixes in front of benchmark_model lines: logcat (`05-30 15:16:44.857  3380  3380 I tflite  : `),
# TF's Android `native : stat_summarizer.cc:85 `, absl/TFLITE_LOG `INFO: `, and a Markdown quote `> `.
_PREFIXES = (
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s?"),
    re.compile(r"^native\s*:\s*\S+:\d+\s?"),
    re.compile(r"^(?:INFO|WARNING|ERROR|VERBOSE|DEBUG):\s?"),
    re.compile(r"^>\s?"),
)
_TABLE_RE = re.compile(r"^=+\s*(Run Order|Top by Computation Time|Top by Memory Use|Summary by node type)\s*=+\s*$")
_TABLE_KEYS = {"Run Order": "run_order", "Top by Computation Time": "top_by_time",
               "Top by Memory Use": "top_by_memory", "Summary by node type": "summary_by_node_type"}
_COLUMN_KEYS = {"node type": "node_type", "start": "start_ms", "first": "first_ms", "avg ms": "avg_ms",
                "avg_ms": "avg_ms", "%": "percent", "avg %": "percent", "cdf%": "cdf_percent",
                "cdf %": "cdf_percent", "mem kb": "mem_kb", "times called": "times_called", "name": "name",
                "count": "count"}
_INT_COLUMNS = {"count", "times_called"}


def _strip_prefix(line: str) -> tuple[str, str | None]:
    kind = None
    for i, rx in enumerate(_PREFIXES):
        m = rx.match(line)
        if m:
            kind = kind or ("logcat", "native", "level", "quote")[i]
            line = line[m.end():]
    return line, kind


def _columns_from_header(line: str) -> list[str] | None:
    """`[node type] [start] [first] ... [Name]` (any spacing) or the CSV header -> column keys, or None."""
    s = line.strip()
    if s.lower().startswith("node type,"):
        names = [c.strip().lower() for c in s.split(",")]
    elif "[node type]" in s.lower():
        names = [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", s)]
    else:
        return None
    keys = [_COLUMN_KEYS.get(n) for n in names]
    if not keys or keys[0] != "node_type" or any(k is None for k in keys):
        return None
    return [k for k in keys if k is not None]


def _value(key: str, text: str) -> Any:
    t = text.strip().rstrip("%").strip()
    if key in ("node_type", "name"):
        return text.strip()
    try:
        v = float(t)
    except ValueError:
        return None
    if not math.isfinite(v):
        return None
    return int(v) if key in _INT_COLUMNS and v == int(v) else v


def _parse_row(line: str, cols: list[str], csv: bool) -> dict[str, Any] | None:
    """One table row, by the header's columns. Tab-separated rows split on tabs (node types keep their
    spaces); space-aligned rows are matched from the numbers, the node type being what precedes them."""
    numeric = [c for c in cols if c not in ("node_type", "name")]
    has_name = cols[-1] == "name"
    fields: list[str] | None = None
    if csv:
        # Numbers are counted from the right: XNNPACK node types have commas ("Convolution (NHWC, F32) GEMM"),
        # names do not (the CSV mode turns their commas into tabs).
        parts = line.split(",")
        k = len(numeric) + (1 if has_name else 0)
        if len(parts) > k:
            tail = [x.strip() for x in parts[len(parts) - k:]]
            fields = [",".join(parts[: len(parts) - k]).strip(), *tail]
    elif "\t" in line:
        parts = [p.strip() for p in line.split("\t")]
        while parts and parts[0] == "":
            parts.pop(0)
        if len(parts) >= len(cols) - (1 if has_name else 0):
            if has_name:
                fields = parts[: len(cols) - 1] + ["\t".join(parts[len(cols) - 1:]).strip()]
            else:
                fields = parts[: len(cols)]
    if fields is None:
        rx = r"^\s*(.+?)" + "".join(rf"\s+({_NUM})%?" for _ in numeric) + (r"(?:\s+(.*?))?\s*$" if has_name else r"\s*$")
        m = re.match(rx, line)
        if not m:
            return None
        fields = [m[1], *[m[i + 2] for i in range(len(numeric))]] + ([m[len(numeric) + 2] or ""] if has_name else [])
    if len(fields) < len(cols):
        fields += [""] * (len(cols) - len(fields))
    row = {k: _value(k, v) for k, v in zip(cols, fields)}
    if not row.get("node_type") or any(row.get(c) is None for c in numeric):
        return None
    if "name" not in row:
        row["name"] = None
    return row


def _kv(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", text)}


def parse_benchmark_model_profile(text: str) -> dict[str, Any]:
    """Every op-profiling table in a benchmark_model output, in blocks.

    Returns {"blocks": [{"kind": "initialization" | "regular", "tables": {run_order, top_by_time,
    top_by_memory, summary_by_node_type: [rows]}, "nodes_executed", "timings_us", "nodes_observed",
    "complete"}], "format": {start_column, tab_separated, csv, prefix, initialization_block, delegate_rows,
    opaque_delegates}}. Rows carry the columns the header names: node_type, start_ms, first_ms, avg_ms,
    percent, cdf_percent, mem_kb, times_called, name (run order / top) or node_type, count, avg_ms, percent,
    cdf_percent, mem_kb, times_called (summary). Text that is not a table is ignored."""
    blocks: list[dict[str, Any]] = []
    fmt: dict[str, Any] = {"start_column": None, "tab_separated": False, "csv": False, "prefix": None,
                           "initialization_block": False, "delegate_rows": False, "opaque_delegates": []}
    block: dict[str, Any] | None = None
    table: str | None = None
    cols: list[str] | None = None

    pending_nodes: list[int] = []  # "Number of nodes executed" seen before any table (a paste that starts there)

    def new_block(kind: str) -> dict[str, Any]:
        b = {"kind": kind, "tables": {}, "nodes_executed": pending_nodes.pop() if pending_nodes else None,
             "timings_us": None, "nodes_observed": None, "complete": False}
        blocks.append(b)
        return b

    for raw in text.splitlines():
        if raw.startswith("#"):
            continue  # a comment (our fixtures' source line; benchmark_model's "#threads used ..." is no table)
        line, prefix = _strip_prefix(raw.rstrip("\r\n"))
        if prefix and prefix != "quote" and fmt["prefix"] is None and line.strip():
            fmt["prefix"] = prefix
        s = line.strip()
        low = s.lower()
        if "profiling info for benchmark initialization" in low:
            block, table, cols = new_block("initialization"), None, None
            fmt["initialization_block"] = True
            continue
        if "profiling info for regular benchmark runs" in low:
            block, table, cols = new_block("regular"), None, None
            continue
        m = _TABLE_RE.match(s)
        if m:
            key = _TABLE_KEYS[m[1]]
            if block is None or key in block["tables"]:
                block = new_block(block["kind"] if block else "regular")
            table, cols = key, None
            block["tables"][key] = []
            continue
        if table is None and cols is None:
            # A table pasted without its title line: its column header says which kind it is.
            hdr = _columns_from_header(line)
            if hdr is not None:
                key = "summary_by_node_type" if "count" in hdr else "run_order"
                if block is None or key in block["tables"]:
                    block = new_block(block["kind"] if block else "regular")
                table = key
                block["tables"][key] = []
        if low.startswith("number of nodes executed:"):
            n = re.search(r"(\d+)", s)
            if block is None:
                pending_nodes[:] = [int(n[1])] if n else []
                continue
            block["nodes_executed"] = int(n[1]) if n else None
            table, cols = None, None
            continue
        if block is None:
            continue
        if low.startswith("timings (microseconds):"):
            block["timings_us"] = _kv(s)
            table, cols = None, None
            continue
        m2 = re.match(r"^(\d+) nodes observed", s)
        if m2:
            block["nodes_observed"] = int(m2[1])
            block["complete"] = True
            table, cols = None, None
            continue
        if table is None:
            continue
        if not s:
            if cols is not None:
                table, cols = None, None  # a blank line ends a table
            continue
        if cols is None:
            if s.lower() == "[node":
                continue  # a header wrapped by the paste: "[node" / " type]  [start] ..."
            if re.match(r"^type\]", s):
                line = "[node " + s
            cols = _columns_from_header(line)
            if cols is not None:
                fmt["csv"] = fmt["csv"] or s.lower().startswith("node type,")
                if table != "summary_by_node_type":
                    fmt["start_column"] = "start_ms" in cols
                fmt["tab_separated"] = fmt["tab_separated"] or "\t" in line
            continue
        row = _parse_row(line, cols, fmt["csv"] and not s.startswith("["))
        if row is None:
            continue  # a name wrapped onto its own line by a terminal, or a line cut short
        block["tables"][table].append(row)
        if str(row.get("name") or "").startswith("Delegate/"):
            fmt["delegate_rows"] = True
        if op_category(str(row["node_type"])) == "delegate" and row["node_type"] not in fmt["opaque_delegates"]:
            if block["kind"] == "regular":
                fmt["opaque_delegates"].append(row["node_type"])
    return {"blocks": blocks, "format": fmt}


# ------------------------------------------------------------------------------- one profile shape


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def _share(rows: Sequence[dict[str, Any]], category: str | Iterable[str], total_ms: float | None) -> dict[str, Any]:
    cats = {category} if isinstance(category, str) else set(category)
    mine = [r for r in rows if r["category"] in cats]
    ms = [r["avg_ms"] for r in mine if r["avg_ms"] is not None]
    avg = sum(ms) if ms and len(ms) == len(mine) else (None if mine and not ms else 0.0)
    pct = None
    if avg is not None and total_ms:
        pct = round(100.0 * avg / total_ms, 2)
    return {"node_types": [r["node_type"] for r in mine], "count": sum(int(r["count"] or 0) for r in mine),
            "avg_ms": _round(avg), "percent": pct}


def _finish(profile: dict[str, Any], summary: list[dict[str, Any]]) -> dict[str, Any]:
    """Categories, totals, percents (when the source gave none) and the data-movement shares."""
    for r in summary:
        r["category"] = op_category(r["node_type"])
    timed = [r["avg_ms"] for r in summary if r["avg_ms"] is not None]
    total = sum(timed) if timed and len(timed) == len(summary) else None
    for r in summary:
        if r.get("percent") is None and total and r["avg_ms"] is not None:
            r["percent"] = round(100.0 * r["avg_ms"] / total, 3)
    summary.sort(key=lambda r: (-(r["avg_ms"] or 0.0), -(r["count"] or 0), r["node_type"]))
    profile["summary_by_node_type"] = summary
    profile["total_ms"] = _round(total)
    profile["data_movement"] = _share(summary, "data_movement", total)
    profile["data_movement_wide"] = _share(summary, ("data_movement", "layout_copy"), total)
    opaque = [r for r in summary if r["category"] == "delegate"]
    profile["delegate_opaque"] = _share(summary, "delegate", total) if opaque else None
    if opaque:
        profile["notes"].append(
            f"{', '.join(r['node_type'] for r in opaque)} run ops inside one opaque row each "
            f"({profile['delegate_opaque']['percent']}% of the time): the data movement inside them is not "
            "visible; XNNPACK shows its ops as Delegate/... rows from TFLite 2.9.1 on")
    return profile


def _summary_from_ops(ops: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-op-type rows (node_type, count, avg_ms per run, percent = sum of the ops' printed shares)."""
    by: dict[str, dict[str, Any]] = {}
    for r in ops:
        t = str(r["node_type"])
        d = by.setdefault(t, {"node_type": t, "count": 0, "avg_ms": 0.0, "percent": 0.0})
        d["count"] += 1
        calls = r.get("times_called") or 1
        if r.get("avg_ms") is None or d["avg_ms"] is None:
            d["avg_ms"] = None
        else:
            d["avg_ms"] += float(r["avg_ms"]) * float(calls)
        if r.get("percent") is None or d["percent"] is None:
            d["percent"] = None
        else:
            d["percent"] += float(r["percent"])
    for d in by.values():
        d["avg_ms"] = _round(d["avg_ms"], 6)
        d["percent"] = _round(d["percent"], 3)
    return list(by.values())


def _top(ops: Sequence[dict[str, Any]], n: int, total: float | None) -> list[dict[str, Any]]:
    timed = [r for r in ops if r.get("avg_ms") is not None]
    timed = sorted(timed, key=lambda r: -float(r["avg_ms"]) * float(r.get("times_called") or 1))
    out = []
    for r in timed[:n]:
        per_run = float(r["avg_ms"]) * float(r.get("times_called") or 1)
        pct = r.get("percent")
        if pct is None and total:
            pct = 100.0 * per_run / total
        out.append({"name": r.get("name"), "node_type": r["node_type"], "avg_ms": _round(r["avg_ms"], 6),
                    "times_called": r.get("times_called"), "percent": _round(pct, 3),
                    "category": op_category(str(r["node_type"]))})
    return out


def profile_from_benchmark_model(text: str, top: int = 10) -> dict[str, Any]:
    """The regular-run profile of a benchmark_model output (the last regular block that has tables), with
    the initialization block summarised. Raises ValueError when the text has no op-profiling table."""
    parsed = parse_benchmark_model_profile(text)
    regular = [b for b in parsed["blocks"] if b["kind"] == "regular" and any(b["tables"].values())]
    if not regular:
        if parsed["format"]["initialization_block"]:
            raise ValueError("only the initialization profile is in this output, no regular-run table: was "
                             "it cut before \"Operator-wise Profiling Info for Regular Benchmark Runs\"?")
        raise ValueError("no op-profiling table in this output (look for \"Run Order\" / \"Summary by node "
                         "type\"; run benchmark_model with --enable_op_profiling=true)")
    b = regular[-1]
    t = b["tables"]
    notes: list[str] = []
    ops = t.get("run_order") or []
    if t.get("summary_by_node_type"):
        summary = [{"node_type": r["node_type"], "count": r.get("count"), "avg_ms": r.get("avg_ms"),
                    "percent": r.get("percent")} for r in t["summary_by_node_type"]]
        source = "printed"
    elif ops:
        summary = _summary_from_ops(ops)
        source = "derived from Run Order"
    elif t.get("top_by_time"):
        summary = _summary_from_ops(t["top_by_time"])
        source = "derived from Top by Computation Time (only the top ops: partial)"
    else:
        summary, source = [], "none"
    complete = bool(b["complete"] or b["timings_us"] or b["nodes_executed"])
    if not complete:
        notes.append("the output ends before the profile's summary lines: the tables may be cut short")
    if len(regular) > 1:
        notes.append(f"{len(regular)} regular-run profiles in this output; the last one is used")
    prof: dict[str, Any] = {"source": "benchmark_model", "timing": True, "summary_source": source, "notes": notes}
    _finish(prof, summary)
    run_ms, kind = None, None
    if b["timings_us"] and b["timings_us"].get("avg") is not None:
        run_ms, kind = b["timings_us"]["avg"] / 1000.0, "mean"
    elif b["timings_us"] and b["timings_us"].get("curr") is not None:
        run_ms, kind = b["timings_us"]["curr"] / 1000.0, "last run"
    prof["run_ms"] = _round(run_ms)
    prof["run_ms_kind"] = kind
    prof["run_mean_ms"] = prof["run_ms"] if kind == "mean" else None
    prof["top_ops"] = ([{"name": r.get("name"), "node_type": r["node_type"], "avg_ms": r.get("avg_ms"),
                         "times_called": r.get("times_called"), "percent": r.get("percent"),
                         "category": op_category(str(r["node_type"]))} for r in t["top_by_time"][:top]]
                       if t.get("top_by_time") else _top(ops, top, prof["total_ms"]))
    prof["nodes"] = len(ops) or b["nodes_executed"]
    init = [x for x in parsed["blocks"] if x["kind"] == "initialization" and x["tables"].get("run_order")]
    prof["initialization"] = None
    if init:
        rows = init[-1]["tables"]["run_order"]
        prof["initialization"] = {"rows": [{"node_type": r["node_type"], "avg_ms": r.get("avg_ms"),
                                            "times_called": r.get("times_called")} for r in rows],
                                  "total_ms": _round(sum(float(r.get("avg_ms") or 0) * float(r.get("times_called") or 1)
                                                         for r in rows))}
    prof["format"] = parsed["format"]
    return prof


def profile_from_runner(op: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """The shape above from the runner's `op_profile` (onnxruntime trace summary, or LiteRT op counts)."""
    notes = [op["note"]] if op.get("note") else []
    prof: dict[str, Any] = {"source": op.get("source"), "timing": bool(op.get("timing")),
                            "reason": op.get("reason"), "notes": notes}
    nodes = [{"name": n.get("name"), "node_type": n.get("op_type"), "avg_ms": n.get("avg_ms"),
              "times_called": n.get("times_called"), "percent": None} for n in op.get("nodes") or []]
    if not nodes:
        prof.update(summary_by_node_type=[], total_ms=None, data_movement=None, data_movement_wide=None,
                    delegate_opaque=None, top_ops=[], run_ms=None, nodes=0, summary_source="none")
        return prof
    summary = _summary_from_ops(nodes)
    for r in summary:
        r["percent"] = None
    _finish(prof, summary)
    prof["summary_source"] = f"{op.get('source')} trace" if prof["timing"] else f"{op.get('source')} op list (counts only)"
    runs = [float(x) for x in op.get("run_ms") or []]
    prof["run_ms"] = _round(sorted(runs)[len(runs) // 2]) if runs else None
    prof["run_ms_kind"] = "median" if runs else None
    # The per-op times are means over the same runs: the whole run's mean is the figure to set beside their sum.
    prof["run_mean_ms"] = _round(sum(runs) / len(runs)) if runs else None
    prof["runs"] = op.get("runs")
    prof["top_ops"] = _top(nodes, top, prof["total_ms"]) if prof["timing"] else []
    prof["nodes"] = len(nodes)
    for k in ("runtime_version", "provider", "threads"):
        if op.get(k) is not None:
            prof[k] = op[k]
    return prof


# ----------------------------------------------------------------------------------------- the table


def _ms(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f}"


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else name[: n - 3] + "..."


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}%"


def format_profile(prof: dict[str, Any], title: str | None = None, max_rows: int = 25) -> str:
    """A per-op table: node type, count, ms per run, share, kind; then the data-movement lines and the
    top ops. A profile without times says so and lists counts only."""
    out: list[str] = []
    src = prof.get("source") or "?"
    how = prof.get("summary_source")
    out.append(f"per-op profile{': ' + title if title else ''} ({src}" + (f"; {how}" if how and how != "none" else "") + ")")
    rows = prof.get("summary_by_node_type") or []
    if not rows:
        out.append(f"  no per-op data: {prof.get('reason') or 'the source gave none'}")
        return "\n".join(out)
    if not prof.get("timing") and prof.get("reason"):
        out.append(f"  counts only, no times: {prof['reason']}")
    w = max(12, *(len(str(r["node_type"])) for r in rows[:max_rows]))
    out.append(f"  {'node type'.ljust(w)}  {'count':>5}  {'ms/run':>8}  {'share':>6}  kind")
    for r in rows[:max_rows]:
        out.append(f"  {str(r['node_type']).ljust(w)}  {str(r['count'] if r['count'] is not None else '-'):>5}  "
                   f"{_ms(r['avg_ms']):>8}  {_pct(r['percent']):>6}  {CATEGORY_LABELS[r['category']]}")
    if len(rows) > max_rows:
        out.append(f"  ... {len(rows) - max_rows} more node types (see the JSON)")
    total = prof.get("total_ms")
    run = prof.get("run_ms")
    if total is not None:
        # Like with like: the sum of per-op means beside the whole run's mean; a median (onnxruntime traces) or a
        # single run is labelled as such, never set beside the sum as if the two added up.
        mean, kind = prof.get("run_mean_ms"), prof.get("run_ms_kind")
        whole = []
        if mean is not None:
            whole.append(f"mean {mean:.3f} ms")
        if run is not None and kind not in (None, "mean"):
            whole.append(f"{kind} {run:.3f} ms")
        elif run is not None and kind is None and mean is None:
            whole.append(f"{run:.3f} ms")
        out.append(f"  sum of per-op mean times {total:.3f} ms/run" + (f"; whole run: {', '.join(whole)}" if whole else ""))
    dm, wide = prof.get("data_movement"), prof.get("data_movement_wide")
    if dm is not None:
        out.append(f"  data movement ({DATA_MOVEMENT_LABEL}): {dm['count']} ops, {_ms(dm['avg_ms'])} ms/run, "
                   f"{_pct(dm['percent'])} of op time  <- what the shuffle costs here")
    if wide is not None:
        out.append(f"  with concat/reshape/layout copies: {wide['count']} ops, {_ms(wide['avg_ms'])} ms/run, "
                   f"{_pct(wide['percent'])}")
    opaque = prof.get("delegate_opaque")
    if opaque and opaque.get("percent"):
        out.append(f"  ({_pct(opaque['percent'])} of the time is inside opaque delegate rows, "
                   f"{', '.join(opaque['node_types'])}: the shares above do not see into them)")
    top = prof.get("top_ops") or []
    if top:
        out.append("  top ops: " + "; ".join(
            f"{_short(t.get('name') or t['node_type'])} ({t['node_type']}) {_ms(t['avg_ms'])} ms"
            + (f" x{t['times_called']:g}" if isinstance(t.get("times_called"), (int, float)) and t['times_called'] not in (0, 1) else "")
            for t in top[:5]))
    init = prof.get("initialization")
    if init:
        out.append("  initialization: " + ", ".join(f"{r['node_type']} {_ms(r['avg_ms'])} ms" for r in init["rows"]))
    for n in prof.get("notes") or []:
        out.append(f"  note: {n}")
    return "\n".join(out)


def report_json(prof: dict[str, Any], source_file: str | None = None) -> dict[str, Any]:
    """What `profile-report --json` writes: the regular-run summary by node type as rows (node_type, count,
    avg_ms, percent, category), the top ops, the data-movement shares, the initialization block, the format."""
    return {"schema": "shufflenet-edge/op-profile/1", "source_file": source_file, **{
        k: prof.get(k) for k in ("source", "timing", "reason", "summary_source", "summary_by_node_type", "top_ops",
                                 "total_ms", "run_ms", "run_ms_kind", "run_mean_ms", "nodes", "data_movement", "data_movement_wide",
                                 "delegate_opaque", "initialization", "format", "notes")}}
