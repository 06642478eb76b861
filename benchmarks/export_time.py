"""Export time against the converter: our default export (`--form auto`, timing and checks included) over
litert-torch's own conversion of the module as written, whole processes, imports included.

Per model and precision, each round runs both in fresh processes, one after the other, the order alternating by
round (nothing else of ours runs meanwhile):
- converter: build the model, `litert_torch.convert(model, (x,))` (int8: litert-torch's PT2E quantizer, symmetric
  per-channel, calibrated on 32 random images, as its documentation does it), write the file;
- ours: `shufflenet_edge.export(model, out, target="tflite", int8=...)`, defaults otherwise.
Prints and writes the per-round ratio ours / converter (median and range) against the goal (1.5), and what ours
shipped and spent timing the candidates.

    python benchmarks/export_time.py [--models shufflenet_v2_x1_0 yolov5_lite --precisions fp32 int8 --rounds 3]

Zoo names (tests/zoo.py, random weights, their own input sizes) and registry names are both accepted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
GOAL = 1.5


def _model(name: str) -> tuple[Any, Any]:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    import zoo  # noqa: PLC0415

    if name in zoo.ZOO:
        m, shp = zoo.ZOO[name]()
        return m.eval(), torch.randn(*shp, generator=torch.Generator().manual_seed(0))
    from shufflenet_edge.models import build_model

    return build_model(name).eval(), torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _converter(name: str, precision: str, out: str) -> dict[str, Any]:
    import litert_torch
    import torch

    m, x = _model(name)
    kwargs: dict[str, Any] = {}
    if precision == "int8":
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(m, (x,)).module(), quantizer)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for _ in range(32):
                prepared(torch.randn(*x.shape, generator=gen))
        m = convert_pt2e(prepared, fold_quantize=False)
        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
    edge = litert_torch.convert(m, (x,), **kwargs)
    edge.export(out)
    return {}


def _ours(name: str, precision: str, out: str) -> dict[str, Any]:
    import shufflenet_edge as se

    if name.startswith(("shufflenet_v", "mobilenet")):
        art = se.export(name, out, target="tflite", int8=precision == "int8", show_progress=False)
    else:
        m, x = _model(name)
        art = se.export(m, out, target="tflite", example_input=x, name=name, int8=precision == "int8",
                        show_progress=False)
    t = art.get("form_timings") or {}
    return {"shipped": art["form"], "timing_s": t.get("seconds"), "timing_stopped": t.get("stopped"),
            "candidates": sorted(t.get("median_ms") or [])}


def run_once(kind: str, name: str, precision: str, out: Path) -> tuple[float, dict[str, Any]]:
    argv = [sys.executable, __file__, "--child", kind, name, precision, str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{kind} {name} {precision} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    return wall, info


def _flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=4, metavar=("KIND", "MODEL", "PRECISION", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=["shufflenet_v2_x1_0", "yolov5_lite"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "export_time")
    a = ap.parse_args(argv)
    if a.child:
        kind, name, precision, out = a.child
        info = (_converter if kind == "converter" else _ours)(name, precision, out)
        print(json.dumps(info))
        return 0
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for name in a.models:
            for precision in a.precisions:
                walls: dict[str, list[float]] = {"converter": [], "ours": []}
                infos = []
                for r in range(a.rounds):
                    for kind in (["converter", "ours"] if r % 2 == 0 else ["ours", "converter"]):
                        w, info = run_once(kind, name, precision, Path(td) / f"{name}_{precision}_{kind}.tflite")
                        walls[kind].append(w)
                        if kind == "ours":
                            infos.append(info)
                        print(f"{name} {precision} round {r + 1}: {kind} {w:.1f} s {info or ''}", flush=True)
                ratios = [o / c for o, c in zip(walls["ours"], walls["converter"])]
                rows.append({"model": name, "precision": precision, "walls_s": walls,
                             "median_s": {k: float(np.median(v)) for k, v in walls.items()},
                             "ratio": {"per_round": ratios, "median": float(np.median(ratios)), "min": min(ratios),
                                       "max": max(ratios)}, "ours": infos})
    load1 = os.getloadavg()
    data = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "isa_flags": _flags(), "loadavg_start": load0,
            "loadavg_end": load1, "rounds": a.rounds, "goal_ratio": GOAL, "rows": rows}
    lines = [
        "# Export wall time: our default TFLite export over litert-torch's conversion of the module as written", "",
        f"`python benchmarks/export_time.py --models {' '.join(a.models)} --precisions {' '.join(a.precisions)} "
        f"--rounds {a.rounds}` on {data['date']}, {data['cpus']} CPUs (flags read: {', '.join(data['isa_flags']) or '-'}), "
        f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end. Whole processes, imports included, one after "
        "the other, order alternating by round. Ours: `--form auto` with its defaults (candidates converted, timed, "
        "checked); converter: `litert_torch.convert` (int8: its PT2E quantizer, 32 calibration images).", "",
        "| model | precision | converter s (range) | ours s (range) | ours / converter (range) | goal 1.5 | shipped; "
        "timing s |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        w, rt = row["walls_s"], row["ratio"]
        shipped = ", ".join(sorted({i["shipped"] for i in row["ours"]}))
        timing = ", ".join(f"{i['timing_s']:.0f}" for i in row["ours"] if i.get("timing_s") is not None) or "-"
        lines.append(f"| {row['model']} | {row['precision']} | {np.median(w['converter']):.1f} "
                     f"({min(w['converter']):.1f}-{max(w['converter']):.1f}) | {np.median(w['ours']):.1f} "
                     f"({min(w['ours']):.1f}-{max(w['ours']):.1f}) | {rt['median']:.2f} ({rt['min']:.2f}-{rt['max']:.2f}) "
                     f"| {'met' if rt['max'] <= GOAL else 'not met'} | {shipped}; {timing} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(json.dumps(data, indent=2) + "\n")
    Path(f"{a.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
