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


def head_ends(model: Any, x: Any) -> list[str]:
    """Per output, the module holding the last convolution(s) or linear layer(s) that produce it (the detect or
    heatmap convolution a head ends in): found by one forward pass, walking each output's autograd graph back to the first convolution
    met. Several last convolutions of one output (one per pyramid level) are named by their common parent when that
    is a module of its own (`head.gfl_cls`). Only paths below a unit are returned (finer than `unit_names`), in
    output order; what cannot be traced gives nothing."""
    import torch
    from torch import nn
    from torch.utils._pytree import tree_leaves

    units = unit_names(model)
    owner: dict[Any, str] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: owner.__setitem__(out.grad_fn, name))
             for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d | nn.Conv1d | nn.ConvTranspose2d | nn.Linear)]
    try:
        with torch.enable_grad():
            outs = [t for t in tree_leaves(model(x.detach().clone().requires_grad_(True))) if isinstance(t, torch.Tensor)]
    except Exception:  # noqa: BLE001  (a finer candidate is an extra; the units remain)
        return []
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    found: list[str] = []
    for out in outs:
        convs, seen, todo = set(), set(), [out.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in owner:
                convs.add(owner[fn])
                continue
            todo.extend(f for f, _ in fn.next_functions)
        if not convs:
            continue
        parts = [c.split(".") for c in sorted(convs)]
        common = [a for a, *rest in zip(*parts) if all(a == r for r in rest)]
        name = ".".join(common) if len(convs) > 1 else parts[0] and ".".join(parts[0])
        while name and name not in modules:
            name = name.rpartition(".")[0]
        inside = any(name.startswith(u + ".") for u in units)
        if name and inside and name not in units and name not in found:
            found.append(name)
    return found


def output_paths(model: Any, x: Any, names: list[str]) -> list[list[str]]:
    """Per output, the modules of `names` (units and head ends) it depends on, nearest the output first: one forward
    pass, each output's autograd graph walked breadth-first, each module known by the autograd nodes of its
    outputs. [] when the model cannot be traced so."""
    import torch
    from torch.utils._pytree import tree_leaves

    modules = dict(model.named_modules())
    owner: dict[Any, list[str]] = {}

    def hook(mod: Any, args: Any, out: Any, name: str = "") -> None:
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                owner.setdefault(t.grad_fn, []).append(name)

    hooks = [modules[n].register_forward_hook(lambda m, a, o, n=n: hook(m, a, o, n)) for n in names if n in modules]
    try:
        with torch.enable_grad():
            outs = [t for t in tree_leaves(model(x.detach().clone().requires_grad_(True))) if isinstance(t, torch.Tensor)]
    except Exception:  # noqa: BLE001  (an ordering aid: without it the search ranks by SQNR alone)
        return []
    finally:
        for h in hooks:
            h.remove()
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
            found += [n for n in reversed(owner.get(fn, [])) if n not in found]  # the outer module first
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
