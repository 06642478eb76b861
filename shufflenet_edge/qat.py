"""Quantization-aware training (PT2E QAT) and the export of the fine-tuned model with its learned scales.

    from shufflenet_edge import qat

    q = qat.prepare(model, example_input)          # NCHW float model -> GraphModule with fake quantization
    opt = torch.optim.SGD(q.parameters(), lr=1e-3, momentum=0.9)
    for x, y in loader:                            # the user's own loop, NCHW inputs as before
        loss = loss_fn(q(x), y); opt.zero_grad(); loss.backward(); opt.step()
    se.export(q, "model_int8.tflite", int8=True)   # import shufflenet_edge as se: the one export pipeline

`prepare` exports the model in training mode and inserts litert-torch's QAT fake-quantize modules (moving-average
ranges for activations, per-channel weights; BatchNorm stays trainable and is folded at the end).
The pipeline's TFLite backend converts it (no calibration pass: the scales are the ones training learned), wraps
the graph in the NHWC input LiteRT expects and writes the .tflite with a sidecar (`is_qat_model` tells a prepared
graph from a float module). Pass `source=` to `prepare` so the sidecar records the float model it started from.

The QAT graph is the reference (torchvision) form: the folded forms are graph rewrites of the converted float
path, and QAT needs the training graph first. Layers named in `keep_float` are left float as in `export
--keep-float`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

QAT_MARK = "_shufflenet_edge_qat"


def _pattern_export_shim() -> None:
    """torchao 0.18 exports its QAT match patterns (plain functions) with torch.export, which torch 2.13 refuses
    ("Expected `mod` to be an instance of `torch.nn.Module`"): wrap function patterns in a module. Patched in every
    module that imported the helper by name; idempotent."""
    import importlib

    from torchao.quantization.pt2e import utils

    if getattr(utils, "_shufflenet_edge_shim", False):
        return
    orig = utils._get_aten_graph_module_for_pattern

    def wrapped(pattern: Any, example_inputs: Any, is_cuda: bool = False, **kwargs: Any) -> Any:
        if not isinstance(pattern, nn.Module):
            fn = pattern

            class _Pattern(nn.Module):
                def forward(self, *a: Any, **k: Any) -> Any:
                    return fn(*a, **k)

            pattern = _Pattern()
        return orig(pattern, example_inputs, is_cuda, **kwargs)

    for name in ("torchao.quantization.pt2e.utils", "torchao.quantization.pt2e.qat_utils",
                 "torchao.quantization.pt2e.export_utils", "litert_torch.quantize.pt2e_quantizer_utils"):
        mod = importlib.import_module(name)
        if hasattr(mod, "_get_aten_graph_module_for_pattern"):
            mod._get_aten_graph_module_for_pattern = wrapped
    utils._shufflenet_edge_shim = True


def prepare(model: nn.Module, example_input: torch.Tensor, *, keep_float: list[str] | None = None,
            per_channel: bool = True, source: dict[str, Any] | None = None) -> torch.fx.GraphModule:
    """A fake-quantized copy of `model` (NCHW in, logits out) to fine-tune with any training loop.

    `source`: how to rebuild the float model it started from (e.g. ``{"kind": "registry", "name": ..., "weights":
    {"path": ...}}``), recorded in the artifact's sidecar so `parity` compares with it; without it the sidecar
    says the reference must be passed (`parity --model`, or the model in the Python API)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from shufflenet_edge.export.int8_options import resolve_keep_float
    from shufflenet_edge.export.tflite_quantize import make_quantizer

    _pattern_export_shim()
    kept = resolve_keep_float(model, keep_float)
    quantizer = make_quantizer(per_channel=per_channel, qat=True, keep_float=kept)
    was_training = model.training
    model.train()
    try:
        # Training-mode BatchNorm needs more than one value per channel: export with a batch of two and a
        # symbolic batch size, so the user's loop, calibration and the batch-1 conversion all fit.
        x2 = torch.cat([example_input[:1], example_input[:1]]) if example_input.shape[0] == 1 else example_input
        gm = torch.export.export(model, (x2,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},)).module()
    finally:
        model.train(was_training)
    prepared = prepare_qat_pt2e(gm, quantizer)
    # .train() / .eval() switch BatchNorm and dropout as on the eager model (torchao refuses them otherwise).
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    allow_exported_model_train_eval(prepared)
    setattr(prepared, QAT_MARK, {"quantizer": quantizer, "keep_float": kept,
                                 "input_shape": list(example_input.shape), "per_channel": per_channel,
                                 "source": source, "model_name": type(model).__name__})
    return prepared


def input_shape(prepared: Any) -> list[int]:
    shape = list(getattr(prepared, QAT_MARK)["input_shape"])
    return [1, *shape[1:]]


def source_of(model: Any) -> dict[str, Any] | None:
    """The float reference a QAT graph records (None for other modules)."""
    if not is_qat_model(model):
        return None
    meta = getattr(model, QAT_MARK)
    return meta.get("source") or {"kind": "qat", "class": meta.get("model_name"),
                                  "note": "fine-tuned in a QAT graph: pass the float model it started from to parity"}


def model_name(prepared: Any) -> str:
    return str(getattr(prepared, QAT_MARK).get("model_name") or "qat_model")


def is_qat_model(model: Any) -> bool:
    return hasattr(model, QAT_MARK)


def train_mode(prepared: torch.fx.GraphModule, training: bool = True) -> torch.fx.GraphModule:
    """Switch a prepared model between training and evaluation (BatchNorm and the observers follow)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    return move_exported_model_to_train(prepared) if training else move_exported_model_to_eval(prepared)


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The int8 simulation with the learned scales (NCHW in), as the exporter converts it."""
    from shufflenet_edge.export.tflite_quantize import finish

    train_mode(prepared, False)
    return finish(prepared)


class NHWCInput(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def evaluate(prepared_or_converted: nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits of a prepared (eval mode) or converted QAT model on float NCHW inputs, one image at a time."""
    with torch.no_grad():
        return torch.cat([prepared_or_converted(torch.from_numpy(np.ascontiguousarray(x[i : i + 1])))
                          for i in range(len(x))]).numpy()
