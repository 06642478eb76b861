"""What the command line promises on every command ("the front door"): `--json` means one thing, `--debug` shows
the traceback, SIGTERM/SIGHUP stop as cleanly as Ctrl-C, progress reaches CI logs, `bench` writes nothing when
nothing was measured, the one-model plot is a bar chart, and the one-line errors say what to do."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shufflenet_edge.cli import add_json_argument, emit_json, main

REPO = Path(__file__).resolve().parents[1]
MODEL, SIZE = "shufflenet_v2_x0_5", 64
EXE = [sys.executable, "-m", "shufflenet_edge"]


def cli(*args: str, env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def fresh_tmp(tmp_path: Path, name: str = "tmpdir") -> tuple[Path, dict[str, str]]:
    """A TMPDIR of its own, so the test can see every temporary file the command leaves."""
    d = tmp_path / name
    d.mkdir()
    return d, {**os.environ, "TMPDIR": str(d)}


def ours_left(tmp: Path) -> list[str]:
    """Our temporary files still in `tmp` (torch keeps its own compile cache there, torchinductor_USER, on purpose)."""
    return sorted(f.name for f in tmp.iterdir() if f.name.startswith("shufflenet-edge-"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One tiny TFLite export with stderr to a pipe (not a terminal) and a TMPDIR of its own."""
    root = tmp_path_factory.mktemp("front_door")
    tmp, env = fresh_tmp(root)
    env["SHUFFLENET_EDGE_PROGRESS_EVERY"] = "2"
    out = root / "m.tflite"
    r = cli("export", "--target", "tflite", "--model", MODEL, "--input-size", str(SIZE), "--form", "delegate",
            "--out", str(out), env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return {"result": r, "tflite": out, "tmp": tmp, "root": root}


# --- 1. --json ----------------------------------------------------------------------------------------------

def test_json_alone_is_stdout_and_json_file_is_written(tmp_path, capsys):
    assert main(["info", MODEL, "--input-size", str(SIZE), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["input_size"] == SIZE  # the JSON only: no table around it
    target = tmp_path / "info.json"
    assert main(["info", MODEL, "--input-size", str(SIZE), "--json", str(target)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and f"wrote {target}" in out and json.loads(target.read_text())["model"] == MODEL
    assert main(["models", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 30


def test_json_value_that_is_not_a_json_file_is_refused(tmp_path):
    """`inspect --json model.tflite` would otherwise eat the artifact as the output file (and overwrite it)."""
    art = tmp_path / "m.tflite"
    art.write_bytes(b"precious")
    for argv in (["inspect", "--json", str(art)], ["info", "--json", MODEL], ["profile-report", "--json", str(art)]):
        r = cli(*argv)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "FILE.json" in r.stderr, r.stderr
    assert art.read_bytes() == b"precious"


def test_json_helpers_for_every_command(tmp_path, capsys):
    import argparse

    p = argparse.ArgumentParser()
    add_json_argument(p, "the report")
    assert p.parse_args([]).json is None and p.parse_args(["--json"]).json == "-"
    assert p.parse_args(["--json", "r.json"]).json == "r.json"
    assert emit_json({"a": 1}, None) is None
    assert emit_json({"a": 1}, "-") is None and json.loads(capsys.readouterr().out) == {"a": 1}
    assert emit_json({"a": 2}, str(tmp_path / "sub" / "r.json")) == tmp_path / "sub" / "r.json"
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == {"a": 2}
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["r.json"]  # no temporary file left beside it


def test_profile_report_json_on_stdout_and_table_on_stderr(tmp_path):
    trace = tmp_path / "ort.json"
    ev = [{"cat": "Session", "name": "model_run", "ts": t, "dur": d, "ph": "X", "args": {}}
          for t, d in ((0, 10), (20, 10), (40, 14))]
    ev += [{"cat": "Node", "name": "g_kernel_time", "ts": t + 1, "dur": 5, "ph": "X",
            "args": {"op_name": "Gather", "provider": "CPUExecutionProvider"}} for t in (0, 20, 40)]
    trace.write_text(json.dumps(ev))
    r = cli("profile-report", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"] == "onnxruntime" and doc["run_ms_kind"] == "median"
    assert doc["run_mean_ms"] == pytest.approx(0.012) and doc["run_ms"] == pytest.approx(0.014)
    # The sum of per-op means stands beside the whole run's mean; the median is labelled as one.
    line = next(ln for ln in r.stderr.splitlines() if "sum of per-op mean times" in ln)
    assert "mean 0.012 ms" in line and "median 0.014 ms" in line


def test_inspect_and_bench_json_on_stdout(exported, tmp_path):
    art = str(exported["tflite"])
    r = cli("inspect", art, "--no-gpu-check", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["format"] == "tflite"
    r = cli("bench", art, "--runs", "3", "--warmup", "1", "--no-gpu", "--json", "--plot", str(tmp_path / "b.png"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"][0]["status"] == "ok" and doc["results"][0]["latency_ms"]["p10"] is not None
    assert "median" in r.stderr and f"wrote {tmp_path / 'b.png'}" in r.stderr  # the table moved to stderr
    assert not (tmp_path / "out").exists()  # no default JSON file beside it


# --- 2. --debug, and a weights file that is not a checkpoint -------------------------------------------------

def test_not_a_checkpoint_is_one_line_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "notatorch.pth"
    bad.write_text("hello, not a checkpoint\n")
    argv = ["export", "--model", MODEL, "--input-size", str(SIZE), "--weights", str(bad), "--form", "delegate",
            "--out", str(tmp_path / "x.tflite")]
    r = cli(*argv)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "not a PyTorch checkpoint" in r.stderr and "KeyError" not in r.stderr and "Traceback" not in r.stderr
    r = cli(*argv, "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr and "not a PyTorch checkpoint" in r.stderr


# --- 3. SIGTERM / SIGHUP --------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM here")
def test_a_stop_a_finalizer_swallowed_is_raised_again():
    """A SIGTERM whose handler runs inside a finalizer (JAX's gc callback during litert-torch's conversion, in the
    real case) is dropped by Python; the stop is delivered again and raised where it propagates."""
    from shufflenet_edge.cli import Stopped, stop_on_signals

    class Finalizer:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)  # the handler runs here, inside the finalizer

    with pytest.raises(Stopped), stop_on_signals():
        Finalizer()  # collected at once
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_stops_the_export_like_ctrl_c(tmp_path, sig, code):
    """SIGTERM / SIGHUP in the middle of a conversion unwind like Ctrl-C: the exit code of the signal, one line,
    nothing written and nothing of ours left in the temporary folder."""
    tmp, env = fresh_tmp(tmp_path)
    out = tmp_path / "m.tflite"
    p = subprocess.Popen([*EXE, "export", "--target", "tflite", "--model", MODEL, "--input-size", str(SIZE),
                          "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        seen = ""
        while "converting" not in seen and p.poll() is None:  # the progress line of the conversion
            seen += p.stderr.readline()
        assert p.poll() is None, seen
        time.sleep(0.6)  # early in the conversion, where JAX's gc callback often runs the handler (see above)
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == code, seen + stderr
    assert stderr.strip().splitlines()[-1] == f"shufflenet-edge: stopped by {signal.Signals(sig).name}", stderr
    time.sleep(0.5)
    assert ours_left(tmp) == []  # the native-output log gone too
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


def test_native_capture_log_is_kept_only_when_named(tmp_path):
    tmp, env = fresh_tmp(tmp_path)
    code = ("import os\nfrom shufflenet_edge.console import capture_native\n"
            "with capture_native() as cap:\n    os.write(2, b'native chatter\\n')\n"
            "    kept = cap.keep() if os.environ.get('KEEP') else None\nprint(kept)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "None" and ours_left(tmp) == [] and "native chatter" not in r.stderr
    r = subprocess.run([sys.executable, "-c", code], env={**env, "KEEP": "1"}, capture_output=True, text=True,
                       timeout=60)
    kept = Path(r.stdout.strip())
    assert kept.parent == tmp and kept.read_text() == "native chatter\n"


# --- 5. progress where users look; 3. nothing left in TMPDIR after a success ------------------------------------

def test_progress_lines_when_stderr_is_not_a_terminal(exported):
    err = exported["result"].stderr  # type: ignore[attr-defined]
    stages = [ln for ln in err.splitlines() if ln.startswith("[") and " s] " in ln]
    assert any("converting with litert-torch ..." in ln for ln in stages), err
    assert any("converting with litert-torch: done (" in ln for ln in stages), err
    assert any("still running" in ln for ln in stages), err  # SHUFFLENET_EDGE_PROGRESS_EVERY=2 in a 10 s+ stage
    assert "\x1b[" not in err  # no terminal control codes in a log
    assert ours_left(exported["tmp"]) == []  # type: ignore[arg-type]  (the capture log went on success)


# --- 4. bench that measured nothing; skipped GPU rows -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bench_where_everything_failed_writes_nothing(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    r = cli("bench", str(bad), "--runs", "3", "--json", str(js), "--plot", str(png))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert "nothing measured, nothing written" in r.stderr and "broken.tflite" in r.stderr
    assert not js.exists() and not png.exists()
    env = {**os.environ, "HOME": str(tmp_path), "ANDROID_ADB_SERVER_PORT": str(_free_port())}
    env.pop("ANDROID_SERIAL", None)
    try:
        r = cli("bench", str(bad), "--target", "adb:nosuchserial", "--json", str(js), "--plot", str(png), env=env)
    finally:
        if shutil.which("adb"):
            subprocess.run(["adb", "kill-server"], env=env, capture_output=True, timeout=30)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert "adb:nosuchserial" in r.stderr and not js.exists() and not png.exists()


def test_skipped_gpu_rows_are_one_line():
    from shufflenet_edge.runtimes.results import format_table, latency_stats, new_record

    recs = [new_record(artifact=f"m{i}.onnx", runtime="onnxruntime", provider="cpu", target="local", threads=1,
                       latency_ms=latency_stats([1.0, 2.0])) for i in range(2)]
    for i in range(2):
        for prov in ("cuda", "tensorrt"):
            recs.append(new_record(artifact=f"m{i}.onnx", runtime="onnxruntime", provider=prov, target="local",
                                   threads=1, status="skipped",
                                   reason="no NVIDIA GPU on this machine (no /dev/nvidia* device); onnxruntime 1.x "
                                          "here has no CUDAExecutionProvider; pip install onnxruntime-gpu"))
    table = format_table(recs)
    assert "skipped [" not in table and "cuda" not in table.split("times in ms")[0]
    gpu = [ln for ln in table.splitlines() if "GPU rows skipped" in ln]
    assert gpu == ["GPU rows skipped on local (onnxruntime/cuda, onnxruntime/tensorrt): no NVIDIA GPU on this "
                   "machine (each row's reason is in the JSON; --no-gpu leaves them out)"]


# --- 6. the plot ----------------------------------------------------------------------------------------------

def _rec(artifact: str, model: str | None, precision: str, threads: int, base: float, madds: int | None = None):
    from shufflenet_edge.runtimes.results import latency_stats, new_record

    return new_record(artifact=artifact, runtime="litert", provider="xnnpack", target="local", threads=threads,
                      model=model, precision=precision, madds=madds,
                      latency_ms=latency_stats([base + 0.1 * k for k in range(20)]))


def test_one_model_plot_is_bars_per_artifact_and_threads_coloured_by_precision(tmp_path):
    from matplotlib.container import BarContainer
    from shufflenet_edge.runtimes.results import PRECISION_COLOURS, plot_figure, write_plot

    recs = [_rec(f"m_{p}.tflite", "shufflenet_v2_x0_5", p, t, 1.0 + t, madds=4_244_608)
            for p in ("fp32", "int8") for t in (1, 2)]
    fig = plot_figure(recs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "artifact, runtime, threads" and "p10 to p90" in ax.get_ylabel()
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1 and len(bars[0].patches) == 4
    colours = {tuple(round(v, 3) for v in b.get_facecolor()[:3]) for b in bars[0].patches}
    assert len(colours) == 2  # fp32 and int8
    from matplotlib.colors import to_rgb

    assert tuple(round(v, 3) for v in to_rgb(PRECISION_COLOURS["int8"])) in colours
    # the whiskers: p10 below and p90 above each median
    whiskers = [c for c in ax.containers if not isinstance(c, BarContainer)]
    assert whiskers, "no p10-p90 whiskers drawn"
    assert write_plot(tmp_path / "one.png", recs).read_bytes()[:4] == b"\x89PNG"


def test_several_models_plot_latency_against_madds_and_nothing_when_all_failed(tmp_path):
    from shufflenet_edge.runtimes.results import new_record, plot_figure, write_plot

    recs = [_rec("a.tflite", "shufflenet_v2_x0_5", "fp32", 1, 1.0, 4_000_000),
            _rec("b.tflite", "shufflenet_v2_x1_0", "fp32", 1, 2.0, 12_000_000)]
    ax = plot_figure(recs).axes[0]
    assert ax.get_xlabel() == "multiply-adds (millions)"
    failed = [new_record(artifact="a.tflite", runtime="litert", target="local", threads=1, status="error",
                         reason="boom")]
    assert plot_figure(failed) is None
    assert write_plot(tmp_path / "none.png", failed) is None and not (tmp_path / "none.png").exists()


def test_user_model_multiply_adds_come_from_its_graph(exported, tmp_path):
    """An artifact the registry does not know (a user's model) is plotted by its own multiply-adds, counted in the
    graph; for a registered model the graph gives the registry's exact count."""
    import onnx
    from onnx import TensorProto, helper
    from shufflenet_edge.runtimes.results import describe_artifact, graph_madds, registry_madds

    assert graph_madds(exported["tflite"]) == registry_madds(MODEL, SIZE)
    # a hand-made ONNX graph: conv 3->8, 3x3, 16x16 output, groups 1; then Gemm 8 -> 10
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], [0.0] * 216)
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [10, 8], [0.0] * 80)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["y"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["z"], transB=1)]
    g = helper.make_graph(nodes, "user", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 10])], [w, fc])
    path = tmp_path / "my_detector.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    expect = 16 * 16 * 8 * 3 * 3 * 3 + 8 * 10
    assert graph_madds(path) == expect
    assert describe_artifact(str(path))["madds"] == expect


# --- 7. the one-line messages -------------------------------------------------------------------------------------

def test_truncated_artifact_is_said_to_be_truncated(exported, tmp_path):
    from shufflenet_edge.export.common import missing_identity_hint

    data = exported["tflite"].read_bytes()  # type: ignore[attr-defined]
    for n in (100, len(data) // 2, len(data) - 300):
        cut = tmp_path / f"cut{n}.tflite"
        cut.write_bytes(data[:n])
        msg = missing_identity_hint(cut)
        assert "truncated or not a TFLite file" in msg and "metadata" not in msg, msg
    whole = tmp_path / "bare.tflite"
    whole.write_bytes(data)
    msg = missing_identity_hint(whole)
    assert "no embedded shufflenet-edge metadata" in msg and "--input-size" not in msg and "--model" in msg


def test_unknown_model_shows_close_names_not_all_of_them():
    r = cli("info", "shufflenet_v2_x1_5_")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "did you mean shufflenet_v2_x1_5" in r.stderr and "`shufflenet-edge models`" in r.stderr
    assert "megvii" not in r.stderr and "mobilenet" not in r.stderr  # not the whole registry


def test_info_model_file_shows_the_keep_float_names(capsys):
    spec = f"{REPO / 'tests' / 'user_models.py'}:hand_chunk"
    assert main(["info", "--model-file", spec, "--input-size", str(SIZE)]) == 0
    out = capsys.readouterr().out
    assert "--keep-float names (globs allowed): stem blocks head fc" in out and "total" in out
    assert main(["info", "--model-file", spec, "--input-size", str(SIZE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["keep_float_units"] == ["stem", "blocks", "head", "fc"] and doc["total"]["madds"] > 0


def test_android_assets_after_a_wheel_install_says_where_the_app_is(tmp_path, monkeypatch):
    from shufflenet_edge.commands import android

    site = tmp_path / "site-packages" / "shufflenet_edge" / "commands"
    site.mkdir(parents=True)
    monkeypatch.setattr(android, "__file__", str(site / "android.py"))
    msg = android.missing_app_message(Path("android_demo"))
    assert "android_demo/ folder of the shufflenet-edge source" in msg and "--app" in msg
    monkeypatch.undo()
    msg = android.missing_app_message(tmp_path / "nowhere")  # in this checkout: the folder to pass
    assert f"--app {REPO / 'android_demo'}" in msg


# --- 8. an install without torch (boards, CI runners: numpy, onnxruntime, ai-edge-litert only) ------------------

def test_without_torch_the_runtime_commands_work_and_the_others_say_what_they_need():
    fixture = REPO / "tests" / "fixtures" / "profiles" / "tf53138_summary_by_node_type.txt"
    code = ("import sys\nfor m in ('torch', 'litert_torch', 'torchao'):\n    sys.modules[m] = None\n"
            "from shufflenet_edge.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "profile-report", str(fixture)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "CONV_2D" in r.stdout, r.stderr
    for argv in (["models"], ["guidelines", "--only", "G4"], ["export", "--int8"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, (argv, r.stderr)
        assert f"`{argv[0]}` needs torch" in r.stderr and "full install" in r.stderr, r.stderr
