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

from shufflenet_edge.errors import EdgeError, UsageError


def _sha256(path: str | os.PathLike[str]) -> str:
    from shufflenet_edge.models.weights import file_sha256

    return file_sha256(path)


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
    mod_name = f"_shufflenet_edge_user_{abs(hash(str(path.resolve())))}"
    try:
        sp = importlib.util.spec_from_file_location(mod_name, path)
        if sp is None or sp.loader is None:
            raise EdgeError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(sp)
        sys.modules[mod_name] = module
        sp.loader.exec_module(module)
    except EdgeError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: one line, what and where)
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EdgeError(f"cannot import model file {path}: {type(e).__name__}: {line}") from e
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
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module):
        made, shape = made[0], tuple(int(v) for v in made[1])
    if not isinstance(made, nn.Module):
        raise EdgeError(f"{spec} returned {type(made).__name__}; expected an nn.Module or (nn.Module, input shape)")
    source: dict[str, Any] = {"kind": "model_file", "spec": f"{path}:{factory}", "file_sha256": _sha256(path),
                              "weights": None, "input_shape": list(shape) if shape else None}
    if weights is not None:
        from shufflenet_edge.models.weights import load_state_dict_strict, read_state_dict, strip_data_parallel

        state = read_state_dict(weights)
        if "state_dict" in state and isinstance(state["state_dict"], dict):  # pragma: no cover (read_state_dict unwraps)
            state = state["state_dict"]
        state = strip_data_parallel(state)
        load_state_dict_strict(made, state, source=f"weights file {weights}")
        source["weights"] = {"path": str(weights), "sha256": _sha256(weights)}
    return made.eval(), shape, source


def _example(example_input: Any, input_size: int | tuple[int, int]) -> Any:
    if example_input is None:
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    if isinstance(example_input, torch.Tensor):
        return example_input
    if isinstance(example_input, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example_input):
        return tuple(example_input)
    raise TypeError(f"example_input must be a tensor or a tuple of tensors, got {type(example_input).__name__}")


def export(
    model: nn.Module | str,
    out: str | os.PathLike[str],
    *,
    example_input: Any = None,
    input_size: int = 224,
    target: str | None = None,
    int8: bool = False,
    calib: str | None = None,
    form: str = "auto",
    preprocess: Any = None,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Export `model` (an eval-mode nn.Module, or a registry name) to ONNX or TFLite at `out`; returns the sidecar.

    `target` defaults to the suffix of `out` (.onnx / .tflite). `options` go to the exporter (ONNX: batch,
    dynamic_batch, threads; TFLite: io, layout, threads, keep_candidates, precision="fp16")."""
    from shufflenet_edge.data import Preprocess

    out = Path(out)
    target = target or out.suffix.lstrip(".").lower()
    if target not in ("onnx", "tflite"):
        raise UsageError(f"target must be onnx or tflite (or an out path ending in .onnx / .tflite), got {target!r}")
    if preprocess is not None and not isinstance(preprocess, Preprocess):
        preprocess = Preprocess.from_dict(preprocess) if isinstance(preprocess, dict) else preprocess
    show = options.pop("show_progress", False)
    if isinstance(model, str):
        from shufflenet_edge.models.weights import load_model

        weights = options.pop("weights", None)
        seed = options.pop("seed", 0)
        module = load_model(model, weights, seed=seed, warn=False)
        label = model
        source = source or {"kind": "registry", "name": model,
                            "weights": {"path": str(weights), "sha256": _sha256(weights)} if weights else None, "seed": seed}
    else:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or a registry name, got {type(model).__name__}")
        from shufflenet_edge import qat

        if qat.is_qat_model(model):  # fine-tuned with shufflenet_edge.qat: int8 TFLite with the learned scales
            if target != "tflite" or not int8:
                raise UsageError("a model from shufflenet_edge.qat.prepare exports as int8 TFLite: target='tflite', int8=True")
            return qat.export_tflite(model, out, model_name=name or "qat_model", **options)
        if model.training:
            raise UsageError("the model is in training mode: call model.eval() first (BatchNorm/Dropout behave differently)")
        module = model
        label = name or type(model).__name__
        source = source or {"kind": "python", "class": f"{type(model).__module__}.{type(model).__qualname__}"}
    x = _example(example_input, input_size)
    x0 = x[0] if isinstance(x, tuple) else x
    if preprocess is None and x0.dim() == 4 and x0.shape[2] == x0.shape[3]:
        preprocess = Preprocess.for_size(int(x0.shape[2]))
    if target == "onnx":
        from shufflenet_edge.export.onnx_export import export_onnx

        side = export_onnx(label, out, form=form, int8=int8, calib=calib, show_progress=show, module=module,
                           example_input=x, source=source, preprocess=preprocess,
                           input_size=int(x0.shape[-1]), **options)
    else:
        from shufflenet_edge.export.tflite_export import export_tflite

        precision = options.pop("precision", "int8" if int8 else "fp32")
        side = export_tflite(label, out, form=form, precision=precision, calib=calib, show_progress=show,
                             module=module, example_input=x, source=source, preprocess=preprocess,
                             input_size=int(x0.shape[-1]), **options)
    return side


def rebuild_reference(side: dict[str, Any]) -> nn.Module:
    """The PyTorch reference an artifact's sidecar describes (registry name or model file + weights)."""
    src = side.get("source") or {"kind": "registry", "name": side.get("model")}
    if src.get("kind") == "model_file":
        w = (src.get("weights") or {}).get("path")
        if w and src["weights"].get("sha256") and Path(w).is_file() and _sha256(w) != src["weights"]["sha256"]:
            raise EdgeError(f"weights file {w} changed since the export (sha256 differs from the sidecar's)")
        return load_model_file(src["spec"], w)[0]
    if src.get("kind") == "registry":
        from shufflenet_edge.models.weights import load_model

        w = (src.get("weights") or {}).get("path") or (side.get("weights") or {}).get("path")
        return load_model(src.get("name") or side["model"], w, seed=src.get("seed") or side.get("seed") or 0, warn=False)
    raise EdgeError(f"the sidecar's model was a Python object ({src.get('class')}); pass it: parity(artifact, model, inputs)")


def run_artifact_all(artifact: str | os.PathLike[str], x_nchw: np.ndarray, side: dict[str, Any]) -> list[np.ndarray]:
    """Every output of the artifact for NCHW float inputs, each in PyTorch's layout (NHWC outputs transposed back)."""
    path = str(artifact)
    if path.endswith(".onnx"):
        from shufflenet_edge.export.onnx_export import run_onnx_all

        outs = [run_onnx_all(path, [x_nchw[i : i + 1]]) for i in range(len(x_nchw))]
        return [np.concatenate(v) for v in zip(*outs)]
    from shufflenet_edge.export.tflite_export import run_tflite_all

    lay_in = (side.get("input") or {}).get("layout", "nhwc")
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)) if lay_in == "nhwc" else x_nchw
    ys = run_tflite_all(path, x)
    lays = [o.get("layout") for o in side.get("outputs") or []] or [None] * len(ys)
    return [np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if lay == "nhwc" and y.ndim == 4 else y
            for y, lay in zip(ys, lays)]


def parity(
    artifact: str | os.PathLike[str],
    model: nn.Module | None = None,
    inputs: Any = 8,
    *,
    thresholds: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare every output of `artifact` with `model` (default: rebuilt from the sidecar) on `inputs`
    (an (N, C, H, W) array or tensor, or a count of seeded normal inputs at the artifact's input shape).

    The gate is the user's `thresholds` or parity's default for the artifact's precision; outputs that are not
    logits (rank != 2) are gated on relative error / PSNR only (top-1 of a feature map means nothing)."""
    import dataclasses

    from shufflenet_edge.export.common import artifact_info
    from shufflenet_edge.parity import compare, default_gate, violations

    side, _ = artifact_info(artifact)
    if side is None:
        raise EdgeError(f"{artifact} has no sidecar and no embedded metadata: cannot tell its layout and outputs")
    if model is None:
        model = rebuild_reference(side)
    model = model.eval()
    if isinstance(inputs, int):
        shp = (side.get("source") or {}).get("input_shape") or _torch_input_shape(side)
        x = torch.randn(inputs, *shp[1:], generator=torch.Generator().manual_seed(seed)).numpy()
    else:
        x = np.asarray(inputs.numpy() if isinstance(inputs, torch.Tensor) else inputs, np.float32)
    with torch.no_grad():
        wants = [torch.cat(v).numpy() for v in zip(*[
            [t for t in torch.utils._pytree.tree_leaves(model(torch.from_numpy(x[i : i + 1]))) if isinstance(t, torch.Tensor)]
            for i in range(len(x))])]
    gots = run_artifact_all(artifact, x, side)
    if len(gots) != len(wants):
        raise EdgeError(f"{artifact} has {len(gots)} outputs, the model {len(wants)}")
    precision = side.get("precision", "fp32")
    gate = thresholds if thresholds is not None else default_gate(precision)
    rows = []
    for k, (got, want) in enumerate(zip(gots, wants)):
        if got.shape != want.shape:
            raise EdgeError(f"output {k}: artifact shape {got.shape} differs from the model's {want.shape}")
        st = compare(got, want)
        g = gate
        if want.ndim != 2 and thresholds is None:
            g = dataclasses.replace(gate, min_top1_agreement=None, min_top5_overlap=None)
        bad = violations(st, g)
        rows.append({"output": k, "shape": list(want.shape), "metrics": st.to_dict(), "summary": st.summary(),
                     "gate": g.to_dict(), "passed": not bad, "failures": bad})
    return {"artifact": str(artifact), "precision": precision, "inputs": len(x), "outputs": rows,
            "passed": all(r["passed"] for r in rows)}


def _torch_input_shape(side: dict[str, Any]) -> list[int]:
    inp = side.get("input") or {}
    shp = [int(v) if isinstance(v, int) and v > 0 else 1 for v in inp.get("shape", [1, 3, 224, 224])]
    if inp.get("layout") == "nhwc" and len(shp) == 4:
        shp = [shp[0], shp[3], shp[1], shp[2]]
    return shp
