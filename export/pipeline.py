"""The one export pipeline: every format, every way a model arrives (registry name, `--model-file`, a Python
module, a QAT-prepared graph) goes through the same stages.

    prepare   the module (eval mode), its example input, preprocessing, and the record of how to rebuild it
    backend   per format (export/onnx_export.py, export/tflite_export.py): candidates (fold, lower, passes,
              int8) -> select (the interleaved timer and `timing.decide`, on any target) -> verify -> write
              (atomic, embedded identity, sidecar)
    result    an `Artifact` (export/artifact.py): the file, its typed `Sidecar`, and `run()`

`export()` checks the config and the output path before any conversion, so a wrong flag costs nothing.
"""

from __future__ import annotations

import dataclasses
import time
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from shufflenet_edge.export.config import ExportConfig
from torch import nn

from shufflenet_edge.data import Preprocess
from shufflenet_edge.errors import EdgeError, UsageError, eval_mode

SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}


@dataclasses.dataclass(frozen=True)
class Backend:
    """What the pipeline needs of a format: export a prepared module (candidates, select, verify, write), run a
    file (every output, for inputs in the file's own layout), describe a file (ops, data movement, rank)."""

    name: str
    export: Callable[..., dict[str, Any]]
    run: Callable[[Path, Any], list[Any]]
    describe: Callable[[Path], dict[str, Any]]


def backend(fmt: str) -> Backend:
    from shufflenet_edge.export.inspect import inspect_artifact

    if fmt == "onnx":
        from shufflenet_edge.export.onnx_export import export_onnx, run_onnx_samples

        return Backend("onnx", export_onnx, run_onnx_samples, lambda p: inspect_artifact(str(p)))
    if fmt == "tflite":
        from shufflenet_edge.export.tflite_export import export_tflite, run_tflite_all

        return Backend("tflite", export_tflite, lambda p, x: run_tflite_all(str(p), x),
                       lambda p: inspect_artifact(str(p)))
    raise UsageError(f"unknown artifact format {fmt!r}; valid: onnx, tflite")


@dataclasses.dataclass
class Prepared:
    """The prepare stage's result: what every backend starts from."""

    label: str  # registry name or the user's label; names the artifact's model
    module: nn.Module  # eval mode
    example: tuple[torch.Tensor, ...]  # NCHW example input(s)
    preprocess: Preprocess
    source: dict[str, Any]  # how to rebuild the float reference (written into the sidecar)
    weights: str | None = None  # registry models: the checkpoint loaded (None = seeded random weights)
    registry: bool = False
    family: str | None = None  # registry models: the model family (mobilenet_v2 has no shuffle)
    qat: bool = False  # a graph from shufflenet_edge.qat.prepare (int8 TFLite with its learned scales)

    @property
    def random_weights(self) -> bool:
        return self.registry and self.weights is None

    @property
    def input_hw(self) -> tuple[int, int]:
        x = self.example[0]
        return int(x.shape[-2]), int(x.shape[-1])


@dataclasses.dataclass
class Job:
    """A backend's state through its stages; each backend adds what its stages fill in.

    `dropped`: candidates left out, and why. The fold and the graph passes are optimizations: a candidate they
    could not build, that the converter refused, or that failed its own check is dropped here and the choice goes
    on among the others (the graph as written last), so the fold never costs the user the artifact."""

    prep: Prepared
    cfg: ExportConfig
    out_path: Path
    p: Any  # progress (export.common.progress)
    dropped: dict[str, str] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)  # the default timing budget follows it

    def drop(self, name: str, err: BaseException | str) -> None:
        why = err if isinstance(err, str) else failure_line(err)
        self.dropped[name] = why
        self.p.log(f"candidate {name} left out: {why}")

    def fallback(self, chosen: str, asked: str) -> dict[str, Any] | None:
        """The sidecar's record of what was left out, with the warning the user sees (None when nothing was)."""
        if not self.dropped:
            return None
        names = ", ".join(self.dropped)
        reasons = "; ".join(f"{k}: {v}" for k, v in self.dropped.items())
        honoured = asked in ("auto", chosen) or (asked == "cpu" and chosen in ("cpu", "reference3"))
        text = (f"left out {names} ({reasons}); shipped {chosen}"
                + ("" if honoured else f", not the --form {asked} you asked for")
                + ". The fold or a graph pass failed on this model, which is a bug in shufflenet-edge, not in your "
                  "model: the artifact is correct, please report it with the command, `shufflenet-edge --version` "
                  "and this line")
        return {"dropped": dict(self.dropped), "shipped": chosen, "form_asked": asked, "warning": text}


def failure_line(err: BaseException) -> str:
    """One line for a caught failure: its type and the first line of its message, at most 240 characters."""
    text = str(err).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(err).__name__}: {first}"[:240]


def _example(example_input: Any, cfg: ExportConfig) -> tuple[torch.Tensor, ...]:
    if example_input is None:
        s = cfg.input_size
        return (torch.randn(cfg.batch, 3, s, s, generator=torch.Generator().manual_seed(0)),)
    if isinstance(example_input, torch.Tensor):
        xs: tuple[torch.Tensor, ...] = (example_input,)
    elif isinstance(example_input, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example_input):
        xs = tuple(example_input)
    else:
        raise TypeError(f"example_input must be a tensor or a tuple of tensors, got {type(example_input).__name__}")
    if cfg.batch == 1:  # the example's own batch (a --model-file factory's shape, the API's tensor) is the batch
        return xs
    # --batch N asked for explicitly: the graph is exported at N (the example's samples repeated), never silently at
    # the example's batch
    return tuple(t[torch.arange(cfg.batch) % t.shape[0]] for t in xs)


def prepare(model: nn.Module | str, cfg: ExportConfig, *, weights: str | None = None, example_input: Any = None,
            preprocess: Any = None, name: str | None = None, source: dict[str, Any] | None = None) -> Prepared:
    """A registry name or an nn.Module -> `Prepared`. A module must already be in eval mode (its BatchNorm and
    Dropout behave differently in training)."""
    from shufflenet_edge import qat

    if preprocess is not None and not isinstance(preprocess, Preprocess):
        preprocess = Preprocess.from_dict(preprocess)
    if isinstance(model, str):
        from shufflenet_edge.models import get_info
        from shufflenet_edge.models.weights import load_model

        info = get_info(model)
        module = load_model(model, weights, seed=cfg.seed, warn=False)
        # the weights and the seed are the sidecar's own `weights` / `seed` keys (rebuild_reference reads them)
        src = source or {"kind": "registry", "name": model}
        x = _example(example_input, cfg)
        pre = preprocess or Preprocess.for_model(model, int(x[0].shape[-1]))
        return Prepared(name or model, module, x, pre, src, weights=weights, registry=True, family=info.family)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or a registry name, got {type(model).__name__}")
    if weights is not None:
        raise UsageError("weights= is for registry names; load your weights into the module first")
    is_qat = qat.is_qat_model(model)
    if is_qat:
        if cfg.format != "tflite" or cfg.precision != "int8":
            raise UsageError("a model from shufflenet_edge.qat.prepare exports as int8 TFLite: target='tflite', int8=True")
        shape = qat.input_shape(model)
        x = (torch.randn(*shape, generator=torch.Generator().manual_seed(0)),)
    else:
        if model.training:
            raise UsageError("the model is in training mode: call model.eval() first (BatchNorm/Dropout behave differently)")
        eval_mode(model)
        x = _example(example_input, cfg)
    src = source or qat.source_of(model) or {
        "kind": "python", "class": f"{type(model).__module__}.{type(model).__qualname__}"}
    x0 = x[0]
    if preprocess is None:
        square = x0.dim() == 4 and x0.shape[2] == x0.shape[3]
        preprocess = Preprocess.for_size(int(x0.shape[-1])) if square else Preprocess.for_model(None, int(x0.shape[-1]))
    return Prepared(name or (qat.model_name(model) if is_qat else type(model).__name__), model, x, preprocess, src,
                    qat=is_qat)


def check_output_path(out: Path, cfg: ExportConfig) -> None:
    """Before any work: the output's suffix names the format, and the folder is writable."""
    from shufflenet_edge.export.common import check_writable

    want = SUFFIX[cfg.format]
    if out.suffix.lower() != want:
        raise UsageError(f"--out {out} does not end in {want}, the suffix of --target {cfg.format}: name it "
                         f"{out.with_suffix(want).name} (or pick the target that matches)")
    check_writable(out)


def export(model: nn.Module | str, out: str | os.PathLike[str] | None, config: ExportConfig, *,
           weights: str | None = None, example_input: Any = None, preprocess: Any = None, name: str | None = None,
           source: dict[str, Any] | None = None) -> Any:
    """Export `model` to `out` (default out/<model>[_<size>]_<precision>.<ext>) as `config` says; the Artifact."""
    from shufflenet_edge.export.artifact import Artifact

    prep = prepare(model, config, weights=weights, example_input=example_input, preprocess=preprocess, name=name,
                   source=source)
    path = Path(out) if out is not None else config.default_out(prep.label, prep.input_hw)
    check_output_path(path, config)
    side = backend(config.format).export(prep, path, config)
    if side is None:  # pragma: no cover  (a backend always returns its record)
        raise EdgeError(f"the {config.format_name} backend wrote no record for {path}")
    if (side.get("fallback") or {}).get("warning"):
        import warnings

        warnings.warn(side["fallback"]["warning"], FoldFallbackWarning, stacklevel=2)
    return Artifact(path, side)


class FoldFallbackWarning(UserWarning):
    """A folded candidate was left out of an export (the artifact is correct; the fold has a bug to report)."""
