"""A model where int8 hurts, and the tools that rescue it.

    python benchmarks/int8_rescue.py [--work DIR] [--factor 512] [--unit stage3.2] [--qat-epochs 2]

1. takes the digits-trained ShuffleNetV2 0.5x (32x32; trained now if the cache has none; `--epochs 16` by default,
   the test suite's schedule) and plants an outlier channel in one unit (`shufflenet_edge.outliers`: the first
   BatchNorm of `branch2` x factor on one channel, the depthwise convolution reading it / factor): the float
   model's accuracy is unchanged;
2. exports it as full-integer int8 TFLite through the export pipeline with the defaults (PT2E, histogram calibration on
   64 class-interleaved training images, per-channel weights), runs `parity --per-layer`'s engine on it and takes
   the unit it names;
3. exports again with `keep_float=[that unit]`, with `calib_method` minmax and percentile, and fine-tunes with
   `shufflenet_edge.qat` (a few epochs, SGD) and exports the QAT model;
4. measures held-out accuracy of every artifact (LiteRT, all 540 test images) and latency (LiteRT, 1 thread,
   interleaved medians; the float island's cost), and writes benchmarks/results/int8_rescue.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = "shufflenet_v2_x0_5"


def tflite_logits(path: Path, x_nchw: np.ndarray) -> np.ndarray:
    from shufflenet_edge.export.tflite_export import run_tflite_all

    return run_tflite_all(path.read_bytes(), np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))[0]


def run_qat(weights: str, splits: Any, calib: np.ndarray, epochs: int, lr: float, out: Path, factor_unit: str,
            size: int, log: Any) -> dict[str, Any]:
    import torch

    from shufflenet_edge import qat
    from shufflenet_edge.digits import _augment
    from shufflenet_edge.models.weights import load_model

    torch.manual_seed(0)
    model = load_model(MODEL, weights, num_classes=10, warn=False)
    q = qat.prepare(model, torch.from_numpy(calib[:1]))
    # Start the ranges from a calibration pass (observers on, no gradient): the same images PTQ saw.
    with torch.no_grad():
        for i in range(0, len(calib), 16):
            q(torch.from_numpy(calib[i : i + 16]))
    opt = torch.optim.SGD(q.parameters(), lr=lr, momentum=0.9, weight_decay=5e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(splits[0].x), torch.from_numpy(splits[0].y)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for s in range(0, len(x) - 1, 32):
            b = perm[s : s + 32]
            loss = loss_fn(q(_augment(x[b], 2, gen)), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        log(f"  QAT epoch {ep + 1}/{epochs}: loss {total / len(x):.4f} ({time.perf_counter() - t0:.0f} s)")
    from shufflenet_edge.api import export as se_export

    side = se_export(q, out, target="tflite", int8=True, name=MODEL, show_progress=False)
    return {"epochs": epochs, "lr": lr, "seconds": round(time.perf_counter() - t0, 1), "sidecar": str(out) + ".json",
            "io": side["input"].get("dtype")}


def markdown(r: dict[str, Any]) -> str:
    f = r["float"]
    lines = [
        "# int8 rescue: a digits model with one outlier channel",
        "",
        f"Written by `benchmarks/int8_rescue.py`. Model: {MODEL} trained on the digits ({r['input_size']}x{r['input_size']}, "
        f"{r['train_epochs']} epochs), with an outlier planted in **{r['planted_unit']}** (first BatchNorm of branch2, "
        f"channel {r['channel']}, x{r['factor']:g}; the depthwise convolution that reads it / {r['factor']:g}). "
        f"Float accuracy before planting {f['accuracy_before_planting']:.2%}, after {f['accuracy']:.2%} "
        f"(max logit change {f['max_logit_change']:.2g}).",
        f"Accuracy: LiteRT on the {r['test_images']} held-out images. Latency: LiteRT (XNNPACK), 1 thread, median of "
        f"{r['timing']['rounds']} interleaved rounds x {r['timing']['runs']} runs, {r['machine']}.",
        "",
        "| artifact | what | accuracy | drop vs float (pt) | PSNR vs float dB | top-1 agr | latency ms | vs default int8 | ops | XNNPACK partitions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = r["rows"][1]["latency_ms"] if len(r["rows"]) > 1 else None
    for row in r["rows"]:
        lat = row.get("latency_ms")
        rel = f"{lat / base:.2f}" if lat and base else "-"
        psnr = "-" if row.get("psnr_db") is None else f"{row['psnr_db']:.1f}"
        agr = "-" if row.get("top1_agreement") is None else f"{row['top1_agreement']:.1%}"
        lines.append(f"| {row['name']} | {row['what']} | {row['accuracy']:.2%} | {100 * (f['accuracy'] - row['accuracy']):+.2f} | "
                     f"{psnr} | {agr} | {lat:.4f} | {rel} | {row.get('ops', '-')} | {row.get('partitions', '-')} |"
                     if lat else
                     f"| {row['name']} | {row['what']} | {row['accuracy']:.2%} | {100 * (f['accuracy'] - row['accuracy']):+.2f} | "
                     f"{psnr} | {agr} | - | - | {row.get('ops', '-')} | {row.get('partitions', '-')} |")
    pl = r["per_layer"]
    lines += ["", f"`parity --per-layer` on the default int8 artifact names **{pl['first_weak_point']}** "
                  f"(first point with SQNR below {pl['min_sqnr']:g} dB). SQNR per point (dB):", "",
              "| " + " | ".join(p["point"] for p in pl["rows"]) + " |", "|" + "---|" * len(pl["rows"]),
              "| " + " | ".join("-" if p["sqnr_db"] is None else f"{p['sqnr_db']:.1f}" for p in pl["rows"]) + " |", ""]
    if r.get("notes"):
        lines += [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch
    from shufflenet_edge.export.inspect import inspect_tflite
    from shufflenet_edge.export.config import TuneConfig
    from shufflenet_edge.export.timing import time_and_decide

    from shufflenet_edge import digits
    from shufflenet_edge.api import export as se_export
    from shufflenet_edge.models.weights import load_model
    from shufflenet_edge.outliers import plant_outlier
    from shufflenet_edge.parity import compare, write_json_atomic
    from shufflenet_edge.per_layer import diagnose

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(digits.default_cache_dir() / "int8_rescue"))
    p.add_argument("--input-size", type=int, default=digits.DEFAULT_INPUT_SIZE)
    p.add_argument("--epochs", type=int, default=16, help="training schedule of the digits model (default 16)")
    p.add_argument("--unit", default="stage3.2")
    p.add_argument("--channel", type=int, default=0)
    p.add_argument("--factor", type=float, default=512.0)
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--reuse", action="store_true",
                   help="keep artifacts already in --work from an earlier run with the same settings (QAT is always redone)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = digits.load(a.input_size)
    ckpt, _ = digits.ensure_trained(MODEL, a.input_size, recipe=digits.Recipe(epochs=a.epochs), splits=splits, log=log)
    calib_dir = digits.write_calibration_folder(splits[0], work / "calib", 64)
    xt, yt = splits[1].x, splits[1].y
    model = load_model(MODEL, str(ckpt), num_classes=10, warn=False)
    before = digits.evaluate(model, xt)
    plant_outlier(model, a.unit, a.channel, a.factor)
    fl = digits.evaluate(model, xt)
    planted = work / f"{MODEL}_digits{a.input_size}_outlier.pth"
    torch.save(model.state_dict(), planted)
    float_acc = float((fl.argmax(1) == yt).mean())
    log(f"float accuracy {float((before.argmax(1) == yt).mean()):.2%} -> planted {float_acc:.2%}")
    common = {"weights": str(planted), "input_size": a.input_size, "form": "delegate", "show_progress": False}
    arts: dict[str, tuple[Path, str]] = {}

    def export(key: str, what: str, **kw: Any) -> None:
        t = time.perf_counter()
        path = work / f"{key}.tflite"
        arts[key] = (path, what)
        if a.reuse and path.exists() and Path(str(path) + ".json").exists():
            log(f"reusing {path.name} ({what})")
            return
        se_export(MODEL, path, target="tflite", **common, **kw)
        log(f"exported {path.name} ({what}) in {time.perf_counter() - t:.0f} s")

    export("fp32", "float32 TFLite", precision="fp32")
    export("int8_default", "int8 PTQ, defaults (histogram, per-channel)", precision="int8", calib=str(calib_dir))
    pl = diagnose(str(arts["int8_default"][0]), model, xt[:8], layout="nhwc", sidecar={"precision": "int8"}).to_dict()
    weak = pl["first_weak_point"] or a.unit
    log(f"per-layer: first weak point {pl['first_weak_point']} (planted in {a.unit})")
    export("int8_keep_float", f"int8, --keep-float {weak}", precision="int8", calib=str(calib_dir), keep_float=[weak])
    export("int8_minmax", "int8, --calib-method minmax", precision="int8", calib=str(calib_dir), calib_method="minmax")
    export("int8_percentile", "int8, --calib-method percentile (99.99)", precision="int8", calib=str(calib_dir),
           calib_method="percentile")
    cal = np.ascontiguousarray(splits[0].x[splits[0].interleaved()[:64]])
    qat_info = run_qat(str(planted), splits, cal, a.qat_epochs, a.qat_lr, work / "int8_qat.tflite", a.unit, a.input_size, log)
    arts["int8_qat"] = (work / "int8_qat.tflite", f"int8 QAT ({a.qat_epochs} epochs, shufflenet_edge.qat)")
    rows = [{"name": "PyTorch float", "what": "reference (planted model)", "accuracy": float_acc}]
    for key, (path, what) in arts.items():
        out = tflite_logits(path, xt)
        st = compare(out, fl)
        side = json.loads(Path(str(path) + ".json").read_text())
        g = inspect_tflite(path, analyze_gpu=False)
        rows.append({"name": key, "what": what, "accuracy": float((out.argmax(1) == yt).mean()),
                     "psnr_db": st.to_dict()["psnr_db"], "top1_agreement": st.top1_agreement, "ops": g["ops"],
                     "partitions": g["xnnpack_partitions"], "keep_float": side.get("keep_float"),
                     "int8_loss": (side.get("checks") or {}).get("int8_loss")})
        log(f"{key}: accuracy {rows[-1]['accuracy']:.2%}, PSNR {st.psnr_db:.1f} dB")
    # fp32 first so that rows[1] is the default int8 in the table's "vs default int8" column
    rows = [rows[0], *[r for r in rows if r["name"] == "int8_default"], *[r for r in rows[1:] if r["name"] != "int8_default"]]
    timing = time_and_decide({k: str(v[0]) for k, v in arts.items()}, xt[:1].transpose(0, 2, 3, 1).copy(),
                             TuneConfig(threads=1, rounds=a.rounds, runs=a.runs), preferred=next(iter(arts)))
    for r in rows:
        if r["name"] in timing["median_ms"]:
            r["latency_ms"] = timing["median_ms"][r["name"]]
    results = {
        "model": MODEL, "input_size": a.input_size, "train_epochs": a.epochs, "planted_unit": a.unit,
        "channel": a.channel, "factor": a.factor, "test_images": int(len(yt)),
        "float": {"accuracy": float_acc, "accuracy_before_planting": float((before.argmax(1) == yt).mean()),
                  "max_logit_change": float(np.abs(fl - before).max())},
        "per_layer": pl, "qat": qat_info, "rows": rows,
        "timing": {"rounds": a.rounds, "runs": a.runs, "raw": timing},
        "machine": f"{os.cpu_count()} CPUs shared with other jobs, load average {os.getloadavg()[0]:.1f}, {platform.machine()}",
        "seconds": round(time.perf_counter() - t0, 1),
        "notes": [
            "The float island's borders are a DEQUANTIZE before and a QUANTIZE after the unit; the unit's ops run in "
            "float32 (see `inspect`).",
            "Latency on a shared 2-core machine: compare ratios within this table, not across runs. At 32x32 the "
            "network runs in under 0.1 ms, so fixed per-op costs dominate and int8 gains little over fp32 here; the "
            "float island's cost is what the 'vs default int8' column shows.",
            "QAT exports the reference (torchvision) form: the fold's graph passes act on the converted float path, so "
            "its graph has more ops (data movement and requantize ops) than the folded PTQ artifacts.",
            "QAT fine-tunes all weights with the outlier in place; it cannot remove a x512 channel in a few epochs "
            "(lr 2e-3 made it worse: 57% in an earlier run; lr 1e-4 is the default here). For an outlier channel, "
            "--keep-float is the tool; QAT is for models whose error is spread over many layers.",
        ],
    }
    home = str(Path.home())
    results = json.loads(json.dumps(results, default=str).replace(home, "~"))
    res = Path(a.results)
    write_json_atomic(results, res / "int8_rescue.json")
    md = res / "int8_rescue.md"
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(markdown(results))
    os.replace(tmp, md)
    print(markdown(results))
    print(f"wrote {md} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
