from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shufflenet_edge import __version__
from shufflenet_edge.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and __version__ in r.stdout
    for cmd in ("models", "info"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage" in r.stdout


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len([r for r in rows if r["family"] == "shufflenet_v1"]) == 20


def test_info_table_and_json(capsys):
    assert main(["info", "shufflenet_v2_x1_0"]) == 0
    out = capsys.readouterr().out
    assert "stage3.0" in out and "total" in out and "MAC" in out
    assert main(["info", "shufflenet_v1_x1_0_g3", "--json", "--input-size", "64"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["input_size"] == 64
    assert sum(r["madds"] for r in res["rows"]) == res["total"]["madds"]
    assert res["total"]["mac"] > 0


def test_unknown_model_is_one_line_exit_2():
    r = run("info", "resnet50")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "valid names" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_size_exit_2():
    r = run("info", "--input-size", "16")
    assert r.returncode == 2 and ">= 32" in r.stderr


@pytest.mark.parametrize("argv", [[], ["nosuchcommand"]])
def test_usage_errors(argv):
    assert run(*argv).returncode == 2
