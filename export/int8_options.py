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


def resolve_keep_float(model: Any, patterns: list[str] | None) -> list[str]:
    """Expand names and globs to unit names (forward order); an unknown name is a one-line UsageError."""
    if not patterns:
        return []
    valid = unit_names(model)
    chosen: set[str] = set()
    for pat in patterns:
        for part in (p.strip() for p in pat.split(",")):
            if not part:
                continue
            hit = [n for n in valid if fnmatch.fnmatchcase(n, part)]
            if not hit:
                raise UsageError(f"--keep-float {part!r} matches no unit of this model; valid names (globs allowed): "
                                 f"{' '.join(valid)}")
            chosen.update(hit)
    return [n for n in valid if n in chosen]


def module_paths(model: Any, names: list[str], folded: bool = False) -> list[str]:
    """Unit names -> module paths in the PyTorch form that is exported. The graph-level fold keeps every op's
    module path, so both forms use the unit names as they are (`folded` is kept for callers)."""
    return list(names)
