"""One registry of models: CLI, exporters, tests and benchmarks all iterate it."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from shufflenet_edge.errors import UsageError


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the rest of the toolkit needs to know about a registered model."""

    name: str
    family: str  # "shufflenet_v1", "shufflenet_v2", "mobilenet_v2", "megvii_v1", "megvii_v2"
    builder: Callable[..., nn.Module]
    width: float
    groups: int | None = None  # V1 only
    paper_mflops: float | None = None  # multiply-adds at 224x224 the papers (megvii_*: megvii's README) list
    torchvision_params: int | None = None  # exact count for torchvision's model (1000 classes)
    torchvision_weights: str | None = None  # file name torchvision publishes, if any
    # False: the exporters export this model's reference form only. Since the graph-level fold
    # (shufflenet_edge.graph_fold) every registered ShuffleNet, megvii's included, is foldable.
    foldable: bool = True
    # The preprocessing its weights were trained with (data.Preprocess.for_model): "torchvision" (RGB, ImageNet
    # mean/std) or "megvii" (BGR, 0..255, no normalization).
    preprocess: str = "torchvision"


_REGISTRY: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> ModelInfo:
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is registered twice")
    _REGISTRY[info.name] = info
    return info


def _ensure_loaded() -> None:
    # Importing the family modules fills the registry (megvii's last, so listings start with ours).
    from shufflenet_edge.models import mobilenet_v2, shufflenet_v1, shufflenet_v2  # noqa: F401
    importlib.import_module("shufflenet_edge.models.megvii")


def list_models(family: str | None = None) -> list[str]:
    _ensure_loaded()
    return [n for n, i in _REGISTRY.items() if family is None or i.family == family]


def get_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        # A few close names, not all of them on one line: `shufflenet-edge models` lists the rest.
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown model {name!r}{hint} (`shufflenet-edge models` lists the {len(_REGISTRY)} valid names)"
        )
    return _REGISTRY[name]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    return get_info(name).builder(**kwargs)
