"""PT2E static int8 for the TFLite path, with one scale shared along every data path.

Why: litert-torch's PT2EQuantizer shares a concat's output scale with its first input, but `reshape`
and `slice` are not in its list of scale-sharing ops, so each unit's shuffle got its own observers and
the converted graph carried two requantize (QUANTIZE) ops per unit: each one more full pass over the
tensor. Data movement never changes values, so sharing the producer's quantization through reshape,
permute, slice, squeeze, chunk/split parts and their copy variants is exact and removes those ops.

Models from the wild (tests/zoo.py) needed more of the graph in int8, or the converter refused it: LeakyReLU,
clamp/hardtanh and scalar arithmetic (h-swish, hard-sigmoid) get observers of their own, SiLU is annotated as the
``x * sigmoid(x)`` TFLite runs, a concat's shared scale is anchored on the input computed first, Python scalars
stay scalars (litert-torch's transform made int64 tensors of them), and no observer goes on an integer tensor.
"""

from __future__ import annotations

import operator
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
            # Nearest upsampling copies values. With an observer of its own (Lite-HRNet's cross-resolution weights,
            # upsampled by size), the converter's reshapes that implement it sat between two scales: "'tfl.reshape'
            # op quantization parameters violate the same scale constraint".
            a.upsample_nearest2d.vec, a.upsample_nearest2d.default,
        }
    return _SHARE_OPS


def _own_scale_ops() -> set[Any]:
    """Ops with an int8 TFLite kernel whose output range differs from their input's, taken here when their other
    operands are Python scalars: LeakyReLU, clamp / hardtanh (h-swish's ``clamp(x + 3, 0, 6) / 6``), arithmetic
    with a scalar."""
    a = torch.ops.aten
    return {a.leaky_relu.default, a.leaky_relu_.default, a.clamp.default, a.clamp_.default, a.hardtanh.default,
            a.hardtanh_.default, a.div.Tensor, a.div_.Tensor, a.add.Tensor, a.add_.Tensor, a.sub.Tensor, a.sub_.Tensor,
            a.mul.Tensor, a.mul_.Tensor}


def _binary_ops() -> set[Any]:
    """Element-wise ops of two tensors with int8 TFLite kernels (a residual add, an SE or attention multiply)."""
    a = torch.ops.aten
    return {a.add.Tensor, a.add_.Tensor, a.mul.Tensor, a.mul_.Tensor}


def _float_node(n: Any) -> bool:
    """An FX node whose value is a floating-point tensor (observers only go on those)."""
    if not isinstance(n, torch.fx.Node):
        return False
    v = n.meta.get("val")
    return isinstance(v, torch.Tensor) and v.is_floating_point()


def _attr_value(model: torch.fx.GraphModule, n: torch.fx.Node) -> Any:
    obj: Any = model
    for part in str(n.target).split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _value(model: torch.fx.GraphModule, n: Any) -> Any:
    """The example value of an FX node (a constant's tensor for get_attr nodes, which carry no `val`)."""
    if not isinstance(n, torch.fx.Node):
        return n
    return _attr_value(model, n) if n.op == "get_attr" else n.meta.get("val")


def _replace_node(model: torch.fx.GraphModule, n: torch.fx.Node, new: tuple[torch.fx.Node, ...]) -> None:
    """`n`'s users read the last of `new` instead; the new nodes keep `n`'s metadata (its example value and module
    path, which annotation and --keep-float read) but not its source function, which would match them to the
    partition of the op they replace."""
    for m in new:
        m.meta = {k: v for k, v in n.meta.items() if k != "source_fn_stack"}
    n.replace_all_uses_with(new[-1])
    model.graph.erase_node(n)


def _decompose_silu(model: torch.fx.GraphModule) -> int:
    """SiLU as ``x * sigmoid(x)``: what TFLite runs anyway (LOGISTIC and MUL). Whole, PT2E has no annotation for it and
    the converter keeps both ops float between DEQUANTIZE and QUANTIZE (YOLOv5's every conv); decomposed, the sigmoid
    takes litert's fixed int8 parameters and the multiply an observer."""
    a = torch.ops.aten
    n_done = 0
    for n in list(model.graph.nodes):
        if n.op != "call_function" or n.target not in (a.silu.default, a.silu_.default) or not _float_node(n.args[0]):
            continue
        x = n.args[0]
        with model.graph.inserting_before(n):
            sig = model.graph.call_function(a.sigmoid.default, (x,))
            mul = model.graph.call_function(a.mul.Tensor, (x, sig))
        _replace_node(model, n, (sig, mul))
        n_done += 1
    if n_done:
        model.recompile()
    return n_done


def _double_as_mul(model: torch.fx.GraphModule) -> int:
    """``x + x`` as ``x * 2`` (the same number). mmpose's Lite-HRNet fuse loop adds a branch to itself (``y = out[0];
    y += out[0]``, made out-of-place by `functionalize_inplace`); annotated as a two-input add of one tensor, the
    converter failed ("'tfl.reshape' op quantization parameters violate the same scale constraint", two scales
    within 2% of each other) in the graph as written and in the fold alike, and passed with this rewrite. A
    multiply by a scalar is an int8 op with an observer of its own."""
    a = torch.ops.aten
    n_done = 0
    for n in list(model.graph.nodes):
        if (n.op != "call_function" or n.target != a.add.Tensor or len(n.args) < 2
                or n.args[0] is not n.args[1] or n.kwargs.get("alpha", 1) != 1 or not _float_node(n.args[0])):
            continue
        with model.graph.inserting_before(n):
            mul = model.graph.call_function(a.mul.Tensor, (n.args[0], 2.0))
        _replace_node(model, n, (mul,))
        n_done += 1
    if n_done:
        model.recompile()
    return n_done


def _drop_integer_observers(model: torch.fx.GraphModule) -> None:
    """No observer on an integer tensor (an index, a shape, an integer constant): activation observers compute
    float ranges, and a histogram of an int64 tensor is not implemented."""
    for n in model.graph.nodes:
        ann = n.meta.get("quantization_annotation")
        if ann is None:
            continue
        for inp in list(ann.input_qspec_map):
            v = _value(model, inp)
            if isinstance(v, torch.Tensor) and not v.is_floating_point():
                del ann.input_qspec_map[inp]
        v = n.meta.get("val")
        if ann.output_qspec is not None and isinstance(v, torch.Tensor) and not v.is_floating_point():
            ann.output_qspec = None


def _split_ops() -> set[Any]:
    """Ops that return several parts of one tensor (read through getitem)."""
    a = torch.ops.aten
    return {a.chunk.default, a.split.Tensor, a.split_with_sizes.default, a.unbind.int, a.split_copy.Tensor,
            a.split_with_sizes_copy.default, a.unbind_copy.int}


def _annotate_uncovered(model: torch.fx.GraphModule, config: Any) -> None:
    """Ops litert-torch's quantizer leaves in float in ShuffleNet V1: the residual add, a ReLU after an
    add or a concat, and the 3x3 average-pool shortcut. Left in float they cost a DEQUANTIZE/QUANTIZE
    pair each and cut the XNNPACK partition; int8 versions exist for all of them."""
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    a = torch.ops.aten
    act_in, act_out = get_input_act_qspec(config), get_output_act_qspec(config)
    own_scale, binary = _own_scale_ops(), _binary_ops()
    for n in model.graph.nodes:
        if n.op != "call_function" or n.meta.get("quantization_annotation") is not None:
            continue
        if n.target in own_scale and _float_node(n.args[0]) and not any(isinstance(v, torch.fx.Node) for v in n.args[1:]):
            # In int8 with an observer of its own. Left float (NanoDet's LeakyReLU), the tensor after it is float:
            # a concat it feeds is not annotated, the shuffle's data path after that concat stays float between
            # QUANTIZE ops, and litert's converter failed ("'tfl.pad' op quantization parameters violate the same
            # scale constraint"); float h-swish ops kept ShuffleNetV2+'s int8 graph in NCHW islands.
            n.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={n.args[0]: act_in}, output_qspec=act_out, _annotated=True)
            continue
        if n.target in binary and all(_float_node(x) for x in n.args[:2]):
            n.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={n.args[0]: act_in, n.args[1]: act_in}, output_qspec=act_out, _annotated=True)
        # max_pool2d: the graph-level fold re-exports a GraphModule, whose nodes carry no nn.MaxPool2d source, so
        # litert-torch's module-matched annotation misses it (a QUANTIZE and a second partition at the stem).
        elif n.target in (a.relu.default, a.relu_.default, a.avg_pool2d.default, a.max_pool2d.default) and isinstance(n.args[0], torch.fx.Node):
            prev = n.args[0]
            if n.target in (a.avg_pool2d.default, a.max_pool2d.default) or prev.meta.get("quantization_annotation") is not None:
                # ReLU and average pooling keep the scale of their input (max/mean of quantized values).
                qs = act_in if prev.meta.get("quantization_annotation") is None else SharedQuantizationSpec(prev)
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={prev: qs}, output_qspec=SharedQuantizationSpec((prev, n)), _annotated=True)


CALIB_METHODS = ("minmax", "histogram", "percentile")
DEFAULT_CALIB_METHOD = "histogram"  # litert-torch's own activation observer (HistogramObserver)
DEFAULT_PERCENTILE = 99.99


def _percentile_observer() -> Any:
    from torchao.quantization.pt2e.observer import MinMaxObserver

    class PercentileObserver(MinMaxObserver):  # type: ignore[misc]
        """Activation range = the mean over calibration batches of each batch's low / high percentile
        (onnxruntime's Percentile method keeps one histogram instead; the mean is close and cheap). Clips the
        rare outliers that a min/max range would spend all 256 levels on."""

        def __init__(self, *args: Any, percentile: float = DEFAULT_PERCENTILE, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.percentile = percentile
            self.batches = 0

        def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
            if x_orig.numel() == 0:
                return x_orig
            x = x_orig.detach().to(self.min_val.dtype).flatten()
            if x.numel() > 1 << 24:  # torch.quantile's size limit
                x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[: 1 << 24]]
            q = torch.quantile(x, torch.tensor([1 - self.percentile / 100, self.percentile / 100], dtype=x.dtype))
            n = self.batches
            lo = q[0] if n == 0 else (self.min_val * n + q[0]) / (n + 1)
            hi = q[1] if n == 0 else (self.max_val * n + q[1]) / (n + 1)
            self.min_val.resize_(lo.shape).copy_(lo)
            self.max_val.resize_(hi.shape).copy_(hi)
            self.batches = n + 1
            return x_orig

    return PercentileObserver


def quantization_config(calib_method: str = DEFAULT_CALIB_METHOD, per_channel: bool = True, qat: bool = False) -> Any:
    """litert-torch's symmetric int8 config with the chosen activation observer and weight granularity."""
    import dataclasses

    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

    if calib_method not in CALIB_METHODS:
        raise ValueError(f"unknown calibration method {calib_method!r}; valid: {', '.join(CALIB_METHODS)}")
    cfg = get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat, is_dynamic=False)
    if qat or calib_method == "histogram":
        return cfg
    from torchao.quantization.pt2e.observer import MinMaxObserver

    ctr = (MinMaxObserver if calib_method == "minmax" else _percentile_observer()).with_args(eps=2**-12)
    spec = dataclasses.replace(cfg.input_activation, observer_or_fake_quant_ctr=ctr)
    return dataclasses.replace(cfg, input_activation=spec, output_activation=spec)


FLOAT_MARK = "shufflenet_edge_keep_float"


def _module_paths_of(n: torch.fx.Node) -> list[str]:
    out = []
    for path, _ in (n.meta.get("nn_module_stack") or {}).values():
        p = str(path)
        while p.startswith("wrapped."):
            p = p[len("wrapped."):]
        out.append(p)
    return out


def mark_float_nodes(source: torch.fx.GraphModule, exported: torch.fx.GraphModule, prefixes: list[str]) -> int:
    """Carry "this op belongs to a kept-float module" from `source` (a GraphModule whose nodes know their module:
    the graph-level fold's output) to `exported` (the same graph traced again for PT2E, which has lost
    `nn_module_stack`). Ops are paired by target in order of appearance; the exported graph may hold extra ops
    of a target at its start (the channel-last wrapper's input permute)."""
    by_target: dict[Any, list[torch.fx.Node]] = {}
    for n in source.graph.nodes:
        if n.op == "call_function":
            by_target.setdefault(n.target, []).append(n)
    marked = 0
    ex_by_target: dict[Any, list[torch.fx.Node]] = {}
    for n in exported.graph.nodes:
        if n.op == "call_function":
            ex_by_target.setdefault(n.target, []).append(n)
    for t, src in by_target.items():
        ex = ex_by_target.get(t, [])
        if len(ex) < len(src):
            continue
        for a, b in zip(src, ex[len(ex) - len(src):]):
            if any(p == k or p.startswith(k + ".") for p in _module_paths_of(a) for k in prefixes):
                b.meta[FLOAT_MARK] = True
                marked += 1
    return marked


def float_node_filter(prefixes: list[str]) -> Any:
    """A predicate: does an FX node come from one of the modules `prefixes` (paths in the exported model,
    e.g. `units.5`, `conv1`)? Wrappers (litert-torch's channel-last I/O: `wrapped.`) are looked through."""
    if not prefixes:
        return None

    def is_float(n: torch.fx.Node) -> bool:
        if n.meta.get(FLOAT_MARK):
            return True
        for path, _ in (n.meta.get("nn_module_stack") or {}).values():
            p = str(path)
            while p.startswith("wrapped."):
                p = p[len("wrapped."):]
            if any(p == k or p.startswith(k + ".") for k in prefixes):
                return True
        return False

    return is_float


def _strip_float(model: torch.fx.GraphModule, is_float: Any, config: Any) -> int:
    """Remove the annotations of nodes that stay float; every quantized neighbour that shared a scale with
    them gets its own observer instead, so quantize/dequantize ops sit exactly at the island's borders."""
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    act_in, act_out = get_input_act_qspec(config), get_output_act_qspec(config)
    floats = {n for n in model.graph.nodes if n.op == "call_function" and is_float(n)}
    for n in floats:
        n.meta.pop("quantization_annotation", None)

    def broken(spec: Any) -> bool:
        if not isinstance(spec, SharedQuantizationSpec):
            return False
        e = spec.edge_or_node
        return (e[1] in floats) if isinstance(e, tuple) else (e in floats)

    for _ in range(3):  # shared specs can chain through a neighbour fixed in the previous sweep
        for n in model.graph.nodes:
            ann = n.meta.get("quantization_annotation")
            if ann is None:
                continue
            for inp, spec in list(ann.input_qspec_map.items()):
                if broken(spec):
                    ann.input_qspec_map[inp] = act_in
            if broken(ann.output_qspec):
                ann.output_qspec = act_out
    return len(floats)


def make_quantizer(calib_method: str = DEFAULT_CALIB_METHOD, per_channel: bool = True, qat: bool = False,
                   keep_float: list[str] | None = None) -> Any:
    """The project's quantizer. `keep_float`: module paths of the exported model whose ops stay float."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    is_float = float_node_filter(list(keep_float or []))

    class SharedDataPathQuantizer(PT2EQuantizer):  # type: ignore[misc]
        """One scale per shuffle chain: concat inputs, concat output, its data path and the halves."""

        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            # Not litert-torch's transform, which turns the scalar operands of add/mul into tensor constants with
            # torch.tensor(v): the int 3 of megvii's h-swish ``clamp(x + 3, 0, 6) / 6`` became an int64 tensor, its
            # add annotation put a histogram observer on it ("histogram_cpu" not implemented for 'Long'), and float
            # scalar constants left the adds in NCHW between TRANSPOSEs. Scalars stay scalars: the converter
            # quantizes them with the op.
            _decompose_silu(model)
            _double_as_mul(model)
            return model

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            _annotate_uncovered(model, self.global_config)
            share, split = _share_ops(), _split_ops()
            moved: set[torch.fx.Node] = set()
            order = {n: k for k, n in enumerate(model.graph.nodes)}
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
                elif n.target in split:
                    # chunk / split / unbind hand out parts of one tensor: each part (a getitem) keeps the producer's
                    # scale. Left unannotated, every part got the observer of its reader, and litert's converter failed
                    # on the data movement between them ("'tfl.transpose' op quantization parameters violate the same
                    # scale constraint", Lite-HRNet's chunk of the stem output).
                    prev = n.args[0]
                    if isinstance(prev, torch.fx.Node) and prev.meta.get("quantization_annotation") is not None:
                        s = SharedQuantizationSpec(prev)
                        n.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map={prev: s}, _annotated=True)
                        for part in n.users:
                            if part.target is operator.getitem:
                                part.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=s, _annotated=True)
                                moved.add(part)
                elif n.target == torch.ops.aten.cat.default:
                    ins = [i for i in n.args[0] if isinstance(i, torch.fx.Node)]
                    observed = [i for i in ins if (i.meta.get("quantization_annotation") is not None
                                                   and i.meta["quantization_annotation"].output_qspec is not None)]
                    relu_after = any(u.target in (torch.ops.aten.relu.default, torch.ops.aten.relu_.default) for u in n.users)
                    if not observed or relu_after:  # V1's concat-then-ReLU: keep the quantizer's own choice
                        continue
                    # The anchor is the input computed first: prepare_pt2e inserts observers in graph order, and a
                    # producer that shares the scale of one computed after it refers to an observer that does not
                    # exist yet (Lite-HRNet's stem: cat((branch1(x1), x2)) with x2 computed first failed with "only
                    # refer to edge or node that has observer/fake_quant inserted: 'relu__3'").
                    anchor = min(observed, key=order.__getitem__)
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
            _drop_integer_observers(model)
            if is_float is not None:
                self.float_nodes = _strip_float(model, is_float, self.global_config)
                if self.float_nodes == 0:
                    from shufflenet_edge.errors import EdgeError

                    raise EdgeError(f"--keep-float {' '.join(keep_float or [])}: no op of the exported graph comes from "
                                    "those modules (the graph lost its module names); nothing would stay float")
            return model

    return SharedDataPathQuantizer().set_global(quantization_config(calib_method, per_channel, qat))


def pt2e_quantize(model: nn.Module, x: torch.Tensor, calib: np.ndarray, shared_data_path: bool = True, *,
                  calib_method: str = DEFAULT_CALIB_METHOD, per_channel: bool = True,
                  keep_float: list[str] | None = None, exported: torch.fx.GraphModule | None = None
                  ) -> tuple[nn.Module, Any]:
    """Export, annotate, calibrate on `calib` (in batches of `x`'s size), convert. Returns (simulation, quantizer).

    `keep_float`: module paths (in `model`, e.g. `units.5`) whose ops stay float, with quantize/dequantize at
    their borders. `exported`: `torch.export.export(model, (x,)).module()` made once by a caller that quantizes the
    same model several times (a copy is used; exporting costs more than calibrating a small model)."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    if shared_data_path:
        quantizer = make_quantizer(calib_method, per_channel, keep_float=keep_float)
    else:
        if keep_float:
            raise ValueError("keep_float needs the shared-data-path quantizer")
        quantizer = PT2EQuantizer().set_global(quantization_config(calib_method, per_channel))
    if exported is not None:
        import copy

        gm = copy.deepcopy(exported)
    else:
        gm = torch.export.export(model, (x,)).module()
    if keep_float:
        inner = getattr(model, "wrapped", model)
        if isinstance(inner, torch.fx.GraphModule):  # the graph-level fold: module names live on its nodes
            mark_float_nodes(inner, gm, list(keep_float))  # pairs ops by target: before any rewrite of the graph
    from shufflenet_edge.graph_fold import functionalize_inplace

    functionalize_inplace(gm)  # plain values for the rewrites of transform_for_annotation (x + x as x * 2)
    prepared = prepare_pt2e(gm, quantizer)
    # The graph is exported at the example's batch and guards it: calibration feeds batches of that size, the last
    # one filled from the first images (every image is seen; batch 1 feeds each once).
    b, n = int(x.shape[0]), len(calib)
    with torch.no_grad():
        for s in range(0, n, b):
            idx = [(s + k) % n for k in range(b)]
            prepared(torch.from_numpy(np.ascontiguousarray(calib[idx])))
    return finish(prepared), quantizer


def finish(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """convert_pt2e (q/dq kept as ops for litert-torch) and eval flags on the converted module."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    converted = convert_pt2e(prepared, fold_quantize=False)
    # The graph was exported from an eval-mode model (BatchNorm uses running statistics); only the
    # module flags still say "training", which makes litert-torch warn. Clear them.
    for mod in converted.modules():
        mod.training = False
    return converted
