"""The networks of the ShuffleNet V2 paper's guideline experiments (Tables 1-4), and the paper's numbers.

Every network is 10 stacked blocks at 56x56 (the paper's setup for Tables 1-3; Table 4 does not state its
input size, see below). Within a table the blocks' multiply-adds are held equal by the channel numbers,
as the paper does. Where the paper is silent we assume, and every assumption is written here and printed
with the results:

- **Widths x2 / x4**: every channel number times 2 / 4 (multiply-adds x4 / x16). The paper's own columns
  agree: Table 2's ARM x2 network (g=1, c=128) is Table 3's ARM c=128 1-fragment network (10.2 vs 10.1
  images/s), and Table 3's and Table 4's channel columns double from one to the next.
- **Setups**: the paper uses other channel numbers for its GPU columns than for its ARM columns in Tables
  1-3 (GPU x1 = ARM x2 or x4). ``arm`` (the default: we measure CPUs) builds the ARM column's networks,
  ``gpu`` the GPU column's. Table 4 lists one set of c for both.
- **Conv, BN, ReLU**: in Tables 1-3 each 1x1 convolution is followed by BatchNorm and ReLU (the usual
  building block; every runtime we target folds the BN into the convolution and fuses the ReLU, so they
  cost nothing unless the runtime fails to fuse them).
- **Table 3 (G3)**: a series block chains n convolutions c'->c' (c' = c/sqrt(n), so n*c'^2 = c^2); a
  parallel block runs n branches side by side on the block's input, each a 1x1 conv c -> c/n, and merges
  them by a channel concat (ShuffleNet V2's own merge; it keeps the multiply-adds of the 1-fragment block
  with no extra arithmetic). ``merge="add"`` instead gives each branch c'->c' (c' = c/sqrt(n)) and sums the
  branches, which adds element-wise work (G4) to the fragmentation (G3).
- **Table 4 (G4)**: ResNet's bottleneck unit with ResNet's expansion 4: 1x1 conv c -> c/4, BN, ReLU; 3x3
  conv c/4 -> c/4, BN, ReLU; 1x1 conv c/4 -> c, BN; + shortcut; ReLU ("ReLU" removes all three ReLUs,
  "shortcut" removes the addition). Input 56x56 like Tables 1-3. Why c/4 at 56x56: with a c-wide middle at
  56x56 the paper's ARM c=128 speed (5.0 images/s) would need 28 G multiply-adds/s from one Cortex-A57
  core, several times its peak; with c/4 it needs 2.7 G/s, in line with the 5.5 G/s its Table 1 x4 row
  implies for plain 1x1 convolutions.
- **Channel rounding**: the paper's channel numbers do not all hold its own constraint. Table 1's ARM
  (9, 108) has 5% fewer multiply-adds than (32, 32), and Table 2's ARM g=8 row (c=180) is not a valid
  group convolution (180 is not divisible by 8). We keep each row's numbers as close as possible to the
  paper's (or, where the paper gives none, to the ideal c/sqrt(n)) subject to: integer channels, groups
  and branches dividing their channels, and every row of a table within 1.25% of one target (so within
  2.5% of each other). `solve_channels` picks the target; the tables show our channels beside the paper's.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from shufflenet_edge.errors import UsageError

BLOCKS = 10
INPUT_SIZE = 56
WIDTHS = ("x1", "x2", "x4")
WIDTH_FACTOR = {"x1": 1, "x2": 2, "x4": 4}
SETUPS = ("arm", "gpu")
FLOPS_TOLERANCE = 0.0125  # each row within this of one target, so rows within ~2.5% of each other
G3_MERGES = ("concat", "add")


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """One of the paper's guideline tables: rows, the paper's channel numbers and speeds."""

    key: str  # "G1".."G4"
    number: int  # paper table number
    title: str
    row_header: str
    rows: tuple[str, ...]
    # channel numbers at x1, per setup, one tuple per row (Table 1: (c1, c2); others: (c,))
    channels: dict[str, tuple[tuple[int, ...], ...]]
    # speeds at x1, x2, x4, per setup ("gpu": batches/s on a GTX 1080Ti; "arm": images/s, Snapdragon 810)
    speed: dict[str, tuple[tuple[float, float, float], ...]]
    # paper column headers for x1, x2, x4 (Tables 3 and 4 label them by c)
    columns: dict[str, tuple[str, str, str]]
    # the guideline's claim, checked per width: rows that must be slower (or faster, G4) than row 0
    expect: str  # "first_fastest" | "first_slowest"
    claim_rows: tuple[int, ...]
    claim: str


PAPER: dict[str, PaperTable] = {
    "G1": PaperTable(
        "G1", 1, "G1: equal channel width minimizes memory access cost (MAC)", "c1:c2",
        ("1:1", "1:2", "1:6", "1:12"),
        channels={"gpu": ((128, 128), (90, 180), (52, 312), (36, 432)),
                  "arm": ((32, 32), (22, 44), (13, 78), (9, 108))},
        speed={"gpu": ((1480, 723, 232), (1296, 586, 206), (876, 489, 189), (748, 392, 163)),
               "arm": ((76.2, 21.7, 5.3), (72.9, 20.5, 5.1), (69.1, 17.9, 4.6), (57.6, 15.1, 4.4))},
        columns={"gpu": ("x1", "x2", "x4"), "arm": ("x1", "x2", "x4")},
        expect="first_fastest", claim_rows=(3,),
        claim="1:1 is the fastest ratio and 1:12 is slower"),
    "G2": PaperTable(
        "G2", 2, "G2: excessive group convolution increases MAC", "g",
        ("1", "2", "4", "8"),
        channels={"gpu": ((128,), (180,), (256,), (360,)), "arm": ((64,), (90,), (128,), (180,))},
        speed={"gpu": ((2451, 1289, 437), (1725, 873, 341), (1026, 644, 338), (634, 445, 230)),
               "arm": ((40.0, 10.2, 2.3), (35.0, 9.5, 2.2), (32.9, 8.7, 2.1), (27.8, 7.5, 1.8))},
        columns={"gpu": ("x1", "x2", "x4"), "arm": ("x1", "x2", "x4")},
        expect="first_fastest", claim_rows=(3,),
        claim="g=1 is the fastest and g=8 is slower"),
    "G3": PaperTable(
        "G3", 3, "G3: network fragmentation reduces parallelism", "block",
        ("1-fragment", "2-fragment-series", "4-fragment-series", "2-fragment-parallel", "4-fragment-parallel"),
        channels={"gpu": ((128,),) * 5, "arm": ((64,),) * 5},
        speed={"gpu": ((2446, 1274, 434), (1790, 909, 336), (752, 745, 349), (1537, 803, 320), (691, 572, 292)),
               "arm": ((40.2, 10.1, 2.3), (38.6, 10.1, 2.2), (38.4, 10.1, 2.3), (33.4, 9.1, 2.2),
                       (35.0, 8.4, 2.1))},
        columns={"gpu": ("c=128", "c=256", "c=512"), "arm": ("c=64", "c=128", "c=256")},
        expect="first_fastest", claim_rows=(2, 4),
        claim="1-fragment is the fastest and the 4-fragment blocks are slower"),
    "G4": PaperTable(
        "G4", 4, "G4: element-wise operations are non-negligible", "ReLU / shortcut",
        ("yes / yes", "yes / no", "no / yes", "no / no"),
        channels={"gpu": ((32,),) * 4, "arm": ((32,),) * 4},
        speed={"gpu": ((2427, 2066, 1436), (2647, 2256, 1735), (2672, 2121, 1458), (2842, 2376, 1782)),
               "arm": ((56.7, 16.9, 5.0), (61.9, 18.8, 5.2), (57.3, 18.2, 5.1), (66.3, 20.2, 5.4))},
        columns={"gpu": ("c=32", "c=64", "c=128"), "arm": ("c=32", "c=64", "c=128")},
        expect="first_slowest", claim_rows=(3,),
        claim="removing ReLU and shortcut makes the unit faster"),
}
TABLES = tuple(PAPER)

# Paper Table 8 (headline models): MFLOPs, top-1 error, GPU batches/s (batch 8), ARM images/s (batch 1).
PAPER_TABLE8: dict[str, tuple[float, float, float, float]] = {
    "shufflenet_v2_x0_5": (41, 39.7, 417, 57.0),
    "shufflenet_v2_x1_0": (146, 30.6, 341, 24.4),
    "shufflenet_v2_x1_5": (299, 27.4, 255, 11.8),
    "shufflenet_v2_x2_0": (591, 25.1, 217, 6.7),
    "shufflenet_v1_x0_5_g3": (38, 43.2, 347, 56.8),
    "shufflenet_v1_x1_0_g3": (140, 32.6, 213, 21.8),
    "shufflenet_v1_x1_5_g3": (292, 28.5, 164, 10.3),
    "shufflenet_v1_x2_0_g3": (524, 26.3, 133, 6.4),
    "mobilenet_v2_x1_0": (300, 28.0, 180, 8.9),
}


# ----------------------------------------------------------------------------------------------------
# building blocks


def _conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=False))
    return layers


class Parallel(nn.Module):
    """n branches on the same input, merged by channel concat or by addition."""

    def __init__(self, branches: Sequence[nn.Module], merge: str) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        y = outs[0]
        for o in outs[1:]:
            y = y + o
        return y


class Bottleneck(nn.Module):
    """ResNet bottleneck c -> c/4 -> c/4 -> c, with the ReLUs and the shortcut each optional."""

    def __init__(self, c: int, mid: int, relu: bool, shortcut: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(c, mid, 1, relu=relu), *_conv_bn(mid, mid, 3, relu=relu),
                                  *_conv_bn(mid, c, 1, relu=False))
        self.shortcut = shortcut
        self.act = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut:
            y = y + x
        return self.act(y)


# ----------------------------------------------------------------------------------------------------
# one row's network: its free channel numbers, validity, multiply-adds per pixel, and builder


@dataclasses.dataclass(frozen=True)
class RowKind:
    """How one table row turns channel numbers into a block."""

    ideal: Callable[[tuple[int, ...]], tuple[float, ...]]  # paper channels (x width) -> ideal free channels
    valid: Callable[[tuple[int, ...]], bool]
    madds_per_pixel: Callable[[tuple[int, ...]], int]  # one block, per output pixel
    block: Callable[[tuple[int, ...]], nn.Module]
    in_channels: Callable[[tuple[int, ...]], int]
    describe: Callable[[tuple[int, ...]], str]


def _g1_kind() -> RowKind:
    return RowKind(
        ideal=lambda p: (float(p[0]), float(p[1])),
        valid=lambda c: c[0] >= 1 and c[1] >= 1,
        madds_per_pixel=lambda c: 2 * c[0] * c[1],
        block=lambda c: nn.Sequential(*_conv_bn(c[0], c[1]), *_conv_bn(c[1], c[0])),
        in_channels=lambda c: c[0],
        describe=lambda c: f"({c[0]},{c[1]})",
    )


def _g2_kind(g: int) -> RowKind:
    return RowKind(
        ideal=lambda p: (float(p[0]),),
        valid=lambda c: c[0] % g == 0,
        madds_per_pixel=lambda c: c[0] * c[0] // g,
        block=lambda c: nn.Sequential(*_conv_bn(c[0], c[0], groups=g)),
        in_channels=lambda c: c[0],
        describe=lambda c: f"c={c[0]}",
    )


def _g3_kind(n: int, parallel: bool, merge: str) -> RowKind:
    # The block's input/output channels are the 1-fragment c (fixed by the table); c' is free.
    if not parallel:
        # n convs c'->c' in series; the first reads c'... so the block's width is c' throughout.
        return RowKind(
            ideal=lambda p: (p[0] / math.sqrt(n),),
            valid=lambda c: c[0] >= 1,
            madds_per_pixel=lambda c: n * c[0] * c[0],
            block=lambda c: nn.Sequential(*[m for _ in range(n) for m in _conv_bn(c[0], c[0])]),
            in_channels=lambda c: c[0],
            describe=lambda c: f"{n}x {c[0]}->{c[0]}" if n > 1 else f"c={c[0]}",
        )
    if merge == "concat":
        return RowKind(
            ideal=lambda p: (float(p[0]),),
            valid=lambda c: c[0] % n == 0,
            madds_per_pixel=lambda c: c[0] * c[0],
            block=lambda c: Parallel([nn.Sequential(*_conv_bn(c[0], c[0] // n)) for _ in range(n)], "concat"),
            in_channels=lambda c: c[0],
            describe=lambda c: f"{n}x {c[0]}->{c[0] // n}, concat",
        )
    return RowKind(
        ideal=lambda p: (p[0] / math.sqrt(n),),
        valid=lambda c: c[0] >= 1,
        madds_per_pixel=lambda c: n * c[0] * c[0],
        block=lambda c: Parallel([nn.Sequential(*_conv_bn(c[0], c[0])) for _ in range(n)], "add"),
        in_channels=lambda c: c[0],
        describe=lambda c: f"{n}x {c[0]}->{c[0]}, add",
    )


def _g4_kind(relu: bool, shortcut: bool) -> RowKind:
    return RowKind(
        ideal=lambda p: (float(p[0]),),
        valid=lambda c: c[0] % 4 == 0,
        # 1x1 c->c/4, 3x3 c/4->c/4, 1x1 c/4->c
        madds_per_pixel=lambda c: c[0] * (c[0] // 4) * 2 + 9 * (c[0] // 4) ** 2,
        block=lambda c: Bottleneck(c[0], c[0] // 4, relu, shortcut),
        in_channels=lambda c: c[0],
        describe=lambda c: f"c={c[0]} (mid {c[0] // 4})",
    )


def row_kinds(table: str, g3_merge: str = "concat") -> list[RowKind]:
    if table == "G1":
        return [_g1_kind() for _ in range(4)]
    if table == "G2":
        return [_g2_kind(g) for g in (1, 2, 4, 8)]
    if table == "G3":
        return [_g3_kind(1, False, g3_merge), _g3_kind(2, False, g3_merge), _g3_kind(4, False, g3_merge),
                _g3_kind(2, True, g3_merge), _g3_kind(4, True, g3_merge)]
    if table == "G4":
        return [_g4_kind(r, s) for r, s in ((True, True), (True, False), (False, True), (False, False))]
    raise UsageError(f"unknown guideline {table!r}; valid: {', '.join(TABLES)}")


# ----------------------------------------------------------------------------------------------------
# channel solver: nearest valid channels to the paper's, with every row's multiply-adds near one target


def _candidates(kind: RowKind, ideal: tuple[float, ...]) -> list[tuple[int, float, tuple[int, ...]]]:
    """(multiply-adds per pixel, cost, channels) for valid channel tuples near `ideal`, sorted by
    multiply-adds. Every free channel ranges -30%..+30% around its ideal; cost = summed relative change."""
    ranges = [range(max(1, math.floor(v * 0.7)), math.ceil(v * 1.3) + 1) for v in ideal]
    combos: list[tuple[int, ...]] = [()]
    for r in ranges:
        combos = [h + (v,) for h in combos for v in r]
    out = []
    for c in combos:
        if kind.valid(c):
            out.append((kind.madds_per_pixel(c), sum(abs(ci - ii) / ii for ci, ii in zip(c, ideal, strict=True)), c))
    out.sort()
    return out


@functools.cache
def solve_channels(table: str, setup: str = "arm", width: str = "x1", g3_merge: str = "concat",
                   tol: float = FLOPS_TOLERANCE) -> list[tuple[int, ...]]:
    """Each row's channels: nearest to the paper's (x width) with all rows' multiply-adds within `tol` of
    one common target. The target scans +-6% around the paper's first row, in 0.25% steps; moving the
    first (reference) row counts three times as much as moving another row."""
    import bisect

    if setup not in SETUPS:
        raise UsageError(f"unknown setup {setup!r}; valid: {', '.join(SETUPS)}")
    if width not in WIDTH_FACTOR:
        raise UsageError(f"unknown width {width!r}; valid: {', '.join(WIDTHS)}")
    t = PAPER[table]
    f = WIDTH_FACTOR[width]
    kinds = row_kinds(table, g3_merge)
    ideals = [k.ideal(tuple(v * f for v in p)) for k, p in zip(kinds, t.channels[setup], strict=True)]
    cands = [_candidates(k, ideal) for k, ideal in zip(kinds, ideals, strict=True)]
    keys = [[m for m, _, _ in c] for c in cands]
    base = float(kinds[0].madds_per_pixel(tuple(round(v) for v in ideals[0])))
    best: tuple[float, list[tuple[int, ...]]] | None = None
    for step in range(-24, 25):
        target = base * (1 + step * 0.0025)
        total = abs(step) * 1e-6  # ties: prefer the paper's first-row target
        chosen = []
        for i, (c, k) in enumerate(zip(cands, keys, strict=True)):
            lo = bisect.bisect_left(k, target * (1 - tol))
            hi = bisect.bisect_right(k, target * (1 + tol))
            if lo >= hi:
                break
            _, cost, ch = min(c[lo:hi], key=lambda e: (e[1], e[2]))
            total += cost * (3.0 if i == 0 else 1.0)
            chosen.append(ch)
        else:
            if best is None or total < best[0]:
                best = (total, chosen)
    if best is None:
        raise UsageError(f"no channel numbers hold {table}'s multiply-adds within {tol:.1%} at {setup} {width}")
    return best[1]


# ----------------------------------------------------------------------------------------------------
# specs


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """One network of one table: row, width, channels; `build()` makes it, `input_shape` feeds it."""

    table: str
    row: int
    width: str
    setup: str
    channels: tuple[int, ...]
    in_channels: int
    input_size: int
    madds: int  # whole network, from the formula (the tests check it against torch's own counter)
    g3_merge: str = "concat"

    @property
    def row_label(self) -> str:
        return PAPER[self.table].rows[self.row]

    @property
    def name(self) -> str:
        label = self.row_label.replace(" / ", "-").replace(":", "_").replace(" ", "")
        merge = f"_{self.g3_merge}" if self.table == "G3" and self.row >= 3 and self.g3_merge != "concat" else ""
        return f"{self.table.lower()}_r{self.row}_{label}_{self.width}_{self.setup}{merge}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_channels, self.input_size, self.input_size)

    def describe(self) -> str:
        return row_kinds(self.table, self.g3_merge)[self.row].describe(self.channels)

    def build(self, seed: int = 0, fuse_bn: bool = False, device: str = "cpu") -> nn.Module:
        """The network in eval mode with seeded random weights. `fuse_bn` folds each BatchNorm into the
        convolution before it, as every runtime we target does on load: the exported graph is the same,
        and the converters (whose time grows with the node count) get a third fewer nodes. `device="meta"`
        builds shapes only (for counting)."""
        torch.manual_seed(seed + 1000 * TABLES.index(self.table) + 10 * self.row + WIDTH_FACTOR[self.width])
        kind = row_kinds(self.table, self.g3_merge)[self.row]
        with torch.device(device):
            net = nn.Sequential(*[kind.block(self.channels) for _ in range(BLOCKS)])
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                # fan-in scaling keeps activations O(1) through 10 blocks (int8 calibration sees sane ranges)
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        net.eval()
        return fuse_conv_bn(net) if fuse_bn else net

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "table": self.table, "row": self.row, "row_label": self.row_label,
                "width": self.width, "setup": self.setup, "channels": list(self.channels),
                "paper_channels": [v * WIDTH_FACTOR[self.width] for v in PAPER[self.table].channels[self.setup][self.row]],
                "block": self.describe(), "input_shape": list(self.input_shape), "madds": self.madds,
                "g3_merge": self.g3_merge if self.table == "G3" else None}


def table_specs(table: str, setup: str = "arm", widths: Sequence[str] = WIDTHS, g3_merge: str = "concat",
                input_size: int = INPUT_SIZE) -> list[NetSpec]:
    """Every network of one table, row-major within each width."""
    if g3_merge not in G3_MERGES:
        raise UsageError(f"unknown G3 merge {g3_merge!r}; valid: {', '.join(G3_MERGES)}")
    kinds = row_kinds(table, g3_merge)
    out = []
    for w in widths:
        chans = solve_channels(table, setup, w, g3_merge)
        for i, (k, c) in enumerate(zip(kinds, chans, strict=True)):
            out.append(NetSpec(table, i, w, setup, tuple(c), k.in_channels(c), input_size,
                               BLOCKS * k.madds_per_pixel(c) * input_size * input_size, g3_merge))
    return out


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every Conv2d -> BatchNorm2d pair inside nn.Sequential containers (eval mode), in place."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in list(module.modules()):
        if not isinstance(m, nn.Sequential):
            continue
        kids = list(m.children())
        out: list[nn.Module] = []
        i = 0
        while i < len(kids):
            conv, bn = kids[i], kids[i + 1] if i + 1 < len(kids) else None
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                out.append(fuse_conv_bn_eval(conv, bn))
                i += 2
            else:
                out.append(kids[i])
                i += 1
        if len(out) != len(kids):
            for name in list(m._modules):
                del m._modules[name]
            for j, k in enumerate(out):
                m.add_module(str(j), k)
    return module


def count_madds(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward, by torch's own FLOP counter (a second opinion on the formulas).
    Works on a "meta" module too (no arithmetic is done then)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(module.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(torch.zeros(*input_shape, device=device))
    return int(fc.get_total_flops()) // 2
