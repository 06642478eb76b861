"""Session fixtures shared by test_digits, test_parity and test_per_layer: digits data, trained models, and
fp32 artifacts made by the project's exporters.

Import the fixtures into a test module (`from digits_fixtures import *`). Expensive results are cached on
disk, so modules that import the fixtures share them: trained checkpoints in the digits cache
(`$SHUFFLENET_EDGE_CACHE/digits`, which conftest points at a fresh temporary folder for every session, so
the training runs once per session, about a minute on 2 cores), exports under pytest's session base temp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shufflenet_edge import digits

INPUT_SIZE = 32
# A shorter schedule than benchmarks/train_digits.py's: still >= 95% held-out (test_digits checks it).
TEST_RECIPE = digits.Recipe(epochs=16)


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.getbasetemp() / "digits_shared"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def digits_data():
    return digits.load(INPUT_SIZE)


@pytest.fixture(scope="session")
def trained_v2(digits_data):
    return digits.ensure_trained("shufflenet_v2_x0_5", INPUT_SIZE, recipe=TEST_RECIPE, splits=digits_data)


@pytest.fixture(scope="session")
def digits_folder(digits_data, tmp_path_factory):
    """10 held-out images per class, as an ImageNet-style folder of PNGs."""
    d = _shared_dir(tmp_path_factory) / "test_folder"
    if not d.exists():
        digits.write_image_folder(digits_data[1].per_class(10), d)
    return d


@pytest.fixture(scope="session")
def digits_artifacts(trained_v2, tmp_path_factory):
    """fp32 ONNX (NCHW) and TFLite (NHWC) of the trained V2, through the project's exporters."""
    from shufflenet_edge.api import export as se_export

    d = _shared_dir(tmp_path_factory)
    weights = str(trained_v2[0])
    out = {"onnx_fp32": d / "v2_digits_fp32.onnx", "tflite_fp32": d / "v2_digits_fp32.tflite", "weights": Path(weights)}
    if not out["onnx_fp32"].exists():
        se_export("shufflenet_v2_x0_5", out["onnx_fp32"], target="onnx", weights=weights, input_size=INPUT_SIZE, form="gather",
                    show_progress=False)
    if not out["tflite_fp32"].exists():
        se_export("shufflenet_v2_x0_5", out["tflite_fp32"], target="tflite", weights=weights, input_size=INPUT_SIZE,
                      form="delegate", show_progress=False)
    return out
