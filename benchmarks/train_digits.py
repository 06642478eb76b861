"""Train ShuffleNetV2 0.5x and ShuffleNet V1 0.5x g=3 on scikit-learn's digits (10 classes, RGB, 32x32).

    python benchmarks/train_digits.py [--out DIR] [--input-size 32] [--epochs 30] [--jobs 2] [--retrain]

Saves torchvision-format state dicts (`<model>_digits<size>.pth`, ~1-4 MB, kept out of git) plus a JSON
record beside each, in ~/.cache/shufflenet-edge/digits/ (or $SHUFFLENET_EDGE_CACHE/digits, or --out),
and the run's summary in benchmarks/results/train_digits.json. Seeded: the same machine gives the same
weights. Budget: both models in under 5 minutes on 2 cores: one process per model (--jobs 2), one
intra-op thread each (see digits.Recipe.threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _train_one(name: str, input_size: int, out: str | None, epochs: int, retrain: bool) -> tuple[str, dict, bool]:
    """(checkpoint, training record, True if it came from the cache)."""
    from shufflenet_edge import digits

    start = time.time()
    path, info = digits.ensure_trained(name, input_size, out, digits.Recipe(epochs=epochs), retrain=retrain,
                                       log=lambda s: print("  " + s, flush=True))
    return str(path), info, path.stat().st_mtime < start


def main(argv: list[str] | None = None) -> int:
    from shufflenet_edge import digits

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help=f"checkpoint folder (default {digits.default_cache_dir()})")
    p.add_argument("--input-size", type=int, default=digits.DEFAULT_INPUT_SIZE)
    p.add_argument("--epochs", type=int, default=digits.Recipe().epochs)
    p.add_argument("--models", nargs="+", default=list(digits.TRAIN_MODELS))
    p.add_argument("--jobs", type=int, default=2, help="models trained at once, one process each (default 2)")
    p.add_argument("--retrain", action="store_true", help="train even if a cached checkpoint with this recipe exists")
    p.add_argument("--results", default=str(HERE / "results" / "train_digits.json"))
    a = p.parse_args(argv)

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, n, a.input_size, a.out, a.epochs, a.retrain) for n in a.models]
        done = [f.result() for f in futures]
    rows = []
    for name, (p_str, info, cached) in zip(a.models, done):
        path = Path(p_str)
        size = path.stat().st_size
        print(f"{name}: held-out accuracy {info['test_accuracy']:.2%} ({info['test_images']} images), "
              f"trained in {info['train_seconds']:.0f} s on {info['threads']} threads -> {path} ({size / 1e6:.1f} MB)",
              flush=True)
        rows.append({"model": name, "checkpoint": str(path), "bytes": size, **{k: info[k] for k in (
            "test_accuracy", "test_images", "train_images", "train_seconds", "threads", "hyperparameters", "recipe")},
                     "train_cpu_seconds": info.get("train_cpu_seconds"), "cached": cached})
    total = time.perf_counter() - t0
    result = {
        "dataset": "scikit-learn load_digits, 8x8 upscaled to RGB, stratified split "
                   f"test_fraction={digits.TEST_FRACTION} seed={digits.SPLIT_SEED}",
        "input_size": a.input_size,
        "preprocess": digits.preprocess(a.input_size).to_dict(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "load_average_at_end": list(os.getloadavg())},
        "jobs": a.jobs,
        "total_seconds": round(total, 1),
        "models": rows,
        "note": "train_seconds of a cached checkpoint are from the run that trained it; total_seconds is this run",
    }
    res = Path(a.results)
    res.parent.mkdir(parents=True, exist_ok=True)
    tmp = res.with_name(f".{res.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, res)
    print(f"total {total:.0f} s; summary: {res}")
    worst = min(r["test_accuracy"] for r in rows)
    if worst < 0.95:
        print(f"held-out accuracy {worst:.2%} is below 95%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
