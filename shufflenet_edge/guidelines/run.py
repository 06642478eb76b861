"""Build the guideline networks and the model zoo as artifacts, and time them.

Artifacts go through our own exporters (ONNX: the dynamo exporter + onnxslim + checker of
`export.onnx_export`; TFLite: litert-torch through `export.tflite_export`, PT2E int8 through
`export.tflite_quantize`) into a cache folder, one file per (network, runtime, precision), each with a
sidecar that records what it is and a key of everything that made it; a later run with the same key reuses
the file. Conversions run in worker processes (`jobs`), nothing is timed while they run.

Timing (local target): every artifact is loaded once in this process (onnxruntime with spinning off, so
sessions do not starve each other; LiteRT with its XNNPACK delegate), then `rounds` rounds pass over all
groups; within a round each group's rows (one table at one width) run back to back, in an order rotated
every round, `k` invokes each (k sized from a warm-up estimate so each row takes about `round_ms`). A row's
latency is the median of its round medians: machine noise lands on every row of a group alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.files import atomic_path

RUNTIMES = ("onnxruntime", "litert")
PRECISIONS = ("fp32", "int8")
EXT = {"onnxruntime": "onnx", "litert": "tflite"}
# Zoo forms: the fastest CPU forms our exporters make (docs/design.md, the fold); MobileNet V2 has no shuffle.
ZOO_FORMS = {"onnxruntime": "gather", "litert": "cpu"}
ZOO_INPUT_SIZE = 224
# int8 here is about speed (random weights), so calibration is kept small: PT2E's histogram observers
# cost more than the conversion itself on 8 feature maps, and our exporters default to 32 images.
CALIBRATION_INPUTS = 2
ZOO_CALIBRATION_IMAGES = 4
# Bump when the networks or the export recipe change, so cached artifacts are rebuilt.
RECIPE_VERSION = 3


@dataclasses.dataclass
class Task:
    """One artifact to make (or reuse): a guideline network (`spec`) or a registered model (`model`)."""

    kind: str  # "micro" | "zoo"
    name: str
    runtime: str
    precision: str
    path: str
    key: str
    spec: dict[str, Any] | None = None  # NetSpec fields
    model: str | None = None
    fresh: bool = False


def tool_versions() -> dict[str, str]:
    """Versions of every tool an artifact depends on, plus a hash of our own export code (the exporters,
    fold, models and these networks): a change in any of them rebuilds the cached artifacts."""
    from shufflenet_edge.export.common import tool_versions as tv

    out = tv("onnx", "onnxruntime", "onnxslim", "onnxscript", "litert-torch", "ai-edge-litert", "torchao")
    out["shufflenet-edge export code"] = _source_hash()
    return out


def _source_hash() -> str:
    import sys

    import shufflenet_edge
    import shufflenet_edge.guidelines

    h = hashlib.sha256()
    # the export package by module (the name `shufflenet_edge.export` is the API function)
    roots = [Path(sys.modules["shufflenet_edge.export"].__file__ or "").parent, Path(shufflenet_edge.__file__).parent / "models"]
    files = [p for r in roots for p in sorted(r.rglob("*.py"))]
    files += [Path(shufflenet_edge.__file__).parent / "graph_fold.py", Path(shufflenet_edge.guidelines.__file__).parent / "networks.py"]
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def micro_task(spec: Any, runtime: str, precision: str, cache: Path, fresh: bool, versions: dict[str, str]) -> Task:
    fields = dataclasses.asdict(spec)
    key = _key({"recipe": RECIPE_VERSION, "spec": fields, "runtime": runtime, "precision": precision,
                "tools": versions})
    path = cache / "networks" / f"{spec.name}.{precision}.{EXT[runtime]}"
    return Task("micro", spec.name, runtime, precision, str(path), key, spec=fields, fresh=fresh)


def zoo_task(model: str, runtime: str, precision: str, cache: Path, fresh: bool, versions: dict[str, str]) -> Task:
    form = zoo_form(model, runtime)
    key = _key({"recipe": RECIPE_VERSION, "model": model, "form": form, "runtime": runtime,
                "precision": precision, "tools": versions})
    path = cache / "zoo" / f"{model}.{form}.{precision}.{EXT[runtime]}"
    return Task("zoo", model, runtime, precision, str(path), key, model=model, fresh=fresh)


def zoo_form(model: str, runtime: str) -> str:
    from shufflenet_edge.models import get_info

    info = get_info(model)
    return "reference" if info.family == "mobilenet_v2" or not info.foldable else ZOO_FORMS[runtime]


def _cached(task: Task) -> dict[str, Any] | None:
    from shufflenet_edge.export.common import read_sidecar

    if task.fresh or not os.path.isfile(task.path):
        return None
    try:
        side = read_sidecar(task.path)
    except EdgeError:
        return None
    if not side or side.get("guidelines_key") != task.key:
        return None
    return side


# ----------------------------------------------------------------------------------------------------
# building (runs in worker processes: everything here is importable and picklable)


def _spec_from(fields: dict[str, Any]) -> Any:
    from shufflenet_edge.guidelines.networks import NetSpec

    f = dict(fields)
    f["channels"] = tuple(f["channels"])
    return NetSpec(**f)


def _calibration(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Random normal inputs in the network's float domain (the networks take feature maps, not images)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((CALIBRATION_INPUTS, *shape[1:])).astype(np.float32)


CALIBRATION_TEXT = (f"{CALIBRATION_INPUTS} random normal inputs (seed 0) for the guideline networks, "
                    f"{ZOO_CALIBRATION_IMAGES} synthetic images for the zoo: speed only, no accuracy claim")


def calibration_folder(cache: Path) -> str:
    """A folder of a few synthetic images (smooth gradients and blobs, seeded) for the zoo's int8 exports:
    our exporters calibrate on a folder, and a small one keeps their calibration cheap."""
    from PIL import Image

    folder = cache / "calibration"
    names = [folder / f"synthetic_{i}.png" for i in range(ZOO_CALIBRATION_IMAGES)]
    if all(n.is_file() for n in names):
        return str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32) / 255.0
    for n in names:
        img = np.zeros((256, 256, 3), np.float32)
        for c in range(3):
            a, b, f = rng.uniform(-1, 1, 2).tolist() + [rng.uniform(1, 6)]
            img[..., c] = 0.5 + 0.3 * np.sin(f * 6.28 * (a * xx + b * yy) + rng.uniform(0, 6.3))
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
        with atomic_path(n) as tmp:
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(tmp)
    return str(folder)


def quantize_onnx_array(src: Path, dst: Path, calib: np.ndarray) -> None:
    """onnxruntime static QDQ int8 with the settings of `export.onnx_quantize.quantize_onnx_int8`
    (per-channel symmetric int8 weights, asymmetric int8 activations, after quant_pre_process), but
    calibrated on an array: the guideline networks take c-channel feature maps, not 3-channel images."""
    from shufflenet_edge.export.onnx_quantize import quantize_qdq

    quantize_qdq(src, dst, [calib[i : i + 1] for i in range(len(calib))])


def _io(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from shufflenet_edge.export.inspect import inspect_artifact

    g = inspect_artifact(str(path))
    return g["inputs"][0], g["outputs"][0]


def _build_micro(task: Task, versions: dict[str, str]) -> dict[str, Any]:
    import torch

    from shufflenet_edge.export.common import atomic_path, write_sidecar

    spec = _spec_from(task.spec or {})
    out = Path(task.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = spec.build(fuse_bn=True)
    x = torch.randn(*spec.input_shape, generator=torch.Generator().manual_seed(0))
    calib = _calibration(spec.input_shape)
    layout = "nchw"
    if task.runtime == "onnxruntime":
        from shufflenet_edge.export.onnx_export import _torch_to_onnx

        if task.precision == "fp32":
            with atomic_path(out) as tmp:
                _torch_to_onnx(net, x, tmp, False)
        else:
            # int8 reuses the fp32 graph of the same network (built first if it is not cached)
            src = micro_task(spec, task.runtime, "fp32", out.parent.parent, False, versions)
            if _cached(src) is None:
                _build_micro(src, versions)
            with atomic_path(out) as tmp:
                quantize_onnx_array(Path(src.path), tmp, calib)
    else:
        import litert_torch

        from shufflenet_edge.export.tflite_export import convert

        layout = "nhwc"
        xn = x.permute(0, 2, 3, 1).contiguous()
        # NHWC input *and* output (export.tflite_export._nhwc makes only the input NHWC, right for
        # classifiers): a feature-map output in NCHW would add one TRANSPOSE to every row's graph.
        wrapped = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
        if task.precision == "fp32":
            buf = convert(wrapped, xn)
        else:
            from shufflenet_edge.export.tflite_quantize import pt2e_quantize

            sim, quantizer = pt2e_quantize(wrapped, xn, np.ascontiguousarray(calib.transpose(0, 2, 3, 1)))
            buf = convert(sim, xn, quantizer)
        with atomic_path(out) as tmp:
            tmp.write_bytes(buf)
    inp, outp = _io(out)
    side = {
        "format": EXT[task.runtime], "path": str(out), "model": spec.name, "num_classes": None,
        "weights": None, "random_weights": True, "precision": task.precision, "form": "reference",
        "input": {**inp, "layout": layout}, "output": outp, "preprocess": None, "labels": None,
        "calibration": CALIBRATION_TEXT if task.precision == "int8" else None,
        "tools": versions, "graph": {"madds": spec.madds},
        "guidelines": spec.to_dict(), "guidelines_key": task.key,
    }
    write_sidecar(out, side)
    return side


def _build_zoo(task: Task, versions: dict[str, str]) -> dict[str, Any]:
    from shufflenet_edge.export.common import read_sidecar, write_sidecar

    model = task.model or task.name
    out = Path(task.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    form = zoo_form(model, task.runtime)
    if task.runtime == "onnxruntime":
        from shufflenet_edge.api import export as se_export

        if task.precision == "fp32":
            side = dict(se_export(model, out, target="onnx", form=form, show_progress=False))
        else:
            # int8 quantizes the cached fp32 graph instead of exporting again
            from shufflenet_edge.data import Preprocess
            from shufflenet_edge.export.common import atomic_path
            from shufflenet_edge.export.onnx_export import graph_stats
            from shufflenet_edge.export.config import Int8Config
            from shufflenet_edge.export.onnx_quantize import quantize_onnx_int8

            src = zoo_task(model, task.runtime, "fp32", out.parent.parent, False, versions)
            if _cached(src) is None:
                _build_zoo(src, versions)
            side = dict(read_sidecar(src.path) or {})
            calib = calibration_folder(out.parent.parent)
            with atomic_path(out) as tmp:
                side["calibration"] = quantize_onnx_int8(Path(src.path), tmp, Preprocess.for_size(ZOO_INPUT_SIZE), Int8Config(calib=calib))
            side.update(path=str(out), precision="int8", graph=graph_stats(out), quantized_from=src.path)
    else:
        from shufflenet_edge.api import export as se_export

        tcalib = calibration_folder(out.parent.parent) if task.precision == "int8" else None
        side = dict(se_export(model, out, target="tflite", precision=task.precision, form=form, calib=tcalib, show_progress=False))
    side["guidelines_key"] = task.key
    write_sidecar(out, side)
    return side


def build_task(task: Task, versions: dict[str, str]) -> dict[str, Any]:
    """Make (or reuse) one artifact; returns {"task", "sidecar", "seconds", "cached"}."""
    import warnings

    warnings.simplefilter("ignore")
    side = _cached(task)
    if side is not None:
        return {"name": task.name, "path": task.path, "sidecar": side, "seconds": 0.0, "cached": True}
    from shufflenet_edge.export.common import read_sidecar

    t0 = time.perf_counter()
    _build_micro(task, versions) if task.kind == "micro" else _build_zoo(task, versions)
    # the sidecar as written (plain JSON): what the exporters return may hold unpicklable objects
    side = read_sidecar(task.path) or {}
    return {"name": task.name, "path": task.path, "sidecar": side, "seconds": round(time.perf_counter() - t0, 2),
            "cached": False}


def _worker_init() -> None:
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    warnings.simplefilter("ignore")
    for name in ("", "torchao", "litert_torch", "torch"):  # "" = root: litert-torch warns through it
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import torch

        torch.set_num_threads(1)  # two workers on two cores: one thread each
    except ImportError:
        pass


def build_all(tasks: Sequence[Task], jobs: int = 1, on_done: Callable[[dict[str, Any]], None] | None = None
              ) -> list[dict[str, Any]]:
    """Make every artifact; cached ones first (no process needed), the rest in `jobs` worker processes.
    int8 ONNX reuses the fp32 file, so fp32 tasks are scheduled before int8 ones."""
    versions = tool_versions()
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for t in tasks:
        if _cached(t) is not None:
            results[t.path] = build_task(t, versions)
            if on_done:
                on_done(results[t.path])
        else:
            todo.append(t)
    todo.sort(key=lambda t: (t.precision != "fp32", t.kind != "micro"))
    if jobs <= 1 or len(todo) <= 1:
        _worker_init()
        for t in todo:
            results[t.path] = build_task(t, versions)
            if on_done:
                on_done(results[t.path])
    else:
        import multiprocessing as mp

        # spawn: a fork of a process that has torch/onnxruntime thread pools can hang
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init) as ex:
            futs = {ex.submit(build_task, t, versions): t for t in todo}
            for f in as_completed(futs):
                t = futs[f]
                try:
                    results[t.path] = f.result()
                except EdgeError:
                    raise
                except Exception as e:  # noqa: BLE001  (one line naming the network)
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise EdgeError(f"building {t.name} ({t.runtime} {t.precision}) failed: {msg}") from e
                if on_done:
                    on_done(results[t.path])
    return [results[t.path] for t in tasks]


# ----------------------------------------------------------------------------------------------------
# timing, local target: interleaved, in process


def open_runner(path: str, runtime: str, threads: int) -> Any:
    from shufflenet_edge.runtimes.runner import OnnxRunner, RunnerError, TFLiteRunner

    try:
        if runtime == "onnxruntime":
            return OnnxRunner(path, threads=threads)
        return TFLiteRunner(path, threads=threads, runtime="litert")
    except RunnerError as e:
        raise EdgeError(str(e)) from e


@dataclasses.dataclass
class Timed:
    key: str
    group: str
    runner: Any
    prepared: Any
    runs: int = 2
    round_ms: list[float] = dataclasses.field(default_factory=list)
    first_ms: float = 0.0


def time_interleaved(items: Sequence[tuple[str, str, str]], runtime: str, threads: int, rounds: int = 9,
                     round_ms: float = 100.0, min_runs: int = 2, max_runs: int = 25,
                     on_round: Callable[[int], None] | None = None, seed: int = 0) -> dict[str, dict[str, Any]]:
    """items: (key, group, artifact path). Returns per key: median_ms (median of round medians),
    round_medians_ms, runs_per_round, spread (IQR of the round medians / median), first_inference_ms."""
    rng = np.random.default_rng(seed)
    timed: list[Timed] = []
    for key, group, path in items:
        r = open_runner(path, runtime, threads)
        x = rng.standard_normal([s if s > 0 else 1 for s in r.input_shape]).astype(np.float32)
        timed.append(Timed(key, group, r, r.prepare(x)))
    # warm-up: first inference (timed alone), two more, then size k from the last
    for t in timed:
        t0 = time.perf_counter()
        t.runner.invoke(t.prepared)
        t.first_ms = (time.perf_counter() - t0) * 1e3
        t.runner.invoke(t.prepared)
        t0 = time.perf_counter()
        t.runner.invoke(t.prepared)
        est = (time.perf_counter() - t0) * 1e3
        t.runs = int(min(max_runs, max(min_runs, round(round_ms / max(est, 1e-3)))))
    groups: dict[str, list[Timed]] = {}
    for t in timed:
        groups.setdefault(t.group, []).append(t)
    from shufflenet_edge.export.timing import round_medians

    for r in range(rounds):
        for members in groups.values():
            by_key = {t.key: t for t in members}
            got = round_medians({t.key: (lambda t=t: t.runner.invoke(t.prepared)) for t in members}, 1,
                                {t.key: t.runs for t in members}, warmup=0, first_round=r, reverse_odd=True)
            for k, v in got.items():
                by_key[k].round_ms.extend(v)
        if on_round:
            on_round(r + 1)
    out = {}
    for t in timed:
        v = np.asarray(t.round_ms)
        med = float(np.median(v))
        q1, q3 = np.percentile(v, [25, 75])
        out[t.key] = {"median_ms": round(med, 4), "round_medians_ms": [round(float(a), 4) for a in v],
                      "runs_per_round": t.runs, "rounds": rounds, "spread": round(float((q3 - q1) / med), 4),
                      "first_inference_ms": round(t.first_ms, 3)}
    return out


# ----------------------------------------------------------------------------------------------------
# timing, ssh target: the bench machinery (one runner process per artifact on the board; not interleaved)


def time_ssh(target: str, items: Sequence[tuple[str, str, str]], runtime: str, threads: int, runs: int,
             warmup: int, ssh: dict[str, Any], on_record: Callable[[dict[str, Any]], None] | None = None
             ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    from shufflenet_edge.runtimes.local import Job
    from shufflenet_edge.runtimes.results import TargetError, describe_artifact
    from shufflenet_edge.runtimes.ssh import SshOptions, run_ssh_target

    opts = SshOptions(**ssh)
    jobs = [Job(path, runtime, None, threads) for _, _, path in items]
    infos = {path: describe_artifact(path, madds=False) for _, _, path in items}
    try:
        recs = run_ssh_target(target, jobs, runs=runs, warmup=warmup, opts=opts, on_record=on_record, infos=infos)
    except TargetError as e:
        raise EdgeError(str(e)) from e
    by_path = {r["artifact"]: r for r in recs}
    out = {}
    env: dict[str, Any] = {}
    for key, _, path in items:
        r = by_path.get(path)
        if r is None or r.get("status") != "ok":
            raise EdgeError(f"{target}: {Path(path).name}: {(r or {}).get('reason') or 'no result'}")
        env = r.get("environment") or env
        lat = r["latency_ms"]
        out[key] = {"median_ms": lat["median"], "round_medians_ms": None, "runs_per_round": r.get("runs"),
                    "rounds": 1, "spread": round((lat["p90"] - lat["median"]) / lat["median"], 4) if lat["median"] else None,
                    "first_inference_ms": r.get("first_inference_ms")}
    return out, env


def check_choice(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


# ----------------------------------------------------------------------------------------------------
# the whole run


@dataclasses.dataclass
class Config:
    tables: tuple[str, ...] = ("G1", "G2", "G3", "G4")
    zoo: str = "table8"  # "table8" | "all" | "none"
    runtime: str = "onnxruntime"
    precision: str = "fp32"
    target: str = "local"
    threads: int = 1
    widths: tuple[str, ...] = ("x1", "x2", "x4")
    setup: str = "arm"
    g3_merge: str = "concat"
    rounds: int = 15
    round_ms: float = 100.0
    tolerance: float = 0.03
    jobs: int = 2
    cache: str = "out/guidelines/cache"
    fresh: bool = False
    ssh: dict[str, Any] = dataclasses.field(default_factory=dict)
    ssh_runs: int = 20
    models: tuple[str, ...] | None = None  # overrides `zoo` with an explicit list


ZOO_CHOICES = ("table8", "all", "none")


def zoo_models(cfg: Config) -> list[str]:
    from shufflenet_edge.guidelines.networks import PAPER_TABLE8
    from shufflenet_edge.models import get_info, list_models

    if cfg.models is not None:
        for m in cfg.models:
            get_info(m)
        return list(cfg.models)
    if cfg.zoo == "none":
        return []
    if cfg.zoo == "all":
        return list_models()
    return [m for m in list_models() if m in PAPER_TABLE8]


def _loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def assumptions(cfg: Config) -> list[str]:
    from shufflenet_edge.guidelines.networks import BLOCKS, FLOPS_TOLERANCE, INPUT_SIZE

    merge = ("each of n parallel branches is a 1x1 conv c->c/n and the branches are concatenated"
             if cfg.g3_merge == "concat" else
             "each of n parallel branches is a 1x1 conv c'->c' (c'=c/sqrt(n)) and the branches are added")
    return [
        f"{BLOCKS} stacked blocks at {INPUT_SIZE}x{INPUT_SIZE}, batch 1, random weights;",
        f"channels of the paper's {cfg.setup.upper()} columns; x2/x4 multiply every channel number by 2/4;",
        "every 1x1 conv in Tables 1-3 is followed by BN and ReLU (folded/fused by the runtimes);",
        f"Table 3: series blocks chain n convs c'->c' (c'=c/sqrt(n)); {merge};",
        "Table 4: ResNet bottleneck c->c/4 (1x1) -> c/4 (3x3) -> c (1x1) with BN, input 56x56;",
        f"channels rounded to the nearest valid numbers that keep every row's multiply-adds within "
        f"{FLOPS_TOLERANCE:.2%} of one target (the paper's own Table 1 and 2 numbers miss its constraint by up to 5%);",
        f"int8: {CALIBRATION_TEXT}." if cfg.precision == "int8" else "fp32 weights and activations.",
    ]


def run_guidelines(cfg: Config, progress: Any = None) -> dict[str, Any]:
    """Build, time and report. `progress`: an object with add(desc, total) -> id, advance(id, n, desc)."""
    from shufflenet_edge.guidelines.networks import TABLES, WIDTHS, table_specs
    from shufflenet_edge.guidelines.report import table_result, zoo_result
    from shufflenet_edge.models import get_info
    from shufflenet_edge.runtimes.runner import environment

    check_choice(cfg.runtime, RUNTIMES, "runtime")
    check_choice(cfg.precision, PRECISIONS, "precision")
    check_choice(cfg.zoo, ZOO_CHOICES, "zoo selection")
    for t in cfg.tables:
        check_choice(t, TABLES, "guideline")
    for w in cfg.widths:
        check_choice(w, WIDTHS, "width")
    from shufflenet_edge.runtimes.targets import parse_target

    if parse_target(cfg.target).kind == "adb":
        raise UsageError(f"unknown target {cfg.target!r}; valid: local, ssh://[user@]host[:port] "
                         "(adb: export the networks and use `shufflenet-edge bench --target adb`)")
    if cfg.threads < 1 or cfg.rounds < 1 or cfg.jobs < 1:
        raise UsageError("--threads, --rounds and --jobs must be >= 1")
    t_start = time.perf_counter()
    load_before = _loadavg()
    cache = Path(cfg.cache)
    versions = tool_versions()
    specs = {t: table_specs(t, cfg.setup, cfg.widths, cfg.g3_merge) for t in cfg.tables}
    models = zoo_models(cfg)
    tasks = [micro_task(s, cfg.runtime, cfg.precision, cache, cfg.fresh, versions) for t in cfg.tables for s in specs[t]]
    tasks += [zoo_task(m, cfg.runtime, cfg.precision, cache, cfg.fresh, versions) for m in models]
    if not tasks:
        raise UsageError("nothing to run: --only selected no table and no zoo")

    bar = progress.add(f"building {len(tasks)} artifacts ({cfg.runtime} {cfg.precision}, {cfg.jobs} process(es))",
                       len(tasks)) if progress else None

    def done(r: dict[str, Any]) -> None:
        if progress:
            progress.advance(bar, 1, f"built {r['name']}" + (" (cached)" if r["cached"] else f" in {r['seconds']:.1f} s"))

    built = build_all(tasks, cfg.jobs, done)
    t_built = time.perf_counter()
    items = [(t.name, f"{t.spec['table']}/{t.spec['width']}" if t.spec else "zoo", t.path) for t in tasks]
    if cfg.target == "local":
        tbar = progress.add(f"timing {len(items)} artifacts, {cfg.rounds} interleaved rounds", cfg.rounds) if progress else None
        timings = time_interleaved(items, cfg.runtime, cfg.threads, cfg.rounds, cfg.round_ms,
                                   on_round=(lambda r: progress.advance(tbar, 1, f"timing: round {r}/{cfg.rounds}"))
                                   if progress else None)
        env = environment({cfg.runtime: _runtime_version(cfg.runtime)})
        timing_note = (f"in-process, interleaved: {cfg.rounds} rounds; in each round every row of a table's width "
                       f"runs k invokes back to back (k sized for ~{cfg.round_ms:g} ms, 2-25), row order rotated; "
                       "latency = median of the round medians; spread = IQR of round medians / median.")
    else:
        tbar = progress.add(f"timing {len(items)} artifacts on {cfg.target}", len(items)) if progress else None
        timings, env = time_ssh(cfg.target, items, cfg.runtime, cfg.threads, cfg.ssh_runs, 3, cfg.ssh,
                                on_record=(lambda rec: progress.advance(tbar, 1, f"timed {Path(rec['artifact']).name}"))
                                if progress else None)
        timing_note = (f"one runner process per artifact on {cfg.target} (the bench machinery's SSH target), "
                       f"{cfg.ssh_runs} runs after 3 warm-up: not interleaved, so board noise is not shared "
                       "between rows; spread = (p90 - median) / median.")
    t_timed = time.perf_counter()
    tables = {t: table_result(t, specs[t], timings, cfg.setup, max(cfg.tolerance, 0.0)) for t in cfg.tables}
    zoo = None
    if models:
        rows = []
        side_by_model = {b["name"]: b["sidecar"] for b in built if b["name"] in models}
        from shufflenet_edge.complexity import count_madds
        from shufflenet_edge.models.registry import build_model

        for m in models:
            info = get_info(m)
            side = side_by_model.get(m) or {}
            tm = timings.get(m, {})
            rows.append({"model": m, "family": info.family, "width": info.width, "groups": info.groups,
                         "madds": count_madds(build_model(m), ZOO_INPUT_SIZE), "median_ms": tm.get("median_ms"),
                         "spread": tm.get("spread"), "form": side.get("form"), "recipe": side.get("recipe"),
                         "artifact": side.get("path")})
        zoo = zoo_result(rows)
    load_after = _loadavg()
    forms = (f"zoo forms: {ZOO_FORMS[cfg.runtime]} for ShuffleNets (our exporter's "
             f"{'Gather-folded ONNX graph' if cfg.runtime == 'onnxruntime' else 'fastest XNNPACK recipe of the cpu form, timed at export'}), "
             f"reference for MobileNet V2; {ZOO_INPUT_SIZE}x{ZOO_INPUT_SIZE}, 1000 classes, random weights.")
    meta = {
        "schema": "shufflenet-edge/guidelines/1",
        "runtime": cfg.runtime, "runtime_version": _runtime_version(cfg.runtime), "precision": cfg.precision,
        "threads": cfg.threads, "target": cfg.target, "setup": cfg.setup, "widths": list(cfg.widths),
        "g3_merge": cfg.g3_merge, "rounds": cfg.rounds, "round_ms": cfg.round_ms, "tolerance": cfg.tolerance,
        "jobs": cfg.jobs, "environment": env, "tools": versions, "timing": timing_note, "zoo_forms": forms,
        "assumptions": assumptions(cfg), "loadavg_before": load_before, "loadavg_after": load_after,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "wall_s": {"build": round(t_built - t_start, 1), "timing": round(t_timed - t_built, 1),
                   "total": round(time.perf_counter() - t_start, 1)},
        "artifacts_built": sum(1 for b in built if not b["cached"]),
        "artifacts_cached": sum(1 for b in built if b["cached"]),
        "build_seconds": {b["name"]: b["seconds"] for b in built if not b["cached"]},
    }
    return {"meta": meta, "tables": tables, "zoo": zoo,
            "timings": timings, "artifacts": {b["name"]: b["path"] for b in built}}


def _runtime_version(runtime: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version("onnxruntime" if runtime == "onnxruntime" else "ai-edge-litert")
    except metadata.PackageNotFoundError:
        return None
