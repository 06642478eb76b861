"""Loading torchvision-format state dicts, safely (``weights_only=True``), with errors that name keys."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shufflenet_edge.errors import EdgeError
from shufflenet_edge.models.common import warn_random_weights
from shufflenet_edge.models.registry import build_model, get_info


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"weights file not found: {p}")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeError(f"cannot read weights file {p}: not a valid PyTorch state dict ({first})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgeError(f"weights file {p} does not hold a state dict (a mapping of names to tensors)")
    return obj


def _short(keys: list[str], limit: int = 8) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Load with every mismatch named: missing keys, unexpected keys, shape differences."""
    own = model.state_dict()
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
        if num_classes is None:
            head = state.get("fc.weight", state.get("classifier.1.weight"))
            if head is not None:
                num_classes = int(head.shape[0])
    model = build_model(name, num_classes=num_classes or 1000, seed=seed)
    if state is not None:
        load_state_dict_strict(model, state, source=f"weights file {weights}")
    elif warn:
        warn_random_weights(name, seed)
    return model.eval()
