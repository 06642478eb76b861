"""Benchmark: generated ShuffleNet-family models (tests/model_gen.py) through every path, counted.

Each seed draws an architecture (V1/V2/megvii units, every spelling of the shuffle and the split, taps returned as
outputs, heads of ranks 2-5, SE, upsampling, adaptive pooling, odd channels, non-square inputs), builds it with
random weights and non-identity BatchNorm, and runs (tests/generated_cases.py): the graph fold in PyTorch, ONNX fp32,
TFLite fp32 and, for every `--int8-every`-th seed, TFLite int8, each export with defaults and then parity's default
gate. Cases run in batches of five per process (a crash or a hang of a native library is one case's `internal`
outcome and the rest of its batch runs again); results are appended as they come, so a run can be resumed.

    python benchmarks/fuzz_models.py --cases 300 --lanes 2        # seeds 0..299, two batches at a time
    python benchmarks/fuzz_models.py --seeds 17 42                # reproduce given seeds (printed on failure)

Writes benchmarks/results/fuzz_models.json and fuzz_models.md: cases, exported per path, refusals with their
one-line reason, internal errors and wrong numbers (the goal for both: 0), each with the seed that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(TESTS))

CASE_TIMEOUT_S = 1200
BATCH = 5  # cases per process: the interpreter start (torch, litert) is paid once per batch


def run_batch(seeds: list[int], paths_of: dict[int, list[str]], out: Path, cpu: int | None) -> int:
    """Run cases in this process, one JSON line each appended to `out` as it finishes (the child's job); on `cpu`
    alone when given (before torch is imported, so it starts one thread)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    import generated_cases

    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{seed}-") as td:
            rec = generated_cases.run_case(seed, Path(td), tuple(paths_of[seed]))
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
    return 0


def run_children(seeds: list[int], paths_of: dict[int, list[str]], lanes: int = 1) -> Iterator[dict[str, Any]]:
    """Each case's record as its batch finishes: `seeds` in batches of BATCH, each batch in its own process, `lanes`
    batches at a time. A batch that crashes or hangs makes its unfinished case an `internal` outcome on every path;
    the rest of it runs again."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pending = list(seeds)
    free = _lane_cpus(lanes)
    with ThreadPoolExecutor(lanes) as pool:
        running = {}
        while pending or running:
            while pending and len(running) < lanes:
                batch, pending = pending[:BATCH], pending[BATCH:]
                cpu = free.pop(0)
                running[pool.submit(_batch_process, batch, paths_of, cpu)] = (batch, cpu)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                batch, cpu = running.pop(fut)
                free.append(cpu)
                recs, why, seconds = fut.result()
                yield from recs
                left = batch[len(recs):]
                if why is not None and left:
                    seed = left.pop(0)
                    pending = left + pending
                    yield {"seed": seed, "summary": f"seed {seed}", "results": [
                        {"path": p, "outcome": "internal", "detail": why, "seconds": seconds, "form": None,
                         "fallback": None, "metrics": {}} for p in paths_of[seed]]}


def _lane_cpus(lanes: int) -> list[int | None]:
    """One CPU per lane when there are several lanes and enough CPUs: each batch process then converts its --form auto
    candidates one after another on its own CPU (with two or more CPUs visible the exporter would start a second
    interpreter for the reference conversion, paying torch's import on a CPU the other lane is using). One lane
    sees every CPU, as a user's export does."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if lanes < 2 or len(cpus) < lanes:
        return [None] * lanes
    return list(cpus[:lanes])


def _batch_process(batch: list[int], paths_of: dict[int, list[str]],
                   cpu: int | None) -> tuple[list[dict[str, Any]], str | None, float]:
    with tempfile.TemporaryDirectory(prefix="fuzz-rec-") as td:
        rec_path = Path(td) / "cases.jsonl"
        spec = json.dumps({str(k): paths_of[k] for k in batch})
        cmd = [sys.executable, str(Path(__file__).resolve()), "--batch-json", spec, "--record", str(rec_path)]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        t0 = time.perf_counter()
        why = None
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT_S * len(batch),
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if p.returncode != 0:
                why = f"the case process exited {p.returncode}: {(p.stderr or '').strip().splitlines()[-1:]}"
        except subprocess.TimeoutExpired:
            why = f"the case process ran past {CASE_TIMEOUT_S * len(batch)} s"
        recs = [json.loads(ln) for ln in rec_path.read_text().splitlines()] if rec_path.is_file() else []
    return recs, why, round(time.perf_counter() - t0, 1)


def _wall(meta: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    if meta.get("wall_s") is not None:
        return f"wall time {meta['wall_s'] / 60:.0f} min"
    busy = sum(r["seconds"] for c in cases for r in c["results"]) / 60
    return (f"a partial run ({meta['partial']}), its cases' own times summing to {busy:.0f} min over "
            f"{meta['lanes']} lane(s)")


def render(cases: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    import generated_cases

    t = generated_cases.tally(cases)
    lines = [f"# Generated models through every path ({meta['date']})", "",
             f"`python benchmarks/fuzz_models.py {meta['args']}` at commit {meta.get('commit')} on {meta['host']}; "
             f"{t['cases']} cases (seeds "
             f"{min(c['seed'] for c in cases)}..{max(c['seed'] for c in cases)}), int8 on every {meta['int8_every']}th "
             f"seed; {_wall(meta, cases)}. Models: tests/model_gen.py; checks: tests/generated_cases.py.",
             "", "| path | cases | exported | of which a folded candidate was left out | refused | internal errors | "
             "wrong numbers | median s/case |", "|---|---|---|---|---|---|---|---|"]
    for path, p in t["per_path"].items():
        n = p["exported"] + p["refused"] + p["internal"] + p["wrong"]
        lines.append(f"| {path} | {n} | {p['exported']} | {p['fallback']} | {p['refused']} | {p['internal']} | "
                     f"{p['wrong']} | {p['seconds_median']:.1f} |")
    for path, p in t["per_path"].items():
        if not p["reasons"]:
            continue
        lines += ["", f"## {path}: not exported plainly", "", "| seed | outcome | reason |", "|---|---|---|"]
        lines += [f"| {r['seed']} | {r['outcome'] if r['outcome'] != 'exported' else 'exported (fallback)'} | "
                  f"{(r['detail'] or '').replace('|', '/')[:300]} |" for r in p["reasons"]]
    lines += ["", "Reproduce one case: `python benchmarks/fuzz_models.py --seeds SEED`; the model alone: "
              "`build(draw(SEED))` in tests/model_gen.py."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300, help="seeds 0..N-1 (default 300)")
    ap.add_argument("--seeds", type=int, nargs="+", help="these seeds instead")
    ap.add_argument("--int8-every", type=int, default=4, help="TFLite int8 on every k-th seed (default 4)")
    ap.add_argument("--out", default="fuzz_models", help="results/<out>.json and .md (default fuzz_models)")
    ap.add_argument("--resume", action="store_true", help="keep the cases already in results/<out>.jsonl")
    ap.add_argument("--lanes", type=int, default=1, help="batches run at the same time, each on a CPU of its own "
                                                         "(default 1: one batch at a time on every CPU)")
    ap.add_argument("--report", action="store_true", help="write results/<out>.json and .md from the cases already in "
                                                              "results/<out>.jsonl, running none (a run cut short)")
    ap.add_argument("--batch-json", help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.batch_json is not None:
        paths_of = {int(k): v for k, v in json.loads(args.batch_json).items()}
        return run_batch(list(paths_of), paths_of, Path(args.record), args.cpu)
    if args.int8_every < 1 or args.cases < 1:
        ap.error("--cases and --int8-every must be positive")
    seeds = args.seeds if args.seeds else list(range(args.cases))
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    log = res / f"{args.out}.jsonl"
    done: dict[int, dict[str, Any]] = {}
    if (args.resume or args.report) and log.is_file():
        done = {r["seed"]: r for r in map(json.loads, log.read_text().splitlines()) if r}
    elif log.exists():
        log.unlink()
    t0 = time.perf_counter()
    todo = [s for s in seeds if s not in done] if not args.report else []
    paths_of = {s: ["fold", "onnx", "tflite"] + (["tflite_int8"] if s % args.int8_every == 0 else []) for s in todo}
    for rec in run_children(todo, paths_of, max(1, args.lanes)):
        done[rec["seed"]] = rec
        with log.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        bad = [f"{r['path']} {r['outcome']}: {(r['detail'] or '')[:160]}" for r in rec["results"]
               if r["outcome"] in ("internal", "wrong")]
        print(f"[{len(done)}/{len(seeds)} {time.strftime('%H:%M:%S')}] {rec['summary']}: "
              + ", ".join(f"{r['path']} {r['outcome']}" + (" (fallback)" if r.get("fallback") else "")
                          for r in rec["results"]) + "".join(f"\n    {b}" for b in bad), flush=True)
    cases = [done[s] for s in seeds if s in done]
    if not cases:
        ap.error(f"no cases in {log}")
    from _timing import cpu_model
    from shufflenet_edge.runtimes.ort_session import cpu_isa

    flags = cpu_isa()["flags"]
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    meta = {"date": time.strftime("%Y-%m-%d"), "args": " ".join(argv if argv is not None else sys.argv[1:]),
            "commit": commit,
            "host": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} CPUs, ISA flags read: "
                    f"{', '.join(flags) if flags else 'none of ' + '/'.join(('avx2', 'avx512_vnni', 'avx_vnni'))}",
            "int8_every": args.int8_every, "lanes": args.lanes, "wall_s": time.perf_counter() - t0}
    if len(cases) < len(seeds):
        meta.update(wall_s=None, partial=f"{len(cases)} of the {len(seeds)} seeds asked for; `--resume` runs the rest")
    import generated_cases

    (res / f"{args.out}.json").write_text(json.dumps({"meta": meta, "tally": generated_cases.tally(cases),
                                                       "cases": [{k: c[k] for k in ("seed", "summary", "results")}
                                                                 for c in cases]}, indent=1) + "\n")
    (res / f"{args.out}.md").write_text(render(cases, meta))
    print(f"wrote {res / (args.out + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
