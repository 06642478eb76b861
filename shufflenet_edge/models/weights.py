"""Loading state dicts safely (``weights_only=True``), with errors that name keys.

File layouts: a plain state dict (torchvision's), ``{'state_dict': {...}}``, and either with every key
prefixed ``module.`` (saved from ``nn.DataParallel``, as megvii's ShuffleNet-Series checkpoints are).
A file whose key layout belongs to another model family than the one asked for (a megvii checkpoint given
with a torchvision-style name, or the reverse) is refused with the registry entry that fits it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.files import file_sha256  # noqa: F401  (callers import it from here too)
from shufflenet_edge.models.common import warn_random_weights
from shufflenet_edge.models.registry import build_model, get_info





def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"weights file not found: {p}")
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..) since 1.6, a pickle (protocol byte 0x80) before: anything else is not a
    # checkpoint, and the weights-only unpickler would fail on it with whatever byte it met first (`KeyError: 101`).
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise EdgeError(f"cannot read weights file {p}: not a PyTorch checkpoint (torch.save writes a zip archive or a "
                        f"pickle; this file starts with {head!r})")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeError(f"cannot read weights file {p}: not a valid PyTorch state dict ({first})") from e
    except Exception as e:  # noqa: BLE001  (a damaged pickle: the unpickler raises KeyError, IndexError, ...)
        raise EdgeError(f"cannot read weights file {p}: not a PyTorch checkpoint, or a damaged one "
                        f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgeError(f"weights file {p} does not hold a state dict (a mapping of names to tensors)")
    return strip_data_parallel(obj)


DATA_PARALLEL_PREFIX = "module."


def strip_data_parallel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix when every key has it (a state dict saved from ``nn.DataParallel``)."""
    n = len(DATA_PARALLEL_PREFIX)
    if state and all(isinstance(k, str) and k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        return {k[n:]: v for k, v in state.items()}
    return dict(state)


def state_layout(state: dict[str, torch.Tensor]) -> str | None:
    """The model family a state dict's key names belong to, or None when they say nothing certain."""
    if "first_conv.0.weight" in state:
        if any(".branch_main_1." in k for k in state):
            return "megvii_v1"
        if any(".branch_main." in k for k in state) or "conv_last.0.weight" in state:
            return "megvii_v2"
    if "conv1.0.weight" in state:
        if "conv5.0.weight" in state:
            return "shufflenet_v2"
        if any(k.startswith("stage2.") and ".branch." in k for k in state):
            return "shufflenet_v1"
    return None


def suggest_model(state: dict[str, torch.Tensor]) -> str | None:
    """The registered model whose layout and tensor shapes fit `state`, where the shapes tell."""
    try:
        return _suggest(state)
    except (IndexError, ValueError, ZeroDivisionError):  # malformed tensors: no guess, the loader names them
        return None


def _suggest(state: dict[str, torch.Tensor]) -> str | None:
    layout = state_layout(state)
    if layout in ("megvii_v1", "megvii_v2"):
        from shufflenet_edge.models.megvii import name_from_state

        return name_from_state(state)
    if layout == "shufflenet_v2":
        from shufflenet_edge.models.shufflenet_v2 import V2_CHANNELS

        c4 = int(state["conv5.0.weight"].shape[1])
        return next((f"shufflenet_v2_{_suffix(w)}" for w, ch in V2_CHANNELS.items() if ch[3] == c4), None)
    if layout == "shufflenet_v1":
        from shufflenet_edge.models.shufflenet_v1 import v1_channels

        wt = state.get("stage3.1.branch.0.weight")  # stride-1 unit of stage 3: c3 -> c3/4 in g groups
        if wt is None:
            return None
        c3 = 4 * int(wt.shape[0])
        g = c3 // int(wt.shape[1])
        for w in (0.5, 1.0, 1.5, 2.0):
            if g in (1, 2, 3, 4, 8) and v1_channels(w, g)[1] == c3:
                return f"shufflenet_v1_{_suffix(w)}_g{g}"
    return None


def _suffix(width: float) -> str:
    return "x" + f"{width:.1f}".replace(".", "_")


_LAYOUT_WORDS = {
    "megvii_v1": "megvii ShuffleNet-Series V1 checkpoint (first_conv.*, features.N.branch_main_1.*)",
    "megvii_v2": "megvii ShuffleNet-Series V2 checkpoint (first_conv.*, features.N.branch_main.*, conv_last.*)",
    "shufflenet_v2": "torchvision-layout ShuffleNet V2 state dict (conv1.*, stageN.*, conv5.*, fc.*)",
    "shufflenet_v1": "ShuffleNet V1 state dict in this toolkit's torchvision-style layout (conv1.*, stageN.*, fc.*)",
}


def check_layout(name: str, state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse, in one line naming the entry to use, a file whose key layout is another family's."""
    from shufflenet_edge.models.registry import get_info

    layout = state_layout(state)
    family = get_info(name).family
    if layout is None or layout == family:
        return
    fit = suggest_model(state)
    if fit is not None:
        use = f"use --model {fit}"
    elif layout.startswith("megvii"):
        use = f"use a {layout.replace('_', ' ')} model (megvii_shufflenet_{layout[-2:]}_*; the tensor shapes fit none of them)"
    else:
        use = f"use a {layout} model (the tensor shapes fit none of them)"
    raise UsageError(f"{source} is a {_LAYOUT_WORDS[layout]}, not {name} ({family} layout): {use}")


def _short(keys: list[str], limit: int = 8) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Load with every mismatch named: missing keys, unexpected keys, shape differences."""
    own = model.state_dict()
    # BatchNorm's num_batches_tracked counts training steps and plays no part in evaluation; files saved
    # before PyTorch 0.4.1 lack it, and torch itself fills it in. Not a mismatch worth refusing.
    state = {**{k: v for k, v in own.items() if k.endswith(".num_batches_tracked") and k not in state}, **state}
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if extra:
        problems.append(f"unexpected keys: {_short(extra)}")
    if shapes:
        problems.append(f"shape mismatch: {_short(shapes)}")
    if problems:
        raise EdgeError(f"{source} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_model(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    warn: bool = True,
) -> nn.Module:
    """Build a registered model, then load `weights` if given (num_classes follows the file's head)."""
    get_info(name)
    state = None
    if weights is not None:
        state = read_state_dict(weights)
        check_layout(name, state, f"weights file {weights}")
        if num_classes is None:
            # fc: torchvision ShuffleNets; classifier.1: MobileNetV2; classifier.0: megvii (no bias)
            head = next((state[k] for k in ("fc.weight", "classifier.1.weight", "classifier.0.weight") if k in state), None)
            if head is not None and head.ndim == 2:
                num_classes = int(head.shape[0])
    model = build_model(name, num_classes=num_classes or 1000, seed=seed)
    if state is not None:
        try:
            load_state_dict_strict(model, state, source=f"weights file {weights}")
        except EdgeError as e:
            fit = suggest_model(state)
            if fit is None or fit == name:
                raise
            raise EdgeError(f"{e} (its tensor shapes fit {fit})") from e
    elif warn:
        warn_random_weights(name, seed)
    return model.eval()
