"""Python API: export and check any eval-mode `nn.Module`, the way the CLI does for registry names.

    import shufflenet_edge as se
    side = se.export(model, "out/backbone.tflite", example_input=torch.randn(1, 3, 256, 320))
    report = se.parity("out/backbone.tflite", model, 8)

Registry names go through the same path (name -> module -> the one pipeline). A user model's sidecar
records how to rebuild its reference (`source`: the ``--model-file`` spec and the weights' path and sha256),
so `parity(artifact)` without a model rebuilds it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shufflenet_edge.files import file_sha256
from shufflenet_edge.errors import EdgeError, UsageError, eval_mode


_USER_PREFIX = "_shufflenet_edge_user_"


def _user_module_name(path: Path) -> str:
    # Stable across processes (never `hash()`, which is salted per interpreter): the reference candidate's child
    # process unpickles the user's module by this name.
    import hashlib

    return _USER_PREFIX + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def import_model_file(path: Path) -> Any:
    """Import a user's model file under a name derived from its path (once per process)."""
    name = _user_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    try:
        sp = importlib.util.spec_from_file_location(name, path)
        if sp is None or sp.loader is None:
            raise EdgeError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(sp)
        sys.modules[name] = module
        sp.loader.exec_module(module)
    except EdgeError:
        sys.modules.pop(name, None)
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: one line, what and where)
        sys.modules.pop(name, None)
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EdgeError(f"cannot import model file {path}: {type(e).__name__}: {line}") from e
    return module


def user_module_files() -> dict[str, str]:
    """The model files imported in this process: module name -> path."""
    return {n: str(m.__file__) for n, m in list(sys.modules.items())
            if n.startswith(_USER_PREFIX) and getattr(m, "__file__", None)}


def load_model_file(spec: str, weights: str | None = None) -> tuple[nn.Module, tuple[int, ...] | None, dict[str, Any]]:
    """``FILE.py:FACTORY`` -> (module in eval mode, example input shape or None, source record).

    FACTORY returns the module, or ``(module, example_input_shape)``. `weights`: a state dict loaded into it
    (strictly; megvii/DataParallel ``module.`` prefixes and ``{'state_dict': ...}`` wrappers are unwrapped)."""
    file, sep, factory = spec.rpartition(":")
    if not sep or not file or not factory:
        raise UsageError(f"--model-file must be FILE.py:FACTORY, got {spec!r}")
    path = Path(file)
    if not path.is_file():
        raise EdgeError(f"model file not found: {path}")
    module = import_model_file(path)
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise EdgeError(f"{path} has no callable {factory!r}; callables there: {', '.join(names[:12]) or 'none'}")
    try:
        made = fn()
    except Exception as e:  # noqa: BLE001
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EdgeError(f"{spec}: the factory raised {type(e).__name__}: {line}") from e
    shape = None
    if made is None:
        raise EdgeError(f"{spec}: the factory returned None; it must return the nn.Module (or (module, input shape)). "
                        "If it ends with `return model.eval()`, note that some modules' eval() returns None "
                        "(OpenMMLab's): call model.eval() and return model")
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module):
        made, shape = made[0], tuple(int(v) for v in made[1])
    if not isinstance(made, nn.Module):
        raise EdgeError(f"{spec} returned {type(made).__name__}; expected an nn.Module or (nn.Module, input shape)")
    source: dict[str, Any] = {"kind": "model_file", "spec": f"{path}:{factory}", "file_sha256": file_sha256(path),
                              "weights": None, "input_shape": list(shape) if shape else None}
    if weights is not None:
        from shufflenet_edge.models.weights import load_state_dict_strict, read_state_dict, strip_data_parallel

        state = read_state_dict(weights)
        if "state_dict" in state and isinstance(state["state_dict"], dict):  # pragma: no cover (read_state_dict unwraps)
            state = state["state_dict"]
        state = strip_data_parallel(state)
        load_state_dict_strict(made, state, source=f"weights file {weights}")
        source["weights"] = {"path": str(weights), "sha256": file_sha256(weights)}
    return eval_mode(made), shape, source


def export(
    model: nn.Module | str,
    out: str | os.PathLike[str] | None,
    config: Any = None,
    *,
    target: str | None = None,
    weights: str | None = None,
    example_input: Any = None,
    preprocess: Any = None,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Export `model` (an eval-mode nn.Module, a registry name, or a graph from `shufflenet_edge.qat.prepare`) to
    ONNX or TFLite at `out`; returns the `Artifact` (its sidecar reads like a dict: ``art["graph"]``).

    `config`: an `ExportConfig`, or keyword shortcuts with the CLI's flag names (`int8=True`, `form`, `calib`,
    `precision="fp16"`, `io`, `layout`, `batch`, `dynamic_batch`, `threads`, `keep_float`, `tune_on`, ...). With int8,
    the accuracy budget is `gate=parity.Thresholds(...)` (`max_accuracy_drop` with `images=` a labelled folder) and/or
    `budget=AccuracyBudget(validate, max_drop)`, the user's own validation function (export/config.py): an artifact
    that misses it gets the fewest units kept float that meet it (`search_tries` quantizations at most, 0 = refuse
    at once). `int8=Int8Config(...)` takes the same choices whole.
    `target` defaults to the suffix of `out` (.onnx / .tflite)."""
    from shufflenet_edge.export.config import ExportConfig
    from shufflenet_edge.export.pipeline import export as run_pipeline

    if config is None:
        fmt = target or (Path(out).suffix.lstrip(".").lower() if out is not None else "tflite")
        if fmt not in ("onnx", "tflite"):
            raise UsageError(f"target must be onnx or tflite (or an out path ending in .onnx / .tflite), got {fmt!r}")
        config = ExportConfig.from_options(fmt, **options)
    elif options or target is not None:
        raise TypeError("pass either config= or keyword options, not both")
    return run_pipeline(model, out, config, weights=weights, example_input=example_input, preprocess=preprocess,
                        name=name, source=source)


def rebuild_reference(side: dict[str, Any]) -> nn.Module:
    """The PyTorch reference an artifact's sidecar describes (registry name or model file + weights)."""
    src = side.get("source") or {"kind": "registry", "name": side.get("model")}
    if src.get("kind") == "model_file":
        w = (src.get("weights") or {}).get("path")
        if w and src["weights"].get("sha256") and Path(w).is_file() and file_sha256(w) != src["weights"]["sha256"]:
            raise EdgeError(f"weights file {w} changed since the export (sha256 differs from the sidecar's)")
        return load_model_file(src["spec"], w)[0]
    if src.get("kind") == "registry":
        from shufflenet_edge.models.weights import load_model

        w = (src.get("weights") or {}).get("path") or (side.get("weights") or {}).get("path")
        return load_model(src.get("name") or side["model"], w, seed=src.get("seed") or side.get("seed") or 0, warn=False)
    if src.get("kind") == "qat":
        raise EdgeError(f"the artifact is a QAT graph of {src.get('class')} and its sidecar records no float model: pass "
                        "the model it started from (parity --model/--model-file, or parity(artifact, model)); "
                        "qat.prepare(..., source=...) records it")
    raise EdgeError(f"the sidecar's model was a Python object ({src.get('class')}); pass it: parity(artifact, model, inputs)")


def parity(
    artifact: str | os.PathLike[str],
    model: nn.Module | None = None,
    inputs: Any = None,
    *,
    thresholds: Any = None,
    seed: int = 0,
    images: str | None = None,
) -> dict[str, Any]:
    """Compare every output of `artifact` with `model` (default: rebuilt from the artifact's record) the way the
    `parity` command does (one engine): the report row of the artifact, one entry per output in "outputs".

    `inputs`: an (N, C, H, W) array or tensor of preprocessed inputs, or a count of structured synthetic images
    (seeded); None: the images the artifact's export checked int8 on (its sidecar records them), else 32 synthetic
    ones, as the `parity` command does; `images`: an image folder instead. The gate is the user's
    `thresholds`, else the int8 budget the artifact's export judged it by (its sidecar), else parity's default for
    the artifact's precision; outputs that are not logits are gated without top-1/top-5."""
    from shufflenet_edge.parity import Inputs, ParityOptions, Reference, run_parity

    if images is not None:
        ins = Inputs("images", "images", folder=str(images))
    elif inputs is None:
        ins = Inputs("default", "default")
    elif isinstance(inputs, int):
        ins = Inputs("synthetic", "synthetic", n_synthetic=inputs, seed=seed)
    else:
        x = np.asarray(inputs.numpy() if isinstance(inputs, torch.Tensor) else inputs, np.float32)
        ins = Inputs("npy", f"{len(x)} inputs given", x=x)
    report = run_parity([str(artifact)], ins, Reference(module=model), ParityOptions(thresholds=thresholds))
    return report["artifacts"][0]
