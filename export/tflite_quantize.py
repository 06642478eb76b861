"""PT2E static int8 for the TFLite path, with one scale shared along every data path.

Why: litert-torch's PT2EQuantizer shares a concat's output scale with its first input, but `reshape`
and `slice` are not in its list of scale-sharing ops, so each unit's shuffle got its own observers and
the converted graph carried two requantize (QUANTIZE) ops per unit: each one more full pass over the
tensor. Data movement never changes values, so sharing the producer's quantization through reshape,
permute, slice, squeeze and their copy variants is exact and removes those ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

_SHARE_OPS = None


def _share_ops() -> set[Any]:
    global _SHARE_OPS
    if _SHARE_OPS is None:
        a = torch.ops.aten
        _SHARE_OPS = {
            a.reshape.default, a.view.default, a.view_copy.default, a._unsafe_view.default,
            a.permute.default, a.permute_copy.default, a.slice.Tensor, a.slice_copy.Tensor,
            a.squeeze.dim, a.squeeze_copy.dim, a.unsqueeze.default, a.flatten.using_ints,
            a.transpose.int, a.clone.default, a.contiguous.default if hasattr(a, "contiguous") else a.clone.default,
        }
    return _SHARE_OPS


def make_quantizer() -> Any:
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    class SharedDataPathQuantizer(PT2EQuantizer):  # type: ignore[misc]
        """One scale per shuffle chain: concat inputs, concat output, its data path and the halves."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            share = _share_ops()
            moved: set[torch.fx.Node] = set()
            for n in model.graph.nodes:  # topological order
                if n.op != "call_function":
                    continue
                if n.target in share:
                    prev = n.args[0]
                    if isinstance(prev, torch.fx.Node) and prev.meta.get("quantization_annotation") is not None:
                        s = SharedQuantizationSpec(prev)
                        n.meta["quantization_annotation"] = QuantizationAnnotation(
                            input_qspec_map={prev: s}, output_qspec=s, _annotated=True)
                        moved.add(n)
                elif n.target == torch.ops.aten.cat.default:
                    ins = [i for i in n.args[0] if isinstance(i, torch.fx.Node)]
                    anchor = ins[0]
                    s = SharedQuantizationSpec(anchor)
                    for other in ins[1:]:
                        # The producer writes straight into the shared scale: no requantize op.
                        oa = other.meta.get("quantization_annotation")
                        if oa is not None and other not in moved and len(other.users) == 1:
                            oa.output_qspec = s
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={i: s for i in ins}, output_qspec=s, _annotated=True)
                    moved.add(n)
                else:
                    ann = n.meta.get("quantization_annotation")
                    if ann is None:
                        continue
                    for inp in list(ann.input_qspec_map):
                        if inp in moved:  # read the data path in its own scale
                            ann.input_qspec_map[inp] = SharedQuantizationSpec(inp)
            return model

    return SharedDataPathQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def pt2e_quantize(model: nn.Module, x: torch.Tensor, calib: np.ndarray, shared_data_path: bool = True) -> tuple[nn.Module, Any]:
    """Export, annotate, calibrate on `calib` (one image at a time), convert. Returns (simulation, quantizer)."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if shared_data_path:
        quantizer = make_quantizer()
    else:
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    gm = torch.export.export(model, (x,)).module()
    prepared = prepare_pt2e(gm, quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(torch.from_numpy(np.ascontiguousarray(calib[i : i + 1])))
    return convert_pt2e(prepared, fold_quantize=False), quantizer
