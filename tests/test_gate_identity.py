"""Parity gates by default, artifacts that carry their identity, and a quiet terminal.

Everything runs through the real CLI in a child process, as a user runs it: the artifacts are made by
`shufflenet-edge export` once per session (V2 0.5x at 64x64: an fp32 TFLite and an fp32 ONNX).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODEL = "shufflenet_v2_x0_5"
SIZE = "64"

# Lines that native libraries print on their own (absl, glog-style torch warnings, TFLite/XNNPACK INFO, oneDNN).
NATIVE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|INFO: |WARNING: |onednn_verbose|"
    r".*_pytree\.py|.*absl::|E0000 |I0000 )"
)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def native_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if NATIVE.match(ln)]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """fp32 TFLite and ONNX from the CLI; the export's own stdout/stderr kept for the quiet-terminal test."""
    d = tmp_path_factory.mktemp("gate_identity")
    runs = {}
    arts = {"tflite": d / "v2_fp32.tflite", "onnx": d / "v2_fp32.onnx"}
    for target, form in (("tflite", "delegate"), ("onnx", "gather")):
        r = cli("export", "--model", MODEL, "--input-size", SIZE, "--target", target, "--form", form,
                "--out", str(arts[target]))
        assert r.returncode == 0, r.stdout + r.stderr
        runs[target] = r
    return arts, runs


def _bare_copy(src: Path, folder: Path) -> Path:
    """The artifact alone, its sidecar lost."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    shutil.copyfile(src, dst)
    assert not Path(str(dst) + ".json").exists()
    return dst


def _damage_tflite(src: Path, dst: Path) -> None:
    """Add noise to the largest float weight tensor (a conv kernel): a broken conversion, structurally valid."""
    from shufflenet_edge.export.passes.graph import Graph

    g = Graph(src.read_bytes())
    best, size = None, 0
    for i, t in enumerate(g.sg.tensors):
        arr = g.const(i)
        if arr is not None and arr.dtype == np.float32 and arr.size > size:
            best, size = i, arr.size
    assert best is not None
    w = g.const(best).copy()
    rng = np.random.default_rng(0)
    w += rng.standard_normal(w.shape).astype(np.float32) * 0.8 * float(w.std())
    g.model.buffers[g.sg.tensors[best].buffer].data = np.frombuffer(w.tobytes(), dtype=np.uint8)
    dst.write_bytes(g.finish())
    shutil.copyfile(str(src) + ".json", str(dst) + ".json")


def test_export_and_parity_print_no_native_lines(exported, tmp_path):
    arts, runs = exported
    for target, r in runs.items():
        assert native_lines(r.stderr) == [], f"{target} export stderr: {r.stderr}"
        assert native_lines(r.stdout) == [], f"{target} export stdout: {r.stdout}"
        assert "wrote " in r.stdout
    r = cli("parity", str(arts["tflite"]), str(arts["onnx"]), "--synthetic", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert native_lines(r.stderr) == [] and native_lines(r.stdout) == [], r.stderr + r.stdout
    assert r.stderr == ""


def test_debug_shows_native_lines(exported):
    """--debug lets the libraries speak: the capture is what hid them (LiteRT logs its XNNPACK delegate)."""
    arts, _ = exported
    r = cli("--debug", "parity", str(arts["tflite"]), "--synthetic", "2")
    assert r.returncode == 0, r.stderr
    assert "XNNPACK" in r.stderr


def test_default_gate_passes_good_fails_damaged(exported, tmp_path):
    arts, _ = exported
    good = cli("parity", str(arts["tflite"]), "--synthetic", "8", "--json", str(tmp_path / "good.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    rep = json.loads((tmp_path / "good.json").read_text())
    row = rep["artifacts"][0]
    assert row["gate"]["source"] == "default for fp32" and row["status"] == "ok"
    assert row["gate"]["thresholds"] == {"max_rel_error": 1e-3, "min_top1_agreement": 0.99}
    assert "gate (default for fp32): relative max error <= 0.001, top-1 agreement >= 99%" in good.stdout

    bad = tmp_path / "damaged.tflite"
    _damage_tflite(arts["tflite"], bad)
    r = cli("parity", str(bad), "--synthetic", "8", "--json", str(tmp_path / "bad.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "parity failed" in lines[0] and "relative max error" in lines[0] and "> 0.001" in lines[0]
    m = json.loads((tmp_path / "bad.json").read_text())["artifacts"][0]
    assert m["status"] == "FAIL" and m["metrics"]["cosine_mean"] < 0.999

    # --report-only: same numbers, no gate, exit 0; it cannot be combined with thresholds.
    r = cli("parity", str(bad), "--synthetic", "8", "--report-only")
    assert r.returncode == 0 and " report" in r.stdout and "gate (off (--report-only)): none" in r.stdout, r.stdout
    r = cli("parity", str(bad), "--synthetic", "8", "--report-only", "--min-psnr", "30")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    # The user's thresholds replace the default gate.
    r = cli("parity", str(bad), "--synthetic", "8", "--min-cosine", "0.5")
    assert r.returncode == 0, r.stderr


def test_bare_artifacts_work_without_sidecar(exported, tmp_path):
    arts, _ = exported
    bare = {k: _bare_copy(p, tmp_path / "bare") for k, p in arts.items()}
    r = cli("parity", str(bare["tflite"]), str(bare["onnx"]), "--synthetic", "4", "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((tmp_path / "p.json").read_text())["artifacts"]
    for row in rows:
        assert row["model"] == MODEL and row["sidecar"] is False
        assert row["described_by"].startswith("embedded metadata")
        assert row["gate"]["source"] == "default for fp32" and row["passed"]
    assert {r_["layout"] for r_ in rows} == {"nhwc", "nchw"}
    r = cli("bench", str(bare["tflite"]), str(bare["onnx"]), "--runs", "5", "--warmup", "1",
            "--json", str(tmp_path / "b.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    bench = json.loads((tmp_path / "b.json").read_text())
    measured = [x for x in bench["results"] if x["status"] == "ok" and x["latency_ms"]]
    assert measured and all(x.get("model") == MODEL for x in measured), measured
    app = tmp_path / "app"
    (app / "app" / "src" / "main" / "assets").mkdir(parents=True)
    r = cli("android-assets", str(bare["tflite"]), "--app", str(app))
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = json.loads((app / "app" / "src" / "main" / "assets" / "model_config.json").read_text())
    assert cfg["model"] == MODEL and cfg["preprocess"]["input_size"] == int(SIZE)


def test_artifact_without_any_identity_says_what_to_pass(exported, tmp_path):
    """A file with neither sidecar nor metadata (another tool's export): one line naming --model."""
    import onnx

    arts, _ = exported
    m = onnx.load(str(arts["onnx"]))
    del m.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(m, str(foreign))
    r = cli("parity", str(foreign), "--synthetic", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "pass --model" in r.stderr, r.stderr
    r = cli("parity", str(foreign), "--synthetic", "2", "--model", MODEL)
    assert r.returncode == 0, r.stderr


def test_sidecar_wins_over_embedded(exported, tmp_path):
    arts, _ = exported
    d = tmp_path / "sc"
    art = _bare_copy(arts["onnx"], d)
    side = json.loads(Path(str(arts["onnx"]) + ".json").read_text())
    side["labels"] = [f"class{i}" for i in range(side["num_classes"])]
    Path(str(art) + ".json").write_text(json.dumps(side))
    from shufflenet_edge.export.common import artifact_info, read_embedded

    info, where = artifact_info(art)
    assert where == str(art) + ".json" and info["labels"][0] == "class0"
    assert read_embedded(art)["labels"] is None and read_embedded(art)["model"] == MODEL
