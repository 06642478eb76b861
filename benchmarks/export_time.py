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
    """Wall seconds of one fresh process and what it reported; {"error": last line} when it failed (a converter that
    refuses the model is a row of the table, not the end of the run)."""
    argv = [sys.executable, __file__, "--child", kind, name, precision, str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return wall, {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return wall, json.loads(r.stdout.strip().splitlines()[-1])


def _flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]


def _failure(text: str) -> str:
    """The converter's own words, without the file path before them."""
    return "failed: " + (text.split("error: ", 1)[-1] if "error: " in text else text)[:110]


def render(data: dict[str, Any]) -> list[str]:
    load0, load1 = data["loadavg_start"], data["loadavg_end"]
    lines = [
        "# Export wall time: our default TFLite export over litert-torch's conversion of the module as written", "",
        f"`{data['command']}` on {data['date']}, {data['cpus']} CPUs (flags read: "
        f"{', '.join(data['isa_flags']) or '-'}), load average {load0[0]:.2f} at start, {load1[0]:.2f} at end. Whole "
        "processes, imports included, one after the other, order alternating by round. Ours: `export --target tflite "
        "[--int8]` with its defaults (`--form auto`: candidates converted, timed, checked); converter: "
        "`litert_torch.convert` of the module as written (int8: its PT2E quantizer, 32 calibration images). Registry "
        "models at 224x224, zoo models (tests/zoo.py, random weights) at their test sizes (64x64).", "",
        "| model | precision | converter s (range) | ours s (range) | ours / converter (range) | goal 1.5 | shipped; "
        "timing s |", "|---|---|---|---|---|---|---|"]

    def walls(row: dict[str, Any], kind: str) -> str:
        w = row["walls_s"][kind]
        return f"{np.median(w):.1f} ({min(w):.1f}-{max(w):.1f})" if w else _failure(row["errors"][kind])

    for row in data["rows"]:
        rt = row["ratio"]
        shipped = ", ".join(sorted({i["shipped"] for i in row["ours"]})) or "-"
        timing = ", ".join(f"{i['timing_s']:.0f}" for i in row["ours"] if i.get("timing_s") is not None) or "-"
        ratio = f"{rt['median']:.2f} ({rt['min']:.2f}-{rt['max']:.2f})" if rt else "-"
        goal = ("met" if rt["max"] <= GOAL else "not met") if rt else "-"
        lines.append(f"| {row['model']} | {row['precision']} | {walls(row, 'converter')} | {walls(row, 'ours')} | "
                     f"{ratio} | {goal} | {shipped}; {timing} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=4, metavar=("KIND", "MODEL", "PRECISION", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=["shufflenet_v2_x1_0", "yolov5_lite"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "export_time")
    ap.add_argument("--render", action="store_true", help="rewrite OUT.md from OUT.json (no measuring)")
    a = ap.parse_args(argv)
    if a.render:
        if not Path(f"{a.out}.json").is_file():
            ap.error(f"--render: {a.out}.json not found (run the benchmark first, or give --out of an earlier run)")
        Path(f"{a.out}.md").write_text("\n".join(render(json.loads(Path(f"{a.out}.json").read_text()))) + "\n")
        return 0
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
                infos, errors = [], {}
                for r in range(a.rounds):
                    for kind in (["converter", "ours"] if r % 2 == 0 else ["ours", "converter"]):
                        if kind in errors:
                            continue
                        w, info = run_once(kind, name, precision, Path(td) / f"{name}_{precision}_{kind}.tflite")
                        print(f"{name} {precision} round {r + 1}: {kind} {w:.1f} s {info or ''}", flush=True)
                        if "error" in info:
                            errors[kind] = info["error"]
                            continue
                        walls[kind].append(w)
                        if kind == "ours":
                            infos.append(info)
                ratios = [o / c for o, c in zip(walls["ours"], walls["converter"])]
                rows.append({"model": name, "precision": precision, "walls_s": walls, "errors": errors,
                             "median_s": {k: float(np.median(v)) for k, v in walls.items() if v},
                             "ratio": {"per_round": ratios, "median": float(np.median(ratios)), "min": min(ratios),
                                       "max": max(ratios)} if ratios else None, "ours": infos})
    load1 = os.getloadavg()
    data = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "isa_flags": _flags(), "loadavg_start": load0,
            "loadavg_end": load1, "rounds": a.rounds, "goal_ratio": GOAL, "rows": rows,
            "command": f"python benchmarks/export_time.py --models {' '.join(a.models)} --precisions "
                       f"{' '.join(a.precisions)} --rounds {a.rounds}"}
    lines = render(data)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(json.dumps(data, indent=2) + "\n")
    Path(f"{a.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
