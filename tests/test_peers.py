"""benchmarks/peers.py: the pure parts (ratios per round, ranges, rotation, tables, child plumbing) run without any
peer installed; the parts that need a peer runtime skip with the reason."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "peers.py"


def _load():
    spec = importlib.util.spec_from_file_location("peers_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


peers = _load()


def test_module_imports_only_stdlib_and_numpy():
    # The `_run` mode executes under the emulated aarch64 Python, which has numpy and one runtime only.
    heavy = "{'torch', 'shufflenet_edge', 'litert_torch', 'onnxruntime', 'MNN', 'ncnn', 'executorch'}"
    code = (f"import sys, importlib.util as u; s = u.spec_from_file_location('p', {str(SCRIPT)!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); print(sorted({heavy} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rotate_gives_every_artifact_the_lead_in_turn():
    names = ["a", "b", "c"]
    assert [peers.rotate(names, r) for r in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                          ["a", "b", "c"]]
    assert peers.rotate([], 3) == []


def test_ratio_is_taken_per_round_then_median_and_range():
    ref = [4.0, 8.0, 5.0]  # a noisy reference: round 2 is twice as slow for everyone
    art = [2.0, 4.0, 3.0]
    r = peers.ratio_stats(art, ref)
    assert r == {"median": 0.5, "min": 0.5, "max": 0.6, "rounds": 3}
    # The ratio of medians would be 3/5 = 0.6; per round it is 0.5 in two of three rounds.
    assert float(np.median(art) / np.median(ref)) == pytest.approx(0.6)


def test_ratio_skips_rounds_where_either_side_is_missing():
    assert peers.ratio_stats([1.0, None, 3.0], [2.0, 2.0, None]) == {"median": 0.5, "min": 0.5, "max": 0.5, "rounds": 1}
    assert peers.ratio_stats([None], [1.0]) is None


def test_summarize_int8_rows_get_both_references():
    per = {"litert_fp32": [5.0, 5.0], "litert_int8": [2.0, 2.5], "ours_tflite_int8": [1.9, 2.0],
           "ours_tflite_fp32": [5.2, 4.9]}
    prec = {k: peers.BY_KEY[k]["precision"] for k in per}
    s = peers.summarize(per, prec)
    assert s["litert_fp32"]["ratio"]["median"] == 1.0
    assert "ratio_int8" not in s["ours_tflite_fp32"]
    assert s["ours_tflite_int8"]["ratio"]["median"] == pytest.approx((1.9 / 5 + 2.0 / 5) / 2)
    assert s["ours_tflite_int8"]["ratio_int8"]["min"] == pytest.approx(0.8)
    assert s["ours_tflite_int8"]["ratio_int8"]["max"] == pytest.approx(0.95)
    assert s["ours_tflite_int8"]["round_min_ms"] == 1.9


def test_goals_are_per_round_ratios_and_best_meets_best():
    per = {"litert_fp32": [5.0, 5.0, 5.0], "litert_int8": [2.0, 2.0, 2.0], "ours_tflite_int8": [1.7, 1.9, 1.8],
           "ours_tflite_fp32": [4.6, 4.7, 4.7], "mnn_fp32": [4.0, 1.5, 4.0], "ours_onnx_fp32": [5.5, None, 5.4]}
    rows = {(g["ours"], g["against"]): g for g in peers.goal_rows(per) if not g["best_vs_best"]}
    i8 = rows["ours_tflite_int8", "litert_int8"]
    assert i8["goal"] == 0.90 and i8["ratio"]["median"] == pytest.approx(0.9) and i8["met"] and not i8["every_round"]
    fp = rows["ours_tflite_fp32", "litert_fp32"]
    assert fp["ratio"]["median"] == pytest.approx(0.94) and fp["met"] and fp["every_round"]
    # our fastest (int8, 1.8 ms) against the fastest peer by median (litert int8, 2.0 ms; MNN's one fast round does
    # not make it the fastest)
    best = next(g for g in peers.goal_rows(per) if g["best_vs_best"])
    assert (best["ours"], best["against"]) == ("ours_tflite_int8", "litert_int8") and best["met"]


def test_summarize_without_the_reference_reports_no_ratio():
    s = peers.summarize({"ncnn_fp32": [4.0, 4.1]}, {"ncnn_fp32": "fp32"})
    assert s["ncnn_fp32"]["ratio"] is None
    assert peers.fmt_ratio(None) == "-"


def test_formatting_rounds_as_the_tables_show():
    assert peers.fmt_ratio({"median": 1.0434, "min": 1.0351, "max": 1.0649}) == "1.043 (1.04-1.06)"
    assert peers.fmt_ms({"median_ms": 4.8712, "round_min_ms": 4.8, "round_max_ms": 5.012}) == "4.87 (4.80-5.01)"
    assert peers.fmt_ms({}) == "-"


def test_agreement_metrics():
    want = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    got = want + np.array([[0.0, 0.0, 0.1], [0.0, 2.5, 0.0]])
    a = peers.agreement(got, want)
    assert a["max_abs_error"] == pytest.approx(2.5)
    assert a["top1_agreement"] == 0.5
    assert a["psnr_db"] == pytest.approx(20 * np.log10(3.0 / np.sqrt((0.01 + 6.25) / 6)))
    assert peers.fp32_agrees(peers.agreement(want + 1e-5, want))
    assert not peers.fp32_agrees(a)


def test_exit_descriptions_name_the_signal():
    assert peers.describe_exit(-11) == "killed by SIGSEGV (signal 11)"
    assert peers.describe_exit(-6) == "killed by SIGABRT (signal 6)"
    assert peers.describe_exit(2) == "exit code 2"


def test_last_json_skips_runtime_banners():
    out = "The device supports: i8sdot:0, fp16:0\nMNN use high precision\n{\"status\": \"ok\", \"x\": 1}\n"
    assert peers.last_json(out) == {"status": "ok", "x": 1}
    assert peers.last_json("no json here\n{broken") is None


def test_every_artifact_has_an_export_step_and_known_runtime():
    assert set(peers.EXPORT_ORDER) == set(peers.BY_KEY)
    for kind, dep in peers.DEPENDS.items():
        assert peers.EXPORT_ORDER.index(dep) < peers.EXPORT_ORDER.index(kind)
    assert {a["runtime"] for a in peers.ARTIFACTS} <= {"litert", "onnxruntime", "executorch", "ncnn", "mnn"}
    with pytest.raises(ValueError, match="unknown runtime"):
        peers.open_runner({"runtime": "tvm", "path": "x"}, 1, solo=True)


def test_a_crashing_child_is_recorded_not_fatal(tmp_path):
    # `_run` on a file that is not a model: the child fails, the parent gets an error string and goes on.
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    spec = {"key": "litert_fp32", "runtime": "litert", "path": str(bad)}
    res, err, _ = peers._child(["_run", json.dumps(spec), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], 120)
    assert res is None and err.startswith("exit code 1")


def test_markdown_from_a_recorded_result_says_what_failed():
    per = {"litert_fp32": [5.0, 5.1], "ncnn_fp32": [5.5, 5.4]}
    summ = peers.summarize(per, {"litert_fp32": "fp32", "ncnn_fp32": "fp32"})
    timing = {"1": {"mode": "one process", "loadavg_before": [0.1, 0, 0], "loadavg_after": [1.0, 0, 0], "seconds": 60,
                    "foreign_cpu_cores": 0.05, "errors": {}, "summary": summ}}
    mnn_attempts = [{"method": "KL", "status": "error", "error": "killed by SIGSEGV (signal 11)"},
                    {"method": "EMA", "status": "ok", "seconds": 9.0}]
    data = {"command": "python benchmarks/peers.py", "date": "2026-12-02T00:00:00", "seconds": 600,
            "environment": {"git": "abc", "uncommitted_library_changes": [], "cpu": "cpu", "logical_cpus": 2,
                            "memory_gib": 24, "machine": "x86_64", "simd": ["avx512f"], "versions": {"torch": "2.13.0"}},
            "settings": {"rounds": 2, "runs": 10, "warmup": 2, "threads": [1], "check_inputs": 2},
            "loadavg_start": [0.1, 0, 0], "loadavg_end": [0.2, 0, 0], "foreign_cpu_max": 0.05, "loaded": False,
            "kernel_evidence": {"mnn": {"shared_objects": 1, "avx512_strings": 0}},
            "models": {"m": {"exports": {
                "litert_fp32": {"status": "ok", "seconds": 3.0, "size_bytes": 1e6},
                "ncnn_fp32": {"status": "ok", "seconds": 0.5, "size_bytes": 1e6, "details": {"layers": 110}},
                "mnn_int8": {"status": "ok", "seconds": 9.0, "size_bytes": 1e6, "attempts": mnn_attempts},
                "executorch_fp32": {"status": "error", "error": "exit code 1: ModuleNotFoundError: executorch"}},
                "checks": {"litert_fp32": {"status": "ok", "max_abs_error": 1e-6, "top1_agreement": 1.0, "psnr_db": 120},
                           "ncnn_fp32": {"status": "ok", "max_abs_error": 2e-6, "top1_agreement": 1.0, "psnr_db": 110,
                                         "fp32_agrees": True}},
                "timing": timing}}}
    md = peers.markdown(data)
    assert "| ncnn fp32 | 5.45 (5.40-5.50) | 1.079 (1.06-1.10) |" in md
    assert "KL calibration: killed by SIGSEGV (signal 11)" in md
    assert "ExecuTorch XNNPACK fp32 export: exit code 1" in md
    assert "mnn 0" in md
    assert "quiet enough" in md


@pytest.mark.slow
def test_peer_runtimes_run_an_artifact(tmp_path):
    """Needs the [peers] extra: ncnn and MNN load a converted ONNX and agree with onnxruntime."""
    pytest.importorskip("ncnn", reason="ncnn is in the [peers] extra only (pip install -c constraints.txt -e '.[peers]')")
    pytest.importorskip("MNN", reason="MNN is in the [peers] extra only")
    pytest.importorskip("pnnx", reason="pnnx is in the [peers] extra only")
    from shufflenet_edge.api import export as se_export

    onnx_path = tmp_path / "reference.onnx"
    se_export("shufflenet_v2_x0_5", onnx_path, target="onnx", form="reference", input_size=224, show_progress=False)
    peers._export_ncnn(onnx_path, tmp_path / "ncnn_fp32.param")
    peers._export_mnn(onnx_path, tmp_path / "mnn_fp32.mnn")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    outs = {}
    for key, path in (("reference_onnx", onnx_path), ("ncnn_fp32", tmp_path / "ncnn_fp32.param"),
                      ("mnn_fp32", tmp_path / "mnn_fp32.mnn")):
        r = peers.open_runner({"runtime": peers.BY_KEY[key]["runtime"], "path": str(path)}, 1, solo=True)
        r.prepare(x)
        r.invoke()
        outs[key] = r.output()
    for key in ("ncnn_fp32", "mnn_fp32"):
        assert peers.fp32_agrees(peers.agreement(outs[key], outs["reference_onnx"])), key
