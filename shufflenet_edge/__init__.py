"""shufflenet-edge: ShuffleNet V1/V2 from PyTorch to phones and ARM boards, with proof at every step.

    import shufflenet_edge as se
    art = se.export(model, "out/model.tflite", example_input=torch.randn(1, 3, 224, 224))
    report = se.parity("out/model.tflite", model, 8)
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

__all__ = ["export", "parity", "AccuracyBudget", "Int8Config", "ExportConfig", "Thresholds", "__version__"]

# `shufflenet_edge.export` is also a package (the export pipeline) and `shufflenet_edge.parity` a module. Importing
# a submodule for the first time sets it as an attribute of its parent, which would replace the functions below;
# importing both now (neither loads torch) means later imports find them in sys.modules and leave the names alone.
_importlib.import_module("shufflenet_edge.export")
_importlib.import_module("shufflenet_edge.parity")


def export(model: _Any, out: _Any, config: _Any = None, **options: _Any) -> _Any:
    """Export `model` (an eval-mode nn.Module or a registry name) to `out` (.onnx / .tflite); see
    `shufflenet_edge.api.export`."""
    from shufflenet_edge.api import export as _export

    return _export(model, out, config, **options)


def parity(artifact: _Any, model: _Any = None, inputs: _Any = None, **options: _Any) -> _Any:
    """Compare every output of `artifact` with the PyTorch model (default inputs: those its export checked int8 on,
    else 32 structured synthetic images, as the `parity` command does); see `shufflenet_edge.api.parity`."""
    from shufflenet_edge.api import parity as _parity

    return _parity(artifact, model, inputs, **options)


# The records an export is configured with (neither module loads torch): `se.export(model, out, int8=True,
# budget=se.AccuracyBudget(validate, max_drop=0.01))`, `gate=se.Thresholds(min_psnr=35)`.
from shufflenet_edge.export.config import AccuracyBudget, ExportConfig, Int8Config  # noqa: E402
from shufflenet_edge.parity import Thresholds  # noqa: E402
