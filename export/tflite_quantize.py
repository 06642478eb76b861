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


def _annotate_uncovered(model: torch.fx.GraphModule, config: Any) -> None:
    """Ops litert-torch's quantizer leaves in float in ShuffleNet V1: the residual add, a ReLU after an
    add or a concat, and the 3x3 average-pool shortcut. Left in float they cost a DEQUANTIZE/QUANTIZE
    pair each and cut the XNNPACK partition; int8 versions exist for all of them."""
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    a = torch.ops.aten
    act_in, act_out = get_input_act_qspec(config), get_output_act_qspec(config)
    for n in model.graph.nodes:
        if n.op != "call_function" or n.meta.get("quantization_annotation") is not None:
            continue
        if n.target in (a.add.Tensor, a.add_.Tensor) and all(isinstance(x, torch.fx.Node) for x in n.args[:2]):
            n.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={n.args[0]: act_in, n.args[1]: act_in}, output_qspec=act_out, _annotated=True)
        elif n.target in (a.relu.default, a.relu_.default, a.avg_pool2d.default) and isinstance(n.args[0], torch.fx.Node):
            prev = n.args[0]
            if n.target == a.avg_pool2d.default or prev.meta.get("quantization_annotation") is not None:
                # ReLU and average pooling keep the scale of their input (max/mean of quantized values).
                qs = act_in if prev.meta.get("quantization_annotation") is None else SharedQuantizationSpec(prev)
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={prev: qs}, output_qspec=SharedQuantizationSpec((prev, n)), _annotated=True)


def make_quantizer() -> Any:
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    class SharedDataPathQuantizer(PT2EQuantizer):  # type: ignore[misc]
        """One scale per shuffle chain: concat inputs, concat output, its data path and the halves."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            _annotate_uncovered(model, self.global_config)
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
                    observed = [i for i in ins if (i.meta.get("quantization_annotation") is not None
                                                   and i.meta["quantization_annotation"].output_qspec is not None)]
                    relu_after = any(u.target in (torch.ops.aten.relu.default, torch.ops.aten.relu_.default) for u in n.users)
                    if not observed or relu_after:  # V1's concat-then-ReLU: keep the quantizer's own choice
                        continue
                    anchor = observed[0]
                    s = SharedQuantizationSpec(anchor)
                    for other in ins:
                        if other is anchor:
                            continue
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
    converted = convert_pt2e(prepared, fold_quantize=False)
    # The graph was exported from an eval-mode model (BatchNorm uses running statistics); only the
    # module flags still say "training", which makes litert-torch warn. Clear them.
    for mod in converted.modules():
        mod.training = False
    return converted, quantizer
