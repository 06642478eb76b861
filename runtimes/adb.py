"""The adb target: benchmark artifacts on an Android phone.

    shufflenet-edge bench out/m_int8.tflite out/m.onnx --target adb[:SERIAL] --threads 4 \
        --benchmark-binary ~/android_aarch64_benchmark_model --benchmark-binary ~/onnxruntime_perf_test

For each artifact: push it and the native tool the user points to (`--benchmark-binary`, or the environment
variables SHUFFLENET_EDGE_BENCHMARK_MODEL for TFLite's `benchmark_model` and SHUFFLENET_EDGE_ORT_PERF_TEST
for `onnxruntime_perf_test`) to a fresh `/data/local/tmp/shufflenet-edge-XXXXXXXX/`, run the tool pinned with
`taskset` to the CPU mask given (`--cpu-mask`) or to the big cores (read from
/sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq), parse what it prints (every format variant of
docs/design.md, targets, `parse_benchmark_model` / `parse_ort_perf_test`), and remove the folder. With
`--use-app` the demo app's BenchmarkActivity (android_demo/) runs the model instead: `am start`, wait for
its JSON, pull it. Device model, SoC and Android version come from `getprop`.

The real `adb` client is used, always with argument lists (never a local shell string). `adb shell` joins
its arguments into one command line for the phone's shell, so every remote word that carries data (paths,
serial-derived names) is quoted with `shlex.quote` and the remote command is passed as one argument.

A device that disconnects or a command that times out mid-run ends the run with one line naming the target
(`AdbTargetError`, a `results.TargetError`): it carries the records measured so far plus an error row for
the artifact in progress (`.records`, also `.partial_results`) so `bench` writes them to its JSON.

What each tool prints, and so which record fields stay null, is said in each record's `reason`:
`benchmark_model` prints count/avg/std/min/max (newer builds add p5/median/p95), never p90/p99;
`onnxruntime_perf_test` prints P50/P90/P99 (nearest rank) and min/max but no standard deviation, and always
runs one untimed warm-up. Neither prints its runtime's version.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shufflenet_edge.files import file_sha256
from shufflenet_edge.runtimes.local import Cooldown
from shufflenet_edge.runtimes.runner import CPU_STATE_SCRIPT, parse_cpu_state_listing, summarize_ort_trace

from shufflenet_edge.errors import EdgeError

try:  # the shared record helpers (runtimes/results.py); the adb target works without them too
    from shufflenet_edge.runtimes.results import TargetError as _TargetErrorBase
    from shufflenet_edge.runtimes.results import new_record as _new_record
except ImportError:  # pragma: no cover
    _TargetErrorBase = None  # type: ignore[assignment,misc]
    _new_record = None  # type: ignore[assignment]

ENV_BENCHMARK_MODEL = "SHUFFLENET_EDGE_BENCHMARK_MODEL"
ENV_ORT_PERF_TEST = "SHUFFLENET_EDGE_ORT_PERF_TEST"
ENV_ADB = "ADB"
APP_PACKAGE = "dev.shufflenetedge.demo"
APP_ACTIVITY = ".BenchmarkActivity"
APP_SCHEMA = "shufflenet-edge/android-bench/1"
REMOTE_ROOT = "/data/local/tmp"
RC_MARK = "__SHUFFLENET_EDGE_RC="
LATENCY_KEYS = ("median", "p90", "p99", "mean", "std", "min", "max")
DEFAULT_TIMEOUT = 600.0
SHORT_TIMEOUT = 60.0

# --------------------------------------------------------------------------------------------- errors


class AdbError(EdgeError):
    """A one-line adb failure naming the target."""


if _TargetErrorBase is not None:

    class AdbTargetError(_TargetErrorBase, AdbError):  # type: ignore[misc,valid-type]
        """The device went away or a command timed out mid-run; `.records` / `.partial_results` keep what was
        measured (plus an error row for the artifact in progress)."""

        def __init__(self, target: str, message: str, records: list[dict[str, Any]] | None = None) -> None:
            _TargetErrorBase.__init__(self, target, message, records)

        @property
        def partial_results(self) -> list[dict[str, Any]]:
            return self.records

else:  # pragma: no cover

    class AdbTargetError(AdbError):  # type: ignore[no-redef]
        def __init__(self, target: str, message: str, records: list[dict[str, Any]] | None = None) -> None:
            super().__init__(f"{target}: {message}")
            self.target = target
            self.records = list(records or [])

        @property
        def partial_results(self) -> list[dict[str, Any]]:
            return self.records


# ------------------------------------------------------------------------------------- output parsers

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _f(s: str | None) -> float | None:
    if s is None:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _stat_line(line: str) -> dict[str, float] | None:
    """A `count=.. first=.. curr=.. min=.. max=.. avg=.. std=..[ p5=.. median=.. p95=..]` line (or the
    `count=N curr=X(all same)` form, or `count=0`), with its log prefix (`INFO: `) stripped."""
    s = re.sub(r"^\s*(?:[A-Z]+:\s+)?", "", line)
    if not s.startswith("count="):
        return None
    kv = {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", s)}
    if "count" not in kv:
        return None
    if "(all same)" in s or ("curr" in kv and "avg" not in kv and kv["count"] >= 1):
        c = kv["curr"]
        kv.update({"first": kv.get("first", c), "min": c, "max": c, "avg": c, "std": 0.0})
    return kv


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """Parse TFLite/LiteRT `benchmark_model` output (any release; values in the tool's units, us and MB).

    Returns init_us, first_us, warmup_avg_us, inference_avg_us, warmup / inference (the stat lines as dicts:
    count, first, curr, min, max, avg, std and, in newer builds, p5, median, p95), peak_mb (absolute peak RSS:
    "Overall peak memory footprint (MB) via periodic monitoring" or the older "Peak memory footprint (MB):
    ... overall="), mem_delta_mb (newer "Memory footprint delta from the start of the tool"), format.
    """
    out: dict[str, Any] = {"init_us": None, "first_us": None, "warmup_avg_us": None, "inference_avg_us": None,
                           "warmup": None, "inference": None, "peak_mb": None, "mem_delta_mb": None,
                           "mem_init_mb": None, "format": None}
    m = re.search(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                  rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})", text)
    if m:
        out.update(init_us=_f(m[1]), first_us=_f(m[2]), warmup_avg_us=_f(m[3]), inference_avg_us=_f(m[4]),
                   format="2.x")
    else:
        # Releases before 2.3 and the Android benchmark app: "Average inference timings in us: Warmup: W,
        # Init: I, Inference: X" (or "no stats: X[, with stats: Y]").
        m = re.search(rf"Average inference timings in us: Warmup: ({_NUM}), Init: ({_NUM}), "
                      rf"(?:Inference|no stats): ({_NUM})", text)
        if m:
            out.update(warmup_avg_us=_f(m[1]), init_us=_f(m[2]), inference_avg_us=_f(m[3]), format="1.x")
    if out["init_us"] is None:
        m = re.search(rf"Initialized session in ({_NUM})\s*ms", text)
        if m:
            out["init_us"] = float(m[1]) * 1000.0
    stats = [s for s in (_stat_line(line) for line in text.splitlines()) if s is not None]
    if len(stats) >= 2:
        out["warmup"], out["inference"] = stats[-2], stats[-1]
    elif len(stats) == 1:
        out["inference"] = stats[0]
    if out["first_us"] is None and out["warmup"] and out["warmup"].get("first") is not None:
        out["first_us"] = out["warmup"]["first"]
    m = re.search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})", text)
    if m:
        out["peak_mb"] = _f(m[1])
    m = re.search(rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUM}) overall=({_NUM})", text)
    if m:
        out["mem_init_mb"], out["mem_delta_mb"] = _f(m[1]), _f(m[2])
    m = re.search(rf"Peak memory footprint \(MB\): init=({_NUM}) overall=({_NUM})", text)
    if m:
        out["mem_init_mb"] = _f(m[1])
        if out["peak_mb"] is None:
            out["peak_mb"] = _f(m[2])  # older releases: ru_maxrss of the process, an absolute peak
    if out["format"] is None and out["inference"] is None:
        raise AdbError("benchmark_model printed no timings: " + _tail(text))
    return out


def parse_ort_perf_test(text: str) -> dict[str, Any]:
    """Parse `onnxruntime_perf_test` output (old `cost:X` and new `cost: X` spellings, `Average inference time
    cost` and the newer `... cost total`, the -s percentile block). Seconds and bytes as printed."""

    def grab(pat: str) -> float | None:
        m = re.search(pat, text)
        return _f(m[1]) if m else None

    out: dict[str, Any] = {
        "session_s": grab(rf"Session creation time cost:\s*({_NUM})\s*s"),
        "first_ms": grab(rf"First inference time cost:\s*({_NUM})\s*ms"),
        "avg_ms": grab(rf"Average inference time cost(?: total)?:\s*({_NUM})\s*ms"),
        "requests": grab(r"Total inference requests:\s*(\d+)") or grab(r"\bRuns:\s*(\d+)"),
        "peak_bytes": grab(r"Peak working set size:\s*(\d+)"),
        "total_s": grab(rf"Total inference time cost:\s*({_NUM})\s*s"),
    }
    for name in ("Min", "Max", "P50", "P90", "P95", "P99", "P999"):
        out[name.lower() + "_s"] = grab(rf"\b{name} Latency:\s*({_NUM})\s*s")
    if out["avg_ms"] is None and out["p50_s"] is None:
        raise AdbError("onnxruntime_perf_test printed no timings: " + _tail(text))
    return out


def _tail(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and RC_MARK not in ln]
    return " | ".join(lines[-n:])[-400:] or "(no output)"


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 6)


def latency_from_benchmark_model(p: dict[str, Any]) -> tuple[dict[str, float | None], int | None, str]:
    """Latency dict (ms), runs, and the note on what benchmark_model did not print."""
    inf = p.get("inference") or {}
    lat: dict[str, float | None] = {k: None for k in LATENCY_KEYS}
    lat.update(median=_ms(inf.get("median")), mean=_ms(inf.get("avg", p.get("inference_avg_us"))),
               std=_ms(inf.get("std")), min=_ms(inf.get("min")), max=_ms(inf.get("max")))
    if lat["mean"] is None:
        lat["mean"] = _ms(p.get("inference_avg_us"))
    missing = [k for k in LATENCY_KEYS if lat[k] is None]
    note = ("benchmark_model prints count/avg/std/min/max per phase (median only in newer builds), "
            f"so {', '.join(missing)} are null" if missing else "all statistics printed by benchmark_model")
    runs = int(inf["count"]) if inf.get("count") is not None else None
    return lat, runs, note


def latency_from_ort(p: dict[str, Any]) -> tuple[dict[str, float | None], int | None, str]:
    def s2ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 6)

    lat = {"median": s2ms(p.get("p50_s")), "p90": s2ms(p.get("p90_s")), "p99": s2ms(p.get("p99_s")),
           "mean": None if p.get("avg_ms") is None else round(p["avg_ms"], 6), "std": None,
           "min": s2ms(p.get("min_s")), "max": s2ms(p.get("max_s"))}
    missing = [k for k in LATENCY_KEYS if lat[k] is None]
    note = ("onnxruntime_perf_test prints no standard deviation; its percentiles are nearest-rank, not "
            f"interpolated; it runs exactly one untimed warm-up; null: {', '.join(missing)}")
    runs = int(p["requests"]) if p.get("requests") is not None else None
    return lat, runs, note


def record_fields_from_app_json(doc: dict[str, Any]) -> dict[str, Any]:
    """Record fields from the JSON the demo app's BenchmarkActivity writes (dev.shufflenetedge.core.BenchmarkReport)."""
    if doc.get("schema") != APP_SCHEMA:
        raise AdbError(f"the app wrote schema {doc.get('schema')!r}, expected {APP_SCHEMA!r}: "
                       "rebuild android_demo from this checkout")
    lat = doc.get("latency_ms") or {}
    return {
        "status": "ok" if doc.get("status") == "ok" else "error",
        "reason": doc.get("reason"),
        "latency_ms": {k: lat.get(k) for k in LATENCY_KEYS},
        "runs": doc.get("runs"),
        "warmup": doc.get("warmup"),
        "init_ms": doc.get("init_ms"),
        "first_inference_ms": doc.get("first_inference_ms"),
        "peak_rss_mb": doc.get("peak_rss_mb"),
        "model_size_bytes": doc.get("model_size_bytes"),
        "runtime_version": doc.get("runtime_version"),
        "provider": "gpu" if doc.get("delegate") == "gpu" else "xnnpack",
        "extra": {"preprocess_ms": doc.get("preprocess_ms"), "postprocess_ms": doc.get("postprocess_ms"),
                  "app_device": doc.get("device"), "samples_ms": doc.get("samples_ms")},
    }


# ------------------------------------------------------------------------------- device description


def parse_getprop(text: str) -> dict[str, str]:
    """`adb shell getprop` lines `[key]: [value]` to a dict."""
    return {k: v for k, v in re.findall(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", text, flags=re.M)}


def device_environment(props: dict[str, str]) -> dict[str, Any]:
    """Device model, SoC, Android version and ABI from getprop (ro.soc.* exist from Android 12)."""
    soc_model = props.get("ro.soc.model") or ""
    soc_maker = props.get("ro.soc.manufacturer") or ""
    soc = f"{soc_maker} {soc_model}".strip() or props.get("ro.board.platform") or props.get("ro.hardware") or None
    release = props.get("ro.build.version.release") or None
    sdk = props.get("ro.build.version.sdk") or None
    return {
        "device_model": props.get("ro.product.model") or None,
        "manufacturer": props.get("ro.product.manufacturer") or None,
        "soc": soc,
        "board_platform": props.get("ro.board.platform") or None,
        "android_version": release,
        "sdk": int(sdk) if sdk and sdk.isdigit() else None,
        "abi": props.get("ro.product.cpu.abi") or None,
        "build": props.get("ro.build.fingerprint") or None,
        # The keys every target's environment has (runtimes/results.py ENVIRONMENT_KEYS).
        "cpu_model": soc,
        "machine": props.get("ro.product.cpu.abi") or None,
        "os": f"Android {release} (API {sdk})" if release else None,
    }


# One shell call reads the cores' maximum frequencies (to find the big cores) and the whole CPU state:
# governors, current and capped frequencies, thermal zones (runner.CPU_STATE_SCRIPT's "PATH<TAB>VALUE" lines).
# It runs once before the first measurement and after each one.
CPUFREQ_SCRIPT = ("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
                  'echo "$f $(cat "$f" 2>/dev/null)"; done; ' + CPU_STATE_SCRIPT)


def parse_cpufreq(text: str) -> dict[int, int]:
    """`/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq VALUE` lines -> {N: kHz}."""
    out = {}
    for cpu, khz in re.findall(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)", text):
        out[int(cpu)] = int(khz)
    return out


def big_cores(freqs: dict[int, int], threads: int = 1) -> list[int]:
    """The cores faster than the slowest cluster (prime + big on a 1+3+4 phone); all cores when every core
    runs at the same maximum; and never fewer than `threads` cores (the next fastest are added)."""
    if not freqs:
        return []
    lowest = min(freqs.values())
    fast = sorted((c for c, f in freqs.items() if f > lowest), key=lambda c: (-freqs[c], c))
    if not fast:
        return sorted(freqs)
    if len(fast) < threads:
        rest = sorted((c for c in freqs if c not in fast), key=lambda c: (-freqs[c], c))
        fast += rest[: threads - len(fast)]
    return sorted(fast)


def cpu_mask(cores: Sequence[int]) -> str:
    """taskset's hex mask for the cores: [4, 5, 6, 7] -> "f0"."""
    return format(sum(1 << c for c in cores), "x")


def normalize_mask(mask: Any) -> str:
    s = str(mask).strip().lower()
    s = s[2:] if s.startswith("0x") else s
    if not re.fullmatch(r"[0-9a-f]+", s) or int(s, 16) == 0:
        raise AdbError(f"bad CPU mask {mask!r}: give a non-zero hex mask such as f0 (cores 4-7)")
    return s


# -------------------------------------------------------------------------------------- adb client


Runner = Callable[[list[str], float], "subprocess.CompletedProcess[str]"]


def _subprocess_runner(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          errors="replace")


def find_adb(options: dict[str, Any] | None = None) -> str:
    given = (options or {}).get("adb") or os.environ.get(ENV_ADB)
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise AdbError(f"adb not found at {given} (from --adb / the {ENV_ADB} environment variable)")
        return str(given)
    found = shutil.which("adb")
    if not found:
        raise AdbError("adb is not installed: apt-get install adb (or the Android SDK platform-tools), "
                       f"or point {ENV_ADB} at it")
    return found


@dataclass
class Adb:
    """An adb client bound to one device (`serial`) or to "the only device" (serial None)."""

    target: str
    serial: str | None
    adb: str = "adb"
    runner: Runner = field(default=_subprocess_runner)

    def argv(self, *args: str) -> list[str]:
        head = [self.adb, "-s", self.serial] if self.serial else [self.adb]
        return [*head, *args]

    def run(self, *args: str, timeout: float = SHORT_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        try:
            r = self.runner(argv, timeout)
        except subprocess.TimeoutExpired:
            raise AdbError(f"{self.target}: `adb {args[0]}` timed out after {timeout:g} s "
                           "(device disconnected or unresponsive?)") from None
        except OSError as e:
            raise AdbError(f"{self.target}: cannot run {argv[0]}: {e}") from e
        if check and r.returncode != 0:
            raise AdbError(f"{self.target}: {_adb_message(r)}")
        return r

    def shell(self, command: str, *, timeout: float = SHORT_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one remote command line (already quoted: see `remote`) as a single `adb shell` argument."""
        return self.run("shell", command, timeout=timeout, check=check)

    def push(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.run("push", os.path.abspath(local), remote, timeout=timeout)

    def pull(self, remote: str, local: str, timeout: float = SHORT_TIMEOUT) -> None:
        self.run("pull", remote, os.path.abspath(local), timeout=timeout)


def remote(*words: str) -> str:
    """One remote command line from words, each quoted for the phone's shell (adb shell joins its argv)."""
    for w in words:
        if "\n" in w or "\0" in w:
            raise AdbError(f"cannot pass {w!r} to the phone's shell: it contains a newline or NUL")
    return " ".join(shlex.quote(w) for w in words)


def _adb_message(r: subprocess.CompletedProcess[str]) -> str:
    text = "\n".join(s for s in ((r.stderr or "").strip(), (r.stdout or "").strip()) if s)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("* daemon")]
    for ln in lines:
        if "error" in ln.lower() or "not found" in ln.lower() or "failed" in ln.lower():
            return ln
    return lines[-1] if lines else f"adb exited with status {r.returncode}"


def parse_devices(text: str) -> list[tuple[str, str]]:
    """`adb devices` -> [(serial, state)] (states: device, unauthorized, offline, ...)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1]))
    return out


def connect(target: str, options: dict[str, Any] | None = None, runner: Runner | None = None) -> Adb:
    """An Adb bound to the target's device, after checking it is attached and usable (one-line errors)."""
    if target == "adb":
        serial = None
    elif target.startswith("adb:") and len(target) > 4:
        serial = target[4:]
    else:
        raise AdbError(f"not an adb target: {target!r} (adb or adb:SERIAL)")
    if serial is not None and (serial.startswith("-") or any(c.isspace() for c in serial)):
        raise AdbError(f"bad adb serial {serial!r}: it must not start with '-' or contain spaces")
    client = Adb(target=target, serial=None, adb=find_adb(options), runner=runner or _subprocess_runner)
    listed = parse_devices(client.run("devices").stdout)
    attached = ", ".join(f"{s} ({st})" for s, st in listed) or "none"
    if serial is None:
        ready = [s for s, st in listed if st == "device"]
        if not listed:
            raise AdbError("adb: no Android device attached (`adb devices` lists none): connect a phone with "
                           "USB debugging on, or `adb connect HOST:PORT`")
        if len(listed) > 1:
            raise AdbError(f"adb: {len(listed)} devices attached ({attached}): pick one with --target adb:SERIAL")
        if not ready:
            serial_, state = listed[0]
            raise AdbError(f"adb:{serial_}: device is {state}" + _state_hint(state))
        serial = ready[0]
        client = Adb(target=target, serial=serial, adb=client.adb, runner=client.runner)
    else:
        client = Adb(target=target, serial=serial, adb=client.adb, runner=client.runner)
        states = dict(listed)
        if serial not in states:
            # Ask adb itself (it also knows emulators and `adb connect`ed devices by other names).
            r = client.run("get-state", check=False)
            if r.returncode != 0:
                raise AdbError(f"{target}: {_adb_message(r)} (attached: {attached})")
        elif states[serial] != "device":
            raise AdbError(f"{target}: device is {states[serial]}" + _state_hint(states[serial]))
    return client


def _state_hint(state: str) -> str:
    return {"unauthorized": ": accept the USB debugging prompt on the phone",
            "offline": ": reconnect the cable or run `adb reconnect`",
            "no permissions": ": fix the udev rules for this device"}.get(state, "")


# ------------------------------------------------------------------------------------- the target


@dataclass
class _Tools:
    benchmark_model: str | None
    ort_perf_test: str | None


def find_tools(options: dict[str, Any]) -> _Tools:
    given = options.get("benchmark_binary") or []
    if isinstance(given, (str, os.PathLike)):
        given = [given]
    bm = options.get("benchmark_model") or os.environ.get(ENV_BENCHMARK_MODEL)
    ort = options.get("ort_perf_test") or os.environ.get(ENV_ORT_PERF_TEST)
    for g in given:
        name = os.path.basename(str(g)).lower()
        if "onnxruntime" in name or "perf_test" in name:
            ort = str(g)
        else:
            bm = str(g)
    for p in (bm, ort):
        if p and not os.path.isfile(p):
            raise AdbError(f"benchmark binary not found: {p}")
    return _Tools(benchmark_model=str(bm) if bm else None, ort_perf_test=str(ort) if ort else None)





def _record(*, artifact: str, runtime: str, target: str, threads: int, status: str = "ok",
            reason: str | None = None, extra: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    if _new_record is not None:
        return _new_record(artifact=artifact, runtime=runtime, target=target, threads=threads, status=status,
                           reason=reason, extra=extra, **fields)
    rec: dict[str, Any] = {k: None for k in (
        "artifact", "model", "format", "precision", "form", "madds", "runtime", "runtime_version", "provider",
        "target", "threads", "runs", "warmup", "latency_ms", "init_ms", "first_inference_ms", "peak_rss_mb",
        "model_size_bytes", "environment", "status", "reason")}
    rec.update(fields)
    rec.update(artifact=artifact, runtime=runtime, target=target, threads=threads, status=status, reason=reason,
               format=fields.get("format") or Path(artifact).suffix.lstrip(".").lower() or None)
    rec["latency_ms"] = rec["latency_ms"] or {k: None for k in LATENCY_KEYS}
    rec["environment"] = rec["environment"] or {}
    if extra:
        rec["extra"] = extra
    return rec


def _runtime_for(artifact: str, runtime: str) -> tuple[str | None, str]:
    """(tool, runtime name) for an artifact, or (None, why not)."""
    ext = Path(artifact).suffix.lower()
    if ext == ".tflite":
        if runtime in ("auto", "litert", "tflite-runtime"):
            return "benchmark_model", "litert"
        return None, f"runtime {runtime} cannot run a .tflite on the adb target (use litert or auto)"
    if ext == ".onnx":
        if runtime in ("auto", "onnxruntime"):
            return "onnxruntime_perf_test", "onnxruntime"
        return None, f"runtime {runtime} cannot run an .onnx on the adb target (use onnxruntime or auto)"
    return None, f"the adb target runs .tflite and .onnx files, not {ext or 'this file'}"


def benchmark_model_words(binary: str, model: str, *, threads: int, runs: int, warmup: int, gpu: bool,
                          max_secs: float, extra: Sequence[str] = ()) -> list[str]:
    """benchmark_model's argv on the phone: exactly `runs` timed runs after `warmup` (min_secs 0)."""
    return [binary, f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}",
            f"--warmup_runs={warmup}", "--min_secs=0", "--warmup_min_secs=0", f"--max_secs={max_secs:g}",
            "--use_gpu=true" if gpu else "--use_xnnpack=true", *extra]


def ort_perf_test_words(binary: str, model: str, *, threads: int, runs: int, provider: str,
                        extra: Sequence[str] = ()) -> list[str]:
    """onnxruntime_perf_test's argv: random inputs (-I), `runs` repetitions, percentiles (-s)."""
    return [binary, "-I", "-m", "times", "-r", str(runs), "-x", str(threads), "-y", "1", "-e", provider, "-s",
            *extra, model]


def pinned_command(workdir: str, words: Sequence[str], mask: str | None) -> str:
    """cd WORKDIR && [taskset MASK] WORDS... 2>&1; echo RC=$?  (every data word quoted)."""
    pin = f"taskset {shlex.quote(mask)} " if mask else ""
    return (f"cd {shlex.quote(workdir)} && LD_LIBRARY_PATH={shlex.quote(workdir)} {pin}{remote(*words)} 2>&1; "
            f"echo {RC_MARK}$?")


def _split_rc(text: str) -> tuple[str, int | None]:
    m = re.search(rf"{RC_MARK}(\d+)\s*$", text.strip())
    if not m:
        return text, None
    return text[: m.start()], int(m[1])


def run_adb_target(target: str, artifacts: list[str], *, runtime: str, threads: int, runs: int, warmup: int,
                   options: dict[str, Any], runner: Runner | None = None) -> list[dict[str, Any]]:
    """Benchmark each artifact on the phone; one record per artifact (skipped rows say why).

    `options`: benchmark_binary (path or list), benchmark_model / ort_perf_test (paths), cpu_mask (hex),
    use_app (bool), adb_delegate (cpu|gpu), adb_provider (ORT -e), timeout (seconds per measurement),
    benchmark_args (extra tool arguments), adb (client path). `runner` replaces subprocess (tests).
    Raises AdbError before anything ran (no device, unknown serial), AdbTargetError with the records so far
    when the device disconnects or a command times out part-way.
    """
    options = dict(options or {})
    missing = [a for a in artifacts if not os.path.isfile(a)]
    if missing:
        raise AdbError(f"{target}: artifact not found: {missing[0]}")
    run = _AdbRun(target, runtime=runtime, threads=threads, runs=runs, warmup=warmup, options=options)
    run.attach(runner)
    return run.measure_all(artifacts)


class _AdbRun:
    """The state of one run_adb_target call: its settings, the device and its environment, the records so far."""

    def __init__(self, target: str, *, runtime: str, threads: int, runs: int, warmup: int,
                 options: dict[str, Any]) -> None:
        self.target = target
        self.runtime = runtime
        self.threads = threads
        self.runs = runs
        self.warmup = warmup
        self.options = options
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.use_app = bool(options.get("use_app"))
        self.gpu = options.get("adb_delegate") == "gpu"
        self.ort_ep = str(options.get("adb_provider") or "cpu")
        self.extra_args = [str(a) for a in (options.get("benchmark_args") or [])]
        self.tools = find_tools(options) if not self.use_app else _Tools(None, None)
        self.records: list[dict[str, Any]] = []
        self.pushed_tools: dict[str, str] = {}
        self.workdir = ""

    def attach(self, runner: Runner | None) -> None:
        """Connect to the device; read its properties and CPU state; choose the CPU pinning."""
        options = self.options
        self.adb = connect(self.target, options, runner)
        self.env = device_environment(parse_getprop(self.adb.shell("getprop").stdout))
        state_text = self.adb.shell(CPUFREQ_SCRIPT, check=False).stdout or ""
        freqs = parse_cpufreq(state_text)
        self.last_state = parse_cpu_state_listing(state_text)
        self.profile = bool(options.get("profile"))
        self.pause = Cooldown(float(options.get("cooldown") or 0.0), time.sleep)
        self.env["cores"] = len(freqs) or None
        self.env["cpu_max_freq_khz"] = {str(c): f for c, f in sorted(freqs.items())} or None
        self._choose_pinning(freqs)
        if self.use_app:
            self.env["tool"] = f"{APP_PACKAGE}/{APP_ACTIVITY}"

    def _choose_pinning(self, freqs: dict[int, int]) -> None:
        """The taskset mask (--cpu-mask, else the big cores) and the environment fields that describe it."""
        env, options = self.env, self.options
        pin_note = None
        if options.get("cpu_mask"):
            mask: str | None = normalize_mask(options["cpu_mask"])
            env["cpu_mask_source"] = "--cpu-mask"
        else:
            cores = big_cores(freqs, self.threads)
            mask = cpu_mask(cores) if cores else None
            env["big_cores"] = cores or None
            env["cpu_mask_source"] = "big cores (cpuinfo_max_freq)" if cores else None
            if not cores:
                pin_note = "not pinned: the phone exposes no cpufreq max frequencies"
        if mask and "taskset" not in self.adb.shell("command -v taskset || which taskset", check=False).stdout:
            pin_note, mask = "not pinned: the phone has no taskset", None
        env["cpu_mask"] = mask
        if self.use_app:
            env["pinning"] = "none: the demo app runs in its own process (taskset does not apply)"
        elif mask:
            env["pinning"] = f"taskset {mask} ({env.get('cpu_mask_source')})"
        else:
            env["pinning"] = pin_note or "none"
        self.mask, self.pin_note = mask, pin_note

    def measure_all(self, artifacts: list[str]) -> list[dict[str, Any]]:
        """Make the work folder, measure each artifact in it, remove it; a failure part-way keeps the records."""
        adb, target = self.adb, self.target
        workdir = self.workdir = f"{REMOTE_ROOT}/shufflenet-edge-{uuid.uuid4().hex[:8]}"
        current: str | None = None
        try:
            adb.shell(remote("mkdir", "-p", workdir), timeout=SHORT_TIMEOUT)
            adb.shell(remote("chmod", "755", workdir), timeout=SHORT_TIMEOUT)
            if self.use_app:
                if "package:" not in adb.shell(remote("pm", "path", APP_PACKAGE), check=False).stdout:
                    raise AdbError(f"{target}: the demo app {APP_PACKAGE} is not installed: build and install "
                                   "android_demo (./gradlew :app:installDebug), then rerun with --use-app")
            for art in artifacts:
                current = art
                self._measure(art)
            current = None
        except AdbError as e:
            if current is not None or self.records:
                if current is not None:
                    tool, rt = _runtime_for(current, self.runtime)
                    self.records.append(_record(artifact=current, runtime=rt if tool else self.runtime,
                                                target=target, threads=self.threads, runs=self.runs,
                                                warmup=self.warmup, status="error",
                                                reason=_strip_target(str(e), target), environment=dict(self.env)))
                _cleanup(adb, workdir)
                raise AdbTargetError(target, _strip_target(str(e), target), self.records) from None
            _cleanup(adb, workdir)
            raise
        _cleanup(adb, workdir)
        return self.records

    def _measure(self, art: str) -> None:
        """One artifact: a skipped row if nothing here runs it, else the demo app or the native tool."""
        base: dict[str, Any] = dict(artifact=art, target=self.target, threads=self.threads, runs=self.runs,
                                    warmup=self.warmup, model_size_bytes=os.path.getsize(art),
                                    environment=dict(self.env))
        tool, rt = _runtime_for(art, self.runtime)
        if tool is None:
            self.records.append(_record(runtime=self.runtime, status="skipped", reason=rt, **base))
        elif self.use_app:
            self._measure_app(art, base, tool, rt)
        else:
            self._measure_tool(art, base, tool, rt)

    def _measure_app(self, art: str, base: dict[str, Any], tool: str, rt: str) -> None:
        """One artifact through the demo app (.tflite only), stamped with its times and pause."""
        if tool != "benchmark_model":
            self.records.append(_record(runtime=rt, status="skipped",
                                        reason="the demo app runs .tflite models only", **base))
            return
        slept = self.pause.before_round()
        started = time.time()
        rec = _run_app(self.adb, art, self.workdir, base, threads=self.threads, runs=self.runs,
                       warmup=self.warmup, gpu=self.gpu, timeout=self.timeout, pin_note=self.pin_note)
        rec.setdefault("extra", {}).update(started_at=round(started, 3), ended_at=round(time.time(), 3),
                                           cooldown_s=round(slept, 3))
        if self.profile:
            rec["extra"]["op_profile"] = {
                "source": "demo app", "timing": False, "summary_by_node_type": [], "notes": [],
                "reason": "the demo app times whole inferences only; per-op times come from benchmark_model "
                          "(--benchmark-binary) with --profile"}
        self.records.append(rec)

    def _measure_tool(self, art: str, base: dict[str, Any], tool: str, rt: str) -> None:
        """One artifact through the native tool: push, run pinned, parse, record the CPU state around it."""
        adb, workdir = self.adb, self.workdir
        local_tool = self.tools.benchmark_model if tool == "benchmark_model" else self.tools.ort_perf_test
        if not local_tool:
            env_var = ENV_BENCHMARK_MODEL if tool == "benchmark_model" else ENV_ORT_PERF_TEST
            self.records.append(_record(runtime=rt, status="skipped", reason=(
                f"no {tool} binary for the phone: pass --benchmark-binary PATH or set {env_var}"
                + (" (or use --use-app for the demo app)" if tool == "benchmark_model" else "")), **base))
            return
        remote_tool = self._push_tool(tool, local_tool)
        remote_model = f"{workdir}/{_remote_name(art)}"
        adb.push(art, remote_model, timeout=self.timeout)
        words = self._tool_words(tool, remote_tool, remote_model)
        slept = self.pause.before_round()
        if slept:  # the state after the pause, not the one before it
            self.last_state = parse_cpu_state_listing(adb.shell(CPUFREQ_SCRIPT, check=False).stdout or "")
        started = time.time()
        r = adb.shell(pinned_command(workdir, words, self.mask), timeout=self.timeout, check=False)
        ended = time.time()
        output, rc = _split_rc(r.stdout or "")
        if rc is None:
            # The marker never came back: adb lost the device while the tool ran.
            raise AdbError(f"{self.target}: {_adb_message(r)}")
        after = parse_cpu_state_listing(adb.shell(CPUFREQ_SCRIPT, check=False).stdout or "")
        tool_env = {**self.env, "tool": tool, "tool_path": local_tool, "tool_sha256": file_sha256(local_tool),
                    "tool_args": words[1:]}
        rec = _tool_record(tool, rt, output, rc, base, tool_env, gpu=self.gpu, ort_ep=self.ort_ep,
                           warmup=self.warmup, pin_note=self.pin_note)
        extra = rec.setdefault("extra", {})
        extra.update(cpu_state={"before": self.last_state, "after": after}, started_at=round(started, 3),
                     ended_at=round(ended, 3), cooldown_s=round(slept, 3))
        self.last_state = after
        if self.profile:
            extra["op_profile"] = _device_profile(adb, tool, output, workdir)
            if rec["status"] == "ok":
                rec["reason"] = (rec.get("reason") or "") + "; op profiling was on during these runs (its " \
                    "overhead is in the latency figures)"
        self.records.append(rec)
        adb.shell(remote("rm", "-f", remote_model), check=False)

    def _push_tool(self, tool: str, local_tool: str) -> str:
        """The tool's path on the phone, pushed (and made executable) the first time it is needed."""
        if local_tool not in self.pushed_tools:
            remote_tool = f"{self.workdir}/{tool}"
            self.adb.push(local_tool, remote_tool, timeout=self.timeout)
            self.adb.shell(remote("chmod", "755", remote_tool))
            self.pushed_tools[local_tool] = remote_tool
        return self.pushed_tools[local_tool]

    def _tool_words(self, tool: str, remote_tool: str, remote_model: str) -> list[str]:
        """The tool's argv on the phone, with the user's extra arguments and the profiling flags."""
        prof_args: list[str] = []
        if self.profile:
            prof_args = (["--enable_op_profiling=true"] if tool == "benchmark_model"
                         else ["-p", f"{self.workdir}/{ORT_PROFILE_PREFIX}"])
        if tool == "benchmark_model":
            return benchmark_model_words(remote_tool, remote_model, threads=self.threads, runs=self.runs,
                                         warmup=self.warmup, gpu=self.gpu, max_secs=max(150.0, self.timeout),
                                         extra=[*self.extra_args, *prof_args])
        return ort_perf_test_words(remote_tool, remote_model, threads=self.threads, runs=self.runs,
                                   provider=self.ort_ep, extra=[*self.extra_args, *prof_args])


ORT_PROFILE_PREFIX = "ort_profile"


def _device_profile(adb: Adb, tool: str, output: str, workdir: str) -> dict[str, Any]:
    """The per-op profile of one measurement: benchmark_model's tables from its output, or the trace
    onnxruntime_perf_test wrote with -p (pulled back and reduced like the runner's)."""
    from shufflenet_edge.runtimes.profile import profile_from_benchmark_model, profile_from_runner

    if tool == "benchmark_model":
        try:
            return profile_from_benchmark_model(output)
        except ValueError as e:
            return {"source": "benchmark_model", "timing": False, "reason": str(e), "summary_by_node_type": [],
                    "notes": []}
    listing = adb.shell(f"ls {shlex.quote(workdir)}/{ORT_PROFILE_PREFIX}*.json", check=False).stdout or ""
    files = [ln.strip() for ln in listing.splitlines() if ln.strip().endswith(".json")]
    if not files:
        return {"source": "onnxruntime", "timing": False, "summary_by_node_type": [], "notes": [],
                "reason": "onnxruntime_perf_test -p wrote no profile file on the phone"}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="shufflenet-edge-adbprof-") as tmp:
        local = os.path.join(tmp, "profile.json")
        try:
            adb.pull(files[-1], local, timeout=DEFAULT_TIMEOUT)
            with open(local) as f:
                events = json.load(f)
        except (AdbError, OSError, ValueError) as e:
            return {"source": "onnxruntime", "timing": False, "summary_by_node_type": [], "notes": [],
                    "reason": f"could not read the profile onnxruntime_perf_test wrote: {e}"}
    adb.shell(remote("rm", "-f", *files), check=False)
    op = summarize_ort_trace(events, skip_runs=1)  # perf_test runs one untimed warm-up
    op.update(source="onnxruntime", timing=True, note="onnxruntime_perf_test -p trace from the phone")
    return profile_from_runner(op)


def _strip_target(msg: str, target: str) -> str:
    for prefix in (f"{target}: ", "adb: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _remote_name(artifact: str) -> str:
    name = os.path.basename(artifact)
    if not name or "\n" in name or "\0" in name:
        raise AdbError(f"cannot copy {artifact!r} to the phone: bad file name")
    return name


def _cleanup(adb: Adb, workdir: str) -> None:
    try:
        adb.shell(remote("rm", "-rf", workdir), timeout=20.0, check=False)
    except AdbError:
        pass  # the device is gone; /data/local/tmp is the phone's scratch space


def _tool_record(tool: str, rt: str, output: str, rc: int, base: dict[str, Any], env: dict[str, Any], *,
                 gpu: bool, ort_ep: str, warmup: int, pin_note: str | None) -> dict[str, Any]:
    provider = ("gpu" if gpu else "xnnpack") if tool == "benchmark_model" else ort_ep
    fields = {**base, "environment": env, "provider": provider}
    try:
        if tool == "benchmark_model":
            p = parse_benchmark_model(output)
            lat, n, note = latency_from_benchmark_model(p)
            fields.update(latency_ms=lat, runs=n if n is not None else base["runs"],
                          init_ms=_ms(p["init_us"]), first_inference_ms=_ms(p["first_us"]),
                          peak_rss_mb=p["peak_mb"])
            if p["warmup"] and p["warmup"].get("count") is not None:
                fields["warmup"] = int(p["warmup"]["count"])
            if p["peak_mb"] is None:
                note += ("; peak_rss_mb is null: this build printed only the memory delta since the tool "
                         f"started ({p['mem_delta_mb']} MB)" if p["mem_delta_mb"] is not None
                         else "; peak_rss_mb is null: no memory line printed")
            extra = {"output_format": p["format"], "mem_delta_mb": p["mem_delta_mb"]}
        else:
            p = parse_ort_perf_test(output)
            lat, n, note = latency_from_ort(p)
            fields.update(latency_ms=lat, runs=n if n is not None else base["runs"], warmup=1,
                          init_ms=None if p["session_s"] is None else round(p["session_s"] * 1000, 6),
                          first_inference_ms=p["first_ms"],
                          peak_rss_mb=None if p["peak_bytes"] is None else round(p["peak_bytes"] / 2**20, 3))
            if warmup != 1:
                note += f" (asked for {warmup} warm-up runs)"
            extra = {"p95_ms": None if p["p95_s"] is None else round(p["p95_s"] * 1000, 6)}
    except AdbError as e:
        why = f"{tool} exited with status {rc}: {_tail(output)}" if rc else str(e)
        return _record(runtime=rt, status="error", reason=why, **fields)
    if rc != 0:
        return _record(runtime=rt, status="error", reason=f"{tool} exited with status {rc}: {_tail(output)}",
                       **fields)
    note += "; runtime_version is null: the tool does not print it (see environment.tool_sha256)"
    if pin_note:
        note += f"; {pin_note}"
    return _record(runtime=rt, reason=note, extra=extra, **fields)


def _run_app(adb: Adb, art: str, workdir: str, base: dict[str, Any], *, threads: int, runs: int, warmup: int,
             gpu: bool, timeout: float, pin_note: str | None) -> dict[str, Any]:
    """Drive the demo app's BenchmarkActivity: push the model, am start, wait for the JSON, read it."""
    remote_model = f"{workdir}/{_remote_name(art)}"
    adb.push(art, remote_model, timeout=timeout)
    adb.shell(remote("chmod", "644", remote_model))
    run_id = uuid.uuid4().hex[:12]
    name = f"bench_{run_id}.json"
    ext_path = f"/sdcard/Android/data/{APP_PACKAGE}/files/{name}"
    start = remote("am", "start", "-W", "-n", f"{APP_PACKAGE}/{APP_ACTIVITY}", "--es", "model", remote_model,
                   "--ei", "runs", str(runs), "--ei", "warmup", str(warmup), "--ei", "threads", str(threads),
                   "--es", "delegate", "gpu" if gpu else "cpu", "--es", "run_id", run_id)
    r = adb.shell(start, timeout=SHORT_TIMEOUT, check=False)
    if r.returncode != 0 or "Error" in (r.stdout or ""):
        raise AdbError(f"{adb.target}: am start failed: {_tail(r.stdout or r.stderr or '')}")
    read = f"cat {shlex.quote(ext_path)} 2>/dev/null || run-as {shlex.quote(APP_PACKAGE)} cat {shlex.quote('files/' + name)} 2>/dev/null"
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        r = adb.shell(read, timeout=SHORT_TIMEOUT, check=False)
        text = (r.stdout or "").strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
                break
            except ValueError:
                pass  # written by rename, so a partial read means another writer; try again
        time.sleep(1.0)
    adb.shell(f"rm -f {shlex.quote(ext_path)}; run-as {shlex.quote(APP_PACKAGE)} rm -f {shlex.quote('files/' + name)}",
              check=False)
    if doc is None:
        raise AdbError(f"{adb.target}: the app wrote no result within {timeout:g} s "
                       f"(adb logcat -s ShuffleNetEdgeBench says why)")
    f = record_fields_from_app_json(doc)
    status, reason, extra = f.pop("status"), f.pop("reason"), f.pop("extra")
    fields = {**base, **{k: v for k, v in f.items() if v is not None}}
    fields["environment"] = {**base["environment"], "tool": f"{APP_PACKAGE}/{APP_ACTIVITY}"}
    if status == "ok":
        reason = ("demo app: inference timed on a preprocessed synthetic frame; preprocess/postprocess times "
                  "in extra; not pinned (the app runs in its own process, taskset does not apply)")
        if pin_note:
            reason += f"; {pin_note}"
        return _record(runtime="litert", reason=reason, extra=extra, **fields)
    return _record(runtime="litert", status="error", reason=f"the app reported: {reason}", extra=extra, **fields)


PARITY_ACTIVITY = ".ParityActivity"


def infer_adb(target: str, artifact: str, x_raw: Any, *, options: dict[str, Any] | None = None,
              delegate: str = "cpu", threads: int = 4, timeout: float = DEFAULT_TIMEOUT,
              runner: Runner | None = None) -> tuple[Any, dict[str, Any]]:
    """Parity on a phone through the demo app's ParityActivity: push the model and the raw input tensors
    (`x_raw`, a batch already in the model's layout and type), start the activity, wait for its done file, pull
    the raw outputs. Returns (raw output batch, the app's done record). One-line AdbErrors for every failure."""
    import tempfile

    import numpy as np

    if not artifact.endswith(".tflite"):
        raise AdbError(f"{target}: parity on the phone runs .tflite artifacts through the demo app; {artifact} is not one")
    adb = connect(target, options, runner)
    run_id = uuid.uuid4().hex[:12]
    # The app's external files folder: the shell can write it and the app can read and write it without permissions.
    workdir = f"/sdcard/Android/data/{APP_PACKAGE}/files/parity_{run_id}"
    adb.shell(remote("mkdir", "-p", workdir))
    try:
        with tempfile.TemporaryDirectory() as td:
            inp = Path(td) / "in.npy"
            np.save(inp, np.ascontiguousarray(x_raw))
            adb.push(artifact, f"{workdir}/model.tflite", timeout=timeout)
            adb.push(str(inp), f"{workdir}/in.npy", timeout=timeout)
            out = f"{workdir}/out.npy"
            start = remote("am", "start", "-W", "-n", f"{APP_PACKAGE}/{PARITY_ACTIVITY}", "--es", "model",
                           f"{workdir}/model.tflite", "--es", "input", f"{workdir}/in.npy", "--es", "output", out,
                           "--es", "delegate", delegate, "--ei", "threads", str(threads), "--es", "run_id", run_id)
            r = adb.shell(start, timeout=SHORT_TIMEOUT, check=False)
            if r.returncode != 0 or "Error" in (r.stdout or ""):
                raise AdbError(f"{target}: am start failed (is the demo app installed?): {_tail(r.stdout or r.stderr or '')}")
            deadline = time.monotonic() + timeout
            done = None
            while time.monotonic() < deadline:
                r = adb.shell(remote("cat", out + ".done.json"), timeout=SHORT_TIMEOUT, check=False)
                text = (r.stdout or "").strip()
                if text.startswith("{"):
                    try:
                        done = json.loads(text)
                        break
                    except ValueError:
                        pass
                time.sleep(1.0)
            if done is None:
                raise AdbError(f"{target}: the app wrote no parity result within {timeout:g} s "
                               "(adb logcat -s ShuffleNetEdgeParity says why)")
            if done.get("status") != "ok":
                raise AdbError(f"{target}: the app reported: {done.get('error')}")
            local = Path(td) / "out.npy"
            adb.pull(out, str(local), timeout=timeout)
            y = np.load(local)
        return y, done
    finally:
        adb.shell(remote("rm", "-rf", workdir), check=False)
