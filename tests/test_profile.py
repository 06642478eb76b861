"""Per-op profiles and variance control (item 5).

The benchmark_model parser is tested on VERBATIM samples of the tool's op-profiling output from public
GitHub issues (tests/fixtures/profiles/README.md names each source), cut where the stored copies end, and
on two profiles printed the way the tool's source prints them (from_source_*.txt, labelled as such).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.bench_artifacts import MODEL, small_artifacts
from shufflenet_edge.runtimes import adb as adbmod
from shufflenet_edge.runtimes.local import Cooldown
from shufflenet_edge.runtimes.profile import (
    op_category,
    parse_benchmark_model_profile,
    profile_from_benchmark_model,
    profile_from_runner,
)
from shufflenet_edge.runtimes.results import (
    cpu_state_changes,
    format_table,
    latency_stats,
    new_record,
    read_json,
)
from shufflenet_edge.runtimes.runner import parse_cpu_state_listing, summarize_ort_trace
from test_adb import FakeDevice, private_adb  # noqa: F401  (the fixture: the real adb, a private server)
from test_ssh import sshd  # noqa: F401  (the fixture: a private OpenSSH server on 127.0.0.1)

FIX = Path(__file__).parent / "fixtures" / "profiles"
REPO = Path(__file__).resolve().parents[1]


def sample(name: str) -> str:
    return (FIX / name).read_text()


def cli(*args: str, cwd: Path | None = None, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, input=stdin, env=env)


def by_type(prof: dict) -> dict[str, dict]:
    return {r["node_type"]: r for r in prof["summary_by_node_type"]}


# --------------------------------------------------------------------------- verbatim public samples


def test_every_fixture_has_a_source_line_and_a_readme_row():
    readme = (FIX / "README.md").read_text()
    for f in sorted(FIX.glob("*.txt")):
        first = f.read_text().splitlines()[0]
        assert first.startswith("# source: https://github.com/") or first.startswith("# WRITTEN FROM SOURCE"), f.name
        assert f.name in readme, f"{f.name} is not listed in tests/fixtures/profiles/README.md"


def test_old_space_aligned_run_order_with_start_column():
    text = sample("tf25021_old_spaces.txt")
    parsed = parse_benchmark_model_profile(text)
    assert parsed["format"]["start_column"] is True and not parsed["format"]["tab_separated"]
    assert not parsed["format"]["initialization_block"]
    rows = parsed["blocks"][0]["tables"]["run_order"]
    assert [r["node_type"] for r in rows] == ["DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]  # the cut "SOFT" row is left out
    assert rows[0] == {"node_type": "DEPTHWISE_CONV_2D", "start_ms": 0.0, "first_ms": 0.802, "avg_ms": 0.719,
                       "percent": 45.131, "cdf_percent": 45.131, "mem_kb": 0.0, "times_called": 1, "name": "[Relu6]"}
    prof = profile_from_benchmark_model(text)
    assert prof["summary_source"] == "derived from Run Order"
    assert by_type(prof)["FULLY_CONNECTED"]["avg_ms"] == pytest.approx(0.849)
    assert prof["data_movement"]["count"] == 0 and any("cut short" in n for n in prof["notes"])


def test_tab_separated_with_start_column_and_a_cut_row():
    prof = profile_from_benchmark_model(sample("tf27948_tabs_start.txt"))
    assert prof["format"]["tab_separated"] and prof["format"]["start_column"]
    conv = by_type(prof)["CONV_2D"]
    assert conv["count"] == 5 and conv["avg_ms"] == pytest.approx(20.083 + 36.419 + 36.473 + 36.581 + 36.718)
    assert prof["top_ops"][0]["name"] == "[srnetwork/Conv/Relu]" and prof["top_ops"][0]["avg_ms"] == 536.830


def test_top_by_computation_time_after_a_run_order_tail_and_nnapi_rows():
    prof = profile_from_benchmark_model(sample("tf43541_nnapi_top.txt"))
    # the Run Order rows above have no header in the excerpt: only the titled Top table counts
    assert prof["summary_source"].startswith("derived from Top by Computation Time")
    assert prof["top_ops"] == [{"name": "[network_unet/decoder/upsample_2x_3/ResizeBilinear]:41",
                                "node_type": "TfLiteNnapiDelegate", "avg_ms": 107.667, "times_called": 1,
                                "percent": 25.3, "category": "delegate"}]
    assert prof["format"]["opaque_delegates"] == ["TfLiteNnapiDelegate"]
    assert any("opaque" in n for n in prof["notes"])


def test_delegate_row_and_names_with_commas():
    prof = profile_from_benchmark_model(sample("deepspeech2270_delegate.txt"))
    t = by_type(prof)
    assert t["DELEGATE"]["category"] == "delegate" and t["DELEGATE"]["avg_ms"] == 21.287
    assert t["SPLIT"]["category"] == "data_movement" and prof["data_movement"]["avg_ms"] == pytest.approx(0.013)
    split = next(r for r in parse_benchmark_model_profile(sample("deepspeech2270_delegate.txt"))["blocks"][0]
                 ["tables"]["run_order"] if r["node_type"] == "SPLIT")
    assert split["name"].count(", ") == 3 and split["name"].endswith("split:3]")
    assert prof["delegate_opaque"]["node_types"] == ["DELEGATE"]


def test_operator_wise_header_and_a_name_wrapped_onto_the_next_line():
    parsed = parse_benchmark_model_profile(sample("tf46084_nnapi_wrapped.txt"))
    assert [b["kind"] for b in parsed["blocks"]] == ["regular"]
    rows = parsed["blocks"][0]["tables"]["run_order"]
    assert len(rows) == 1 and rows[0]["node_type"] == "TfLiteNnapiDelegate" and rows[0]["avg_ms"] == 6.549
    assert rows[0]["name"].endswith("StatefulPart")  # the wrapped remainder is not a row


def test_summary_by_node_type_printed_by_the_tool():
    text = sample("tf53138_summary_by_node_type.txt")
    parsed = parse_benchmark_model_profile(text)
    assert parsed["blocks"][0]["nodes_executed"] == 64
    prof = profile_from_benchmark_model(text)
    assert prof["summary_source"] == "printed"
    rows = [(r["node_type"], r["count"], r["avg_ms"], r["percent"]) for r in prof["summary_by_node_type"]]
    assert rows == [("CONV_2D", 34, 266.475, 75.118), ("DEPTHWISE_CONV_2D", 13, 83.74, 23.606),
                    ("TFLite_Detection_PostProcess", 1, 3.579, 1.009), ("CONCATENATION", 2, 0.483, 0.136),
                    ("LOGISTIC", 1, 0.233, 0.066)]
    assert by_type(prof)["CONCATENATION"]["category"] == "layout_copy"
    assert prof["data_movement"]["count"] == 0 and prof["data_movement_wide"]["count"] == 2


@pytest.mark.parametrize("name, inference_avg_us", [("tf42507_initialization_block.txt", 33209.4),
                                                     ("xnnpack999_initialization_block.txt", 55043.2)])
def test_initialization_block_first_and_output_cut_before_the_regular_runs(name, inference_avg_us):
    text = sample(name)
    parsed = parse_benchmark_model_profile(text)
    assert parsed["format"]["initialization_block"] and all(b["kind"] == "initialization" for b in parsed["blocks"])
    with pytest.raises(ValueError, match="only the initialization profile"):
        profile_from_benchmark_model(text)
    # the latency parser of the adb target reads the same pastes
    assert adbmod.parse_benchmark_model(text)["inference_avg_us"] == inference_avg_us


def test_a_summary_pasted_without_its_title_line():
    prof = profile_from_benchmark_model(sample("tf19277_tf_summary_tabs.txt"))
    t = by_type(prof)
    assert len(t) == 13 and "Slice" not in t  # the cut last row is left out
    assert t["Gather"] == {"node_type": "Gather", "count": 546, "avg_ms": 3.797, "percent": 4.091,
                           "category": "data_movement"}
    assert t["Reshape"]["category"] == "layout_copy"


def test_oldest_tables_without_times_called_and_a_wrapped_header():
    parsed = parse_benchmark_model_profile(sample("onnc19_tf_top_and_summary.txt"))
    tables = parsed["blocks"][0]["tables"]
    assert len(tables["top_by_time"]) == 10 and tables["top_by_time"][0]["name"] == "conv_4/Conv2D"
    assert tables["summary_by_node_type"] == [{"node_type": "Conv2D", "count": 94, "avg_ms": 244.899,
                                               "percent": 88.952, "cdf_percent": 88.952, "mem_kb": 35869.95,
                                               "name": None}]


# ------------------------------------------------------------------ written from the tool's source


def test_no_start_column_xnnpack_delegate_rows_and_initialization_block():
    text = sample("from_source_no_start_xnnpack.txt")
    prof = profile_from_benchmark_model(text)
    fmt = prof["format"]
    assert fmt["start_column"] is False and fmt["delegate_rows"] and fmt["initialization_block"]
    assert fmt["prefix"] == "level" and fmt["opaque_delegates"] == []
    t = by_type(prof)
    assert t["Transpose (ND, X32)"]["category"] == "data_movement" and t["Slice (ND, X32)"]["avg_ms"] == 0.156
    assert t["Convolution (NHWC, F32) GEMM"]["avg_ms"] == pytest.approx(0.034 * 36, abs=1e-3)
    assert t["Copy (NC, X32)"]["category"] == "layout_copy" and t["PADV2"]["category"] == "compute"
    assert prof["data_movement"]["avg_ms"] == pytest.approx(0.912 + 0.156, abs=1e-3)
    assert prof["data_movement"]["percent"] == pytest.approx(100 * 1.068 / prof["total_ms"], abs=0.05)
    assert prof["initialization"]["rows"][0] == {"node_type": "ModifyGraphWithDelegate", "avg_ms": 30.112,
                                                 "times_called": 1}
    assert prof["run_ms"] == pytest.approx(prof["total_ms"], abs=1e-3) and not prof["notes"]
    assert prof["top_ops"][0]["name"] == "Delegate/Convolution (NHWC, F32) IGEMM:0"


def test_csv_mode_gives_the_same_profile():
    csv = profile_from_benchmark_model(sample("from_source_csv.txt"))
    text = profile_from_benchmark_model(sample("from_source_no_start_xnnpack.txt"))
    assert csv["format"]["csv"]
    assert {r["node_type"]: round(r["avg_ms"], 3) for r in csv["summary_by_node_type"]} == \
        {r["node_type"]: round(r["avg_ms"], 3) for r in text["summary_by_node_type"]}
    assert csv["data_movement"]["avg_ms"] == pytest.approx(text["data_movement"]["avg_ms"], abs=1e-3)


@pytest.mark.parametrize("node_type, cat", [
    ("TRANSPOSE", "data_movement"), ("STRIDED_SLICE", "data_movement"), ("SPLIT_V", "data_movement"),
    ("PACK", "data_movement"), ("UNPACK", "data_movement"), ("GATHER", "data_movement"), ("Gather", "data_movement"),
    ("Split", "data_movement"), ("Slice (ND, X32)", "data_movement"), ("Even Split2 (ND, X32)", "data_movement"),
    ("CONCATENATION", "layout_copy"), ("Concat", "layout_copy"), ("RESHAPE", "layout_copy"),
    ("ReorderInput", "layout_copy"), ("ReorderOutput", "layout_copy"), ("Copy (NC, X32)", "layout_copy"),
    ("TfLiteXNNPackDelegate", "delegate"), ("DELEGATE", "delegate"), ("TfLiteGpuDelegateV2", "delegate"),
    ("Convolution (NHWC, QU8) GEMM", "compute"), ("CONV_2D", "compute"), ("FusedConv", "compute"),
])
def test_op_categories(node_type, cat):
    assert op_category(node_type) == cat


# ----------------------------------------------------------------------------- onnxruntime traces


def _ev(cat: str, name: str, ts: float, dur: float, op: str | None = None) -> dict:
    e = {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "args": {}}
    if op:
        e["args"] = {"op_name": op, "provider": "CPUExecutionProvider"}
    return e


def test_summarize_ort_trace_leaves_out_warmup_and_averages_per_run():
    events = [_ev("Session", "session_initialization", 0, 50)]
    for run, t0 in enumerate((100, 200, 300)):
        events.append(_ev("Session", "model_run", t0, 60))
        events.append(_ev("Node", "conv_kernel_time", t0 + 1, 40 if run else 400, "Conv"))
        events.append(_ev("Node", "tr_kernel_time", t0 + 45, 10, "Transpose"))
        events.append(_ev("Node", "tr_fence_before", t0 + 44, 1, "Transpose"))  # not a kernel time
    events.append(_ev("Node", "stray_kernel_time", 1000, 5, "Add"))  # outside every run
    s = summarize_ort_trace(events, skip_runs=1)
    assert s["runs"] == 2 and s["skipped_runs"] == 1 and s["run_ms"] == [0.06, 0.06]
    assert s["nodes"] == [{"name": "conv", "op_type": "Conv", "provider": "CPUExecutionProvider", "avg_ms": 0.04,
                           "times_called": 1.0},
                          {"name": "tr", "op_type": "Transpose", "provider": "CPUExecutionProvider", "avg_ms": 0.01,
                           "times_called": 1.0}]
    prof = profile_from_runner({**s, "source": "onnxruntime", "timing": True})
    assert prof["data_movement"] == {"node_types": ["Transpose"], "count": 1, "avg_ms": 0.01, "percent": 20.0}
    assert prof["top_ops"][0]["name"] == "conv"


def test_litert_profile_counts_and_says_it_cannot_time():
    prof = profile_from_runner({"source": "litert", "timing": False, "reason": "no per-op timing here",
                                "nodes": [{"name": f"{t}:{i}", "op_type": t, "avg_ms": None, "times_called": 1}
                                          for i, t in enumerate(["CONV_2D", "TRANSPOSE", "TRANSPOSE", "RESHAPE"])]})
    assert not prof["timing"] and prof["reason"] == "no per-op timing here" and prof["top_ops"] == []
    assert by_type(prof)["TRANSPOSE"] == {"node_type": "TRANSPOSE", "count": 2, "avg_ms": None, "percent": None,
                                          "category": "data_movement"}
    assert prof["data_movement"]["count"] == 2 and prof["data_movement"]["percent"] is None


# ------------------------------------------------------------------------------ profile-report


def test_profile_report_table_and_json(tmp_path):
    out = tmp_path / "p.json"
    r = cli("profile-report", str(FIX / "tf53138_summary_by_node_type.txt"), "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "CONV_2D" in r.stdout and "what the shuffle costs here" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["summary_source"] == "printed"
    assert doc["summary_by_node_type"][0] == {"node_type": "CONV_2D", "count": 34, "avg_ms": 266.475,
                                              "percent": 75.118, "category": "compute"}
    assert {"top_ops", "data_movement", "data_movement_wide", "initialization", "format"} <= set(doc)
    # from standard input, and an onnxruntime trace
    r = cli("profile-report", "-", stdin=sample("from_source_no_start_xnnpack.txt"))
    assert r.returncode == 0 and "Transpose (ND, X32)" in r.stdout and "initialization:" in r.stdout
    trace = tmp_path / "ort.json"
    trace.write_text(json.dumps([_ev("Session", "model_run", 0, 10), _ev("Node", "a_kernel_time", 1, 5, "Gather"),
                                 _ev("Session", "model_run", 20, 10), _ev("Node", "a_kernel_time", 21, 3, "Gather")]))
    r = cli("profile-report", str(trace), "--json", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["source"] == "onnxruntime" and doc["summary_by_node_type"][0]["avg_ms"] == 0.003  # warm-up left out


@pytest.mark.parametrize("name, words", [("nosuch.txt", "profile file not found: nosuch.txt"),
                                         ("tf42507_initialization_block.txt", "only the initialization profile")])
def test_profile_report_errors_are_one_line(tmp_path, name, words):
    path = name if name == "nosuch.txt" else str(FIX / name)
    r = cli("profile-report", path, "--json", str(tmp_path / "x.json"), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------- variance control


def test_cooldown_sleeps_between_rounds_only():
    slept: list[float] = []
    c = Cooldown(2.5, sleep=slept.append)
    assert [c.before_round() >= 0 for _ in range(3)] == [True] * 3
    assert slept == [2.5, 2.5]  # not before the first round
    assert Cooldown(0, sleep=slept.append).before_round() == 0.0 and slept == [2.5, 2.5]


def _state(gov: str = "schedutil", cur: int = 1800000, cap: int = 2800000, temp: int = 40000) -> dict:
    lines = []
    for c in range(4):
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        lines += [f"{base}/scaling_governor\t{gov}", f"{base}/scaling_cur_freq\t{cur}",
                  f"{base}/scaling_max_freq\t{cap}", f"{base}/cpuinfo_max_freq\t2800000"]
    lines += ["/sys/class/thermal/thermal_zone0/type\tcpu-thermal", f"/sys/class/thermal/thermal_zone0/temp\t{temp}"]
    return parse_cpu_state_listing("\n".join(lines))


def test_cpu_state_listing_and_the_changes_worth_a_warning():
    s = _state()
    assert s["cpufreq"] == "available" and s["governor"]["cpu3"] == "schedutil"
    assert s["max_freq_khz"]["cpu0"] == 2800000 and s["thermal"]["thermal_zone0"] == {"type": "cpu-thermal",
                                                                                     "temp_c": 40.0}
    assert cpu_state_changes(s, _state(cur=2400000)) == []  # schedutil follows the load: recorded, not warned
    assert cpu_state_changes(s, _state(gov="performance")) == ["governor schedutil -> performance on cpu0-3"]
    assert cpu_state_changes(s, _state(cap=2200000)) == ["max frequency capped 2.80 -> 2.20 GHz on cpu0-3"]
    assert cpu_state_changes(s, _state(temp=47500)) == ["cpu-thermal (thermal_zone0) warmed 40.0 -> 47.5 C"]
    perf = _state(gov="performance")
    assert cpu_state_changes(perf, _state(gov="performance", cur=1500000)) == [
        "frequency 1.80 -> 1.50 GHz on cpu0-3 under a fixed-frequency governor"]
    gone = parse_cpu_state_listing("/sys/devices/system/cpu/cpu0\n")
    assert gone["cpufreq"] == "unavailable" and "no cpufreq driver" in gone["cpufreq_reason"]


def test_table_warns_when_the_cpu_state_changed_during_a_measurement():
    def rec(art: str, before: dict, after: dict) -> dict:
        return new_record(artifact=art, runtime="litert", target="adb:X", threads=4, latency_ms=latency_stats([2, 3]),
                          extra={"cpu_state": {"before": before, "after": after}})

    steady = rec("a.tflite", _state(), _state(cur=2000000))
    hot = rec("b.tflite", _state(), _state(cap=1900000, temp=52000))
    table = format_table([steady, hot])
    lines = table.splitlines()
    a_row = next(ln for ln in lines if ln.startswith("a.tflite"))
    b_row = next(ln for ln in lines if ln.startswith("b.tflite"))
    assert not a_row.endswith("(!)") and b_row.endswith("(!)")
    warn = [ln for ln in lines if ln.startswith("WARNING (!)")]
    assert len(warn) == 1 and "b.tflite" in warn[0] and "max frequency capped 2.80 -> 1.90 GHz" in warn[0]
    assert "warmed 40.0 -> 52.0 C" in warn[0]
    assert any(ln.startswith("WARNING: adb:X: the CPU state changed over the run") for ln in lines)
    assert "adb:X: cpu before: governor schedutil" in table
    quiet = format_table([steady])
    assert "WARNING" not in quiet and "(!)" not in quiet


# ----------------------------------------------------------------------- bench, local end to end


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_artifacts(tmp_path_factory, "fp32.onnx", "fp32.tflite")


def test_bench_profile_cooldown_and_cpu_records_locally(arts, tmp_path):
    out = tmp_path / "b.json"
    r = cli("bench", str(arts["fp32.onnx"]), str(arts["fp32.tflite"]), "--profile", "--cooldown", "0.7",
            "--runs", "10", "--warmup", "2", "--no-gpu", "--json", str(out), "--no-plot", "--quiet")
    assert r.returncode == 0, r.stderr
    recs = read_json(out)
    onnx, tfl = recs
    assert onnx["runtime"] == "onnxruntime" and tfl["runtime"] == "litert" and onnx["model"] == MODEL
    # the pause: recorded times, not a wall-clock assertion on the test itself
    assert onnx["extra"]["cooldown_s"] == 0 and tfl["extra"]["cooldown_s"] >= 0.7
    assert tfl["extra"]["started_at"] - onnx["extra"]["ended_at"] >= 0.7
    for x in recs:
        st = x["extra"]["cpu_state"]
        assert set(st) == {"before", "after"} and st["before"]["time"] <= st["after"]["time"]
        for s in st.values():
            assert s["cpufreq"] in ("available", "unavailable")
            if s["cpufreq"] == "unavailable":
                assert s["cpufreq_reason"]
            else:
                assert s["governor"] and s["cur_freq_khz"]
        assert x["environment"]["pinning"].startswith(("none", "affinity"))
    p = onnx["extra"]["op_profile"]
    assert p["timing"] and p["source"] == "onnxruntime" and p["runs"] == 10
    kinds = {row["node_type"]: row["category"] for row in p["summary_by_node_type"]}
    assert kinds["Transpose"] == "data_movement" and kinds["Conv"] == "compute"
    assert 0 < p["data_movement"]["percent"] < 100 and p["data_movement"]["count"] == 16 + 13  # x0.5 reference form
    q = tfl["extra"]["op_profile"]
    assert not q["timing"] and "no per-op timing" in q["reason"]
    assert {row["node_type"] for row in q["summary_by_node_type"]} >= {"CONV_2D", "TRANSPOSE"}
    assert "what the shuffle costs here" in r.stdout and "counts only, no times" in r.stdout
    assert "cpu before:" in r.stdout and "pinning: none" in r.stdout and "cool-down between measurements" in r.stdout


def test_bench_rejects_a_negative_cooldown(arts, tmp_path):
    r = cli("bench", str(arts["fp32.onnx"]), "--cooldown", "-1", "--json", str(tmp_path / "o.json"), "--no-plot")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and ">= 0" in r.stderr


def test_bench_profile_and_cooldown_over_ssh(sshd, arts, tmp_path):  # noqa: F811
    out = tmp_path / "s.json"
    r = cli("bench", str(arts["fp32.onnx"]), str(arts["fp32.tflite"]), "--target", sshd.target, *sshd.client_args(),
            "--remote-python", sys.executable, "--profile", "--cooldown", "0.5", "--runs", "8", "--warmup", "1",
            "--json", str(out), "--no-plot", "--quiet")
    assert r.returncode == 0, r.stderr
    onnx, tfl = read_json(out)
    assert onnx["target"] == sshd.target and onnx["extra"]["op_profile"]["timing"]
    assert onnx["extra"]["op_profile"]["data_movement"]["count"] > 0
    assert not tfl["extra"]["op_profile"]["timing"] and "no per-op timing" in tfl["extra"]["op_profile"]["reason"]
    assert tfl["extra"]["started_at"] - onnx["extra"]["ended_at"] >= 0.5 and tfl["extra"]["cooldown_s"] >= 0.5
    for x in (onnx, tfl):  # the board's runner reads its own CPU state
        assert x["extra"]["cpu_state"]["before"]["cpufreq"] in ("available", "unavailable")
        assert x["environment"]["pinning"]
    assert f"{sshd.target}: cpu before:" in r.stdout and "per-op profile" in r.stdout


# --------------------------------------------------------------------------------------- adb


class StateDevice(FakeDevice):
    """A scripted phone whose CPU state readings come from a list (the last one repeats)."""

    def __init__(self, states: list[str], **kw) -> None:
        super().__init__(**kw)
        self.states = list(states)
        self.state_reads = 0

    def __call__(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        args = argv[3:] if argv[1:2] == ["-s"] else argv[1:]
        if args[:1] == ["shell"] and args[1] == adbmod.CPUFREQ_SCRIPT:
            self.calls.append(argv)
            text = self.states[min(self.state_reads, len(self.states) - 1)]
            self.state_reads += 1
            return self._cp(argv, text)
        return super().__call__(argv, timeout)


def _listing(gov: str, cap: int, temp: int) -> str:
    out = []
    for c in range(8):
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        out += [f"{base}/cpuinfo_max_freq {2800000 if c >= 4 else 1800000}", f"{base}/scaling_governor\t{gov}",
                f"{base}/scaling_cur_freq\t1800000", f"{base}/scaling_max_freq\t{cap}"]
    out += ["/sys/class/thermal/thermal_zone7/type\tcpu-1-0-usr", f"/sys/class/thermal/thermal_zone7/temp\t{temp}"]
    return "\n".join(out) + "\n"


def test_adb_profile_cooldown_pinning_and_thermal_records(tmp_path, monkeypatch):
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    slept: list[float] = []
    monkeypatch.setattr(adbmod.time, "sleep", slept.append)
    arts = []
    for i in range(2):
        a = tmp_path / f"m{i}.tflite"
        a.write_bytes(b"TFL3")
        arts.append(str(a))
    bm = tmp_path / "benchmark_model"
    bm.write_bytes(b"\x7fELF")
    cool, hot = _listing("schedutil", 2800000, 38000), _listing("schedutil", 2000000, 51000)
    dev = StateDevice([cool, cool, cool, hot], tool_output={"benchmark_model": sample("from_source_no_start_xnnpack.txt") + "__SHUFFLENET_EDGE_RC=0\n"})
    recs = adbmod.run_adb_target("adb:R5CT1234", arts, runtime="auto", threads=4, runs=50, warmup=5,
                                 options={"benchmark_binary": [str(bm)], "profile": True, "cooldown": 30}, runner=dev)
    assert [r["status"] for r in recs] == ["ok", "ok"]
    runs = [shlex.split(c[-1]) for c in dev.calls if "__SHUFFLENET_EDGE_RC=" in c[-1]]
    assert all("--enable_op_profiling=true" in w for w in runs)
    assert slept == [30]  # one pause, between the two measurements
    assert recs[1]["extra"]["cooldown_s"] >= 0 and recs[0]["extra"]["cooldown_s"] == 0
    for r in recs:
        assert r["latency_ms"]["median"] == pytest.approx(4.95)  # the timings still parse beside the op tables
        assert r["environment"]["pinning"].startswith("taskset f0")
        p = r["extra"]["op_profile"]
        assert p["source"] == "benchmark_model" and p["data_movement"]["avg_ms"] == pytest.approx(1.068, abs=1e-3)
        assert "op profiling was on" in r["reason"]
    first, second = (r["extra"]["cpu_state"] for r in recs)
    assert first["before"]["thermal"]["thermal_zone7"]["temp_c"] == 38.0
    assert cpu_state_changes(first["before"], first["after"]) == []
    assert "max frequency capped 2.80 -> 2.00 GHz on cpu0-7" in cpu_state_changes(second["before"], second["after"])
    table = format_table(recs)
    assert "WARNING (!): adb:R5CT1234: m1.tflite" in table and "cpu-1-0-usr (thermal_zone7) warmed 38.0 -> 51.0 C" in table


def test_real_adb_with_profile_and_cooldown_is_one_clean_line(private_adb, tmp_path):  # noqa: F811
    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    t0 = time.monotonic()
    r = cli("bench", str(art), "--target", "adb", "--profile", "--cooldown", "5", "--json", str(tmp_path / "r.json"),
            "--no-plot", cwd=tmp_path, env=private_adb)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("shufflenet-edge: error: adb: no Android device attached"), r.stderr
    assert time.monotonic() - t0 < 120  # no pause is taken before a device exists


def test_profile_report_reads_what_the_adb_target_pulls(tmp_path):
    """The same parser serves `bench --target adb --profile` and `profile-report` (one code path)."""
    text = sample("from_source_no_start_xnnpack.txt")
    via_adb = adbmod._device_profile(None, "benchmark_model", text, "/data/local/tmp/x")  # type: ignore[arg-type]
    assert via_adb == profile_from_benchmark_model(text)
