"""int8 within a budget: the float-unit search of `export --int8` with a gate, on models with and without a weak unit.

    python benchmarks/int8_budget.py [--models digits_v2 digits_v1 planted_v2 yolov5_lite nanodet_plus]
                                     [--rounds 7 --runs 50 --tries 8]

Per model, three TFLite exports through `shufflenet_edge.export` (form `delegate`, so every row has the same data
path and only the float units differ): fp32, int8 with no gate (fully int8) and int8 with the budget (the search on);
then the three artifacts timed side by side in one process (LiteRT, one thread, interleaved rounds; per-round ratios to
the fully-int8 artifact, median and range), and for the digits classifiers the held-out accuracy of each.

Models: the digits-trained ShuffleNetV2 0.5x and V1 0.5x g3 (32x32, trained now when the cache has none), the V2
with an outlier planted in stage3.2 (`shufflenet_edge.outliers`, x512: its float accuracy is unchanged), and the
zoo's YOLOv5-Lite and NanoDet-Plus (tests/zoo.py, seeded random weights, their raw head outputs, at
--detector-size, 320 by default). Budgets: the
default int8 gate (PSNR >= 30 dB, top-1 agreement >= 90%) for the classifiers, PSNR >= --detector-psnr on every
output for the detectors. Writes benchmarks/results/<out>.{json,md} (int8_budget by default).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _timing import environment, interleaved  # noqa: E402

MODELS = ("digits_v2", "digits_v1", "planted_v2", "yolov5_lite", "nanodet_plus")
DIGITS = {"digits_v2": "shufflenet_v2_x0_5", "digits_v1": "shufflenet_v1_x0_5_g3", "planted_v2": "shufflenet_v2_x0_5"}
PLANTED_UNIT = "stage3.2"
# Channel groups of the raw detector outputs (last axis): where int8 loses, boxes against scores.
GROUPS = {"yolov5_lite": {"box": slice(0, 4), "objectness": slice(4, 5), "classes": slice(5, None)},
          "nanodet_plus": {"class scores": slice(0, 4), "box distances": slice(4, None)}}


def _case(name: str, work: Path, splits: Any, calib: Path, args: argparse.Namespace) -> dict[str, Any]:
    """(export keyword arguments shared by the three exports, the budget, held-out (x, y) or None)."""
    import torch

    from shufflenet_edge import digits
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.outliers import plant_outlier
    from shufflenet_edge.parity import Thresholds

    if name in DIGITS:
        arch = DIGITS[name]
        ckpt, _ = digits.ensure_trained(arch, args.input_size, recipe=digits.Recipe(epochs=args.epochs), splits=splits,
                                        log=lambda s: print(s, flush=True))
        weights = str(ckpt)
        if name == "planted_v2":
            m = load_model(arch, weights, num_classes=10, warn=False)
            weights = str(work / "planted_v2.pth")
            torch.save(plant_outlier(m, PLANTED_UNIT, 0, 512.0).state_dict(), weights)
        return {"model": arch, "kw": {"weights": weights, "input_size": args.input_size}, "calib": str(calib),
                "budget": Thresholds(min_psnr=30.0, min_top1_agreement=0.90), "held_out": (splits[1].x, splits[1].y)}
    import zoo

    m, shp = zoo.ZOO[name]()
    size = args.detector_size
    x = torch.randn(shp[0], shp[1], size, size, generator=torch.Generator().manual_seed(0))
    return {"model": m, "kw": {"example_input": x, "name": name}, "calib": None,
            "budget": Thresholds(min_psnr=args.detector_psnr), "held_out": None}


def one_model(name: str, work: Path, splits: Any, calib: Path, args: argparse.Namespace) -> dict[str, Any]:
    from shufflenet_edge.export.inspect import inspect_tflite
    from shufflenet_edge.runtimes.runner import TFLiteRunner

    from shufflenet_edge.api import export as se_export

    c = _case(name, work, splits, calib, args)
    row: dict[str, Any] = {"model": name, "budget": c["budget"].to_dict()}
    paths: dict[str, Path] = {}
    for key, kw in (("fp32", {"precision": "fp32"}),
                    ("fully_int8", {"precision": "int8", "calib": c["calib"]}),
                    ("budget", {"precision": "int8", "calib": c["calib"], "gate": c["budget"],
                                "search_tries": args.tries})):
        out = work / f"{name}_{key}.tflite"
        t0 = time.perf_counter()
        try:
            art = se_export(c["model"], out, target="tflite", form="delegate", show_progress=False, **c["kw"], **kw)
        except Exception as e:  # noqa: BLE001  (a refusal is a row of the table, with its message)
            row[f"{key}_error"] = f"{type(e).__name__}: {str(e)[:400]}"
            print(f"{name} {key}: {row[f'{key}_error']}", flush=True)
            continue
        row[f"{key}_export_s"] = round(time.perf_counter() - t0, 1)
        paths[key] = out
        loss = (art["checks"] or {}).get("int8_loss") or {}
        if loss:
            per = loss.get("per_output") or [loss]
            row[f"{key}_psnr_db"] = [(p.get("artifact_vs_float") or {}).get("psnr_db") for p in per]
            row[f"{key}_top1_agreement"] = (loss.get("artifact_vs_float") or {}).get("top1_agreement")
        if key == "budget":
            row["keep_float"] = art["keep_float"]
            row["search"] = loss.get("search")
        row[f"{key}_size_bytes"] = inspect_tflite(out, analyze_gpu=False)["size_bytes"]
        print(f"{name} {key}: exported in {row[f'{key}_export_s']} s", flush=True)
    if c["held_out"] is not None:
        x, y = c["held_out"]
        xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        from shufflenet_edge.export.tflite_export import run_tflite_all

        row["accuracy"] = {k: float((run_tflite_all(p.read_bytes(), xl)[0].argmax(1) == y).mean())
                           for k, p in paths.items()}
    if name in GROUPS:
        row["group_psnr_db"] = _group_psnr(name, c, paths)
    if "fully_int8" in paths and len(paths) > 1:
        def invoker(p: Path) -> Any:
            r = TFLiteRunner(str(p), 1)
            xi = r.prepare(np.random.default_rng(0).standard_normal(r.inp["shape"]).astype(np.float32))
            return lambda: r.invoke(xi)

        per = interleaved({k: invoker(p) for k, p in paths.items()}, args.rounds, args.runs, warmup=20)
        base = np.asarray(per["fully_int8"])
        row["median_ms"] = {k: float(np.median(v)) for k, v in per.items()}
        row["ratio_to_fully_int8"] = {k: {"median": float(np.median(np.asarray(v) / base)),
                                          "min": float((np.asarray(v) / base).min()),
                                          "max": float((np.asarray(v) / base).max())}
                                      for k, v in per.items() if k != "fully_int8"}
    return row


def _group_psnr(name: str, c: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    """Per artifact, per output, per channel group of the last axis: PSNR against PyTorch on 8 seeded normal inputs."""
    import torch
    from shufflenet_edge.export.tflite_export import run_tflite_all

    from shufflenet_edge.parity import compare

    x = torch.randn(8, *c["kw"]["example_input"].shape[1:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ys = c["model"](x)
    wants = [t.numpy() for t in (ys if isinstance(ys, (list, tuple)) else [ys])]
    xl = np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1))
    res: dict[str, Any] = {}
    for key, p in paths.items():
        gots = run_tflite_all(p.read_bytes(), xl)
        res[key] = [{g: float(compare(o[..., sl], w[..., sl]).psnr_db) for g, sl in GROUPS[name].items()}
                    for o, w in zip(gots, wants)]
    return res


def _ratio(row: dict[str, Any], key: str) -> str:
    r = (row.get("ratio_to_fully_int8") or {}).get(key)
    return f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})" if r else "-"


def _psnr(row: dict[str, Any], key: str) -> str:
    v = row.get(f"{key}_psnr_db")
    return "-" if not v else " / ".join("inf" if p is None else f"{p:.1f}" for p in v)


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "## int8 within a budget: the fewest float units, found by the export", "",
        f"`python benchmarks/int8_budget.py {' '.join(sys.argv[1:])}` on {env['cpu']} ({env['cores']} cores; ISA flags read: "
        f"{', '.join(env.get('isa_flags') or []) or 'none'}), LiteRT {env['versions'].get('ai-edge-litert', '?')}, "
        f"one thread, {args.rounds} interleaved rounds x {args.runs} runs; ratios per round to the fully-int8 "
        "artifact (median, round range), all three artifacts of a model in one process. TFLite, form `delegate`. "
        "PSNR on the int8 check's inputs (parity's default inputs for the artifact), one figure per output.", "",
        "| model | budget | fully int8: PSNR dB | kept float | budget artifact: PSNR dB | simulated quantizations | "
        "search s | export s (fully int8 / budget) | latency / fully int8 | fp32 / fully int8 | accuracy fp32 / int8 / "
        "budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.get("search") or {}
        budget = ", ".join(f"{k} {v:g}" for k, v in r["budget"].items())
        kept = " ".join(r.get("keep_float") or []) or ("none" if "budget_export_s" in r else "-")
        if r.get("budget_error"):
            kept = f"refused: {r['budget_error'][:160]}"
        acc = r.get("accuracy") or {}
        accs = " / ".join(f"{acc[k]:.2%}" if k in acc else "-" for k in ("fp32", "fully_int8", "budget")) if acc else "-"
        lines.append(f"| {r['model']} | {budget} | {_psnr(r, 'fully_int8')} | {kept} | {_psnr(r, 'budget')} | "
                     f"{s.get('quantizations', 0)} | {s.get('seconds', '-')} | {r.get('fully_int8_export_s', '-')} / "
                     f"{r.get('budget_export_s', '-')} | {_ratio(r, 'budget')} | {_ratio(r, 'fp32')} | {accs} |")
    grouped = [r for r in rows if r.get("group_psnr_db")]
    if grouped:
        lines += ["", "Detector outputs by channel group (last axis), PSNR dB against PyTorch on 8 seeded normal "
                  "inputs, per output: fp32 / fully int8 / budget artifact:", "",
                  "| model | output | group | fp32 | fully int8 | budget |", "|---|---|---|---|---|---|"]
        for r in grouped:
            g = r["group_psnr_db"]
            for k in range(len(g.get("fully_int8") or [])):
                for grp in g["fully_int8"][k]:
                    vals = [g[a][k][grp] if a in g else None for a in ("fp32", "fully_int8", "budget")]
                    lines.append(f"| {r['model']} | {k} | {grp} | " + " | ".join(
                        "-" if v is None else ("inf" if v == float("inf") else f"{v:.1f}") for v in vals) + " |")
    lines += ["", "Kept float `none`: the fully-int8 artifact met the budget and no search ran (the budget artifact is "
              "the fully-int8 one). The export's own latency figure for the chosen set (its sidecar's "
              "`checks.int8_loss.search.latency`) is measured the same way during the export; the table's is this "
              "script's, side by side with fp32.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch
    from shufflenet_edge.runtimes.ort_session import cpu_isa

    from shufflenet_edge import digits
    from shufflenet_edge.files import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--work", default=str(digits.default_cache_dir() / "int8_budget"))
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=16, help="training schedule of the digits models (default 16)")
    ap.add_argument("--tries", type=int, default=12, help="--search-tries (default 12, the export's)")
    ap.add_argument("--detector-psnr", type=float, default=30.0, help="the detectors' budget (default 30 dB)")
    ap.add_argument("--detector-size", type=int, default=320, help="the detectors' square input (default 320)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--out", default="int8_budget", help="results/<out>.json and .md (default int8_budget)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = digits.load(args.input_size)
    calib = digits.write_calibration_folder(splits[0], work / "calib", 64)
    env = environment()
    env["isa_flags"] = cpu_isa().get("flags")
    t0 = time.perf_counter()
    rows = [one_model(n, work, splits, calib, args) for n in args.models]
    res = {"environment": env, "args": vars(args), "rows": rows, "wall_s": round(time.perf_counter() - t0, 1)}
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(res, out / f"{args.out}.json")
    (out / f"{args.out}.md").write_text(markdown(rows, env, args))
    print(markdown(rows, env, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
