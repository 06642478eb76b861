#!/usr/bin/env bash
# Every GPU row shufflenet-edge has, on a CUDA machine, in one go (under 8 minutes); writes
# benchmarks/results/gpu.md (and gpu.json beside it).
#
#   benchmarks/gpu_check.sh                # ShuffleNetV2 1.0x, 224x224, batch 1, 200 timed runs per row
#   MODEL=shufflenet_v2_x0_5 RUNS=500 benchmarks/gpu_check.sh
#
# Rows (runtimes/gpu.py GPU_ROWS, and torch_runtime's --dtype): torch CUDA eager fp32 and fp16,
# onnxruntime CUDA and TensorRT (with onnxruntime-gpu), LiteRT's GPU accelerator; the CUDA rows once with
# input and output on the device and once with the host<->device copies timed (--include-transfers).
# A row whose runtime build or device is missing is listed as "not measured" with the runtime's reason.
#
# Where no GPU is reachable the script says so and writes nothing: no gpu.md, no number, exit 0.
# It never prints a GPU figure it did not measure.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
MODEL=${MODEL:-shufflenet_v2_x1_0}
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
OUT=${OUT:-benchmarks/results/gpu.md}
BUDGET=${BUDGET:-470}   # seconds; the whole script stays under 8 minutes
START=$SECONDS

left() { echo $((BUDGET - (SECONDS - START))); }
say() { echo "gpu_check: $*" >&2; }

# 1. Is there a GPU at all? (device nodes and driver library; no model is loaded for this)
probe=$("$PY" - <<'PYEOF'
import json
from shufflenet_edge.runtimes import gpu
d = gpu.detect()
print(json.dumps(d))
PYEOF
)
nvidia=$(printf '%s' "$probe" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["devices"]["nvidia"]))')
render=$(printf '%s' "$probe" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["devices"]["dri_render"]))')
if [ "$nvidia" = 0 ] && [ "$render" = 0 ]; then
    why=$(printf '%s' "$probe" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["no_gpu_reason"])')
    say "no GPU reachable here: $why."
    say "nothing was measured; $OUT was not written (and no GPU number is reported)."
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L >&2 || true
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 2. The artifacts the GPU rows run (fp32: what GPU delegates and CUDA providers take).
export_one() {  # target out
    local t=$1 out=$2 limit
    limit=$(( $(left) / 3 ))
    if [ "$limit" -lt 30 ]; then say "no time left to export $out"; return 1; fi
    timeout "$limit" "$PY" -m shufflenet_edge export --model "$MODEL" --target "$t" --out "$out" --quiet >&2 \
        || { say "export --target $t failed or ran past ${limit} s: its rows are not measured"; return 1; }
}
arts=()
export_one onnx "$WORK/${MODEL}_fp32.onnx" && arts+=("$WORK/${MODEL}_fp32.onnx")
export_one tflite "$WORK/${MODEL}_fp32.tflite" && arts+=("$WORK/${MODEL}_fp32.tflite")
arts+=("torch:${MODEL}")

# 3. Every GPU row through bench (each row in its own child process; absent ones say why).
bench() {  # json [extra args]
    local json=$1; shift
    local limit
    limit=$(left)
    if [ "$limit" -lt 20 ]; then say "time budget spent before $json"; return 0; fi
    timeout "$limit" "$PY" -m shufflenet_edge bench "${arts[@]}" --provider cuda --provider tensorrt --provider gpu \
        --runs "$RUNS" --warmup "$WARMUP" --timeout "$limit" --json "$json" --no-plot "$@" >&2 || true
}
bench "$WORK/device.json"
bench "$WORK/transfers.json" --include-transfers

# 4. torch CUDA eager fp16 (the bench CLI runs fp32; the runner takes --dtype fp16).
if [ "$(left)" -gt 20 ]; then
    timeout "$(left)" "$PY" -m shufflenet_edge.runtimes.torch_runtime "torch:${MODEL}" --device cuda --dtype fp16 \
        --runs "$RUNS" --warmup "$WARMUP" > "$WORK/fp16.out" 2>/dev/null || true
fi

# 5. The report: measured rows only; everything else is listed with its reason. No measured row, no file.
"$PY" - "$WORK" "$OUT" "$MODEL" "$RUNS" "$WARMUP" "$probe" <<'PYEOF'
import json, os, sys, datetime as dt
from pathlib import Path
from shufflenet_edge.runtimes.local import parse_runner_output
from shufflenet_edge.runtimes.results import latency_stats, read_json

work, out, model, runs, warmup, probe = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:6], json.loads(sys.argv[6])
GPU = {("onnxruntime", "cuda"), ("onnxruntime", "tensorrt"), ("litert", "gpu"), ("torch", "cuda")}
rows, missing = [], []
for name, transfers in (("device.json", False), ("transfers.json", True)):
    p = work / name
    if not p.is_file():
        continue
    for r in read_json(p):
        if (r["runtime"], r.get("provider")) not in GPU:
            continue
        label = f"{r['runtime']}/{r['provider']}" + (" fp32" if r["runtime"] == "torch" else "")
        art = os.path.basename(str(r["artifact"]))
        if r["status"] == "ok":
            rows.append({"row": label, "artifact": art, "transfers": transfers, "lat": r["latency_ms"],
                         "init": r.get("init_ms"), "version": r.get("runtime_version")})
        else:
            missing.append(f"{label} ({art}{', transfers timed' if transfers else ''}): {r['status']}: {r.get('reason')}")
fp16 = work / "fp16.out"
res = parse_runner_output(fp16.read_text()) if fp16.is_file() else None
if res and res.get("status") == "ok":
    rows.append({"row": "torch/cuda fp16", "artifact": f"torch:{model}", "transfers": False,
                 "lat": latency_stats(res["times_ms"]), "init": res.get("init_ms"), "version": res.get("runtime_version")})
else:
    missing.append(f"torch/cuda fp16: {(res or {}).get('status', 'error')}: {(res or {}).get('reason') or 'did not run'}")
if not rows:
    print("gpu_check: a GPU device is present but no GPU row could run here:", file=sys.stderr)
    for m in missing:
        print(f"  - {m}", file=sys.stderr)
    print(f"gpu_check: nothing was measured; {out} was not written.", file=sys.stderr)
    sys.exit(1)
dev = probe["devices"]
gpu_name = dev.get("nvidia_smi") or ", ".join(dev["nvidia"] + dev["dri_render"])
lines = [f"## GPU rows: {model}, 224x224, batch 1 (benchmarks/gpu_check.sh)", "",
         f"Measured {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} on {gpu_name}; "
         f"torch {probe.get('torch')}, {probe.get('onnxruntime_dist')} (providers: "
         f"{', '.join(probe.get('onnxruntime_providers') or []) or '-'}), ai-edge-litert {probe.get('ai_edge_litert')}. "
         f"{runs} timed runs after {warmup} warm-up runs per row; each run waits for the device.", "",
         "| row | artifact | host<->device copies | median ms | p90 ms | p99 ms | min ms | init ms | version |",
         "|---|---|---|---:|---:|---:|---:|---:|---|"]
for r in rows:
    lat = r["lat"]
    init = "-" if r["init"] is None else f"{float(r['init']):.0f}"
    lines.append(f"| {r['row']} | {r['artifact']} | {'timed' if r['transfers'] else 'excluded'} | {lat['median']:.3f} | "
                 f"{lat['p90']:.3f} | {lat['p99']:.3f} | {lat['min']:.3f} | {init} | {r['version']} |")
if missing:
    lines += ["", "Not measured (the runtime's own reason):", ""] + [f"- {m}" for m in missing]
lines.append("")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("\n".join(lines))
out.with_suffix(".json").write_text(json.dumps({"model": model, "runs": int(runs), "warmup": int(warmup), "gpu": probe,
                                                 "rows": rows, "not_measured": missing}, indent=1, default=str) + "\n")
print("\n".join(lines))
print(f"gpu_check: wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)
PYEOF
say "done in $((SECONDS - START)) s"
