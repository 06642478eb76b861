"""fp32 and int8, ONNX and TFLite, of the digits-trained ShuffleNets, against the PyTorch float model.

    python benchmarks/parity_digits.py [--work DIR] [--weights-dir DIR] [--models ...] [--per-layer]

1. trains (or reuses the cached) models of benchmarks/train_digits.py;
2. writes the held-out split as an ImageNet-style folder (one sub-folder per class) and the training split
   as a class-interleaved calibration folder;
3. exports each model four times through `shufflenet_edge.export` (fp32 and `--int8 --calib <train>`, ONNX
   and TFLite; forms gather / delegate unless --onnx-form / --tflite-form say otherwise);
4. runs `shufflenet-edge parity`'s engine on the held-out folder with the issue's thresholds
   (fp32: top-1 agreement 100%, max abs logit error <= 1e-4; int8: accuracy within 0.5 point of float,
   top-1 agreement >= 99%, PSNR >= 30 dB);
5. writes benchmarks/results/parity_digits.json and parity_digits.md.
Exit status 1 if any artifact misses its thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

FP32 = {"max_abs_error": 1e-4, "min_top1_agreement": 1.0}
INT8 = {"max_accuracy_drop": 0.5, "min_top1_agreement": 0.99, "min_psnr": 30.0}


def export_all(name: str, weights: str, work: Path, calib: Path, size: int, onnx_form: str, tflite_form: str
               ) -> dict[str, Path]:
    from shufflenet_edge.api import export as se_export

    out = {}
    for target in ("onnx", "tflite"):
        for prec in ("fp32", "int8"):
            path = work / f"{name}_digits{size}_{prec}.{target}"
            t = time.perf_counter()
            if target == "onnx":
                se_export(name, path, target="onnx", weights=weights, input_size=size, int8=prec == "int8", form=onnx_form,
                            calib=str(calib) if prec == "int8" else None, show_progress=False)
            else:
                se_export(name, path, target="tflite", weights=weights, input_size=size, precision=prec, form=tflite_form,
                              calib=str(calib) if prec == "int8" else None, show_progress=False)
            print(f"  exported {path.name} in {time.perf_counter() - t:.0f} s", flush=True)
            out[f"{target}_{prec}"] = path
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Parity of digits-trained ShuffleNets (held-out split)",
        "",
        f"Written by `benchmarks/parity_digits.py`. Inputs: {results['inputs']}. Calibration: {results['calibration']}.",
        "Reference: the PyTorch float model (eval). PSNR = 20·log10(max|ref| / rmse) over all logits. "
        f"Runtimes: {', '.join(results['runtimes'])}.",
        "",
        "| model | artifact | form | max abs err | mean abs err | cosine | PSNR dB | top-1 agr | top-5 ovl | acc float | acc artifact | drop (pt) | thresholds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["artifacts"]:
        m = r["metrics"]
        psnr = "inf" if m["psnr_db"] is None else f"{m['psnr_db']:.1f}"
        drop = m["accuracy_drop_points"]
        lines.append(
            f"| {r['model']} | {r['format']} {r['precision']} | {r.get('form') or '-'} | {m['max_abs_error']:.2e} | "
            f"{m['mean_abs_error']:.2e} | {m['cosine_mean']:.6f} | {psnr} | {m['top1_agreement']:.2%} | "
            f"{m['top5_overlap']:.2%} | {m['ref_top1_accuracy']:.2%} | {m['top1_accuracy']:.2%} | {drop:+.2f} | "
            f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(r['failures'])} |"
        )
    lines += ["", "Thresholds: fp32 " + ", ".join(f"{k}={v:g}" for k, v in FP32.items()) +
              "; int8 " + ", ".join(f"{k}={v:g}" for k, v in INT8.items()) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from shufflenet_edge import digits
    from shufflenet_edge.parity import Inputs, ParityOptions, Thresholds, format_table, run_parity, write_json_atomic

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(digits.default_cache_dir() / "parity"), help="artifacts and image folders")
    p.add_argument("--weights-dir", help="checkpoint folder of train_digits.py (default: its cache)")
    p.add_argument("--input-size", type=int, default=digits.DEFAULT_INPUT_SIZE)
    p.add_argument("--models", nargs="+", default=list(digits.TRAIN_MODELS))
    p.add_argument("--per-layer", action="store_true", help="also record per-layer errors of every artifact")
    # Fixed forms by default: `auto` picks the fastest form by timing, which varies from run to run (and
    # takes minutes on a busy machine); pass auto to measure what the exporter's default gives.
    p.add_argument("--onnx-form", default="gather")
    p.add_argument("--tflite-form", default="delegate")
    p.add_argument("--results", default=str(HERE / "results"))
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = digits.load(a.input_size)
    test_dir = digits.write_image_folder(splits[1], work / "test")
    calib_dir = digits.write_calibration_folder(splits[0], work / "calib_train")
    rows: list[dict[str, Any]] = []
    train_info = {}
    for name in a.models:
        ckpt, info = digits.ensure_trained(name, a.input_size, a.weights_dir, splits=splits,
                                           log=lambda s: print("  " + s, flush=True))
        train_info[name] = {"checkpoint": str(ckpt), "test_accuracy": info["test_accuracy"],
                            "train_seconds": info["train_seconds"], "epochs": info["hyperparameters"]["epochs"]}
        print(f"{name}: float held-out accuracy {info['test_accuracy']:.2%}", flush=True)
        arts = export_all(name, str(ckpt), work, calib_dir, a.input_size, a.onnx_form, a.tflite_form)
        inputs = Inputs("images", f"image folder {test_dir}", folder=str(test_dir))
        for key, path in arts.items():
            thr = Thresholds(**(INT8 if key.endswith("int8") else FP32))
            rep = run_parity([str(path)], inputs, options=ParityOptions(thresholds=thr, per_layer=a.per_layer))
            print(format_table(rep), flush=True)
            rows += rep["artifacts"]
    sidecar_calib = sorted({json.loads(Path(r["artifact"] + ".json").read_text()).get("calibration") or ""
                            for r in rows if r["precision"] == "int8"})
    results = {
        "runtimes": sorted({r["runtime"] for r in rows}),
        "inputs": f"digits held-out split, {len(splits[1].y)} images at {a.input_size}x{a.input_size} "
                  f"(ImageNet-style folder, one sub-folder per class)",
        "calibration": ("; ".join(s for s in sidecar_calib if s) or "none") +
                       f" (the exporters take the first images of the folder in sorted order; its order cycles "
                       f"through the 10 classes of the {len(splits[0].y)}-image training split)",
        "training": train_info,
        "thresholds": {"fp32": FP32, "int8": INT8},
        "artifacts": rows,
        "passed": all(r["passed"] for r in rows),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    home = str(Path.home())
    results = json.loads(json.dumps(results).replace(home, "~"))  # no user-specific paths in the record
    res = Path(a.results)
    write_json_atomic(results, res / "parity_digits.json")
    md = res / "parity_digits.md"
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(markdown(results))
    os.replace(tmp, md)
    print(markdown(results))
    print(f"wrote {res / 'parity_digits.json'} and {md} in {results['seconds']:.0f} s")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
