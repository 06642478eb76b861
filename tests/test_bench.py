"""`shufflenet-edge bench` on the local target: statistics, records, table/JSON/PNG, GPU rows skipped with
the reason, torch eager, bad inputs as one-line errors, and the adb plug-in contract."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from fixtures.bench_artifacts import MODEL, small_artifacts
from shufflenet_edge.runtimes.local import Job, plan_jobs
from shufflenet_edge.runtimes.results import (
    FIELDS,
    LATENCY_KEYS,
    TargetError,
    format_markdown,
    format_table,
    latency_from_summary,
    latency_stats,
    new_record,
    read_json,
    write_plot,
)

from shufflenet_edge.cli import main

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: str | os.PathLike[str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_artifacts(tmp_path_factory, "fp32.onnx", "fp32.tflite")


def assert_sane(lat: dict[str, float]) -> None:
    assert set(lat) == set(LATENCY_KEYS)
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0


# --- statistics and records ------------------------------------------------------------------------

def test_latency_stats_known_values():
    s = latency_stats([4.0, 1.0, 3.0, 2.0, 5.0, 100.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert s["median"] == 6.0 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["p90"] == pytest.approx(10.0) and s["p99"] == pytest.approx(91.0)  # linear between order statistics
    assert s["mean"] == pytest.approx(155 / 11, abs=1e-4)
    assert_sane(s)
    assert latency_stats([2.5]) == {k: (0.0 if k == "std" else 2.5) for k in LATENCY_KEYS}
    with pytest.raises(ValueError, match="at least one"):
        latency_stats([])
    with pytest.raises(ValueError, match="finite"):
        latency_stats([1.0, float("nan")])


def test_record_schema_and_rules():
    r = new_record(artifact="m.tflite", runtime="litert", target="local", threads=1,
                   latency_ms=latency_stats([1, 2, 3]), runs=3)
    assert list(r)[: len(FIELDS)] == list(FIELDS) and r["format"] == "tflite" and r["status"] == "ok"
    s = new_record(artifact="m.onnx", runtime="onnxruntime", target="local", threads=1, status="skipped",
                   reason="no GPU")
    assert s["latency_ms"] == {k: None for k in LATENCY_KEYS} and s["environment"] == {}
    with pytest.raises(ValueError, match="needs a reason"):
        new_record(artifact="m.onnx", runtime="onnxruntime", target="local", threads=1, status="error")
    with pytest.raises(ValueError, match="status must be"):
        new_record(artifact="m.onnx", runtime="onnxruntime", target="local", threads=1, status="fine")
    with pytest.raises(ValueError, match="unknown record fields"):
        new_record(artifact="m.onnx", runtime="onnxruntime", target="local", threads=1, latency=1)
    assert latency_from_summary(mean=4.1, min=3.0)["p99"] is None
    with pytest.raises(ValueError, match="unknown latency keys"):
        latency_from_summary(avg=1.0)
    table = format_table([r, s])
    assert "skipped [1]" in table and "[1] skipped: onnxruntime on local: no GPU" in table


def test_plan_gpu_rows_once_and_provider_filter():
    jobs = plan_jobs(["a.onnx", "b.tflite", "torch:shufflenet_v2_x0_5"], ["auto"], None, [1, 2], local=True, gpu=True)
    gpu = [j for j in jobs if j.provider in ("cuda", "tensorrt", "gpu")]
    assert {(j.runtime, j.provider) for j in gpu} == {("onnxruntime", "cuda"), ("onnxruntime", "tensorrt"),
                                                       ("litert", "gpu"), ("torch", "cuda")}
    assert all(j.threads == 1 for j in gpu)  # threads do not apply to a GPU: one row, not one per count
    assert Job("a.onnx", "onnxruntime", "cpu", 2) in jobs and Job("b.tflite", "litert", "xnnpack", 2) in jobs
    only_cpu = plan_jobs(["a.onnx", "b.tflite"], ["auto"], ["cpu"], [1], local=True, gpu=True)
    assert [(j.runtime, j.provider) for j in only_cpu] == [("onnxruntime", "cpu"), ("litert", "xnnpack")]
    remote = plan_jobs(["b.tflite"], ["auto"], None, [4], local=False, gpu=False)
    assert remote == [Job("b.tflite", "auto", None, 4)]  # the board's runner picks LiteRT or tflite-runtime


# --- the command, end to end -----------------------------------------------------------------------

def test_bench_local_table_json_png(arts, tmp_path):
    out_json, out_png = tmp_path / "r" / "bench.json", tmp_path / "r" / "bench.png"
    r = cli("bench", str(arts["fp32.onnx"]), str(arts["fp32.tflite"]), f"torch:{MODEL}@64",
            "--runs", "30", "--warmup", "3", "--threads", "1,2", "--json", str(out_json), "--plot", str(out_png))
    assert r.returncode == 0, r.stderr
    assert "median" in r.stdout and "p99" in r.stdout and "GPU" in r.stdout
    recs = read_json(out_json)
    ok = [x for x in recs if x["status"] == "ok"]
    # fp32.onnx: onnxruntime/cpu x 2 threads; fp32.tflite: litert x 2; torch eager x 2
    assert {(x["runtime"], x["threads"]) for x in ok} >= {("onnxruntime", 1), ("onnxruntime", 2), ("litert", 1),
                                                           ("litert", 2), ("torch", 1), ("torch", 2)}
    for x in ok:
        assert set(FIELDS) <= set(x)
        assert_sane(x["latency_ms"])
        assert x["runs"] == 30 and x["warmup"] == 3 and x["target"] == "local"
        assert x["model"] == MODEL and x["precision"] == "fp32"
        assert x["madds"] and 3e6 < x["madds"] < 6e6  # shufflenet_v2_x0_5 at 64x64: about 4.2M
        assert x["init_ms"] > 0 and x["first_inference_ms"] > 0 and x["peak_rss_mb"] > 20
        assert x["environment"]["cores"] >= 1 and x["environment"]["machine"] and x["environment"]["python"]
        assert x["runtime_version"] and x["environment"]["runtime_versions"]
        if x["runtime"] != "torch":
            assert x["model_size_bytes"] == os.path.getsize(x["artifact"])
    tfl = [x for x in ok if x["runtime"] == "litert"]
    assert all(x["xnnpack_partitions"] >= 1 for x in tfl)
    # GPU rows: present, skipped, with the reason (this machine has no GPU; on one with a GPU they run)
    gpu = [x for x in recs if x["provider"] in ("cuda", "tensorrt", "gpu")]
    assert {x["runtime"] for x in gpu} == {"onnxruntime", "litert", "torch"}
    for x in gpu:
        if x["status"] == "skipped":
            assert "GPU" in x["reason"] or "CUDA" in x["reason"] or "cuda" in x["reason"].lower(), x["reason"]
    assert "GPU rows skipped on local" in r.stdout and "skipped [" not in r.stdout  # one line, not a row per file
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000


def test_explicit_absent_provider_is_skipped_with_reason(arts, tmp_path):
    out = tmp_path / "x.json"
    r = cli("bench", str(arts["fp32.onnx"]), "--provider", "xnnpack", "--runs", "5", "--json", str(out), "--no-plot")
    recs = read_json(out)
    assert len(recs) == 1
    rec = recs[0]
    if rec["status"] == "skipped":  # the usual PyPI onnxruntime has no XNNPACK EP
        assert r.returncode == 0 and "XnnpackExecutionProvider" in rec["reason"]
    else:
        assert rec["status"] == "ok", rec


def test_plot_without_madds_is_a_bar_chart(tmp_path):
    recs = [new_record(artifact=f"m{i}.tflite", runtime="litert", target="local", threads=1,
                       latency_ms=latency_stats([1.0 + i, 2.0 + i])) for i in range(3)]
    p = write_plot(tmp_path / "p.png", recs)
    assert p.read_bytes()[:4] == b"\x89PNG"
    md = format_markdown(recs)
    assert md.count(".tflite |") == 3 and "| 2.50 |" in md  # median of [2, 3]


# --- bad inputs: one line, non-zero -----------------------------------------------------------------

@pytest.mark.parametrize("args, code, words", [
    (["nosuch.tflite"], 1, "artifact not found: nosuch.tflite"),
    (["{onnx}", "--runtime", "tensorflow"], 2, "invalid choice"),
    (["{onnx}", "--runtime", "litert"], 2, "no runtime among --runtime litert runs"),
    (["{onnx}", "--target", "ftp://x"], 2, "unknown target"),
    (["{onnx}", "--target", "ssh://-oProxyCommand=x"], 2, "must not start with '-'"),
    (["torch:resnet50"], 2, "valid names"),
    (["{onnx}", "--threads", "0"], 2, "positive integers"),
    (["README.md"], 2, "unknown artifact type"),
])
def test_bad_input_one_line(arts, tmp_path, args, code, words):
    args = [a.replace("{onnx}", str(arts["fp32.onnx"])) for a in args]
    r = cli("bench", *args, "--json", str(tmp_path / "o.json"), "--no-plot", cwd=REPO)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_no_artifact_and_no_defaults_says_how_to_make_them(tmp_path):
    r = cli("bench", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "shufflenet-edge export" in r.stderr and "out/shufflenet_v2_x1_0_int8.tflite" in r.stderr


def test_corrupt_artifact_is_an_error_row(arts, tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    # nothing measured: one line, nothing written (tests/test_cli_promises.py has the full promise)
    r = cli("bench", str(bad), "--no-gpu", "--runs", "3", "--json", str(tmp_path / "o.json"), "--no-plot", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "broken.tflite" in r.stderr
    assert not (tmp_path / "o.json").exists()
    # beside a good artifact: an error row in the table and the JSON, exit 1
    r = cli("bench", str(bad), str(arts["fp32.onnx"]), "--no-gpu", "--runs", "3", "--json", str(tmp_path / "o.json"),
            "--no-plot", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "broken.tflite" in r.stderr
    assert [x["status"] for x in read_json(tmp_path / "o.json")] == ["error", "ok"]


# --- the adb plug-in contract (the real adb target has its own tests) ------------------------------

def test_adb_target_records_merge_and_partial_failure(arts, tmp_path, monkeypatch, capsys):
    calls = []

    def run_adb_target(target, artifacts, *, runtime, threads, runs, warmup, options):
        calls.append((target, tuple(artifacts), runtime, threads, runs, warmup, options.get("cpu_mask")))
        ok = new_record(artifact=artifacts[0], runtime="litert", target=target, threads=threads, runs=runs,
                        warmup=warmup, latency_ms=latency_from_summary(mean=2.0, median=1.9, min=1.8, max=2.5))
        if target == "adb:B":
            raise TargetError(target, "device offline during m.tflite", [ok])
        return [ok]

    fake = types.ModuleType("shufflenet_edge.runtimes.adb")
    fake.run_adb_target = run_adb_target  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shufflenet_edge.runtimes.adb", fake)
    import shufflenet_edge.runtimes as pkg

    monkeypatch.setattr(pkg, "adb", fake, raising=False)
    out = tmp_path / "a.json"
    rc = main(["bench", str(arts["fp32.tflite"]), "--target", "adb:A", "--target", "adb:B", "--threads", "4",
               "--cpu-mask", "f0", "--runs", "7", "--json", str(out), "--no-plot", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "adb:B: device offline during m.tflite" in err and err.count("\n") == 1
    assert [c[0] for c in calls] == ["adb:A", "adb:B"] and calls[0][3:] == (4, 7, 10, "f0")
    recs = read_json(out)
    assert [r["target"] for r in recs] == ["adb:A", "adb:B"]  # B's measured record kept in the JSON
    assert all(r["model"] == MODEL for r in recs)  # filled from the sidecar
