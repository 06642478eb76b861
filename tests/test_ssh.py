"""The SSH target against a real OpenSSH sshd on 127.0.0.1 (own host key, authorized_keys and port, started
by a module fixture; ENVIRONMENT_NOTES.md has the recipe). The "board" is this machine: --remote-python
points at a python with numpy and the runtimes, or at one without numpy for the failure case."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.bench_artifacts import MODEL, small_artifacts
from fixtures.sshd import SSHD, Sshd, free_port, start_sshd  # noqa: F401  (Sshd: type of the fixture)
from shufflenet_edge.runtimes.results import read_json
from shufflenet_edge.runtimes.ssh import SshOptions, parse_ssh_target, scp_argv, ssh_argv

from shufflenet_edge.errors import UsageError


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    yield from start_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_artifacts(tmp_path_factory, "fp32.onnx", "fp32.tflite")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True,
                          timeout=timeout)


def remote_dirs() -> set[str]:
    return set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "shufflenet-edge.*")))


# --- argument construction (no server needed) ------------------------------------------------------

def test_parse_ssh_target():
    t = parse_ssh_target("ssh://pi@raspberrypi.local:2222")
    assert (t.user, t.host, t.port, t.destination) == ("pi", "raspberrypi.local", 2222, "pi@raspberrypi.local")
    assert parse_ssh_target("ssh://board").destination == "board"  # an alias from ~/.ssh/config
    assert parse_ssh_target("ssh://pi@[::1]:22").host == "::1"
    for bad, words in [("ssh://", "ssh://[user@]host"), ("ssh://pi@h:99999", "port"), ("ssh://h/tmp", "no path"),
                       ("ssh://-oProxyCommand=touch%20x", "must not start with '-'"),
                       ("ssh://-l@h", "must not start with '-'"), ("pi@h", "ssh://[user@]host")]:
        with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_ssh_target(bad)


def test_argv_lists_and_option_precedence():
    t = parse_ssh_target("ssh://pi@board:2222")
    o = SshOptions(options=["BatchMode=no", "ProxyCommand=none"], jump="bastion", config="/my/config",
                   identity="/k/id")
    a = ssh_argv(t, o, "echo hi")
    assert a[0] == "ssh" and a[-2:] == ["pi@board", "echo hi"] and a[a.index("-p") + 1] == "2222"
    assert a[a.index("-J") + 1] == "bastion" and a[a.index("-F") + 1] == "/my/config"
    opts = [a[i + 1] for i, x in enumerate(a) if x == "-o"]
    assert opts.index("BatchMode=no") < opts.index("ConnectTimeout=15")  # the user's options come first
    assert "BatchMode=yes" not in opts  # and are not overridden
    hostile = "/tmp/dir with space/we'ird; $(rm -rf x) name.tflite"
    s = scp_argv(t, o, [hostile, "rel:ative.onnx"], "/tmp/shufflenet-edge.abc/0")
    assert s[0] == "scp" and hostile in s and s[s.index("-P") + 1] == "2222"
    assert os.path.abspath("rel:ative.onnx") in s  # absolute: never read as host:path
    assert s[-1] == "pi@board:/tmp/shufflenet-edge.abc/0/"


# --- against the loopback sshd -----------------------------------------------------------------------

def test_ssh_success_side_by_side_with_local(sshd, arts, tmp_path):
    # a hostile file name: spaces, quotes, a semicolon and a $( ) reach the remote shell quoted
    folder = tmp_path / "dir with space"
    folder.mkdir()
    hostile = folder / "we'ird; $(touch pwned) name.tflite"
    shutil.copy(arts["fp32.tflite"], hostile)
    shutil.copy(str(arts["fp32.tflite"]) + ".json", str(hostile) + ".json")
    before = remote_dirs()
    out = tmp_path / "ssh.json"
    r = cli("bench", str(arts["fp32.onnx"]), str(hostile), "--target", "local", "--target", sshd.target,
            *sshd.client_args(), "--remote-python", sys.executable, "--no-gpu", "--runs", "20", "--warmup", "2",
            "--json", str(out), "--plot", str(tmp_path / "ssh.png"))
    assert r.returncode == 0, r.stderr
    recs = read_json(out)
    assert [x["target"] for x in recs] == ["local", "local", sshd.target, sshd.target]
    for x in recs:
        assert x["status"] == "ok" and x["model"] == MODEL
        assert 0 < x["latency_ms"]["min"] <= x["latency_ms"]["median"] <= x["latency_ms"]["p99"] <= x["latency_ms"]["max"]
    remote = [x for x in recs if x["target"] == sshd.target]
    assert {x["runtime"] for x in remote} == {"onnxruntime", "litert"}
    assert remote[0]["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert sshd.target in r.stdout  # the merged table names both targets
    assert remote_dirs() == before  # the board's temp folder is gone
    assert not (Path.home() / "pwned").exists() and not Path("pwned").exists()


@pytest.fixture(scope="module")
def python_without_numpy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bare venv (no pip, no site packages): like a fresh board's python3."""
    d = tmp_path_factory.mktemp("bare")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(d / "venv")], check=True)
    py = str(d / "venv" / "bin" / "python3")
    assert subprocess.run([py, "-c", "import numpy"], capture_output=True).returncode != 0
    return py


def test_ssh_board_without_numpy_says_what_to_install(sshd, arts, tmp_path, python_without_numpy):
    before = remote_dirs()
    out = tmp_path / "n.json"
    r = cli("bench", str(arts["fp32.onnx"]), str(arts["fp32.tflite"]), "--target", sshd.target,
            *sshd.client_args(), "--remote-python", python_without_numpy, "--runs", "5", "--json", str(out),
            "--no-plot", "--quiet")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"shufflenet-edge: error: {sshd.target}: ")
    assert f"{python_without_numpy} -m pip install numpy onnxruntime ai-edge-litert" in r.stderr, r.stderr
    assert "nothing measured, nothing written" in r.stderr and not out.exists()
    assert remote_dirs() == before


def test_ssh_refused_is_one_line(arts, tmp_path):
    port = free_port()  # nothing listens there
    out = tmp_path / "refused.json"
    r = cli("bench", str(arts["fp32.tflite"]), "--target", f"ssh://nobody@127.0.0.1:{port}",
            "--ssh-option", "StrictHostKeyChecking=no", "--ssh-option", "UserKnownHostsFile=/dev/null",
            "--json", str(out), "--no-plot", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"ssh://nobody@127.0.0.1:{port}: cannot connect" in r.stderr and "refused" in r.stderr.lower()
    assert "nothing measured, nothing written" in r.stderr and not out.exists()


def test_ssh_timeout_is_one_line_naming_the_target(sshd, arts, tmp_path):
    """Measurements over --timeout: error rows, one line naming the target, exit 1 (the runner on the board
    stops itself at the limit, so nothing is left running there)."""
    out = tmp_path / "t.json"
    before = remote_dirs()
    r = cli("bench", str(arts["fp32.tflite"]), str(arts["fp32.onnx"]), "--target", sshd.target,
            *sshd.client_args(), "--remote-python", sys.executable, "--runs", "100000000", "--warmup", "0",
            "--timeout", "2", "--json", str(out), "--no-plot", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and sshd.target in r.stderr
    assert "time limit of 2 s reached" in r.stderr
    assert "nothing measured, nothing written; 1 more failure(s)" in r.stderr and not out.exists()
    assert remote_dirs() == before


def test_ssh_disconnect_mid_run_keeps_results(sshd, arts, tmp_path):
    """Kill the SSH session while the second measurement runs: one line naming the target, exit 1, the
    first measurement kept in the JSON (which bench rewrites after every record)."""
    out = tmp_path / "d.json"
    before = remote_dirs()
    p = subprocess.Popen([sys.executable, "-m", "shufflenet_edge", "bench", str(arts["fp32.tflite"]),
                          str(arts["fp32.onnx"]), "--target", sshd.target, *sshd.client_args(),
                          "--remote-python", sys.executable, "--runs", "20000", "--warmup", "0",
                          "--json", str(out), "--no-plot", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not out.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "the first measurement finished after the whole run: make it longer"
    while not sshd.sessions() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the second measurement's connection
    time.sleep(0.5)
    killed = sshd.sessions()
    for pid in killed:
        os.kill(pid, 15)
    stdout, stderr = p.communicate(timeout=120)
    assert killed
    assert p.returncode == 1 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"shufflenet-edge: error: {sshd.target}: connection lost during "), stderr
    recs = read_json(out)
    assert recs[0]["status"] == "ok" and recs[0]["runtime"] == "litert"
    assert recs[1]["status"] == "error" and "connection lost" in recs[1]["reason"]
    assert remote_dirs() == before  # the listener still runs, so bench's clean-up reached the board


def test_ssh_parallel_targets_and_onnx_external_data(sshd, arts, tmp_path):
    """Two targets at once (--parallel) merge into one table; an .onnx with external data travels with its
    .data file."""
    import onnx

    ext = tmp_path / "ext"
    ext.mkdir()
    m = onnx.load(str(arts["fp32.onnx"]))
    onnx.save(m, str(ext / "model.onnx"), save_as_external_data=True, location="model.onnx.data")
    size = (ext / "model.onnx").stat().st_size + (ext / "model.onnx.data").stat().st_size
    other = f"ssh://127.0.0.1:{sshd.port}"  # same board, user from the client's defaults
    out = tmp_path / "p.json"
    r = cli("bench", str(ext / "model.onnx"), "--target", sshd.target, "--target", other, "--parallel",
            *sshd.client_args(), "--remote-python", sys.executable, "--runs", "5", "--json", str(out), "--no-plot",
            "--quiet")
    assert r.returncode == 0, r.stderr
    recs = read_json(out)
    assert [x["target"] for x in recs] == [sshd.target, other]
    assert all(x["status"] == "ok" and x["model_size_bytes"] == size for x in recs)
    # no sidecar, no registry name: the model is unknown, its multiply-adds are counted in the graph
    assert all(x["model"] is None and x["madds"] == recs[0]["madds"] > 10**6 for x in recs)
