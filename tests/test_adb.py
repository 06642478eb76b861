"""The adb target: the real adb client's answers with no device, argv construction with hostile paths,
parsing of every recorded output variant, and a whole run (and a mid-run disconnect) against a scripted device.

Real adb (Debian's `adb`) runs against a private server: HOME in a temp folder (no keys in the real home),
ANDROID_ADB_SERVER_PORT on a free port, `adb kill-server` at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from shufflenet_edge.runtimes import adb as adbmod
from shufflenet_edge.runtimes.adb import (
    AdbError,
    AdbTargetError,
    big_cores,
    cpu_mask,
    device_environment,
    parse_benchmark_model,
    parse_cpufreq,
    parse_getprop,
    parse_ort_perf_test,
    run_adb_target,
)

from shufflenet_edge.errors import EdgeError

FIX = Path(__file__).parent / "fixtures" / "adb"
ROOT = Path(__file__).resolve().parents[1]


def fixture(name: str) -> str:
    return (FIX / name).read_text()


# ------------------------------------------------------------------------------- the real adb client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The real adb client and a private server of our own; killed at the end."""
    if shutil.which("adb") is None:
        pytest.skip("adb not installed (apt-get install -y adb)")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("ADB", raising=False)
    env = dict(os.environ)
    try:
        yield env
    finally:
        subprocess.run(["adb", "kill-server"], env=env, capture_output=True, timeout=30)


def test_real_adb_empty_device_list_is_one_clear_line(private_adb, tmp_path: Path) -> None:
    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    with pytest.raises(AdbError) as e:
        run_adb_target("adb", [str(art)], runtime="auto", threads=1, runs=5, warmup=1, options={})
    msg = str(e.value)
    assert msg.startswith("adb: no Android device attached") and "\n" not in msg, msg


def test_real_adb_unknown_serial_names_it(private_adb, tmp_path: Path) -> None:
    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    with pytest.raises(AdbError) as e:
        run_adb_target("adb:nosuch-0042", [str(art)], runtime="auto", threads=1, runs=5, warmup=1, options={})
    msg = str(e.value)
    assert msg.startswith("adb:nosuch-0042: ") and "device 'nosuch-0042' not found" in msg, msg
    assert "attached: none" in msg and "\n" not in msg


def test_real_adb_through_the_cli_exits_1_with_one_line(private_adb, tmp_path: Path) -> None:
    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "shufflenet_edge", "bench", str(art), "--target", "adb:nosuch-0042",
                        "--json", str(out), "--no-plot"], capture_output=True, text=True, timeout=300,
                       env=private_adb, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "nosuch-0042" in last and "not found" in last and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------ parsing


def test_parse_benchmark_model_1x_average() -> None:
    p = parse_benchmark_model(fixture("benchmark_model_1x_average.txt"))
    assert p["format"] == "1.x" and p["init_us"] == 28412 and p["inference_avg_us"] == 9868.42
    assert p["warmup"]["count"] == 5 and p["inference"]["count"] == 50 and p["inference"]["std"] == 391
    assert p["first_us"] == 14011  # the warm-up line's first run
    assert p["peak_mb"] == pytest.approx(18.6133)  # older "Peak memory footprint (MB): overall="
    lat, runs, note = adbmod.latency_from_benchmark_model(p)
    assert runs == 50 and lat["mean"] == pytest.approx(9.86842) and lat["min"] == 9.522 and lat["max"] == 11.872
    assert lat["median"] is None and lat["p90"] is None and lat["p99"] is None
    assert "median, p90, p99 are null" in note


def test_parse_benchmark_model_2x() -> None:
    p = parse_benchmark_model(fixture("benchmark_model_2x.txt"))
    assert p["format"] == "2.x"
    assert (p["init_us"], p["first_us"], p["warmup_avg_us"], p["inference_avg_us"]) == (11873, 5120, 2612.4, 2331.07)
    assert p["inference"] == {"count": 100, "first": 2301, "curr": 2297, "min": 2254, "max": 2911, "avg": 2331.07, "std": 88}
    assert p["peak_mb"] == pytest.approx(12.7461) and p["mem_delta_mb"] is None


def test_parse_benchmark_model_new_memory_wording() -> None:
    p = parse_benchmark_model(fixture("benchmark_model_new_memory.txt"))
    assert p["inference"]["avg"] == 2004.33 and p["warmup"]["count"] == 10
    assert p["mem_delta_mb"] == pytest.approx(9.87891) and p["mem_init_mb"] == pytest.approx(3.5625)
    assert p["peak_mb"] == pytest.approx(14.2109)  # periodic monitoring: the absolute peak


def test_parse_benchmark_model_percentiles_and_scientific_notation() -> None:
    p = parse_benchmark_model(fixture("benchmark_model_percentiles.txt"))
    assert p["first_us"] == pytest.approx(1.40221e6) and p["inference_avg_us"] == pytest.approx(1.24631e6)
    inf = p["inference"]
    assert inf["median"] == pytest.approx(1.24105e6) and inf["p5"] == pytest.approx(1.23012e6)
    assert inf["p95"] == pytest.approx(1.29972e6)
    lat, runs, note = adbmod.latency_from_benchmark_model(p)
    assert lat["median"] == pytest.approx(1241.05) and lat["mean"] == pytest.approx(1246.31)
    assert lat["p90"] is None and lat["p99"] is None and runs == 20
    assert "p90, p99 are null" in note


def test_parse_benchmark_model_all_same_warmup_and_delta_only_memory() -> None:
    p = parse_benchmark_model(fixture("benchmark_model_all_same.txt"))
    assert p["warmup"] == {"count": 1, "curr": 6633, "first": 6633, "min": 6633, "max": 6633, "avg": 6633, "std": 0.0}
    assert p["inference"]["count"] == 30
    assert p["peak_mb"] is None and p["mem_delta_mb"] == pytest.approx(7.42578)


def test_parse_benchmark_model_failure_is_an_error_naming_the_cause() -> None:
    with pytest.raises(AdbError) as e:
        parse_benchmark_model(fixture("benchmark_model_error.txt"))
    assert "Benchmarking failed" in str(e.value) and "\n" not in str(e.value)


def test_parse_ort_perf_test_old_spelling() -> None:
    p = parse_ort_perf_test(fixture("ort_perf_test_old.txt"))
    assert p["session_s"] == pytest.approx(0.0213945) and p["avg_ms"] == pytest.approx(4.12817)
    assert p["requests"] == 100 and p["peak_bytes"] == 45678592 and p["p50_s"] is None and p["first_ms"] is None
    lat, runs, _ = adbmod.latency_from_ort(p)
    assert lat["mean"] == pytest.approx(4.12817) and lat["median"] is None and lat["std"] is None


def test_parse_ort_perf_test_stats_block() -> None:
    p = parse_ort_perf_test(fixture("ort_perf_test_stats.txt"))
    assert p["first_ms"] == 9 and p["avg_ms"] == pytest.approx(5.51932) and p["peak_bytes"] == 58724352
    lat, runs, note = adbmod.latency_from_ort(p)
    assert lat == {"median": pytest.approx(5.47322), "p90": pytest.approx(5.81967), "p99": pytest.approx(7.34018),
                   "mean": pytest.approx(5.51932), "std": None, "min": pytest.approx(5.2771),
                   "max": pytest.approx(7.34018)}
    assert runs == 100 and "no standard deviation" in note


def test_parse_ort_perf_test_average_total() -> None:
    p = parse_ort_perf_test(fixture("ort_perf_test_total.txt"))
    assert p["avg_ms"] == pytest.approx(9.08671) and p["p99_s"] == pytest.approx(0.0113921)
    assert p["session_s"] == pytest.approx(0.0392266)


def test_getprop_with_and_without_soc_properties() -> None:
    env = device_environment(parse_getprop(fixture("getprop_pixel8.txt")))
    assert env["device_model"] == "Pixel 8" and env["soc"] == "Google Tensor G3" and env["android_version"] == "15"
    assert env["sdk"] == 35 and env["abi"] == "arm64-v8a" and env["os"] == "Android 15 (API 35)"
    old = device_environment(parse_getprop(fixture("getprop_android9.txt")))
    assert old["device_model"] == "ONEPLUS A6003" and old["soc"] == "sdm845" and old["android_version"] == "9"


def test_big_cores_and_masks() -> None:
    tri = parse_cpufreq(fixture("cpufreq_tricluster.txt"))
    assert len(tri) == 9
    assert big_cores(tri, 1) == [4, 5, 6, 7, 8] and cpu_mask(big_cores(tri, 1)) == "1f0"
    assert big_cores(tri, 7) == [0, 1, 4, 5, 6, 7, 8]  # never fewer cores than threads
    homo = parse_cpufreq(fixture("cpufreq_homogeneous.txt"))
    assert big_cores(homo, 4) == [0, 1, 2, 3] and cpu_mask([0, 1, 2, 3]) == "f"
    assert big_cores({}, 4) == []
    assert adbmod.normalize_mask("0xF0") == "f0"
    with pytest.raises(AdbError):
        adbmod.normalize_mask("f0; reboot")


# ------------------------------------------------------------------------- a scripted device (no adb)


class FakeDevice:
    """Answers adb argv lists like a phone would; records every argv. `fail_on` makes one command fail
    the way a disconnect does (the device vanishes: every later command says so too)."""

    def __init__(self, serial: str = "R5CT1234", tool_output: dict[str, str] | None = None,
                 fail_on: str | None = None, timeout_on: str | None = None) -> None:
        self.serial = serial
        self.calls: list[list[str]] = []
        self.tool_output = tool_output or {}
        self.fail_on = fail_on
        self.timeout_on = timeout_on
        self.gone = False
        self.pushed: list[tuple[str, str]] = []

    def _cp(self, argv: list[str], out: str = "", err: str = "", rc: int = 0) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, rc, out, err)

    def __call__(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), argv
        self.calls.append(argv)
        args = argv[3:] if argv[1:2] == ["-s"] else argv[1:]
        joined = " ".join(args)
        if self.timeout_on and self.timeout_on in joined:
            raise subprocess.TimeoutExpired(argv, timeout)
        if self.fail_on and self.fail_on in joined:
            self.gone = True
        if self.gone and args[0] != "devices":
            return self._cp(argv, err=f"error: device '{self.serial}' not found\n", rc=1)
        if args[0] == "devices":
            return self._cp(argv, "List of devices attached\n" + ("" if self.gone else f"{self.serial}\tdevice\n") + "\n")
        if args[0] == "push":
            self.pushed.append((args[1], args[2]))
            return self._cp(argv, f"{args[1]}: 1 file pushed, 0 skipped. 31.2 MB/s (2447120 bytes in 0.075s)\n")
        if args[0] == "shell":
            assert len(args) == 2, f"the remote command must be one argument: {args}"
            cmd = args[1]
            if cmd == "getprop":
                return self._cp(argv, fixture("getprop_pixel8.txt"))
            if cmd == adbmod.CPUFREQ_SCRIPT:
                return self._cp(argv, fixture("cpufreq_tricluster.txt"))
            if "command -v taskset" in cmd:
                return self._cp(argv, "/system/bin/taskset\n")
            if "__SHUFFLENET_EDGE_RC=" in cmd:
                tool = "onnxruntime_perf_test" if "/onnxruntime_perf_test " in cmd else "benchmark_model"
                return self._cp(argv, self.tool_output.get(tool, ""))
            return self._cp(argv)
        raise AssertionError(f"unexpected adb call {argv}")


HOSTILE = "my model; rm -rf ~ 'q' \"dq\" $(reboot) `id` & x.tflite"


@pytest.fixture
def hostile_artifacts(tmp_path: Path) -> list[str]:
    d = tmp_path / "dir with space; and 'quotes'"
    d.mkdir()
    tfl = d / HOSTILE
    tfl.write_bytes(b"TFL3" + b"\0" * 64)
    onnx = d / "-starts with dash \"x\".onnx"
    onnx.write_bytes(b"onnx")
    return [str(tfl), str(onnx)]


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, str]:
    bm = tmp_path / "bin; dir" / "android_aarch64_benchmark_model"
    ort = tmp_path / "bin; dir" / "onnxruntime_perf_test"
    bm.parent.mkdir()
    bm.write_bytes(b"\x7fELF bm")
    ort.write_bytes(b"\x7fELF ort")
    return {"bm": str(bm), "ort": str(ort)}


def _shell_commands(dev: FakeDevice) -> list[str]:
    return [c[-1] for c in dev.calls if "shell" in c]


def test_whole_run_with_hostile_paths_builds_safe_argv(hostile_artifacts, tools, monkeypatch) -> None:
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    dev = FakeDevice(tool_output={"benchmark_model": fixture("benchmark_model_new_memory.txt"),
                                  "onnxruntime_perf_test": fixture("ort_perf_test_stats.txt")})
    recs = run_adb_target("adb:R5CT1234", hostile_artifacts, runtime="auto", threads=4, runs=100, warmup=10,
                          options={"benchmark_binary": [tools["bm"], tools["ort"]]}, runner=dev)
    # argv lists only, the serial as its own item after -s
    for call in dev.calls[1:]:
        assert call[:3] == ["/usr/bin/adb", "-s", "R5CT1234"], call
    # pushes: local paths absolute and unaltered, one argv item each; remote paths in the work folder
    pushed_local = [p[0] for p in dev.pushed]
    assert os.path.abspath(hostile_artifacts[0]) in pushed_local and os.path.abspath(hostile_artifacts[1]) in pushed_local
    workdirs = {os.path.dirname(r) for _, r in dev.pushed}
    assert len(workdirs) == 1 and next(iter(workdirs)).startswith("/data/local/tmp/shufflenet-edge-")
    workdir = next(iter(workdirs))
    remote_tfl = f"{workdir}/{HOSTILE}"
    assert (os.path.abspath(hostile_artifacts[0]), remote_tfl) in dev.pushed
    # the remote shell sees the hostile name as ONE word, whatever it contains
    run_cmds = [c for c in _shell_commands(dev) if "__SHUFFLENET_EDGE_RC=" in c]
    assert len(run_cmds) == 2
    words = shlex.split(run_cmds[0])
    assert f"--graph={remote_tfl}" in words
    assert words[:8] == ["cd", workdir, "&&", f"LD_LIBRARY_PATH={workdir}", "taskset", "1f0",
                         f"{workdir}/benchmark_model", f"--graph={remote_tfl}"]
    assert "--num_threads=4" in words and "--num_runs=100" in words and "--warmup_runs=10" in words
    ort_words = shlex.split(run_cmds[1])
    assert ort_words[-4] == f"{workdir}/-starts with dash \"x\".onnx" and ort_words[-3:] == ["2>&1;", "echo", "__SHUFFLENET_EDGE_RC=$?"]
    # every other remote command re-parses to the words we meant (nothing unquoted leaks)
    for cmd in _shell_commands(dev):
        if cmd in ("getprop", adbmod.CPUFREQ_SCRIPT) or "taskset ||" in cmd or "__SHUFFLENET" in cmd:
            continue
        assert shlex.split(cmd)[0] in ("mkdir", "chmod", "rm"), cmd
    assert shlex.split(_shell_commands(dev)[-1]) == ["rm", "-rf", workdir]  # cleaned up
    # the records
    assert [r["status"] for r in recs] == ["ok", "ok"]
    tfl, onnx = recs
    assert tfl["runtime"] == "litert" and tfl["provider"] == "xnnpack" and tfl["target"] == "adb:R5CT1234"
    assert tfl["latency_ms"]["mean"] == pytest.approx(2.00433) and tfl["init_ms"] == pytest.approx(9.412)
    assert tfl["first_inference_ms"] == pytest.approx(4.41) and tfl["peak_rss_mb"] == pytest.approx(14.2109)
    assert tfl["runs"] == 100 and tfl["warmup"] == 10 and tfl["threads"] == 4
    assert tfl["latency_ms"]["p90"] is None and "p90" in tfl["reason"] and "runtime_version is null" in tfl["reason"]
    env = tfl["environment"]
    assert env["device_model"] == "Pixel 8" and env["soc"] == "Google Tensor G3" and env["android_version"] == "15"
    assert env["cpu_mask"] == "1f0" and env["big_cores"] == [4, 5, 6, 7, 8] and env["tool"] == "benchmark_model"
    assert onnx["runtime"] == "onnxruntime" and onnx["latency_ms"]["median"] == pytest.approx(5.47322)
    assert onnx["peak_rss_mb"] == pytest.approx(58724352 / 2**20, abs=1e-3) and onnx["warmup"] == 1
    for r in recs:
        assert set(r) >= {"artifact", "model", "format", "precision", "form", "madds", "runtime", "runtime_version",
                          "provider", "target", "threads", "runs", "warmup", "latency_ms", "init_ms",
                          "first_inference_ms", "peak_rss_mb", "model_size_bytes", "environment", "status", "reason"}
        assert set(r["latency_ms"]) == {"median", "p90", "p99", "mean", "std", "min", "max"}
    json.dumps(recs)  # plain JSON


def test_cpu_mask_option_and_missing_tool_is_a_skipped_row(hostile_artifacts, monkeypatch) -> None:
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    monkeypatch.delenv(adbmod.ENV_BENCHMARK_MODEL, raising=False)
    monkeypatch.delenv(adbmod.ENV_ORT_PERF_TEST, raising=False)
    dev = FakeDevice()
    recs = run_adb_target("adb", hostile_artifacts, runtime="auto", threads=2, runs=10, warmup=1,
                          options={"cpu_mask": "0xC0"}, runner=dev)
    assert [r["status"] for r in recs] == ["skipped", "skipped"]
    assert "--benchmark-binary" in recs[0]["reason"] and adbmod.ENV_BENCHMARK_MODEL in recs[0]["reason"]
    assert recs[0]["environment"]["cpu_mask"] == "c0"
    assert dev.calls[1][:3] == ["/usr/bin/adb", "-s", "R5CT1234"]  # "adb" resolved to the only device


def test_tool_failure_is_an_error_row_not_a_crash(hostile_artifacts, tools, monkeypatch) -> None:
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    dev = FakeDevice(tool_output={"benchmark_model": fixture("benchmark_model_error.txt")})
    monkeypatch.setenv(adbmod.ENV_BENCHMARK_MODEL, tools["bm"])
    recs = run_adb_target("adb:R5CT1234", hostile_artifacts[:1], runtime="auto", threads=1, runs=10, warmup=1,
                          options={}, runner=dev)
    assert recs[0]["status"] == "error" and "exited with status 1" in recs[0]["reason"]
    assert "Benchmarking failed" in recs[0]["reason"]


@pytest.mark.parametrize("how", ["disconnect", "timeout"])
def test_mid_run_failure_keeps_what_was_measured(hostile_artifacts, tools, monkeypatch, how: str) -> None:
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    out = {"benchmark_model": fixture("benchmark_model_2x.txt"), "onnxruntime_perf_test": fixture("ort_perf_test_stats.txt")}
    # The second artifact's push is where the phone goes away.
    needle = ".onnx"
    dev = FakeDevice(tool_output=out, fail_on=needle if how == "disconnect" else None,
                     timeout_on=needle if how == "timeout" else None)
    with pytest.raises(AdbTargetError) as e:
        run_adb_target("adb:R5CT1234", hostile_artifacts, runtime="auto", threads=4, runs=100, warmup=10,
                       options={"benchmark_binary": [tools["bm"], tools["ort"]]}, runner=dev)
    err = e.value
    msg = str(err)
    assert msg.startswith("adb:R5CT1234: ") and "\n" not in msg, msg
    assert ("not found" in msg) if how == "disconnect" else ("timed out" in msg)
    assert isinstance(err, EdgeError) and err.partial_results is err.records
    assert [r["status"] for r in err.partial_results] == ["ok", "error"]
    assert err.partial_results[0]["latency_ms"]["mean"] == pytest.approx(2.33107)
    assert err.partial_results[1]["artifact"] == hostile_artifacts[1]
    assert any("rm" in c[-1] and "-rf" in c[-1] for c in dev.calls if "shell" in c)  # cleanup was attempted


def test_use_app_drives_the_benchmark_activity(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(adbmod, "find_adb", lambda options=None: "/usr/bin/adb")
    monkeypatch.setattr(adbmod.time, "sleep", lambda s: None)
    art = tmp_path / HOSTILE
    art.write_bytes(b"TFL3")
    app_json = json.loads(fixture("app_bench.json")) if (FIX / "app_bench.json").is_file() else None
    assert app_json is not None, "tests/fixtures/adb/app_bench.json missing"

    class AppDevice(FakeDevice):
        def __call__(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
            args = argv[3:]
            if args[:1] == ["shell"] and args[1].startswith("pm path"):
                self.calls.append(argv)
                return self._cp(argv, "package:/data/app/~~x==/dev.shufflenetedge.demo-1/base.apk\n")
            if args[:1] == ["shell"] and args[1].startswith("am start"):
                self.calls.append(argv)
                self.run_id = shlex.split(args[1])[shlex.split(args[1]).index("run_id") + 1]
                return self._cp(argv, "Starting: Intent { cmp=dev.shufflenetedge.demo/.BenchmarkActivity (has extras) }\n"
                                      "Status: ok\nLaunchState: COLD\nActivity: dev.shufflenetedge.demo/.BenchmarkActivity\n"
                                      "TotalTime: 412\nWaitTime: 415\nComplete\n")
            if args[:1] == ["shell"] and args[1].startswith("cat /sdcard/Android/data/"):
                self.calls.append(argv)
                assert f"bench_{self.run_id}.json" in args[1]
                return self._cp(argv, json.dumps({**app_json, "run_id": self.run_id}))
            return super().__call__(argv, timeout)

    dev = AppDevice()
    recs = run_adb_target("adb:R5CT1234", [str(art)], runtime="auto", threads=4, runs=50, warmup=5,
                          options={"use_app": True}, runner=dev)
    r = recs[0]
    assert r["status"] == "ok" and r["runtime"] == "litert" and r["provider"] == "xnnpack"
    assert r["latency_ms"]["p99"] is not None and r["latency_ms"]["median"] == app_json["latency_ms"]["median"]
    assert r["init_ms"] == app_json["init_ms"] and r["runtime_version"] == app_json["runtime_version"]
    assert r["extra"]["preprocess_ms"]["median"] == app_json["preprocess_ms"]["median"]
    start = next(c[-1] for c in dev.calls if c[-1].startswith("am start"))
    words = shlex.split(start)
    assert words[:5] == ["am", "start", "-W", "-n", "dev.shufflenetedge.demo/.BenchmarkActivity"]
    assert words[words.index("model") + 1].endswith("/" + HOSTILE)
    assert words[words.index("runs") + 1] == "50" and words[words.index("threads") + 1] == "4"


def test_app_json_fixture_matches_what_the_java_core_writes() -> None:
    """The fixture has the keys of dev.shufflenetedge.core.BenchmarkReport (test_android checks Java's own output)."""
    doc = json.loads(fixture("app_bench.json"))
    fields = adbmod.record_fields_from_app_json(doc)
    assert fields["status"] == "ok" and set(fields["latency_ms"]) == set(adbmod.LATENCY_KEYS)
    with pytest.raises(AdbError):
        adbmod.record_fields_from_app_json({**doc, "schema": "other/1"})
