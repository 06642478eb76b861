"""Parameters, multiply-adds and the paper's memory access cost (MAC), per unit and in total.

The ShuffleNet V2 paper's point is that FLOPs are not speed: memory traffic matters too. We count, in
tensor *elements* (multiply by the element size for bytes):

- k x k convolution, c1 -> c2 channels, g groups, input h_in x w_in, output h x w:
  ``MAC = h_in*w_in*c1 + h*w*c2 + k*k*c1*c2/g`` (read input, write output, read weights). For a 1x1
  stride-1 conv this is the paper's ``hw(c1+c2) + c1*c2/g``; a depthwise conv is the case g = c1 = c2.
  Multiply-adds: ``h*w*k*k*c1*c2/g``.
- fully connected, n_in -> n_out: ``MAC = n_in + n_out + n_in*n_out``; multiply-adds ``n_in*n_out``.
- pooling (max, average, global mean): read input + write output.
- concat and channel shuffle: read every element once and write it once, ``2*numel`` (a shuffle is a
  ``contiguous()`` of a transposed view, torchvision's form, or a ``reshape`` that copies or returns a
  permuted view, megvii's V1 and V2 forms).
- residual add: read two, write one, ``3*numel``.
- BatchNorm and ReLU: 0, since every runtime we target folds BN into the conv and fuses the ReLU.
- split/chunk into channel halves: 0 in PyTorch (a view); exporters may turn it into copies, which
  `shufflenet-edge inspect` shows for an artifact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from shufflenet_edge.errors import eval_mode


@dataclasses.dataclass
class Cost:
    name: str
    kind: str
    output_shape: tuple[int, ...] = ()
    params: int = 0
    madds: int = 0
    mac: int = 0

    def add(self, other: Cost) -> None:
        self.params += other.params
        self.madds += other.madds
        self.mac += other.mac


def _numel(t: torch.Tensor) -> int:
    return int(t.numel())


class _FunctionalCounter(TorchFunctionMode):
    """Counts data movement and element-wise ops that are not modules (cat, shuffle, add)."""

    def __init__(self, sink: list[tuple[str, int]]) -> None:
        super().__init__()
        self.sink = sink

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if func is torch.cat:
            self.sink.append(("concat", 2 * _numel(out)))
        elif name == "contiguous" and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
            self.sink.append(("shuffle", 2 * _numel(out)))
        elif name == "reshape" and isinstance(out, torch.Tensor) and (not out._is_view() or not out.is_contiguous()):
            # megvii's shuffles, reshape -> permute -> reshape: V1's last reshape copies; V2's returns a
            # permuted (strided) view whose halves the next convolutions read, a copy in effect.
            self.sink.append(("shuffle", 2 * _numel(out)))
        elif func in (torch.add, torch.Tensor.add, torch.Tensor.__add__) and all(
            isinstance(a, torch.Tensor) for a in args[:2]
        ):
            self.sink.append(("add", 3 * _numel(out)))
        elif name == "mean" and isinstance(args[0], torch.Tensor):
            self.sink.append(("globalpool", _numel(args[0]) + _numel(out)))
        return out


def _unit_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level pieces reported as rows: stem, each stage's units, head layers."""
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and name.startswith("stage"):
            rows += [(f"{name}.{i}", u) for i, u in enumerate(child)]
        elif name == "features" and isinstance(child, nn.Sequential):
            rows += [(f"features.{i}", u) for i, u in enumerate(child)]
        else:
            rows.append((name, child))
    return rows


@contextmanager
def _hooks(model: nn.Module, rows: list[Cost], counter_sink: list[tuple[str, int]]) -> Iterator[None]:
    handles = []
    current: list[Cost] = []
    head = Cost("head", "functional")

    def leaf_hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = inp[0]
        c = Cost("", "")
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            c1, c2, g = mod.in_channels, mod.out_channels, mod.groups
            hw = out.shape[2] * out.shape[3]
            c.madds = hw * k * c1 * c2 // g
            c.mac = _numel(x[0]) + _numel(out[0]) + k * c1 * c2 // g
        elif isinstance(mod, nn.Linear):
            c.madds = mod.in_features * mod.out_features
            c.mac = mod.in_features + mod.out_features + mod.in_features * mod.out_features
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            c.mac = _numel(x[0]) + _numel(out[0])
        c.params = sum(p.numel() for p in mod.parameters(recurse=False))
        (current[-1] if current else head).add(c)

    def pre_row(row: Cost) -> Any:
        def hook(mod: nn.Module, inp: Any) -> None:
            head.mac += sum(v for _, v in counter_sink)  # between rows (the global pool): the head's
            counter_sink.clear()
            current.append(row)

        return hook

    def post_row(row: Cost) -> Any:
        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            row.mac += sum(v for _, v in counter_sink)
            counter_sink.clear()
            row.output_shape = tuple(out.shape)
            current.pop()

        return hook

    # Leaf hooks first: a row that is itself a leaf (max-pool, fc) must count before its row closes.
    for m in model.modules():
        if len(list(m.children())) == 0:
            handles.append(m.register_forward_hook(leaf_hook))
    for (_name, mod), row in zip(_unit_modules(model), rows):
        handles.append(mod.register_forward_pre_hook(pre_row(row)))
        handles.append(mod.register_forward_hook(post_row(row)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        head.mac += sum(v for _, v in counter_sink)
        if head.mac or head.madds:
            rows.append(head)


def analyze(model: nn.Module, input_size: int = 224, batch: int = 1) -> dict[str, Any]:
    """Per-row and total params, multiply-adds and MAC for one forward at `input_size`."""
    rows = [Cost(name, type(mod).__name__) for name, mod in _unit_modules(model)]
    sink: list[tuple[str, int]] = []
    x = torch.zeros(batch, 3, input_size, input_size)
    model = eval_mode(model)
    with torch.no_grad(), _hooks(model, rows, sink), _FunctionalCounter(sink):
        model(x)
    total = Cost("total", "")
    for r in rows:
        total.add(r)
    total.params = sum(p.numel() for p in model.parameters())
    return {
        "input_size": input_size,
        "rows": [dataclasses.asdict(r) for r in rows],
        "total": {"params": total.params, "madds": total.madds, "mac": total.mac},
    }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_madds(model: nn.Module, input_size: int = 224) -> int:
    return int(analyze(model, input_size)["total"]["madds"])
