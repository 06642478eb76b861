"""Quantization-aware training (PT2E QAT) and the export of the fine-tuned model with its learned scales.

    from shufflenet_edge import qat

    q = qat.prepare(model, example_input)          # NCHW float model -> GraphModule with fake quantization
    opt = torch.optim.SGD(q.parameters(), lr=1e-3, momentum=0.9)
    for x, y in loader:                            # the user's own loop, NCHW inputs as before
        loss = loss_fn(q(x), y); opt.zero_grad(); loss.backward(); opt.step()
    qat.export_tflite(q, "model_int8.tflite", model_name="shufflenet_v2_x0_5", input_size=224)

`prepare` exports the model in training mode and inserts litert-torch's QAT fake-quantize modules (moving-average
ranges for activations, per-channel weights; BatchNorm stays trainable and is folded at the end).
`export_tflite` converts (no calibration pass: the scales are the ones training learned), wraps the graph in the
NHWC input LiteRT expects and writes the .tflite with a sidecar. `shufflenet_edge.export(q, "m.tflite", int8=True)`
hands a model returned by `prepare` to `export_tflite` (`is_qat_model` tells them apart).

The QAT graph is the reference (torchvision) form: the folded forms are graph rewrites of the converted float
path, and QAT needs the training graph first. Layers named in `keep_float` are left float as in `export
--keep-float`.
"""

from __future__ import annotations

import os
from pathlib import Path
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
            per_channel: bool = True) -> torch.fx.GraphModule:
    """A fake-quantized copy of `model` (NCHW in, logits out) to fine-tune with any training loop."""
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
                                 "input_shape": list(example_input.shape), "per_channel": per_channel})
    return prepared


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


class _NHWCInput(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def export_tflite(prepared: torch.fx.GraphModule, out: str | os.PathLike[str], *, model_name: str,
                  input_size: int | None = None, calibration: str | None = None, io: str = "int8") -> dict[str, Any]:
    """Write the fine-tuned model as full-integer int8 TFLite (NHWC input) with a sidecar; returns the sidecar."""
    from shufflenet_edge.data import Preprocess
    from shufflenet_edge.errors import UsageError
    from shufflenet_edge.export.common import atomic_path, check_writable, embed_identity, tool_versions, write_sidecar
    from shufflenet_edge.export.inspect import inspect_tflite
    from shufflenet_edge.export.tflite_export import apply_passes
    from shufflenet_edge.export.tflite_export import convert as litert_convert

    if not is_qat_model(prepared):
        raise UsageError("export_tflite takes the model returned by shufflenet_edge.qat.prepare")
    meta = getattr(prepared, QAT_MARK)
    out_path = Path(out)
    check_writable(out_path)
    converted = convert(prepared)
    n, c, h, w = meta["input_shape"]
    x = torch.randn(1, h, w, c, generator=torch.Generator().manual_seed(0))
    wrapped = _NHWCInput(converted)
    wrapped.training = False  # not .eval(): torchao refuses train/eval calls on the converted graph
    base = litert_convert(wrapped, x, meta["quantizer"])
    final, passes = apply_passes(base, None, io, False)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(final)
    g = inspect_tflite(out_path, analyze_gpu=False)
    pre = Preprocess.for_size(input_size or int(meta["input_shape"][-1]))
    sidecar = {
        "format": "tflite",
        "path": str(out_path),
        "model": model_name,
        "num_classes": int(g["outputs"][0]["shape"][-1]),
        "weights": None,
        "random_weights": False,
        "seed": None,
        "precision": "int8",
        "form": "reference",
        "recipe": "qat",
        "input": {**g["inputs"][0], "layout": "nhwc"},
        "output": g["outputs"][0],
        "preprocess": pre.to_dict(),
        "labels": None,
        "calibration": calibration or "none: quantization-aware training (learned scales)",
        "quantization_scheme": f"PT2E QAT, {'per-channel' if meta['per_channel'] else 'per-tensor'} symmetric int8 weights, "
                               "int8 activations (moving-average ranges learned in training)",
        "keep_float": meta["keep_float"],
        "qat": True,
        "passes": passes,
        "tools": tool_versions("litert-torch", "ai-edge-litert", "torchao"),
        "graph": {k: g[k] for k in ("ops", "op_histogram", "data_movement_ops", "max_rank", "xnnpack_partitions", "quantize_ops", "size_bytes")},
        "note": "the float reference of a QAT model is its fine-tuned weights inside the QAT graph: judge it by accuracy "
                "(parity --images with labels) or pass --weights of the float model it started from",
    }
    embed_identity(out_path, sidecar)
    sidecar["graph"]["size_bytes"] = out_path.stat().st_size
    write_sidecar(out_path, sidecar)
    return sidecar


def evaluate(prepared_or_converted: nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits of a prepared (eval mode) or converted QAT model on float NCHW inputs, one image at a time."""
    with torch.no_grad():
        return torch.cat([prepared_or_converted(torch.from_numpy(np.ascontiguousarray(x[i : i + 1])))
                          for i in range(len(x))]).numpy()
