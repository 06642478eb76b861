"""`shufflenet-edge parity` and the parity helper: metrics by hand, real exported artifacts, errors.

The artifacts are exported once per session by the project's exporters from a digits-trained
ShuffleNetV2 0.5x at 32x32 (tests/digits_fixtures.py), so agreement and accuracy mean something.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from digits_fixtures import digits_artifacts, digits_data, digits_folder, trained_v2  # noqa: F401  (fixtures)

from shufflenet_edge.cli import main
from shufflenet_edge.errors import EdgeError
from shufflenet_edge.parity import (
    ParityError,
    Thresholds,
    assert_close,
    check_parity,
    compare,
    inputs_from_npy,
    violations,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shufflenet_edge", *args], capture_output=True, text=True, timeout=600)


class Result:
    """What a CLI run left: exit code, stdout, stderr (fd-level, so native runtime logs are included)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(capfd: pytest.CaptureFixture[str], *args: str) -> Result:
    """The CLI in this process (no interpreter start-up and imports per call)."""
    capfd.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    out, err = capfd.readouterr()
    return Result(rc, out, err)


def one_line_error(r: subprocess.CompletedProcess[str] | Result) -> str:
    err = r.stderr.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("shufflenet-edge:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------------ metrics


def test_metrics_by_hand():
    ref = np.array([[4.0, 1.0, 0.0, -1.0, -2.0, -3.0], [0.0, 2.0, 1.0, -1.0, -2.0, -4.0]])
    out = ref.copy()
    out[0, 0] += 0.5  # still top-1
    out[1, 1] -= 2.0  # top-1 moves to class 2
    s = compare(out, ref, labels=np.array([0, 2]))
    assert s.n == 2 and s.num_classes == 6
    assert s.max_abs_error == pytest.approx(2.0)
    assert s.mean_abs_error == pytest.approx(2.5 / 12)
    rmse = math.sqrt((0.25 + 4.0) / 12)
    assert s.psnr_db == pytest.approx(20 * math.log10(4.0 / rmse))
    assert s.top1_agreement == 0.5
    # top-5 of 6 classes: the smallest logit is dropped in both samples, sets stay equal
    assert s.top5_overlap == 1.0
    c0 = np.dot(out[0], ref[0]) / (np.linalg.norm(out[0]) * np.linalg.norm(ref[0]))
    c1 = np.dot(out[1], ref[1]) / (np.linalg.norm(out[1]) * np.linalg.norm(ref[1]))
    assert s.cosine_mean == pytest.approx((c0 + c1) / 2) and s.cosine_min == pytest.approx(min(c0, c1))
    assert s.ref_top1_accuracy == 0.5 and s.top1_accuracy == 1.0
    assert s.accuracy_drop_points == pytest.approx(-50.0)


def test_identical_outputs_are_infinite_psnr_and_null_in_json():
    ref = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    s = compare(ref.copy(), ref)
    assert math.isinf(s.psnr_db) and s.max_abs_error == 0 and s.top1_agreement == 1.0
    d = s.to_dict()
    assert d["psnr_db"] is None
    json.dumps(d)


def test_top5_overlap_counts_shared_classes():
    ref = np.arange(10, dtype=np.float32)[None]  # top-5: 9 8 7 6 5
    out = ref.copy()
    out[0, [5, 6]] = -1  # drop two of them; 4 and 3 enter
    assert compare(out, ref).top5_overlap == pytest.approx(3 / 5)


def test_check_parity_message_carries_statistics():
    ref = np.random.default_rng(1).normal(size=(8, 10))
    out = ref + 0.3
    with pytest.raises(ParityError) as e:
        check_parity(out, ref, what="model.tflite", max_abs_error=1e-4, min_psnr=30)
    msg = str(e.value)
    assert "model.tflite" in msg and "max abs error 0.3 > 0.0001" in msg and "PSNR" in msg
    assert "top-1 agreement" in msg and "cosine" in msg and "\n" not in msg
    s = check_parity(out, ref, max_abs_error=0.31)
    assert s.max_abs_error == pytest.approx(0.3)


def test_violations_need_labels_for_accuracy_drop():
    ref = np.eye(3)
    s = compare(ref, ref)
    assert violations(s, Thresholds(max_accuracy_drop=0.5)) == [
        "accuracy drop cannot be checked: the inputs have no labels (use an image folder with class sub-folders)"
    ]
    s = compare(ref, ref, labels=np.array([0, 1, 2]))
    assert violations(s, Thresholds(max_accuracy_drop=0.5, min_top1_agreement=1.0, min_psnr=300)) == []


def test_assert_close_says_where():
    a = np.zeros((2, 3), np.float32)
    b = a.copy()
    b[1, 2] = 1.0
    with pytest.raises(ParityError, match=r"1 of 6 elements .* max abs err 1 at \(1, 2\)"):
        assert_close(a, b, atol=1e-3, what="logits")
    with pytest.raises(ParityError, match="shape"):
        assert_close(a, b[:1])
    assert_close(a, a)


def test_non_finite_outputs_are_reported():
    ref = np.ones((2, 4))
    out = ref.copy()
    out[0, 1] = np.nan
    with pytest.raises(ParityError, match="non-finite"):
        compare(out, ref)


# ------------------------------------------------------------------------------------------ real artifacts


def test_fp32_artifacts_agree_with_trained_model(digits_artifacts, digits_folder, tmp_path):  # noqa: F811
    """Both exporters' fp32 outputs of the trained V2: 100% agreement, max abs error <= 1e-4, accuracy."""
    out = tmp_path / "parity.json"
    rc = main(["parity", str(digits_artifacts["onnx_fp32"]), str(digits_artifacts["tflite_fp32"]),
               "--images", str(digits_folder), "--json", str(out),
               "--max-abs-error", "1e-4", "--min-top1-agreement", "100%", "--max-accuracy-drop", "0"])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["passed"] and len(rep["artifacts"]) == 2
    for a in rep["artifacts"]:
        m = a["metrics"]
        assert a["sidecar"] and not a["random_weights"]
        assert m["n"] == 100 and m["top1_agreement"] == 1.0 and m["max_abs_error"] <= 1e-4
        assert m["ref_top1_accuracy"] >= 0.9 and m["top1_accuracy"] == m["ref_top1_accuracy"]
    assert {a["layout"] for a in rep["artifacts"]} == {"nchw", "nhwc"}


def test_table_and_missed_threshold_exit_1(digits_artifacts, digits_folder):  # noqa: F811
    r = run("parity", str(digits_artifacts["tflite_fp32"]), "--images", str(digits_folder), "--limit", "20",
            "--max-abs-error", "1e-12")
    assert r.returncode == 1
    assert "max abs" in r.stdout and "PSNR dB" in r.stdout and "FAIL" in r.stdout
    line = one_line_error(r)
    assert "parity failed" in line and "max abs error" in line and "> 1e-12" in line


def test_npy_inputs_nchw_nhwc_and_wrong_shape(capfd, digits_artifacts, digits_data, tmp_path):  # noqa: F811
    x = digits_data[1].x[:6]
    y = digits_data[1].y[:6]
    np.savez(tmp_path / "in.npz", x=x, y=y)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    art = str(digits_artifacts["onnx_fp32"])
    for f in ("in.npz", "nhwc.npy"):
        out = tmp_path / f"{f}.json"
        assert main(["parity", art, "--npy", str(tmp_path / f), "--json", str(out), "--max-abs-error", "1e-4"]) == 0
        m = json.loads(out.read_text())["artifacts"][0]["metrics"]
        assert m["n"] == 6 and m["top1_agreement"] == 1.0
    assert json.loads((tmp_path / "in.npz.json").read_text())["artifacts"][0]["metrics"]["top1_accuracy"] is not None
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 40, 40), np.float32))
    r = cli(capfd, "parity", art, "--npy", str(tmp_path / "bad.npy"))
    assert r.returncode == 1 and "3x32x32" in one_line_error(r)
    np.save(tmp_path / "bad2.npy", np.zeros((2, 5, 32, 32), np.float32))
    with pytest.raises(EdgeError, match="expected"):
        inputs_from_npy(tmp_path / "bad2.npy")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_artifacts_are_one_line_errors(capfd, digits_artifacts, tmp_path, damage):  # noqa: F811
    for key in ("onnx_fp32", "tflite_fp32"):
        src = Path(digits_artifacts[key])
        dst = tmp_path / src.name
        data = src.read_bytes()
        dst.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 100, "empty": b""}[damage])
        shutil.copy(str(src) + ".json", str(dst) + ".json")
        r = cli(capfd, "parity", str(dst), "--synthetic", "2")
        assert r.returncode == 1, r.stderr
        line = one_line_error(r)
        assert dst.name in line


def test_unreadable_image_and_missing_model(capfd, digits_artifacts, digits_folder, tmp_path):  # noqa: F811
    folder = tmp_path / "imgs"
    shutil.copytree(digits_folder / "3", folder / "3")
    (folder / "3" / "broken.png").write_bytes(b"not a png")
    r = cli(capfd, "parity", str(digits_artifacts["onnx_fp32"]), "--images", str(folder))
    assert r.returncode == 1 and "cannot read image" in one_line_error(r) and "broken.png" in r.stderr
    import onnx

    bare = tmp_path / "bare.onnx"
    m = onnx.load(str(digits_artifacts["onnx_fp32"]))
    del m.metadata_props[:]  # neither sidecar nor embedded identity (another tool's file): needs --model
    onnx.save(m, str(bare))
    r = cli(capfd, "parity", str(bare), "--synthetic", "2")
    assert r.returncode == 2 and "--model" in one_line_error(r)
    r = cli(capfd, "parity", str(digits_artifacts["onnx_fp32"]), "--min-top1-agreement", "1.5")
    assert r.returncode == 2


def test_wrong_layout_in_sidecar_is_one_line(capfd, digits_artifacts, tmp_path):  # noqa: F811
    src = Path(digits_artifacts["onnx_fp32"])
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    sc = json.loads(Path(str(src) + ".json").read_text())
    sc["input"]["layout"] = "nhwc"  # the ONNX graph is NCHW
    Path(str(dst) + ".json").write_text(json.dumps(sc))
    r = cli(capfd, "parity", str(dst), "--synthetic", "2")
    assert r.returncode == 1 and "wrong input layout" in one_line_error(r) and "(1, 3, 32, 32)" in r.stderr


def test_wrong_weights_are_refused(capfd, digits_artifacts, tmp_path):  # noqa: F811
    import torch

    from shufflenet_edge.models.weights import load_model

    other = tmp_path / "other.pth"
    torch.save(load_model("shufflenet_v2_x0_5", num_classes=10, seed=3, warn=False).state_dict(), other)
    r = cli(capfd, "parity", str(digits_artifacts["onnx_fp32"]), "--weights", str(other), "--synthetic", "2")
    assert r.returncode == 1 and "not the ones" in one_line_error(r)


def test_map_labels_rules():
    from shufflenet_edge.parity import map_labels

    y = np.array([0, 1, 2, 1])
    # integer folder names are class indices
    got, how = map_labels(y, ["3", "5", "7"], 10)
    assert got.tolist() == [3, 5, 7, 5] and "indices" in how
    # a label list (synset file lines) decides, whatever the sorted order of the folders
    names = ["n0002 tench", "n0001 goldfish", "n0003 shark"]
    got, how = map_labels(y, ["n0001", "n0002", "n0003"], 3, names, "synsets.txt")
    assert got.tolist() == [1, 0, 2, 0] and "synsets.txt" in how
    # as many folders as classes: sorted order is class order (ImageFolder)
    assert map_labels(y, ["a", "b", "c"], 3)[0].tolist() == y.tolist()
    # otherwise no accuracy rather than a wrong one
    got, how = map_labels(y, ["a", "b", "c"], 1000)
    assert got is None and "accuracy not computed" in how and "--labels" in how
    with pytest.raises(EdgeError, match="not in the label list"):
        map_labels(y, ["n0001", "n0009", "n0003"], 3, names)


def test_imagenet_style_folder_with_synset_labels(capfd, digits_artifacts, digits_folder, tmp_path):  # noqa: F811
    """Synset-named class folders (sorted order != class order) and a synset file, as with ImageNet."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    wnid = {d: f"n{(7 * d + 3) % 10:02d}{d}00000" for d in range(10)}  # sorted order scrambles the classes
    assert sorted(wnid.values()) != [wnid[d] for d in range(10)]
    folder = tmp_path / "val"
    for d in range(10):
        shutil.copytree(digits_folder / str(d), folder / wnid[d])
    synsets = tmp_path / "synsets.txt"
    synsets.write_text("".join(f"{wnid[d]} {words[d]}\n" for d in range(10)))
    art = str(digits_artifacts["onnx_fp32"])
    ref_json, syn_json, guess_json = tmp_path / "ref.json", tmp_path / "syn.json", tmp_path / "guess.json"
    assert cli(capfd, "parity", art, "--images", str(digits_folder), "--json", str(ref_json)).returncode == 0
    r = cli(capfd, "parity", art, "--images", str(folder), "--labels", str(synsets), "--json", str(syn_json))
    assert r.returncode == 0 and "labels: folder names looked up in label file" in r.stdout
    want = json.loads(ref_json.read_text())["artifacts"][0]["metrics"]
    got = json.loads(syn_json.read_text())["artifacts"][0]["metrics"]
    assert got["top1_accuracy"] == want["top1_accuracy"] >= 0.9 and got["ref_top1_accuracy"] == want["ref_top1_accuracy"]
    # Without the synset file the ImageFolder convention is all we can assume, and the report says so.
    cli(capfd, "parity", art, "--images", str(folder), "--json", str(guess_json))
    row = json.loads(guess_json.read_text())["artifacts"][0]
    assert "sorted order" in row["label_mapping"] and row["metrics"]["top1_accuracy"] < 0.5
