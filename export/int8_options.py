"""Choices of the int8 exporters shared by TFLite and ONNX: layers kept float, calibration, weight granularity.

Unit names are the ones `shufflenet-edge info` prints and `parity --per-layer` reports (`conv1`, `maxpool`,
`stage3.1`, `conv5`, `fc`; megvii models: `first_conv`, `features.5`, ...); shell-style globs are allowed
(`stage3.*`). Exporters translate them to the module paths of the graph they quantize: the folded forms keep
the stem and head names and number the units `units.K` in forward order.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from shufflenet_edge.errors import UsageError


def unit_names(model: Any) -> list[str]:
    """The names `--keep-float` accepts, in forward order."""
    from shufflenet_edge.per_layer import reference_points

    return [n for n, _ in reference_points(model)]


def _trace(model: Any, x: Any) -> tuple[list[Any], dict[Any, list[str]]] | None:
    """One forward pass with autograd on: the model's output tensors, and each autograd node that a module's output
    came from -> the module paths that returned it (inner modules first). None when the model does not run so."""
    import torch
    from torch.utils._pytree import tree_leaves

    owner: dict[Any, list[str]] = {}

    def hook(name: str, out: Any) -> None:
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                owner.setdefault(t.grad_fn, []).append(name)

    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: hook(name, out))
             for name, m in model.named_modules() if name]
    try:
        with torch.enable_grad():
            outs = [t for t in tree_leaves(model(x.detach().clone().requires_grad_(True))) if isinstance(t, torch.Tensor)]
    except Exception:  # noqa: BLE001  (an aid to the search's ranking: without it the units and their SQNR remain)
        return None
    finally:
        for h in hooks:
            h.remove()
    return outs, owner


def head_ends(model: Any, x: Any) -> list[str]:
    """Per output, the module holding the last convolution(s) or linear layer(s) that produce it (the detect or
    heatmap convolution a head ends in): each output's autograd graph (`_trace`) walked back to the first such layer
    met. Several last layers of one output (one per pyramid level) are named by their common parent when that is a
    module of its own (`head.gfl_cls`). Only paths below a unit are returned (finer than `unit_names`), in output
    order; what cannot be traced gives nothing."""
    from torch import nn

    traced = _trace(model, x)
    if traced is None:
        return []
    outs, owner = traced
    modules = dict(model.named_modules())
    layers = (nn.Conv2d, nn.Conv1d, nn.ConvTranspose2d, nn.Linear)
    units = unit_names(model)
    found: list[str] = []
    for out in outs:
        convs, seen, todo = set(), set(), [out.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            layer = next((n for n in owner.get(fn, []) if isinstance(modules[n], layers)), None)
            if layer is not None:
                convs.add(layer)
                continue
            todo.extend(f for f, _ in fn.next_functions)
        if not convs:
            continue
        parts = [c.split(".") for c in sorted(convs)]
        name = ".".join(a for a, *rest in zip(*parts) if all(a == r for r in rest)) if len(parts) > 1 else ".".join(parts[0])
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name not in units and name not in found and any(name.startswith(u + ".") for u in units):
            found.append(name)
    return found


def output_paths(model: Any, x: Any, names: list[str]) -> list[list[str]]:
    """Per output, the modules of `names` (units and head ends) it depends on, nearest the output first: each
    output's autograd graph (`_trace`) walked breadth-first; a node made inside a named module counts for it (a
    `ModuleList` of convolutions never runs itself). [] when the model cannot be traced so."""
    traced = _trace(model, x)
    if traced is None:
        return []
    outs, owner = traced
    paths = []
    for out in outs:
        found: list[str] = []
        seen: set[Any] = set()
        queue = [out.grad_fn]
        while queue:
            fn = queue.pop(0)
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            for m in reversed(owner.get(fn, [])):  # the outer module first
                found += [n for n in names if (m == n or m.startswith(n + ".")) and n not in found]
            queue.extend(f for f, _ in fn.next_functions)
        paths.append(found)
    return paths


def weight_bytes(model: Any, float_units: Any) -> int:
    """The weights' size with `float_units` kept float, estimated: 1 byte per int8 weight, 4 per float weight and per
    bias or scale (what an int8 flatbuffer stores, less its graph and quantization parameters)."""
    total = 0
    for name, p in model.named_parameters():
        is_float = any(name.startswith(u + ".") for u in float_units)
        total += p.numel() * (4 if is_float or p.dim() < 2 else 1)
    return int(total)


def resolve_keep_float(model: Any, patterns: list[str] | None) -> list[str]:
    """Expand names and globs to unit names (forward order); a module path below a unit (`detect.m.0`,
    `head.gfl_cls`: what the budget search may choose at a head's end) is kept as it is, after the units. An unknown
    name is a one-line UsageError."""
    if not patterns:
        return []
    valid = unit_names(model)
    modules = {n for n, _ in model.named_modules()} if hasattr(model, "named_modules") else set()
    chosen: set[str] = set()
    paths: list[str] = []
    for pat in patterns:
        for part in (p.strip() for p in pat.split(",")):
            if not part:
                continue
            hit = [n for n in valid if fnmatch.fnmatchcase(n, part)]
            if not hit and part in modules and any(part.startswith(u + ".") for u in valid):
                if part not in paths:
                    paths.append(part)
                continue
            if not hit:
                raise UsageError(f"--keep-float {part!r} matches no unit of this model; valid names (globs allowed): "
                                 f"{' '.join(valid)}, or the module path of a layer inside one (detect.m.0)")
            chosen.update(hit)
    return [n for n in valid if n in chosen] + [q for q in paths if not any(q.startswith(u + ".") for u in chosen)]


def module_paths(model: Any, names: list[str], folded: bool = False) -> list[str]:
    """Unit names -> module paths in the PyTorch form that is exported. The graph-level fold keeps every op's
    module path, so both forms use the unit names as they are (`folded` is kept for callers)."""
    return list(names)
